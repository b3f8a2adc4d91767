//! Python app-net 0.6.2 and our peers calling each other, with real processes: Python →
//! Rust calls, Rust → Python calls, and discovery both ways. Needs the virtualenv that
//! `bash tests/python/setup.sh` makes; without it every test prints a loud SKIP line (or
//! fails, with `NET_REQUIRE_APPNET=1`, as CI should set).
//!
//! Every app-net process is confined to 127.0.0.1 by tests/python/appnet_loopback.py.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::support::{
    appnet_python, confined, dead_addr, free_range, loopback, python_dir, runtime, Process,
};

// ---- the Rust side's functions, called from Python --------------------------------

/// The same tag as Python's `multiply` in module `app`: one function, both languages.
#[net::connect("app.multiply")]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[net::connect("rust.echo")]
fn echo(value: Value) -> Value {
    value
}

#[net::connect("rust.greet")]
fn greet(name: String, punctuation: Option<String>) -> String {
    format!("hello {name}{}", punctuation.as_deref().unwrap_or("!"))
}

#[net::connect("rust.divide")]
fn divide(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| "division by zero".to_owned())
}

#[net::connect("rust.panics")]
fn panics() -> i64 {
    panic!("boom from Rust")
}

#[net::connect("rust.length")]
fn length(text: String) -> usize {
    text.len()
}

#[net::connect("rust.nothing")]
fn nothing() {}

#[net::connect("rust.is_app_net")]
fn is_app_net(caller: net::Caller) -> bool {
    caller.is_app_net()
}

/// No custom tag: Python calls it by its default tag, base64 of `it::appnet::add`.
#[net::connect]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

// ---- harness ------------------------------------------------------------------------

/// How long any one step with Python may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(30);

/// Starts a loopback peer in `NET_PORT..=NET_PORT+2` of a fresh base, retrying on a busy
/// range.
fn peer_in_range(rt: &tokio::runtime::Runtime) -> (net::Peer, u16) {
    for _ in 0..20 {
        let base = free_range(6);
        let config = net::Config::default()
            .loopback(true)
            .port(base)
            .port_range(2);
        if let Ok(peer) = net::Peer::start_on(config, rt.handle().clone()) {
            return (peer, base);
        }
    }
    panic!("no free port range for the test peer");
}

/// A Python process answering each JSON command line with one JSON line; killed when
/// dropped (its output is printed if the test fails).
struct Py(Process);

impl Py {
    fn spawn(python: &Path, script: &str, args: &[String], net_port: u16) -> Py {
        let mut command = confined(python);
        command
            .arg(python_dir().join(script))
            .args(args)
            .env("NET_PORT", net_port.to_string())
            .env("NET_PORT_RANGE", "4")
            .env("NET_THREAD_LIMIT", "5");
        Py(Process::spawn(script, command).patience(STEP))
    }

    fn line(&mut self) -> Value {
        let line = self.0.next_line();
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("Python answered {line:?}, which is not JSON: {e}"))
    }

    fn send(&mut self, command: Value) -> Value {
        self.send_line(&command.to_string())
    }

    /// Sends a command as text, for what serde_json cannot write (Python's `NaN`).
    fn send_line(&mut self, command: &str) -> Value {
        self.0.say(command);
        self.line()
    }

    /// `{"ok": v}` → v; panics with Python's error otherwise.
    fn ok(&mut self, command: Value) -> Value {
        let result = self.send(command.clone());
        match result.get("ok") {
            Some(value) => value.clone(),
            None => panic!("{command} failed in Python: {result}"),
        }
    }

    /// `{"error": text}` → text; panics if the command succeeded.
    fn error(&mut self, command: Value) -> String {
        let result = self.send(command.clone());
        match result.get("error").and_then(Value::as_str) {
            Some(text) => text.to_owned(),
            None => panic!("{command} should have failed in Python: {result}"),
        }
    }
}

fn call(tag: &str, args: Value) -> Value {
    json!({"op": "call", "tag": tag, "args": args})
}

fn call_kw(tag: &str, args: Value, kwargs: Value) -> Value {
    json!({"op": "call", "tag": tag, "args": args, "kwargs": kwargs})
}

