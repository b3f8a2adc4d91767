//! One link per pair of peers: two peers that call each other end up sharing one link
//! (the one the lower id opened), whichever called first, with calls running both ways
//! all the while; plain and secured. The impostor's side (a claimed id with a ticket
//! of its own) is in hostile/claims.rs.

use std::time::Duration;

use crate::support::{eventually, loopback};

#[net::connect("pairing.whoami")]
fn whoami(caller: net::Caller) -> String {
    caller.id().map(|id| id.to_string()).unwrap_or_default()
}

/// Calls `whoami` on `to` from `from` `n` times, 16 in flight, and checks every answer
/// names `from`.
async fn calls(from: &net::Peer, to: &net::Peer, n: usize) {
    use futures_util::StreamExt as _;
    let me = from.id().to_string();
    futures_util::stream::iter(0..n)
        .for_each_concurrent(16, |_| async {
            let answer = whoami()
                .on(to.addr())
                .via(from)
                .timeout(Duration::from_secs(5))
                .await
                .expect("a call failed while the links were paired");
            assert_eq!(answer, me);
        })
        .await;
}

async fn share_one_link(config: impl Fn() -> net::Config) {
    let a = net::Peer::start(config()).await.unwrap();
    let b = net::Peer::start(config()).await.unwrap();
    // Both directions at once, so the two links open as close together as they can.
    tokio::join!(calls(&a, &b, 200), calls(&b, &a, 200));
    eventually("the two peers to share one link", || {
        a.connection_count() == 1 && b.connection_count() == 1
    })
    .await;
    // The link left carries both directions.
    tokio::join!(calls(&a, &b, 200), calls(&b, &a, 200));
    assert_eq!((a.connection_count(), b.connection_count()), (1, 1));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_that_call_each_other_share_one_link() {
    share_one_link(loopback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_secured_peers_that_call_each_other_share_one_link() {
    let secret = "the pairing test's secret, long enough";
    share_one_link(|| loopback().secret(net::Secret::new(secret))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_of_the_peer_that_called_second_is_the_one_left_either_way() {
    // Whichever calls first, the link left is the one the lower id opened.
    for lower_first in [true, false] {
        let a = net::Peer::start(loopback()).await.unwrap();
        let b = net::Peer::start(loopback()).await.unwrap();
        let (low, high) = if a.id() < b.id() { (a, b) } else { (b, a) };
        let (first, second) = if lower_first {
            (&low, &high)
        } else {
            (&high, &low)
        };
        calls(first, second, 10).await;
        calls(second, first, 10).await;
        eventually("the two peers to share one link", || {
            low.connection_count() == 1 && high.connection_count() == 1
        })
        .await;
        calls(&high, &low, 10).await;
        assert_eq!((low.connection_count(), high.connection_count()), (1, 1));
        low.shutdown().await;
        high.shutdown().await;
    }
}
