//! Events across real processes: ten subscriber processes receive a thousand events in
//! order, a killed one is pruned without disturbing the rest, a late one receives the later
//! events, and the two event examples (simple_subscription, token) run as a user runs them.

use std::net::SocketAddr;

use crate::support::{confined, eventually, example, loopback, Process, STDERR};

/// Publishes one line to the subscribers of "line", as the simple_subscription hub does.
#[net::event("line")]
fn line(text: String) -> String {
    text
}

/// Starts example `example_name args`, called `name`, on a free loopback port.
fn spawn(example_name: &str, name: &str, args: &[&str]) -> Process {
    let mut command = confined(example(example_name));
    command.args(args).env("NET_PORT", "0");
    Process::spawn(name, command)
}

async fn hub() -> net::Peer {
    net::Peer::start(loopback().hub(true)).await.unwrap()
}

/// Starts a simple_subscription subscriber of `hub` and returns it with its address.
fn subscriber(hub: &net::Peer, name: &str) -> (Process, SocketAddr) {
    let proc = spawn("simple_subscription", name, &[&hub.addr().to_string()]);
    let rest = proc.wait_after("[subscriber] ");
    let addr = rest
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} printed no address: {rest}"));
    (proc, addr)
}

fn received(proc: &Process) -> Vec<String> {
    proc.with_prefix("[subscriber] event ")
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_subscriber_processes_get_every_event_in_order_and_a_killed_one_is_pruned() {
    let publisher = hub().await;
    let mut subscribers: Vec<(Process, SocketAddr)> = (0..10)
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
    eventually("every subscriber's 1000 lines", || {
        subscribers.iter().all(|(p, _)| received(p).len() >= 1000)
    })
    .await;
    for (proc, _) in &subscribers {
        assert_eq!(received(proc), all, "{}", proc.label());
    }

    // Kill one without warning: the next event prunes it and reaches the nine others.
    let (mut killed, killed_addr) = subscribers.remove(0);
    killed.kill();
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
    eventually("the nine subscribers' later lines", || {
        subscribers.iter().all(|(p, _)| received(p).len() >= 1011)
    })
    .await;
    for (proc, _) in &subscribers {
        assert_eq!(received(proc), all, "{}", proc.label());
    }

    // Leaving cleanly withdraws the subscription.
    for (proc, _) in &mut subscribers {
        assert!(proc.finish().success(), "{}", proc.label());
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
    eventually("both subscribers' lines", || {
        received(&early).len() >= 200 && received(&late).len() >= 100
    })
    .await;
    assert_eq!(received(&early), numbered(0..200));
    assert_eq!(received(&late), numbered(100..200));
}

#[test]
fn the_simple_subscription_example_runs() {
    let mut hub = spawn("simple_subscription", "hub", &[]);
    let addr = hub.wait_after("[hub] ready at ");
    let addr = addr.split(';').next().unwrap().to_owned();
    let mut first = spawn("simple_subscription", "first", &[&addr]);
    let mut second = spawn("simple_subscription", "second", &[&addr]);
    first.wait_after("[subscriber] 127.0.0.1:");
    second.wait_after("[subscriber] 127.0.0.1:");
    hub.say("hello");
    hub.say("world");
    hub.wait_after("[hub] event \"line\": 2 delivered");
    for proc in [&first, &second] {
        proc.wait_after("[subscriber] world");
        let got: Vec<String> = proc
            .with_prefix("[subscriber] ")
            .into_iter()
            .filter(|l| !l.starts_with("127.0.0.1:"))
            .collect();
        assert_eq!(got, ["hello", "world"], "{}", proc.label());
    }

    // `hubs_only`: a peer that is not a hub is refused with a clear message.
    let (mut plain, plain_addr) = {
        let proc = spawn("token", "plain peer", &["1"]);
        let addr = proc.wait_after("[token] ready at ");
        (proc, addr)
    };
    let mut refused = spawn("simple_subscription", "refused", &[&plain_addr]);
    assert!(!refused.finish().success());
    refused.wait_after(&format!("{STDERR}simple_subscription: the peer at"));
    assert!(refused.lines().join("\n").contains("is not a hub"));

    for proc in [&mut hub, &mut first, &mut second, &mut plain] {
        assert!(proc.finish().success(), "{}", proc.label());
    }
}

#[test]
fn the_token_example_shares_one_token() {
    let mut first = spawn("token", "first", &["7"]);
    let first_addr = first.wait_after("[token] ready at ");
    // The second joins through the first, the third through the second: each asks one
    // neighbour and learns every member from it.
    let mut second = spawn("token", "second", &[&first_addr]);
    let second_addr = second.wait_after("[token] ready at ");
    assert_eq!(
        second.wait_after("[token] Some(7) (asked "),
        format!("{first_addr})")
    );
    let mut third = spawn("token", "third", &[&second_addr]);
    third.wait_after("[token] ready at ");
    third.wait_after("[token] Some(7) (asked ");
    third.wait_after("[token] greeted 2 members");

    // An update from the newest member reaches everybody, and so does one from the first.
    third.say("set 4");
    third.wait_after("[token] set to 4; told 2 of 2 members");
    first.wait_after("[token] now 4 (update from ");
    second.wait_after("[token] now 4 (update from ");
    first.say("set 9");
    first.wait_after("[token] set to 9; told 2 of 2 members");
    second.wait_after("[token] now 9");
    third.wait_after("[token] now 9");
    third.say("show");
    third.wait_after("[token] Some(9)");

    for proc in [&mut third, &mut second, &mut first] {
        assert!(proc.finish().success(), "{}", proc.label());
    }
}