/// A Python app-net peer serving tests/python/app.py; returns it and its address.
fn python_peer(python: &Path) -> (Py, SocketAddr) {
    let mut py = Py::spawn(python, "appnet_peer.py", &[], free_range(6));
    let ready = py.line();
    let port = ready["port"].as_u64().unwrap() as u16;
    assert_eq!(ready["host"], "127.0.0.1");
    (py, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Every JSON type, nested, non-ASCII text included.
fn json_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(-2.5),
        json!(""),
        json!("text, café, 😀, \"quotes\" and \\ and \n"),
        json!([]),
        json!([1, [2, [3]], "x", null]),
        json!({}),
        json!({"a": {"b": [null, true, 1.5]}, "ü": "é"}),
    ]
}

// ---- Python → Rust -----------------------------------------------------------------

#[test]
fn python_calls_rust() {
    let Some(python) = appnet_python("appnet::python_calls_rust") else {
        return;
    };
    let rt = runtime();
    let peer = net::Peer::start_on(loopback(), rt.handle().clone()).unwrap();
    let port = peer.addr().port().to_string();
    let mut py = Py::spawn(
        &python,
        "appnet_client.py",
        &["127.0.0.1".into(), port],
        free_range(6),
    );

    // app-net's own `peer` keyword travels with every call and is ignored.
    assert_eq!(py.ok(call("app.multiply", json!([5, 10]))), json!(50));
    for value in json_values() {
        assert_eq!(py.ok(call("rust.echo", json!([value]))), value, "{value}");
    }

    // Keyword arguments land on parameters by name; a missing Option is None.
    assert_eq!(
        py.ok(call_kw(
            "rust.greet",
            json!(["Ada"]),
            json!({"punctuation": "?"})
        )),
        json!("hello Ada?")
    );
    assert_eq!(
        py.ok(call_kw("rust.greet", json!([]), json!({"name": "Ada"}))),
        json!("hello Ada!")
    );
    assert_eq!(py.ok(call("app.multiply", json!([6, 7]))), json!(42));
    let err = py.error(call_kw(
        "rust.greet",
        json!(["Ada"]),
        json!({"colour": "red"}),
    ));
    assert!(
        err.contains("RemoteError") && err.contains("unknown keyword argument `colour`"),
        "{err}"
    );

    // Errors come back as app-net's error packet, which app-net raises as RemoteError.
    let err = py.error(call("rust.divide", json!([1, 0])));
    assert!(
        err.contains("RemoteError") && err.contains("division by zero"),
        "{err}"
    );
    let err = py.error(call("rust.panics", json!([])));
    assert!(
        err.contains("RemoteError") && err.contains("boom from Rust"),
        "{err}"
    );
    let err = py.error(call("app.multiply", json!(["five", 10])));
    assert!(err.contains("TypeError") && err.contains("(a, b)"), "{err}");

    // Unknown tag: app-net's bare INVALID_CONNECTION flag, which app-net's own flag
    // handler turns into its exception.
    let err = py.error(call("app.no_such_function", json!([])));
    assert!(err.contains("Peer does not have the connection"), "{err}");
    let raw = json!({"op": "raw", "tag": "app.no_such_function"});
    assert_eq!(py.ok(raw), json!("INVALID_CONNECTION"));

    // Nothing returned is None; app-net's `null` built-in is its NULL flag.
    assert_eq!(py.ok(call("rust.nothing", json!([]))), Value::Null);
    assert_eq!(
        py.ok(call("net.defaults.handlers.null", json!([]))),
        json!("NULL")
    );
    assert_eq!(
        py.ok(call("net.defaults.handlers.pass_through", json!([[1, 2]]))),
        json!([1, 2])
    );

    // The handler knows it was called from app-net; default tags work too.
    assert_eq!(py.ok(call("rust.is_app_net", json!([]))), json!(true));
    let default_tag = base64_of("it::appnet::add");
    assert_eq!(default_tag, add(0, 0).tag());
    assert_eq!(py.ok(call(&default_tag, json!([2, 3]))), json!(5));

    // A request far over app-net's own 1,024-byte read arrives whole (item 5).
    let text = "é".repeat(500_000);
    assert_eq!(py.ok(call("rust.length", json!([text]))), json!(1_000_000));

    // app-net's own limits, as docs/APPNET.md states them. Its client reads one
    // 1,024-byte chunk of the reply: a longer value arrives cut and comes back as raw text.
    let cut = py.ok(call("rust.echo", json!(["x".repeat(2000)])));
    let cut = cut.as_str().unwrap();
    assert_eq!((cut.len(), &cut[..3]), (1024, "\"xx"));
    // Python writes NaN, which is not JSON: a clear error, not a crash.
    let err = py.send_line(r#"{"op": "call", "tag": "rust.echo", "args": [NaN]}"#);
    let err = err["error"].as_str().unwrap();
    assert!(err.contains("not valid JSON"), "{err}");

    drop(py);
    rt.block_on(peer.shutdown());
}

fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- the exact bytes, from a raw socket ---------------------------------------------

/// Sends `request` as app-net does (no framing, then wait) and reads the reply to EOF.
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(
        reply.is_ascii(),
        "app-net decodes replies as ASCII: {reply:?}"
    );
    String::from_utf8(reply).unwrap()
}

