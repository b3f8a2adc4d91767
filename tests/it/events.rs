//! Events between peers in one process over real loopback sockets: order, reports
//! (delivered, failed, pruned), slow subscribers, time budgets, filters, unsubscribing,
//! and broadcast.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use net::{DeliveryStatus, Peer};

use crate::support::{dead_addr, eventually, loopback};

async fn peer() -> Peer {
    Peer::start(loopback()).await.unwrap()
}

/// What each subscribing peer received, in order, by the subscriber's address.
fn log() -> &'static Mutex<HashMap<SocketAddr, Vec<String>>> {
    static LOG: OnceLock<Mutex<HashMap<SocketAddr, Vec<String>>>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

fn record(caller: &net::Caller, entry: String) {
    let me = caller
        .server()
        .expect("a delivery has a serving peer")
        .addr();
    log().lock().unwrap().entry(me).or_default().push(entry);
}

fn received(subscriber: &Peer) -> Vec<String> {
    log()
        .lock()
        .unwrap()
        .get(&subscriber.addr())
        .cloned()
        .unwrap_or_default()
}

#[net::event("count")]
fn count(n: u64) -> u64 {
    n
}

#[net::subscribe("count")]
fn on_count(n: u64, caller: net::Caller) {
    record(&caller, format!("count {n}"));
}

#[net::event("letter")]
fn letter(position: u64, text: &str) -> (u64, String) {
    (position, text.to_uppercase())
}

