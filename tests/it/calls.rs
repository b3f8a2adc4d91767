//! Calls between peers over real loopback sockets: values, typed errors, panics, unknown
//! tags, timeouts with cancellation, one-way calls, the reverse channel, the four calling
//! conventions, flags and the built-ins.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::support::{dead_addr, eventually, loopback};

async fn pair() -> (net::Peer, net::Peer) {
    let client = net::Peer::start(loopback()).await.unwrap();
    let server = net::Peer::start(loopback()).await.unwrap();
    (client, server)
}

/// Things handlers did, for checks that a call ran (or did not).
fn marks() -> &'static Mutex<HashSet<String>> {
    static MARKS: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    MARKS.get_or_init(Default::default)
}

fn marked(mark: &str) -> bool {
    marks().lock().unwrap().contains(mark)
}

#[net::connect]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NoSuchKey {
    key: String,
}

#[net::connect("registry.get")]
async fn get(key: String) -> Result<String, NoSuchKey> {
    match key.as_str() {
        "arrakis" => Ok("dune".into()),
        _ => Err(NoSuchKey { key }),
    }
}

#[net::connect]
fn boom(message: String) -> i64 {
    panic!("{message}")
}

#[net::connect]
async fn slow_async(ms: u64, mark: String) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    marks().lock().unwrap().insert(mark);
}