#[test]
fn app_net_shapes_byte_for_byte() {
    let rt = runtime();
    let peer = net::Peer::start_on(loopback().max_frame(64 * 1024), rt.handle().clone()).unwrap();
    let addr = peer.addr();
    let request = |tag: &str, args: Value| {
        json!({"connection": tag, "args": args, "kwargs": {"peer": ["127.0.0.1", addr.port()]}})
            .to_string()
    };

    assert_eq!(
        raw_exchange(addr, request("app.multiply", json!([5, 10])).as_bytes()),
        "50"
    );
    assert_eq!(raw_exchange(addr, b"{}"), "NULL");
    assert_eq!(
        raw_exchange(addr, request("nope", json!([])).as_bytes()),
        "INVALID_CONNECTION"
    );
    // Non-ASCII leaves as Python's json.dumps writes it.
    assert_eq!(
        raw_exchange(addr, request("rust.echo", json!(["café 😀"])).as_bytes()),
        r#""caf\u00e9 \ud83d\ude00""#
    );
    let packet: Value = serde_json::from_str(&raw_exchange(
        addr,
        request("rust.divide", json!([1, 0])).as_bytes(),
    ))
    .unwrap();
    assert_eq!(packet["payload"], "error");
    let traceback = packet["traceback"].as_str().unwrap();
    assert!(
        traceback.starts_with("Traceback (most recent call last):"),
        "{traceback}"
    );
    assert!(
        traceback
            .trim_end()
            .ends_with("Exception: the function returned an error: \"division by zero\""),
        "{traceback}"
    );

    // app-net's discovery reads one 1,024-byte chunk of `info`: ours fits in it, tags
    // cut short if need be: app-net's built-ins and the events handlers Python calls by
    // name first, then custom tags (this test binary has more than fit).
    let info = raw_exchange(addr, request(net::AppNetInfo::TAG, json!([])).as_bytes());
    assert!(info.len() <= 1024, "{} bytes: {info}", info.len());
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["port"], json!(addr.port()));
    assert_eq!(info["group"], "None");
    let listed = info["connections"].as_array().unwrap();
    for tag in [
        "net.defaults.handlers.info",
        "subscription_handler",
        "app.multiply",
    ] {
        assert!(listed.contains(&json!(tag)), "{tag} not in {listed:?}");
    }
    let tag = info["tag"].as_str().unwrap();
    assert!(
        tag.starts_with(&format!(
            "<net.Peer h:127.0.0.1 p:{} g:None c:",
            addr.port()
        )),
        "{tag}"
    );

    let garbage: Value = serde_json::from_str(&raw_exchange(addr, b"{nope}")).unwrap();
    assert!(
        garbage["traceback"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{garbage}"
    );

    // Split into pieces with pauses: read until the JSON value is complete.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    for piece in [
        &b"{\"connection\": \"app.mul"[..],
        b"tiply\", \"args\": [6,",
        b" 7]}",
    ] {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "42");

    // Up to NET_MAX_FRAME is served; past it, a clear error.
    let fits = request("rust.length", json!(["x".repeat(60_000)]));
    assert_eq!(raw_exchange(addr, fits.as_bytes()), "60000");
    let over = request("rust.length", json!(["x".repeat(200_000)]));
    let packet: Value = serde_json::from_str(&raw_exchange(addr, over.as_bytes())).unwrap();
    let traceback = packet["traceback"].as_str().unwrap();
    assert!(
        traceback.contains("over 65536 bytes") && traceback.contains("NET_MAX_FRAME"),
        "{traceback}"
    );

    // Our own protocol still works on the same port.
    let other = net::Peer::start_on(loopback(), rt.handle().clone()).unwrap();
    assert_eq!(multiply(3, 4).on(&peer).via(&other).wait().unwrap(), 12);

    rt.block_on(other.shutdown());
    rt.block_on(peer.shutdown());
}