#[net::subscribe("letter")]
async fn on_letter(position: u64, text: String, caller: net::Caller) {
    record(&caller, format!("letter {position} {text}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_gets_every_event_in_publish_order() {
    let publisher = peer().await;
    let subscribers = [peer().await, peer().await, peer().await];
    for subscriber in &subscribers {
        let events = subscriber.subscribe_to(&publisher).await.unwrap();
        assert!(events.contains(&"count".to_owned()), "{events:?}");
        assert!(events.contains(&"letter".to_owned()), "{events:?}");
    }
    assert_eq!(publisher.subscribers("count").len(), 3);

    // Two events interleaved, sync and async handlers: one order for both.
    let mut expected = Vec::new();
    for i in 0..1500u64 {
        if i % 3 == 0 {
            letter(i, "x").via(&publisher).spawn().unwrap();
            expected.push(format!("letter {i} X"));
        } else {
            count(i).via(&publisher).spawn().unwrap();
            expected.push(format!("count {i}"));
        }
    }
    let report = count(1500).via(&publisher).await.unwrap();
    expected.push("count 1500".to_owned());
    assert!(report.all_delivered(), "{report}");
    assert_eq!(report.deliveries.len(), 3, "{report}");
    for subscriber in &subscribers {
        assert_eq!(received(subscriber), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_twice_delivers_once_and_self_subscription_is_refused() {
    let publisher = peer().await;
    let subscriber = peer().await;
    subscriber.subscribe_to(&publisher).await.unwrap();
    subscriber.subscribe_to(publisher.addr()).await.unwrap();
    let report = count(7).via(&publisher).await.unwrap();
    assert_eq!(report.delivered().count(), 1, "{report}");
    assert_eq!(received(&subscriber), ["count 7"]);

    let err = publisher.subscribe_to(&publisher).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot subscribe to itself"),
        "{err}"
    );
}

#[net::event("fragile")]
fn fragile(n: u64) -> u64 {
    n
}

#[net::subscribe("fragile")]
fn on_fragile(n: u64) -> Result<(), String> {
    match n {
        1 => Err("odd one out".into()),
        3 => panic!("three is too many"),
        _ => Ok(()),
    }
}

#[net::event("mismatch")]
fn mismatch(text: &str) -> String {
    text.to_owned()
}

#[net::subscribe("mismatch")]
fn on_mismatch(n: u64) {
    let _ = n;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_subscriber_is_reported_never_raised() {
    let publisher = peer().await;
    let subscriber = peer().await;
    subscriber.subscribe_to(&publisher).await.unwrap();

    let report = fragile(1).via(&publisher).await.unwrap();
    let failed: Vec<_> = report.failed().collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(
        matches!(&failed[0].status, DeliveryStatus::Failed(why) if why.contains("odd one out")),
        "{report}"
    );

    let report = fragile(3).via(&publisher).await.unwrap();
    assert!(
        report.to_string().contains("panicked: three is too many"),
        "{report}"
    );

    let report = mismatch("seven").via(&publisher).await.unwrap();
    assert!(
        report
            .to_string()
            .contains("does not fit the handler's parameters"),
        "{report}"
    );

    // The subscriber stays subscribed after failures, and the next event gets through.
    let report = fragile(2).via(&publisher).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
    assert_eq!(publisher.subscribers("fragile"), [subscriber.addr()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_subscriber_is_pruned_and_the_others_are_unaffected() {
    let publisher = peer().await;
    let alive = peer().await;
    alive.subscribe_to(&publisher).await.unwrap();
    // A subscriber that registered and then vanished without a word.
    let gone = dead_addr();
    let tag = on_count(0).tag().to_owned();
    net::subscription_handler("count".into(), "127.0.0.1".into(), gone.port(), tag)
        .on(&publisher)
        .via(&alive)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(publisher.subscribers("count").len(), 2);

    let report = count(1).via(&publisher).await.unwrap();
    let pruned: Vec<_> = report.pruned().collect();
    assert_eq!(pruned.len(), 1, "{report}");
    assert_eq!(pruned[0].subscriber, gone);
    assert_eq!(report.delivered().count(), 1, "{report}");
    assert_eq!(publisher.subscribers("count"), [alive.addr()]);

    let report = count(2).via(&publisher).await.unwrap();
    assert_eq!(report.deliveries.len(), 1, "{report}");
    assert_eq!(received(&alive), ["count 1", "count 2"]);
}

/// Subscribers listed here take 300 ms per event.
fn slow() -> &'static Mutex<BTreeSet<SocketAddr>> {
    static SLOW: OnceLock<Mutex<BTreeSet<SocketAddr>>> = OnceLock::new();
    SLOW.get_or_init(Default::default)
}

#[net::event("slowable")]
fn slowable(n: u64) -> u64 {
    n
}

#[net::subscribe("slowable")]
async fn on_slowable(n: u64, caller: net::Caller) {
    let me = caller.server().unwrap().addr();
    if slow().lock().unwrap().contains(&me) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    record(&caller, format!("slowable {n}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_does_not_hold_back_the_others() {
    let publisher = peer().await;
    let laggard = peer().await;
    let quick = [peer().await, peer().await];
    slow().lock().unwrap().insert(laggard.addr());
    laggard.subscribe_to(&publisher).await.unwrap();
    for q in &quick {
        q.subscribe_to(&publisher).await.unwrap();
    }
    let started = Instant::now();
    for n in 0..5 {
        slowable(n).via(&publisher).spawn().unwrap();
    }
    let all: Vec<String> = (0..5).map(|n| format!("slowable {n}")).collect();
    eventually("the quick subscribers", || {
        quick.iter().all(|q| received(q) == all)
    })
    .await;
    // The laggard needs 1.5 s for its five; the others were done long before.
    assert!(received(&laggard).len() < 5, "{:?}", received(&laggard));
    assert!(started.elapsed() < Duration::from_millis(1000));
    eventually("the laggard", || received(&laggard) == all).await;
}

#[net::event("plodding")]
fn plodding(n: u64) -> u64 {
    n
}

#[net::subscribe("plodding")]
fn on_plodding(n: u64, caller: net::Caller) {
    std::thread::sleep(Duration::from_millis(60));
    record(&caller, format!("plodding {n}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_longer_than_the_timeout_is_split_rather_than_failed() {
    // 12 events of 60 ms each is 720 ms of work, more than the 400 ms a call may take.
    let publisher = Peer::start(loopback().timeout(Duration::from_millis(400)))
        .await
        .unwrap();
    let subscriber = peer().await;
    subscriber.subscribe_to(&publisher).await.unwrap();
    // Queued in order now, reports collected afterwards.
    let queued: Vec<net::Delivering> = (0..12)
        .map(|n| plodding(n).via(&publisher).spawn().unwrap())
        .collect();
    for delivering in queued {
        let report = delivering.await;
        assert!(
            report.all_delivered() && report.deliveries.len() == 1,
            "{report}"
        );
    }
    let all: Vec<String> = (0..12).map(|n| format!("plodding {n}")).collect();
    assert_eq!(received(&subscriber), all);
}

#[net::subscribe("filtered.any")]
fn on_any() {}

#[net::subscribe("filtered.render", groups = ["render", "compose"])]
fn on_render() {}

#[net::subscribe("filtered.hubs", hubs_only)]
fn on_hubs() {}

#[net::subscribe("filtered.host", on_host)]
fn on_host() {}

#[net::subscribe("filtered.listed", peers = ["127.0.0.1:1"])]
fn on_listed() {}

fn filtered(events: &[String]) -> Vec<&str> {
    events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("filtered."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_choose_which_publishers_to_subscribe_to() {
    let plain = peer().await;
    let render_hub = Peer::start(loopback().group("render").hub(true))
        .await
        .unwrap();
    let audio = Peer::start(loopback().group("audio")).await.unwrap();
    let subscriber = peer().await;

    let events = subscriber.subscribe_to(&plain).await.unwrap();
    assert_eq!(filtered(&events), ["filtered.any", "filtered.host"]);
    let events = subscriber.subscribe_to(&render_hub).await.unwrap();
    assert_eq!(
        filtered(&events),
        [
            "filtered.any",
            "filtered.host",
            "filtered.hubs",
            "filtered.render"
        ]
    );
    let events = subscriber.subscribe_to(&audio).await.unwrap();
    assert_eq!(filtered(&events), ["filtered.any", "filtered.host"]);

    // The publishers agree, and `info` lists the events with subscribers (app-net's).
    assert_eq!(render_hub.subscribers("filtered.hubs"), [subscriber.addr()]);
    assert!(plain.subscribers("filtered.hubs").is_empty());
    assert!(audio.subscribers("filtered.render").is_empty());
    let info = net::info().on(&render_hub).via(&subscriber).await.unwrap();
    assert!(info.subscriptions.contains(&"filtered.render".to_owned()));
    let info = net::info().on(&plain).via(&subscriber).await.unwrap();
    assert!(!info.subscriptions.contains(&"filtered.render".to_owned()));
    assert!(!info.subscriptions.contains(&"filtered.listed".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_and_shutting_down_withdraw_the_subscriptions() {
    let first = peer().await;
    let second = peer().await;
    let subscriber = peer().await;
    subscriber.subscribe_to(&first).await.unwrap();
    subscriber.subscribe_to(&second).await.unwrap();
    let mine = subscriber.subscriptions();
    assert!(
        mine.contains(&("count".to_owned(), first.addr())),
        "{mine:?}"
    );
    assert!(
        mine.contains(&("count".to_owned(), second.addr())),
        "{mine:?}"
    );

    subscriber.unsubscribe_from(&first).await.unwrap();
    assert!(first.subscribers("count").is_empty());
    assert_eq!(second.subscribers("count"), [subscriber.addr()]);

    subscriber.shutdown().await;
    assert!(second.subscribers("count").is_empty());
    assert!(net::info()
        .on(&second)
        .via(&first)
        .await
        .unwrap()
        .subscriptions
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_code_publishes_with_wait() {
    let publisher = peer().await;
    let subscriber = peer().await;
    subscriber.subscribe_to(&publisher).await.unwrap();
    let from_thread = publisher.clone();
    let report = std::thread::spawn(move || count(42).via(&from_thread).wait())
        .join()
        .unwrap()
        .unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
    assert_eq!(received(&subscriber), ["count 42"]);
}

#[tokio::test]
async fn wait_on_a_current_thread_runtime_is_refused_and_no_subscribers_is_no_error() {
    let publisher = peer().await;
    let err = count(1).via(&publisher).wait().unwrap_err();
    assert!(err.to_string().contains("use .await"), "{err}");
    let report = count(1).via(&publisher).await.unwrap();
    assert!(report.deliveries.is_empty() && report.all_delivered());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_an_argument_list_is_an_error() {
    let publisher = peer().await;
    let err = net::Publish::new("count", 5)
        .via(&publisher)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("must be a tuple"), "{err}");
    let report = net::Publish::new("count", (5,))
        .via(&publisher)
        .await
        .unwrap();
    assert!(report.deliveries.is_empty());
}

#[net::connect]
fn double(x: i64) -> i64 {
    x * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_runs_one_call_on_every_peer_in_order() {
    let me = peer().await;
    let a = peer().await;
    let b = peer().await;
    let nobody = dead_addr();
    let results = double(21)
        .broadcast([a.addr(), nobody, b.addr()])
        .via(&me)
        .timeout(Duration::from_secs(2))
        .await;
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].0.to_string(), a.addr().to_string());
    assert_eq!(*results[0].1.as_ref().unwrap(), 42);
    assert!(matches!(results[1].1, Err(net::Error::Unreachable { .. })));
    assert_eq!(*results[2].1.as_ref().unwrap(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_subscribe_follows_the_seeds_even_one_that_starts_later() {
    let early = peer().await;
    let late_port = dead_addr().port();
    let subscriber =
        Peer::start(loopback().seeds([early.addr().to_string(), format!("127.0.0.1:{late_port}")]))
            .await
            .unwrap();
    subscriber.auto_subscribe();
    eventually("the early seed", || {
        early.subscribers("count") == [subscriber.addr()]
    })
    .await;
    let late = Peer::start(loopback().port(late_port).port_range(0))
        .await
        .unwrap();
    eventually("the late seed", || {
        late.subscribers("count") == [subscriber.addr()]
    })
    .await;
    let report = count(3).via(&late).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
}

#[net::event("bulky")]
fn bulky(n: u64) -> (u64, String) {
    (n, "x".repeat(1500))
}

#[net::subscribe("bulky")]
fn on_bulky(n: u64, filler: String, caller: net::Caller) {
    record(&caller, format!("bulky {n} {}", filler.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_the_frame_limit_of_both_sides() {
    // 40 events of 1.5 KB queue up behind the first: far more than one 16 KiB frame.
    let small = || loopback().max_frame(16 * 1024);
    let publisher = Peer::start(small()).await.unwrap();
    let subscriber = Peer::start(small()).await.unwrap();
    subscriber.subscribe_to(&publisher).await.unwrap();
    let queued: Vec<net::Delivering> = (0..40)
        .map(|n| bulky(n).via(&publisher).spawn().unwrap())
        .collect();
    for delivering in queued {
        let report = delivering.await;
        assert!(
            report.all_delivered() && report.deliveries.len() == 1,
            "{report}"
        );
    }
    let all: Vec<String> = (0..40).map(|n| format!("bulky {n} 1500")).collect();
    assert_eq!(received(&subscriber), all);
}
