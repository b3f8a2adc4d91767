//! Attacks on subscriptions: registering a third party's address, withdrawing someone
//! else's subscription, filling the table, and subscriber addresses that accept TCP but
//! never answer the hello; a well-behaved subscriber gets every event all along.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};

use super::wire::{call, hello, their_hello};
use crate::support::loopback;

#[net::event("hostile.news")]
fn news(n: u64) -> u64 {
    n
}

/// What the well-behaved subscriber received, in order.
static SEEN: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

#[net::connect("hostile.news_seen")]
fn news_seen(n: u64) {
    SEEN.lock().unwrap_or_else(|p| p.into_inner()).push(n);
}

/// A publisher whose hello deadline is short (set as the environment would).
async fn publisher() -> net::Peer {
    let config = net::Config::from_lookup(|name| match name {
        "NET_HELLO_TIMEOUT" => Some("500ms".into()),
        _ => None,
    })
    .unwrap()
    .loopback(true)
    .port(0)
    .timeout(Duration::from_secs(2));
    net::Peer::start(config).await.unwrap()
}

/// Calls `tag` with `args` from a socket bound to `from`, speaking the protocol by hand;
/// the reply's outcome.
async fn call_from(from: &str, to: SocketAddr, tag: &str, args: Value) -> Value {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    stream.write_all(&hello()).await.unwrap();
    their_hello(&mut stream).await;
    stream.write_all(&call(1, tag, args)).await.unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    reply["reply"]["outcome"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_not_open_to_abuse() {
    let publisher = publisher().await;
    let me = net::Peer::start(loopback()).await.unwrap();
    let event = "hostile.news".to_owned();
    // The well-behaved subscriber, at its own address.
    let fan = net::Peer::start(loopback()).await.unwrap();
    net::subscription_handler(
        event.clone(),
        "127.0.0.1".into(),
        fan.addr().port(),
        "hostile.news_seen".into(),
    )
    .on(&publisher)
    .via(&fan)
    .await
    .unwrap()
    .unwrap();
    let subscribers = |extra: &[SocketAddr]| {
        let mut all: Vec<SocketAddr> = [fan.addr()].iter().chain(extra).copied().collect();
        all.sort();
        let mut now = publisher.subscribers(&event);
        now.sort();
        assert_eq!(now, all);
    };

    // Another host's address: the publisher would call a third party.
    let refused = net::subscription_handler(event.clone(), "127.0.0.3".into(), 4000, "t".into())
        .on(&publisher)
        .via(&me)
        .await
        .unwrap();
    let why = refused.expect_err("a third party's address was accepted");
    assert!(why.contains("only its own address"), "{why}");
    subscribers(&[]);

    // A subscriber at 127.0.0.2; a caller from 127.0.0.1 may not withdraw it.
    let args = json!([event, "127.0.0.2", 4001, "t"]);
    let outcome = call_from("127.0.0.2", publisher.addr(), "subscription_handler", args).await;
    assert_eq!(outcome, json!({"ok": null}), "{outcome}");
    let theirs: SocketAddr = "127.0.0.2:4001".parse().unwrap();
    subscribers(&[theirs]);
    let refused = net::unsubscription_handler(event.clone(), "127.0.0.2".into(), 4001, "t".into())
        .on(&publisher)
        .via(&me)
        .await
        .unwrap();
    assert!(
        refused.is_err(),
        "someone else's subscription was withdrawn"
    );
    subscribers(&[theirs]);

    // A subscriber address that takes the connection and never says hello is pruned
    // after the hello deadline, with the one at 127.0.0.2 (nobody listens there).
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            kept.push(stream);
        }
    });
    net::subscription_handler(
        event.clone(),
        "127.0.0.1".into(),
        silent_addr.port(),
        "t".into(),
    )
    .on(&publisher)
    .via(&me)
    .await
    .unwrap()
    .unwrap();
    let started = Instant::now();
    let report = news(1).via(&publisher).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{report}");
    assert_eq!(report.pruned().count(), 2, "{report}");
    assert_eq!(report.delivered().count(), 1, "{report}");
    subscribers(&[]);
    let report = news(2).via(&publisher).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
    // One host fills its share of the table and no more (the well-behaved subscriber,
    // on this host too, holds one of its 1000).
    let register = |port: u16| {
        net::subscription_handler(
            "hostile.capped".into(),
            "127.0.0.1".into(),
            port,
            "t".into(),
        )
        .on(&publisher)
        .via(&me)
        .into_future()
    };
    let all = futures_util::future::join_all((0..999).map(|i| register(10_000 + i))).await;
    assert!(all.into_iter().all(|r| matches!(r, Ok(Ok(())))));
    let over = register(12_000).await.unwrap();
    let why = over.expect_err("more than a host's share was accepted");
    assert!(why.contains("1000"), "{why}");
    // The well-behaved subscriber got every event, and still does.
    let report = news(3).via(&publisher).await.unwrap();
    assert!(
        report.all_delivered() && report.deliveries.len() == 1,
        "{report}"
    );
    assert_eq!(*SEEN.lock().unwrap(), [1, 2, 3]);
    fan.shutdown().await;

    held.abort();
    me.shutdown().await;
    publisher.shutdown().await;
}
