//! A new user's first hour (issue 15), over real sockets and processes: a library crate
//! whose functions a server fails to link, discovery that keeps up with late starters,
//! `serving`, explanations on the subscriber's side, app-net's names for settings.
//!
//! The two-program fixtures are examples built from tests/fixtures (their library crate
//! is tests/fixtures/app, crate `app`).

use std::time::{Duration, Instant};

use crate::support::{confined, eventually, example, free_range, loopback, Process, STDERR};

/// How long the documented cadence (a newcomer on this host within about a second) may
/// take on a loaded, shared machine before the test fails.
const NEWCOMER_BOUND: Duration = Duration::from_secs(3);

#[net::subscribe("newcomer.late")]
fn on_late(n: u64) {
    let _ = n;
}

#[net::event("newcomer.late")]
fn late(n: u64) -> u64 {
    n
}

/// Publishes `app.tick` with a text payload, which app's `on_tick(n: u64)` cannot take.
#[net::event("app.tick")]
fn tick_text(text: &str) -> String {
    text.to_owned()
}

/// A fixture program (`fixture_server` or `fixture_linked_server`) and where it serves.
fn fixture(name: &str, env: &[(&str, &str)]) -> (Process, String) {
    let mut command = confined(example(name));
    if !env.iter().any(|(k, _)| k.starts_with("NET_PORT")) {
        command.env("NET_PORT", "0");
    }
    command.envs(env.iter().copied());
    let mut process = Process::spawn(name, command);
    let line = process.next_line();
    let addr = line
        .strip_prefix("ready at ")
        .unwrap_or_else(|| panic!("{name} printed {line:?} first"))
        .to_owned();
    (process, addr)
}

