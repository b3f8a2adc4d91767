//! Events across real processes: ten subscriber processes receive a thousand events in
//! order, a killed one is pruned without disturbing the rest, a late one receives the later
//! events, and the two event examples (simple_subscription, token) run as a user runs them.

mod support;

use support::example;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publishes one line to the subscribers of "line", as the simple_subscription hub does.
#[net::event("line")]
fn line(text: String) -> String {
    text
}

/// A running example: its stdin, and every line it printed so far (stderr lines start
/// with `E: `).
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(example_name: &str, name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(example(example_name))
            .args(args)
            .env("NET_LOOPBACK", "1")
            .env("NET_PORT", "0")
            .env_remove("NET_PEERS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, ""),
            (Box::new(stderr), "E: "),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(format!("{prefix}{line}"));
                }
            });
        }
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    fn wait_for(&self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self.lines().iter().find_map(|l| l.strip_prefix(prefix)) {
                return found.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no line starting with {prefix:?}:\n{}",
                self.name,
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The lines that start with `prefix`, without it.
    fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect()
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (the examples' signal to leave) and waits for the exit.
    fn finish(&mut self, within: Duration) -> ExitStatus {
        self.stdin.take();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn hub() -> net::Peer {
    net::Peer::start(net::Config::default().loopback(true).port(0).hub(true))
        .await
        .unwrap()
}

/// Starts a simple_subscription subscriber of `hub` and returns it with its address.
fn subscriber(hub: &net::Peer, name: &str) -> (Proc, SocketAddr) {
    let proc = Proc::spawn("simple_subscription", name, &[&hub.addr().to_string()]);
    let rest = proc.wait_for("[subscriber] ", Duration::from_secs(10));
    let addr = rest
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} printed no address: {rest}"));
    (proc, addr)
}

fn received(proc: &Proc) -> Vec<String> {
    proc.with_prefix("[subscriber] event ")
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_subscriber_processes_get_every_event_in_order_and_a_killed_one_is_pruned() {
    let publisher = hub().await;
    let mut subscribers: Vec<(Proc, SocketAddr)> = (0..10)
        .map(|i| subscriber(&publisher, &format!("subscriber {i}")))
        .collect();
    assert_eq!(publisher.subscribers("line").len(), 10);

    for i in 0..999 {
        line(format!("event {i}")).via(&publisher).spawn().unwrap();
    }
    let report = line("event 999".into()).via(&publisher).await.unwrap();
    assert!(report.all_delivered(), "{report}");
    assert_eq!(report.deliveries.len(), 10, "{report}");
    let all = numbered(0..1000);
    eventually(
        "every subscriber's 1000 lines",
        Duration::from_secs(10),
        || subscribers.iter().all(|(p, _)| received(p).len() >= 1000),
    )
    .await;
    for (proc, _) in &subscribers {
        assert_eq!(received(proc), all, "{}", proc.name);
    }

    // Kill one without warning: the next event prunes it and reaches the nine others.
    let (mut killed, killed_addr) = subscribers.remove(0);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let report = line("event 1000".into()).via(&publisher).await.unwrap();
    let pruned: Vec<_> = report.pruned().map(|d| d.subscriber).collect();
    assert_eq!(pruned, [killed_addr], "{report}");
    assert_eq!(report.delivered().count(), 9, "{report}");
    assert_eq!(publisher.subscribers("line").len(), 9);
    for i in 1001..1010 {
        line(format!("event {i}")).via(&publisher).spawn().unwrap();
    }
    let report = line("event 1010".into()).via(&publisher).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 9,
        "{report}"
    );
    let all = numbered(0..1011);
    eventually(
        "the nine subscribers' later lines",
        Duration::from_secs(5),
        || subscribers.iter().all(|(p, _)| received(p).len() >= 1011),
    )
    .await;
    for (proc, _) in &subscribers {
        assert_eq!(received(proc), all, "{}", proc.name);
    }

    // Leaving cleanly withdraws the subscription.
    for (proc, _) in &mut subscribers {
        assert!(
            proc.finish(Duration::from_secs(5)).success(),
            "{}",
            proc.name
        );
    }
    assert!(publisher.subscribers("line").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_started_later_receives_the_later_events() {
    let publisher = hub().await;
    let (early, _) = subscriber(&publisher, "early");
    for i in 0..100 {
        line(format!("event {i}")).via(&publisher).spawn().unwrap();
    }
    let (late, late_addr) = subscriber(&publisher, "late");
    assert!(publisher.subscribers("line").contains(&late_addr));
    for i in 100..199 {
        line(format!("event {i}")).via(&publisher).spawn().unwrap();
    }
    let report = line("event 199".into()).via(&publisher).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 2,
        "{report}"
    );
    eventually("both subscribers' lines", Duration::from_secs(5), || {
        received(&early).len() >= 200 && received(&late).len() >= 100
    })
    .await;
    assert_eq!(received(&early), numbered(0..200));
    assert_eq!(received(&late), numbered(100..200));
}

#[test]
fn the_simple_subscription_example_runs() {
    let mut hub = Proc::spawn("simple_subscription", "hub", &[]);
    let addr = hub.wait_for("[hub] ready at ", Duration::from_secs(10));
    let addr = addr.split(';').next().unwrap().to_owned();
    let mut first = Proc::spawn("simple_subscription", "first", &[&addr]);
    let mut second = Proc::spawn("simple_subscription", "second", &[&addr]);
    first.wait_for("[subscriber] 127.0.0.1:", Duration::from_secs(10));
    second.wait_for("[subscriber] 127.0.0.1:", Duration::from_secs(10));
    hub.say("hello");
    hub.say("world");
    hub.wait_for("[hub] event \"line\": 2 delivered", Duration::from_secs(5));
    for proc in [&first, &second] {
        proc.wait_for("[subscriber] world", Duration::from_secs(5));
        let got: Vec<String> = proc
            .with_prefix("[subscriber] ")
            .into_iter()
            .filter(|l| !l.starts_with("127.0.0.1:"))
            .collect();
        assert_eq!(got, ["hello", "world"], "{}", proc.name);
    }

    // `hubs_only`: a peer that is not a hub is refused with a clear message.
    let (mut plain, plain_addr) = {
        let proc = Proc::spawn("token", "plain peer", &["1"]);
        let addr = proc.wait_for("[token] ready at ", Duration::from_secs(10));
        (proc, addr)
    };
    let mut refused = Proc::spawn("simple_subscription", "refused", &[&plain_addr]);
    assert!(!refused.finish(Duration::from_secs(10)).success());
    refused.wait_for(
        "E: simple_subscription: the peer at",
        Duration::from_secs(1),
    );
    assert!(refused.lines().join("\n").contains("is not a hub"));

    for proc in [&mut hub, &mut first, &mut second, &mut plain] {
        assert!(
            proc.finish(Duration::from_secs(5)).success(),
            "{}",
            proc.name
        );
    }
}

#[test]
fn the_token_example_shares_one_token() {
    let mut first = Proc::spawn("token", "first", &["7"]);
    let first_addr = first.wait_for("[token] ready at ", Duration::from_secs(10));
    // The second joins through the first, the third through the second: each asks one
    // neighbour and learns every member from it.
    let mut second = Proc::spawn("token", "second", &[&first_addr]);
    let second_addr = second.wait_for("[token] ready at ", Duration::from_secs(10));
    assert_eq!(
        second.wait_for("[token] Some(7) (asked ", Duration::from_secs(1)),
        format!("{first_addr})")
    );
    let mut third = Proc::spawn("token", "third", &[&second_addr]);
    third.wait_for("[token] ready at ", Duration::from_secs(10));
    third.wait_for("[token] Some(7) (asked ", Duration::from_secs(1));
    third.wait_for("[token] greeted 2 members", Duration::from_secs(1));

    // An update from the newest member reaches everybody, and so does one from the first.
    third.say("set 4");
    third.wait_for(
        "[token] set to 4; told 2 of 2 members",
        Duration::from_secs(5),
    );
    first.wait_for("[token] now 4 (update from ", Duration::from_secs(5));
    second.wait_for("[token] now 4 (update from ", Duration::from_secs(5));
    first.say("set 9");
    first.wait_for(
        "[token] set to 9; told 2 of 2 members",
        Duration::from_secs(5),
    );
    second.wait_for("[token] now 9", Duration::from_secs(5));
    third.wait_for("[token] now 9", Duration::from_secs(5));
    third.say("show");
    third.wait_for("[token] Some(9)", Duration::from_secs(5));

    for proc in [&mut third, &mut second, &mut first] {
        assert!(
            proc.finish(Duration::from_secs(5)).success(),
            "{}",
            proc.name
        );
    }
}