// ---- Rust → Python -----------------------------------------------------------------

#[test]
fn rust_calls_python() {
    let Some(python) = appnet_python("appnet::rust_calls_python") else {
        return;
    };
    let rt = runtime();
    let me = net::Peer::start_on(loopback(), rt.handle().clone()).unwrap();
    let (_py, addr) = python_peer(&python);
    let target = net::Target::app_net(addr);
    let by_tag = |tag: &str, args: Value| {
        net::call_tag::<Value>(tag, args)
            .on(&target)
            .via(&me)
            .wait()
    };

    // The same annotated function, now run by Python.
    assert_eq!(multiply(5, 10).on(&target).via(&me).wait().unwrap(), 50);
    for value in json_values() {
        assert_eq!(
            by_tag("app.echo", json!([value])).unwrap(),
            value,
            "{value}"
        );
    }
    let mut kwargs = Map::new();
    kwargs.insert("punctuation".into(), json!("?"));
    let greeting: String = net::call_tag("app.greet", json!(["Ada"]))
        .on(&target)
        .via(&me)
        .kwargs(kwargs)
        .wait()
        .unwrap();
    assert_eq!(greeting, "hello Ada?");
    assert_eq!(
        by_tag("MyTaggedFunction", json!([1])).unwrap(),
        json!({"tagged": 1})
    );
    assert_eq!(by_tag("app.nothing", json!([])).unwrap(), Value::Null);
    let none: Option<i64> = net::call_tag("net.defaults.handlers.null", json!([]))
        .on(&target)
        .via(&me)
        .wait()
        .unwrap();
    assert_eq!(none, None);

    // Python's server sends all of a long reply; we read it to the end.
    let long: String = net::call_tag("app.big", json!([100_000]))
        .on(&target)
        .via(&me)
        .wait()
        .unwrap();
    assert_eq!(long.len(), 100_000);

    // A Python exception is a remote error with the exception line and its location.
    match by_tag("app.divide", json!([1, 0])).unwrap_err() {
        net::Error::Remote {
            message, location, ..
        } => {
            assert_eq!(message, "ZeroDivisionError: division by zero");
            assert!(
                location.contains("app.py") && location.contains("in divide"),
                "{location}"
            );
        }
        other => panic!("{other}"),
    }

    // An unknown tag lists what the Python peer has.
    match by_tag("app.no_such_function", json!([])).unwrap_err() {
        net::Error::UnknownTag { available, .. } => {
            assert!(
                available.contains(&"app.multiply".to_owned()),
                "{available:?}"
            );
        }
        other => panic!("{other}"),
    }

    // app-net reads only 1,024 bytes of a request: refused here, with the reason.
    let err = by_tag("app.echo", json!(["x".repeat(2000)])).unwrap_err();
    assert!(
        err.to_string().contains("only the first 1024 bytes"),
        "{err}"
    );

    rt.block_on(me.shutdown());
}

