//! Discovery and events together, on loopback: subscriptions follow the peers discovery
//! finds (also a publisher that starts later), a failed call drops a peer from discovery,
//! and a confined peer refuses to call beyond this machine.

use std::sync::Mutex;
use std::time::Duration;

use crate::support::test_peer::{loopback_command, TestPeer};
use crate::support::{eventually, free_range, loopback};

static RECEIVED: Mutex<Vec<(u16, u64)>> = Mutex::new(Vec::new());

#[net::event("news")]
fn news(n: u64) -> u64 {
    n
}

#[net::subscribe("news")]
fn on_news(n: u64, caller: net::Caller) {
    let me = caller.server().map_or(0, |p| p.addr().port());
    RECEIVED.lock().unwrap().push((me, n));
}

fn got(subscriber: &net::Peer, n: u64) -> bool {
    let port = subscriber.addr().port();
    RECEIVED.lock().unwrap().contains(&(port, n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_discovery_and_calls_that_fail_drop_peers() {
    let base = free_range(5);
    let config = || {
        net::Config::default()
            .loopback(true)
            .port(base)
            .port_range(4)
    };
    let first = net::Peer::start(config()).await.unwrap();
    let subscriber = net::Peer::start(config()).await.unwrap();
    subscriber.auto_subscribe();

    // The subscriber's first discovery round finds the publisher and subscribes.
    eventually("a subscription to the first publisher", || {
        first.subscribers("news") == vec![subscriber.addr()]
    })
    .await;
    let report = news(1).via(&first).await.unwrap();
    assert_eq!(report.delivered().count(), 1, "{report:?}");
    eventually("the first event", || got(&subscriber, 1)).await;

    // A publisher that starts later: its own discovery round contacts the subscriber,
    // which learns of it (no mDNS on loopback) and subscribes there too.
    let later = net::Peer::start(config()).await.unwrap();
    let _ = later.peers().await.unwrap();
    eventually("a subscription to the later publisher", || {
        later.subscribers("news") == vec![subscriber.addr()]
    })
    .await;
    news(2).via(&later).await.unwrap();
    eventually("the later publisher's event", || got(&subscriber, 2)).await;

    // A peer that says goodbye leaves the subscriber's discovery table.
    let later_addr = later.addr();
    let mut membership = subscriber.membership();
    later.shutdown().await;
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(net::Membership::Left { peer, reason }) = membership.recv().await {
                if peer.addr == later_addr {
                    return reason;
                }
            }
        }
    })
    .await
    .expect("no Left event for the stopped publisher");
    assert!(left.contains("goodbye"), "{left}");
    let known = subscriber.peers().await.unwrap();
    assert!(known.iter().all(|p| p.addr != later_addr), "{known:?}");
    assert!(known.iter().any(|p| p.addr == first.addr()));

    // And so does one whose calls fail: a peer process killed outright says nothing, and
    // the next call finds it unreachable.
    let mut command = loopback_command(base + 3, 0);
    command.env("NET_DISCOVERY", "scan");
    let mut child = TestPeer::start(command);
    let killed: std::net::SocketAddr = format!("127.0.0.1:{}", base + 3).parse().unwrap();
    assert_eq!(child.addr, killed);
    let known = subscriber.peers().refresh().await.unwrap();
    assert!(known.iter().any(|p| p.addr == killed), "{known:?}");
    child.kill();
    // The first call may still find the dead connection (its close not yet read); the next
    // connects afresh and is refused.
    for _ in 0..3 {
        let err = net::info().on(killed).via(&subscriber).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        if matches!(err, net::Error::Unreachable { .. }) {
            break;
        }
    }
    eventually("the killed peer to leave the subscriber's table", || {
        let known = subscriber.peers().wait().unwrap();
        known.iter().all(|p| p.addr != killed)
    })
    .await;
    subscriber.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_peer_calls_nothing_beyond_this_machine() {
    let me = net::Peer::start(loopback()).await.unwrap();
    // TEST-NET-1: never a real host; the refusal comes before any packet is sent.
    let err = net::info().on("192.0.2.1:3010").via(&me).await.unwrap_err();
    assert!(
        matches!(&err, net::Error::InvalidTarget { reason, .. } if reason.contains("NET_LOOPBACK")),
        "{err}"
    );
    me.shutdown().await;
}
