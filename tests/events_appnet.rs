//! Events between Python app-net 0.6.2 and our peers, with real processes: a Python
//! `@net.subscribe` registers with a `net` publisher and receives its events in order (and
//! is pruned once it is gone), and a `net` subscriber registers with a Python
//! `@net.event` publisher. Needs the virtualenv of `bash tests/python/setup.sh`; without
//! it each test prints a loud SKIP line (or fails, with `NET_REQUIRE_APPNET=1`).
//!
//! Every app-net process is confined to 127.0.0.1 by tests/python/appnet_loopback.py.

mod support;

use support::{appnet_python, free_range};

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Python process and every line it printed (stderr lines start with `E: `).
struct Python {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Python {
    fn spawn(python: &Path, script: &str, args: &[String]) -> Python {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(root().join("tests/python"))
            .args(args)
            .env("NET_PORT", free_range(6).to_string())
            .env("NET_PORT_RANGE", "5")
            .env_remove("NET_GROUP")
            .env_remove("NET_IS_HUB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let streams: [(Box<dyn std::io::Read + Send>, &str); 2] = [
            (Box::new(child.stdout.take().unwrap()), ""),
            (Box::new(child.stderr.take().unwrap()), "E: "),
        ];
        for (stream, prefix) in streams {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(format!("{prefix}{line}"));
                }
            });
        }
        Python {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.lines().iter().find_map(|l| l.strip_prefix(prefix)) {
                return found.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "Python printed no line starting with {prefix:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn peer(rt: &tokio::runtime::Runtime) -> net::Peer {
    rt.block_on(net::Peer::start(
        net::Config::default().loopback(true).port(0),
    ))
    .unwrap()
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
    let mut subscriber = Python::spawn(
        &python,
        PYTHON_SUBSCRIBER,
        &[addr.ip().to_string(), addr.port().to_string()],
    );
    let python_addr: SocketAddr = subscriber.wait_for("subscribed ").parse().unwrap();
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
    subscriber.wait_for("got line 19");
    let got: Vec<String> = subscriber
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("got ").map(str::to_owned))
        .collect();
    let all: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
    assert_eq!(got, all);

    // Python has no way to unsubscribe; once it is gone, the next event prunes it.
    subscriber.stdin.take();
    subscriber.child.kill().unwrap();
    subscriber.child.wait().unwrap();
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
    let mut publisher = Python::spawn(&python, PYTHON_PUBLISHER, &[]);
    let python_addr: SocketAddr = publisher.wait_for("serving ").parse().unwrap();
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
        publisher.wait_for(&format!("published {text}"));
    }
    // app-net triggers events on threads of its own and returns before they arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while RECEIVED.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", RECEIVED.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*RECEIVED.lock().unwrap(), ["one", "two", "three"]);
    rt.block_on(subscriber.shutdown());
}