#[test]
fn rust_to_python_failures_are_clear() {
    let rt = runtime();
    let me = net::Peer::start_on(loopback(), rt.handle().clone()).unwrap();
    // A port nobody listens on.
    let free = dead_addr();
    let err = multiply(1, 2)
        .on(net::Target::app_net(free))
        .via(&me)
        .wait()
        .unwrap_err();
    assert!(matches!(err, net::Error::Unreachable { .. }), "{err}");

    // A server that never answers: the call's timeout holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let err = multiply(1, 2)
        .on(net::Target::app_net(silent.local_addr().unwrap()))
        .via(&me)
        .timeout(Duration::from_millis(300))
        .wait()
        .unwrap_err();
    assert!(matches!(err, net::Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    rt.block_on(me.shutdown());
}

// ---- discovery both ways -------------------------------------------------------------

#[test]
fn python_discovery_lists_our_peer_and_we_recognise_python() {
    let Some(python) =
        appnet_python("appnet::python_discovery_lists_our_peer_and_we_recognise_python")
    else {
        return;
    };
    let rt = runtime();
    let (peer, base) = peer_in_range(&rt);
    let port = peer.addr().port();
    // The Python client scans NET_PORT..NET_PORT+NET_PORT_RANGE on 127.0.0.1 only, and
    // binds its own server in the same range, past ours.
    let mut py = Py::spawn(
        &python,
        "appnet_client.py",
        &["127.0.0.1".into(), port.to_string()],
        base,
    );
    let found = py.ok(json!({"op": "peers"}));
    let ours = found
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == json!(port))
        .unwrap_or_else(|| panic!("app-net's discovery did not list our peer on {port}: {found}"));
    assert_eq!(ours["host"], "127.0.0.1");
    assert_eq!(ours["group"], "None");
    let connections: Vec<&str> = ours["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(connections.contains(&"app.multiply"), "{connections:?}");
    assert!(
        connections.contains(&"net.defaults.handlers.info"),
        "{connections:?}"
    );
    // app-net builds methods from the listed tags: `multiply` on the discovered peer.
    let product =
        py.ok(json!({"op": "peer_call", "port": port, "method": "multiply", "args": [6, 7]}));
    assert_eq!(product, json!(42));

    // Our side: a Python peer's info is recognised as app-net's, ours is not.
    let (_peer_py, python_addr) = python_peer(&python);
    let ask = |addr: SocketAddr| -> Value {
        net::call_tag(net::AppNetInfo::TAG, json!([]))
            .on(net::Target::app_net(addr))
            .via(&peer)
            .wait()
            .unwrap()
    };
    let info = net::AppNetInfo::recognise(&ask(python_addr))
        .expect("the Python peer's info should be recognised");
    assert_eq!(info.addr(), Some(python_addr));
    assert_eq!(info.group, None);
    assert!(
        info.connections.contains(&"app.multiply".to_owned()),
        "{:?}",
        info.connections
    );
    assert!(info.flags.contains(&"NULL".to_owned()));
    assert_eq!(
        multiply(2, 21)
            .on(info.target().unwrap())
            .via(&peer)
            .wait()
            .unwrap(),
        42
    );
    assert!(net::AppNetInfo::recognise(&ask(peer.addr())).is_none());

    drop(py);
    rt.block_on(peer.shutdown());
}

/// Our discovery lists a Python app-net peer on this host, marked app-net; the listing is
/// a target that speaks app-net; `net peers` shows it too.
#[test]
fn our_discovery_lists_a_python_peer_and_calls_it_through_the_listing() {
    let Some(python) =
        appnet_python("appnet::our_discovery_lists_a_python_peer_and_calls_it_through_the_listing")
    else {
        return;
    };
    let base = free_range(6);
    let mut py = Py::spawn(&python, "appnet_peer.py", &[], base);
    let ready = py.line();
    let python_addr = SocketAddr::from(([127, 0, 0, 1], ready["port"].as_u64().unwrap() as u16));
    let rt = runtime();
    // A client: it scans the Python peer's range without taking a port of it.
    let config = loopback().port(base).port_range(4).client(true);
    let me = net::Peer::start_on(config, rt.handle().clone()).unwrap();
    let found = me.peers().wait().unwrap();
    let listed = found
        .iter()
        .find(|p| p.addr == python_addr)
        .unwrap_or_else(|| panic!("the Python peer at {python_addr} is not listed: {found:?}"));
    assert!(listed.app_net, "{listed:?}");
    assert_eq!(listed.info.version, "app-net");
    assert!(
        listed.serves("app.multiply"),
        "{:?}",
        listed.info.connections
    );
    // `.on(listed)` speaks app-net without being told.
    assert_eq!(multiply(6, 7).on(listed).via(&me).wait().unwrap(), 42);
    // And it stays listed through the background refresh.
    let again = me.peers().wait().unwrap();
    assert!(again.iter().any(|p| p.addr == python_addr && p.app_net));
    rt.block_on(me.shutdown());

    let out = confined(env!("CARGO_BIN_EXE_net"))
        .arg("peers")
        .env("NET_PORT", base.to_string())
        .env("NET_PORT_RANGE", "4")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(&python_addr.to_string()))
        .unwrap_or_else(|| panic!("`net peers` does not list {python_addr}:\n{table}"));
    assert!(row.contains("app-net"), "{row}");
    drop(py);
}
