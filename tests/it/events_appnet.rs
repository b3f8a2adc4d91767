//! Events between Python app-net 0.6.2 and our peers, with real processes: a Python
//! `@net.subscribe` registers with a `net` publisher and receives its events in order (and
//! is pruned once it is gone), and a `net` subscriber registers with a Python
//! `@net.event` publisher. Needs the virtualenv of `bash tests/python/setup.sh`; without
//! it each test prints a loud SKIP line (or fails, with `NET_REQUIRE_APPNET=1`).
//!
//! Every app-net process is confined to 127.0.0.1 by tests/python/appnet_loopback.py.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::support::{
    appnet_python, confined, eventually_blocking, free_range, loopback, python_dir, runtime,
    Process,
};

#[net::event("line")]
fn line(text: String) -> String {
    text
}

/// What the Python publisher's events delivered here, in order.
static RECEIVED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[net::subscribe("py.line", tag = "rust.on_py_line")]
fn on_py_line(text: String) {
    RECEIVED.lock().unwrap().push(text);
}

/// A Python `@net.subscribe("line")` registered with the `net` peer at argv[2]:argv[3].
const PYTHON_SUBSCRIBER: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import appnet_loopback  # noqa: F401  (confines app-net before it starts)
import net

host, port = sys.argv[2], int(sys.argv[3])
info = net.info(peer=(host, port))
rust = net.Peer(host=host, port=port, group=info["group"], hub=info["hub"],
                connections=info["connections"])

@net.subscribe("line", peers=rust)
def on_line(text):
    print("got " + text, flush=True)

me = net.Peer()
print("subscribed %s:%d" % (me.host, me.port), flush=True)
sys.stdin.read()
"#;

/// A Python `@net.event("py.line")` publishing each line of its stdin.
const PYTHON_PUBLISHER: &str = r#"
import sys
sys.path.insert(0, sys.argv[1])
import appnet_loopback  # noqa: F401  (confines app-net before it starts)
import net

@net.event("py.line")
def py_line(text):
    return (text,), {}

me = net.Peer()
print("serving %s:%d" % (me.host, me.port), flush=True)
for text in sys.stdin:
    py_line(text.strip())
    print("published " + text.strip(), flush=True)
"#;

/// How long a step with Python may take (its start imports app-net).
const STEP: Duration = Duration::from_secs(30);

/// Runs `script` with `args` in the app-net venv's Python, in a port range of its own.
fn python_process(python: &Path, label: &str, script: &str, args: &[String]) -> Process {
    let mut command = confined(python);
    command
        .arg("-c")
        .arg(script)
        .arg(python_dir())
        .args(args)
        .env("NET_PORT", free_range(6).to_string())
        .env("NET_PORT_RANGE", "5");
    Process::spawn(label, command).patience(STEP)
}

fn peer(rt: &tokio::runtime::Runtime) -> net::Peer {
    rt.block_on(net::Peer::start(loopback())).unwrap()
}

#[test]
fn a_python_subscriber_receives_our_events_in_order_and_is_pruned_when_gone() {
    let Some(python) =
        appnet_python("events_appnet::a_python_subscriber_receives_our_events_in_order")
    else {
        return;
    };
    let rt = runtime();
    let publisher = peer(&rt);
    let addr = publisher.addr();
    let mut subscriber = python_process(
        &python,
        "Python subscriber",
        PYTHON_SUBSCRIBER,
        &[addr.ip().to_string(), addr.port().to_string()],
    );
    let python_addr: SocketAddr = subscriber.wait_after("subscribed ").parse().unwrap();
    assert_eq!(publisher.subscribers("line"), [python_addr]);

    let report = rt.block_on(async {
        for i in 0..19 {
            line(format!("line {i}")).via(&publisher).spawn().unwrap();
        }
        line("line 19".into()).via(&publisher).await.unwrap()
    });
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
    subscriber.wait_after("got line 19");
    let got = subscriber.with_prefix("got ");
    let all: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    assert_eq!(got, all);

    // Python has no way to unsubscribe; once it is gone, the next event prunes it.
    subscriber.close_stdin();
    subscriber.kill();
    let report = line("after".into()).via(&publisher).wait().unwrap();
    assert_eq!(report.pruned().count(), 1, "{report}");
    assert!(publisher.subscribers("line").is_empty());
    rt.block_on(publisher.shutdown());
}

#[test]
fn we_subscribe_to_a_python_publisher() {
    let Some(python) = appnet_python("events_appnet::we_subscribe_to_a_python_publisher") else {
        return;
    };
    let rt = runtime();
    let mut publisher = python_process(&python, "Python publisher", PYTHON_PUBLISHER, &[]);
    let python_addr: SocketAddr = publisher.wait_after("serving ").parse().unwrap();
    let subscriber = peer(&rt);
    let target = net::Target::app_net(python_addr);
    let events = rt.block_on(subscriber.subscribe_to(&target)).unwrap();
    assert!(events.contains(&"py.line".to_owned()), "{events:?}");
    assert!(subscriber
        .subscriptions()
        .contains(&("py.line".to_owned(), python_addr)));
    // Python lists the event among those with subscribers.
    let info: serde_json::Value = net::call_tag(net::AppNetInfo::TAG, serde_json::json!([]))
        .on(&target)
        .via(&subscriber)
        .wait()
        .unwrap();
    let info = net::AppNetInfo::recognise(&info).unwrap();
    assert!(
        info.subscriptions.contains(&"py.line".to_owned()),
        "{info:?}"
    );

    for text in ["one", "two", "three"] {
        publisher.say(text);
        publisher.wait_after(&format!("published {text}"));
    }
    // app-net triggers events on threads of its own and returns before they arrive.
    eventually_blocking("three events from Python", || {
        RECEIVED.lock().unwrap().len() >= 3
    });
    assert_eq!(*RECEIVED.lock().unwrap(), ["one", "two", "three"]);
    rt.block_on(subscriber.shutdown());
}