fn in_range(base: u16, range: u16) -> net::Config {
    net::Config::default()
        .loopback(true)
        .port(base)
        .port_range(range)
        .probe_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_names_nothing_of_its_library_says_how_to_link_it() {
    let me = net::Peer::start(loopback()).await.unwrap();
    let (unlinked, addr) = fixture("fixture_server", &[]);
    let warning = unlinked.wait_for("serves none of its own functions");
    assert!(warning.contains("use my_lib as _;"), "{warning}");
    // The caller names the function; the error says which crate to link, and how.
    let err = app::add(1, 2).on(addr.as_str()).via(&me).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, net::Error::UnknownTag { .. }), "{text}");
    assert!(text.contains("no function app::add (tag "), "{text}");
    assert!(text.contains("add `use app as _;`"), "{text}");
    assert!(text.contains("besides net's"), "{text}");

    // The same program naming the crate serves its functions, and says nothing.
    let (linked, addr) = fixture("fixture_linked_server", &[]);
    assert_eq!(app::add(1, 2).on(addr.as_str()).via(&me).await.unwrap(), 3);
    assert_eq!(linked.count("serves none of its own"), 0);
    me.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_server_is_seen_without_asking_again() {
    let base = free_range(4);
    let early = net::Peer::start(in_range(base, 3)).await.unwrap();
    let mut membership = early.membership();
    assert!(early.peers().await.unwrap().is_empty());
    let late = net::Peer::start(in_range(base, 3)).await.unwrap();
    let started = Instant::now();
    // The cached answer, never `.refresh()`: the background refresh brings it up to date.
    loop {
        let seen = early.peers().await.unwrap();
        if seen.iter().any(|p| p.addr == late.addr()) {
            break;
        }
        assert!(
            started.elapsed() < NEWCOMER_BOUND,
            "the late peer {} was not seen within {NEWCOMER_BOUND:?}: {seen:?}",
            late.addr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joined = tokio::time::timeout(NEWCOMER_BOUND, async {
        loop {
            match membership.recv().await {
                Ok(net::Membership::Joined(p)) if p.addr == late.addr() => return p,
                Ok(_) => continue,
                Err(e) => panic!("membership stream: {e}"),
            }
        }
    })
    .await
    .expect("membership() reports the newcomer");
    assert_eq!(joined.found_by, net::Discovery::Scan);
    // And one that leaves without a goodbye is dropped the same way.
    late.shutdown().await;
    let left = Instant::now();
    while !early.peers().await.unwrap().is_empty() {
        assert!(
            left.elapsed() < NEWCOMER_BOUND,
            "the late peer is still listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    early.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_publisher_reaches_an_early_subscriber() {
    let base = free_range(4);
    let subscriber = net::Peer::start(in_range(base, 3)).await.unwrap();
    subscriber.auto_subscribe();
    // Its first round is over, and found nobody: the publisher is truly late.
    assert!(subscriber.peers().await.unwrap().is_empty());
    let publisher = net::Peer::start(in_range(base, 3)).await.unwrap();
    let started = Instant::now();
    eventually(
        "the early subscriber to subscribe to the late publisher",
        || {
            publisher
                .subscribers("newcomer.late")
                .contains(&subscriber.addr())
        },
    )
    .await;
    assert!(
        started.elapsed() < NEWCOMER_BOUND,
        "{:?}",
        started.elapsed()
    );
    let report = late(7).via(&publisher).await.unwrap();
    assert_eq!(report.delivered().count(), 1, "{report:?}");
    publisher.shutdown().await;
    subscriber.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_finds_the_peers_that_serve_a_function() {
    let base = free_range(4);
    let (base_s, range) = (base.to_string(), "3");
    let env = [("NET_PORT", base_s.as_str()), ("NET_PORT_RANGE", range)];
    let (_without, without) = fixture("fixture_server", &env);
    let (_with, with) = fixture("fixture_linked_server", &env);
    let me = net::Peer::start(in_range(base, 3).client(true))
        .await
        .unwrap();
    let all = me.peers().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for by in ["app::add", app::add(0, 0).tag()] {
        let serving = me.peers().serving(by).await.unwrap();
        let addrs: Vec<String> = serving.iter().map(|p| p.addr.to_string()).collect();
        assert_eq!(
            addrs,
            std::slice::from_ref(&with),
            "serving({by:?}); {without} serves nothing of app"
        );
        assert_eq!(app::add(2, 3).on(&serving[0]).via(&me).await.unwrap(), 5);
    }
    assert!(me.peers().serving("app::sub").await.unwrap().is_empty());
    me.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_with_subscriptions_still_explains_an_empty_network() {
    let (mut linked, _) = fixture("fixture_linked_server", &[]);
    linked.say("peers");
    assert_eq!(linked.next_line(), "peers 0");
    let explained = linked.wait_for("no peers found");
    assert!(explained.starts_with(STDERR), "{explained}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_says_when_an_event_does_not_fit_its_handler() {
    let base = free_range(4);
    let publisher = net::Peer::start(in_range(base, 3)).await.unwrap();
    let base_s = base.to_string();
    let env = [("NET_PORT", base_s.as_str()), ("NET_PORT_RANGE", "3")];
    let (subscriber, _) = fixture("fixture_linked_server", &env);
    eventually("the fixture to subscribe to app.tick", || {
        !publisher.subscribers("app.tick").is_empty()
    })
    .await;
    let report = tick_text("not a number").via(&publisher).await.unwrap();
    assert_eq!(report.failed().count(), 1, "{report:?}");
    let warning = subscriber.wait_for("does not fit the parameters of its handler app::on_tick");
    assert!(warning.contains(&publisher.addr().to_string()), "{warning}");
    publisher.shutdown().await;
}

#[test]
fn app_nets_port_variable_and_unknown_variables() {
    let base = free_range(2).to_string();
    let (server, addr) = fixture(
        "fixture_linked_server",
        &[("NET_PORT_START", &base), ("NET_PROT", "1")],
    );
    assert_eq!(addr, format!("127.0.0.1:{base}"));
    let warning = server.wait_for("NET_PROT");
    assert!(warning.contains("did you mean NET_PORT?"), "{warning}");
}

/// A store for `remember` and `recall`, given to the serving peer instead of a static.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

#[net::connect]
fn remember(note: String, notes: net::State<Notes>) -> usize {
    let mut notes = notes.0.lock().unwrap();
    notes.push(note);
    notes.len()
}

#[net::connect]
async fn recall(notes: net::State<Notes>, caller: net::Caller) -> (Vec<String>, bool) {
    (notes.0.lock().unwrap().clone(), caller.is_local())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_take_the_state_their_peer_was_given() {
    let server = net::Peer::start(loopback().state(Notes::default()))
        .await
        .unwrap();
    let other = net::Peer::start(loopback()).await.unwrap();
    assert_eq!(
        remember("a".into()).on(&server).via(&other).await.unwrap(),
        1
    );
    assert_eq!(
        remember("b".into()).on(&server).via(&other).await.unwrap(),
        2
    );
    let (notes, local) = recall().on(&server).via(&other).await.unwrap();
    assert_eq!(
        (notes, local),
        (vec!["a".to_owned(), "b".to_owned()], false)
    );
    // The program can reach the same value through the peer.
    let held = server.state::<Notes>().expect("the server holds its notes");
    assert_eq!(held.0.lock().unwrap().len(), 2);

    // A peer without it: a clear error naming the type, and nothing ran.
    let err = remember("c".into())
        .on(&other)
        .via(&server)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no state of type it::newcomer::Notes"),
        "{text}"
    );
    assert!(text.contains("config.state(value)"), "{text}");
    // Given later, it is there from then on.
    other.provide(Notes::default());
    assert_eq!(
        remember("c".into()).on(&other).via(&server).await.unwrap(),
        1
    );
    server.shutdown().await;
    other.shutdown().await;
}

#[net::connect]
fn newcomer_triple(x: i64) -> i64 {
    3 * x
}

#[net::connect]
async fn call_me_back(x: i64, caller: net::Caller) -> Result<i64, String> {
    newcomer_triple(x)
        .on(&caller)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_takes_no_port_of_the_range_and_is_still_called_back() {
    let base = free_range(4);
    let server = net::Peer::start(in_range(base, 3)).await.unwrap();
    let client = net::Peer::start(in_range(base, 3).client(true))
        .await
        .unwrap();
    let port = client.addr().port();
    assert!(!(base..=base + 3).contains(&port), "the client took {port}");
    // The server calls back over the connection the client opened.
    let tripled = call_me_back(5).on(&server).via(&client).await.unwrap();
    assert_eq!(tripled, Ok(15));
    // And the server does not list it, even when asked afresh.
    assert!(server.peers().refresh().await.unwrap().is_empty());
    server.shutdown().await;
    client.shutdown().await;
}

#[net::connect]
async fn newcomer_slow() {
    tokio::time::sleep(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_name_functions_by_path_not_base64() {
    let server = net::Peer::start(loopback()).await.unwrap();
    let me = net::Peer::start(loopback()).await.unwrap();
    let err = newcomer_slow()
        .on(&server)
        .via(&me)
        .timeout(Duration::from_millis(50))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("call to it::newcomer::newcomer_slow on "),
        "{text}"
    );
    // The tag itself stays what was sent, for code that needs it.
    assert!(matches!(err, net::Error::Timeout { ref tag, .. } if tag == newcomer_slow().tag()));
    server.shutdown().await;
    me.shutdown().await;
}