/// A slow synchronous handler that stops when its caller gives up.
#[net::connect]
fn slow_sync(ms: u64, mark: String, caller: net::Caller) -> bool {
    marks().lock().unwrap().insert(format!("{mark}: started"));
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        if caller.is_cancelled() {
            marks().lock().unwrap().insert(mark);
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[net::connect(oneway)]
fn record(mark: String) {
    marks().lock().unwrap().insert(mark);
}

#[net::connect]
fn double(x: i64) -> i64 {
    x * 2
}

/// Calls its caller back over the connection the call came in on.
#[net::connect]
async fn ask_back(x: i64, caller: net::Caller) -> Result<i64, String> {
    let doubled = double(x).on(&caller).await.map_err(|e| e.to_string())?;
    Ok(doubled + 1)
}

#[net::connect]
fn whoami(caller: net::Caller) -> (Option<String>, Option<String>, bool) {
    (
        caller.id().map(|id| id.to_string()),
        caller.group().map(str::to_owned),
        caller.is_local(),
    )
}

#[net::connect]
fn tuple(t: (i64, String, bool, f64)) -> (i64, String, bool, f64) {
    t
}

#[net::connect]
fn nested(
    m: BTreeMap<String, BTreeMap<String, Vec<Option<f64>>>>,
) -> BTreeMap<String, BTreeMap<String, Vec<Option<f64>>>> {
    m
}

#[net::connect]
fn busy() -> Result<i64, net::Flag> {
    Err(net::Flag::with_detail("BUSY", json!({"retry_in_ms": 50})))
}

static BUSY_SEEN: AtomicUsize = AtomicUsize::new(0);

#[net::flag("BUSY")]
fn on_busy(event: &net::FlagEvent) {
    assert_eq!(event.detail["retry_in_ms"], 50);
    BUSY_SEEN.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_runs_remotely_and_locally_alike() {
    let (client, server) = pair().await;
    assert_eq!(multiply(5, 10).local().unwrap(), 50);
    assert_eq!(multiply(5, 10).on(&server).via(&client).await.unwrap(), 50);
    assert_eq!(
        multiply(5, 10)
            .on(server.addr().to_string())
            .via(&client)
            .await
            .unwrap(),
        50
    );
    assert_eq!(
        multiply(5, 10).on(server.id()).via(&client).await.unwrap(),
        50
    );
    assert_eq!(client.connection_count(), 1, "one connection for all calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_round_trip_the_same_locally_and_remotely() {
    let (client, server) = pair().await;
    let values = [
        json!({"a": 1, "b": {"c": [1, 2, {"d": null}]}}),
        json!([1, "two", 3.5, false, null, [], {}]),
        json!(""),
        json!("unicode: żółw 🐢"),
        json!(null),
        json!(true),
        json!(false),
        json!(-0.000123),
        json!(1.5e300),
        json!(i64::MIN),
        json!(u64::MAX),
    ];
    for value in values {
        let local = net::pass_through(value.clone()).local().unwrap();
        let remote = net::pass_through(value.clone())
            .on(&server)
            .via(&client)
            .await
            .unwrap();
        assert_eq!(local, value);
        assert_eq!(remote, value);
    }
    let t = (7, String::new(), true, 2.25);
    assert_eq!(tuple(t.clone()).local().unwrap(), t);
    assert_eq!(tuple(t.clone()).on(&server).via(&client).await.unwrap(), t);
    let mut m = BTreeMap::new();
    m.insert(
        "outer".to_owned(),
        BTreeMap::from([("inner".to_owned(), vec![Some(1.0), None, Some(-2.5)])]),
    );
    assert_eq!(nested(m.clone()).local().unwrap(), m);
    assert_eq!(nested(m.clone()).on(&server).via(&client).await.unwrap(), m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_error_comes_back_typed() {
    let (client, server) = pair().await;
    let found = get("arrakis".into())
        .on(&server)
        .via(&client)
        .await
        .unwrap();
    assert_eq!(found, Ok("dune".to_owned()));
    let missing = get("Muad'Dib".into())
        .on(&server)
        .via(&client)
        .await
        .unwrap();
    assert_eq!(
        missing,
        Err(NoSuchKey {
            key: "Muad'Dib".into()
        })
    );
    assert_eq!(get("Muad'Dib".into()).local().await.unwrap(), missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_panic_says_what_and_where() {
    let (client, server) = pair().await;
    let err = boom("the spice must flow".into())
        .on(&server)
        .via(&client)
        .await
        .unwrap_err();
    match &err {
        net::Error::Remote {
            message, location, ..
        } => {
            assert_eq!(message, "the spice must flow");
            assert!(location.contains("calls::boom"), "{location}");
            assert!(location.contains("tests/it/calls.rs"), "{location}");
        }
        other => panic!("expected Error::Remote, got {other:?}"),
    }
    // The peer survives and the local call reports the panic the same way.
    assert_eq!(multiply(2, 3).on(&server).via(&client).await.unwrap(), 6);
    assert!(matches!(
        boom("x".into()).local().unwrap_err(),
        net::Error::Remote { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tag_lists_what_the_peer_has() {
    let (client, server) = pair().await;
    let err = net::call_tag::<Value>("no.such.function", json!([]))
        .on(&server)
        .via(&client)
        .await
        .unwrap_err();
    match &err {
        net::Error::UnknownTag {
            tag,
            available,
            peer,
        } => {
            assert_eq!(tag, "no.such.function");
            assert!(peer.contains(&server.addr().to_string()), "{peer}");
            assert!(available.iter().any(|t| t.starts_with("registry.get")));
            assert!(available.iter().any(|t| t.starts_with("pass_through")));
        }
        other => panic!("expected UnknownTag, got {other:?}"),
    }
    assert!(err.to_string().contains("INVALID_CONNECTION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_arguments_are_rejected_clearly() {
    let (client, server) = pair().await;
    let tag = multiply(0, 0).tag().to_owned();
    let err = net::call_tag::<i64>(tag.clone(), json!(["five", 10]))
        .on(&server)
        .via(&client)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, net::Error::BadArguments { message, .. } if message.contains("a, b")),
        "{err}"
    );
    let err = net::call_tag::<String>(tag.clone(), json!([5, 10]))
        .on(&server)
        .via(&client)
        .await
        .unwrap_err();
    assert!(matches!(err, net::Error::Decode { .. }), "{err}");
    // Keyword arguments land by name.
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("b".into(), json!(10));
    let product = net::call_tag::<i64>(tag, json!([5]))
        .on(&server)
        .via(&client)
        .kwargs(kwargs)
        .await
        .unwrap();
    assert_eq!(product, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_names_peer_and_tag_and_cancels_the_remote_work() {
    let (client, server) = pair().await;
    let started = Instant::now();
    let err = slow_async(400, "async-cancelled".into())
        .on(&server)
        .via(&client)
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(350));
    match &err {
        net::Error::Timeout {
            peer,
            tag,
            after,
            step,
        } => {
            assert!(peer.contains(&server.addr().to_string()));
            assert_eq!(tag, slow_async(0, String::new()).tag());
            assert_eq!(*after, Duration::from_millis(100));
            assert_eq!(*step, net::TimeoutStep::Reply);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // A synchronous handler sees the cancellation through its Caller.
    let err = slow_sync(2_000, "sync-cancelled".into())
        .on(&server)
        .via(&client)
        .timeout(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, net::Error::Timeout { .. }));
    eventually("the sync handler to see the cancel", || {
        marked("sync-cancelled")
    })
    .await;
    // Past the point where the async work would have finished: it never did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !marked("async-cancelled"),
        "the remote work was not cancelled"
    );
    // The connection is still good.
    assert_eq!(multiply(3, 3).on(&server).via(&client).await.unwrap(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_calls_return_once_sent() {
    let (client, server) = pair().await;
    record("oneway-by-declaration".into())
        .on(&server)
        .via(&client)
        .await
        .unwrap();
    // Any call can be sent one-way; it returns before the slow handler finishes.
    let started = Instant::now();
    slow_async(300, "oneway-per-call".into())
        .on(&server)
        .via(&client)
        .oneway()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(250));
    eventually("the one-way call to run", || {
        marked("oneway-by-declaration")
    })
    .await;
    eventually("the per-call one-way to run", || marked("oneway-per-call")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_calls_its_caller_back_over_the_same_connection() {
    let (client, server) = pair().await;
    assert_eq!(ask_back(20).on(&server).via(&client).await.unwrap(), Ok(41));
    assert_eq!(client.connection_count(), 1);
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_learns_who_called() {
    let client = net::Peer::start(loopback().group("render").hub(true))
        .await
        .unwrap();
    let server = net::Peer::start(loopback()).await.unwrap();
    let (id, group, local) = whoami().on(&server).via(&client).await.unwrap();
    assert_eq!(id.as_deref(), Some(client.id().as_str()));
    assert_eq!(group.as_deref(), Some("render"));
    assert!(!local);
    assert_eq!(whoami().local().unwrap(), (None, None, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_callbacks_get_values_and_errors() {
    let (client, server) = pair().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (ok, err) = (tx.clone(), tx.clone());
    get("arrakis".into())
        .on(&server)
        .via(&client)
        .then(
            move |v| ok.send(format!("got {v:?}")).unwrap(),
            move |e| err.send(format!("error {e:?}")).unwrap(),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), "got \"dune\"");
    // A typed error goes to the error handler, as Peers hands a remote exception to its
    // errback; the success callback never sees an `Err`.
    let (ok, err) = (tx.clone(), tx.clone());
    get("caladan".into())
        .on(&server)
        .via(&client)
        .then(
            move |v| ok.send(format!("got {v:?}")).unwrap(),
            move |failure| {
                let text = match failure {
                    net::Failure::Returned(NoSuchKey { key }) => format!("returned {key}"),
                    net::Failure::Call(e) => format!("call failed: {e}"),
                };
                err.send(text).unwrap()
            },
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(rx.recv().await.unwrap(), "returned caladan");
    let dead_addr = dead_addr();
    let (ok, err) = (tx.clone(), tx.clone());
    multiply(1, 2)
        .on(dead_addr)
        .via(&client)
        .then(
            move |v| ok.send(format!("got {v}")).unwrap(),
            move |e| err.send(format!("error {e}")).unwrap(),
        )
        .unwrap()
        .await
        .unwrap();
    let message = rx.recv().await.unwrap();
    assert!(
        message.starts_with("error cannot reach peer at"),
        "{message}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_fails_fast_naming_the_address() {
    let client = net::Peer::start(loopback()).await.unwrap();
    let dead_addr = dead_addr();
    let started = Instant::now();
    let err = multiply(1, 2).on(dead_addr).via(&client).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(&err, net::Error::Unreachable { addr, .. } if *addr == dead_addr.to_string()));
    for bad in ["not a peer", "nohost.invalid:3010", "127.0.0.1:notaport"] {
        let err = multiply(1, 2).on(bad).via(&client).await.unwrap_err();
        assert!(
            matches!(&err, net::Error::InvalidTarget { target, .. } if target == bad),
            "{bad}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_run_their_handlers() {
    let (client, server) = pair().await;
    assert_eq!(net::null().on(&server).via(&client).await.unwrap(), Ok(()));
    let err = busy().on(&server).via(&client).await.unwrap_err();
    assert!(
        matches!(&err, net::Error::Flag { name, .. } if name == "BUSY"),
        "{err}"
    );
    assert_eq!(BUSY_SEEN.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_ins_describe_the_peer() {
    let client = net::Peer::start(loopback()).await.unwrap();
    let server = net::Peer::start(loopback().group("lab").hub(true))
        .await
        .unwrap();
    let info = net::info().on(&server).via(&client).await.unwrap();
    assert_eq!(&info.id, server.id());
    assert_eq!(info.port, server.addr().port());
    assert_eq!(info.host, "127.0.0.1");
    assert_eq!(info.group.as_deref(), Some("lab"));
    assert!(info.hub);
    let exe = std::env::current_exe().unwrap();
    assert_eq!(info.executable, exe.display().to_string());
    assert!(info.connections.contains(&multiply(0, 0).tag().to_owned()));
    for flag in ["BUSY", "INVALID_CONNECTION", "NULL"] {
        assert!(info.flags.iter().any(|f| f == flag), "{flag}");
    }
    assert_eq!(info.version, net::VERSION);
    let functions: BTreeMap<String, String> =
        net::connections().on(&server).via(&client).await.unwrap();
    assert_eq!(functions["registry.get"], "it::calls::get");
    assert_eq!(functions["info"], "net::builtins::info");
    assert_eq!(
        net::pass_through(json!({"k": [1, 2]}))
            .on(&server)
            .via(&client)
            .await
            .unwrap(),
        json!({"k": [1, 2]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_synchronous_handler_does_not_stall_other_calls() {
    let (client, server) = pair().await;
    let slow = tokio::spawn({
        let (client, server) = (client.clone(), server.clone());
        async move {
            slow_sync(600, "not-cancelled".into())
                .on(&server)
                .via(&client)
                .await
        }
    });
    eventually("the slow call to start", || {
        marked("not-cancelled: started")
    })
    .await;
    let started = Instant::now();
    for i in 0..20 {
        assert_eq!(
            multiply(i, 2).on(&server).via(&client).await.unwrap(),
            i * 2
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "fast calls waited for the slow one: {:?}",
        started.elapsed()
    );
    assert!(slow.await.unwrap().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_the_callers() {
    let (client, server) = pair().await;
    assert_eq!(multiply(1, 1).on(&server).via(&client).await.unwrap(), 1);
    server.shutdown().await;
    let err = multiply(1, 1).on(&server).via(&client).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_port_range_names_the_range_and_the_variables() {
    // Find three consecutive free ports and occupy them.
    let (base, _held) = (20_000u16..60_000)
        .step_by(7)
        .find_map(|base| {
            let held: Vec<_> = (base..=base + 2)
                .map(|p| std::net::TcpListener::bind(("127.0.0.1", p)))
                .collect::<Result<_, _>>()
                .ok()?;
            Some((base, held))
        })
        .unwrap();
    let err = net::Peer::start(loopback().port(base).port_range(2))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, net::Error::NoFreePort { .. }));
    assert!(text.contains(&format!("{base}..={}", base + 2)), "{text}");
    assert!(
        text.contains("NET_PORT") && text.contains("NET_PORT_RANGE"),
        "{text}"
    );
}

#[test]
fn wait_blocks_plain_synchronous_code() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = net::Peer::start_on(loopback(), runtime.handle().clone()).unwrap();
    let client = net::Peer::start_on(loopback(), runtime.handle().clone()).unwrap();
    assert_eq!(multiply(4, 5).on(&server).via(&client).wait().unwrap(), 20);
    let missing = get("x".into()).on(&server).via(&client).wait().unwrap();
    assert_eq!(missing, Err(NoSuchKey { key: "x".into() }));
    let err = slow_async(300, "wait-timeout".into())
        .on(&server)
        .via(&client)
        .timeout(Duration::from_millis(50))
        .wait()
        .unwrap_err();
    assert!(matches!(err, net::Error::Timeout { .. }));
}

#[tokio::test]
async fn wait_on_a_current_thread_runtime_is_refused() {
    let (client, server) = pair().await;
    let err = multiply(1, 2).on(&server).via(&client).wait().unwrap_err();
    assert!(
        matches!(&err, net::Error::Usage(m) if m.contains(".await")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_timeout_means_none() {
    let (client, server) = pair().await;
    // Peers' convention: zero is no timeout, not an instant one. The call takes longer
    // than nothing and still arrives.
    slow_async(150, "zero timeout".into())
        .on(&server)
        .via(&client)
        .timeout(Duration::ZERO)
        .await
        .unwrap();
    assert!(marks().lock().unwrap().contains("zero timeout"));
    // A peer whose default is zero (NET_TIMEOUT=0) waits as well.
    let patient = net::Peer::start(loopback().timeout(Duration::ZERO))
        .await
        .unwrap();
    slow_async(150, "zero default".into())
        .on(&server)
        .via(&patient)
        .await
        .unwrap();
    assert!(marks().lock().unwrap().contains("zero default"));
}
