//! A hello that claims another local peer's id: the impostor connects from the same
//! host, so only the port gives it away. Calls to that id must still reach the real peer,
//! over the link to its own address, never the impostor's connection, and a link that
//! works is never replaced by a claim, even one that carries a ticket (the real peer,
//! asked, says it opened no such link).

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::wire::{frame, hello_claiming, said_hello_as, their_hello};
use super::{echo, Fixture};
use crate::support::loopback;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_id_never_takes_the_real_peers_calls() {
    let fx = Fixture::start(&[]).await;
    let real = fx.server.id();
    let victim = net::Peer::start(loopback()).await.unwrap();
    let call = |i: u64| {
        echo(i)
            .on(&real)
            .via(&victim)
            .timeout(Duration::from_secs(2))
    };
    // The victim talks to the real peer first: that link works.
    let (_, first_from) = call(1).await.expect("the real peer does not answer");

    // Impostors say hello to the victim as the real peer, from the same host; one opens
    // with it before the victim's hello, the other after it.
    let mut early = said_hello_as(victim.addr(), &real).await;
    let mut late = tokio::net::TcpStream::connect(victim.addr()).await.unwrap();
    their_hello(&mut late).await;
    late.write_all(&hello_claiming(json!(real.to_string())))
        .await
        .unwrap();
    their_hello(&mut early).await;

    // Calls to that id go on as before: answered by the real peer, over the same link.
    for i in 2..20 {
        let (got, from) = call(i).await.expect("a call to the claimed id failed");
        assert_eq!(got, i);
        assert_eq!(
            from, first_from,
            "the victim's link to the real peer was replaced"
        );
    }
    // A victim that had no link yet opens one to the id's own address, not the claim's.
    let fresh = net::Peer::start(loopback()).await.unwrap();
    let mut third = said_hello_as(fresh.addr(), &real).await;
    their_hello(&mut third).await;
    let (got, _) = echo(99)
        .on(&real)
        .via(&fresh)
        .timeout(Duration::from_secs(2))
        .await
        .expect("a new victim's call to the claimed id failed");
    assert_eq!(got, 99);

    for (name, stream) in [("early", &early), ("late", &late), ("third", &third)] {
        no_call_reached(name, stream);
    }
    fresh.shutdown().await;
    victim.shutdown().await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_with_a_ticket_is_checked_with_the_real_peer_and_refused() {
    let fx = Fixture::start(&[]).await;
    let real = fx.server.id();
    // Only a peer with a higher id than the one claimed checks a claim (`pairing.rs`).
    let mut victim = net::Peer::start(loopback()).await.unwrap();
    while *victim.id() < real {
        victim.shutdown().await;
        victim = net::Peer::start(loopback()).await.unwrap();
    }
    let call = |i: u64| {
        echo(i)
            .on(&real)
            .via(&victim)
            .timeout(Duration::from_secs(2))
    };
    let (_, first_from) = call(1).await.expect("the real peer does not answer");
    let links = victim.connection_count();

    // The impostor says hello as the real peer with a ticket, and so asks to be the
    // link the victim calls the real peer over.
    let mut impostor = tokio::net::TcpStream::connect(victim.addr()).await.unwrap();
    let hello = json!({"hello": {"protocol": 1, "id": real.to_string(),
        "group": null, "hub": false, "version": "hostile", "max_frame": 1 << 20,
        "ticket": "0123456789abcdef0123456789abcdef"}});
    impostor.write_all(&frame(&hello)).await.unwrap();
    their_hello(&mut impostor).await;
    crate::support::eventually("the victim to hold the impostor's link", || {
        victim.connection_count() == links + 1
    })
    .await;
    // The check (one round trip to the real peer) has had time many times over; the
    // victim's link to the real peer is neither replaced nor retired.
    for i in 2..50 {
        let (got, from) = call(i).await.expect("a call to the claimed id failed");
        assert_eq!((got, &from), (i, &first_from), "the claim took the calls");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(victim.connection_count(), links + 1, "a link was dropped");
    no_call_reached("the", &impostor);
    victim.shutdown().await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goodbye_in_a_claimed_name_does_not_make_the_real_peer_leave() {
    let fx = Fixture::start(&[]).await;
    let real = fx.server.id();
    let victim = net::Peer::start(loopback().seeds([real.addr().to_string()]))
        .await
        .unwrap();
    let known = |peers: &[net::PeerInfo]| peers.iter().any(|p| p.id == real);
    assert!(known(&victim.peers().await.unwrap()), "the seed is known");
    let mut changes = victim.membership();

    // The impostor says hello as the real peer, then goodbye, and the victim hangs up.
    let mut impostor = said_hello_as(victim.addr(), &real).await;
    their_hello(&mut impostor).await;
    impostor.write_all(&frame(&json!("goodbye"))).await.unwrap();
    let closed = super::wire::until_closed(&mut impostor, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "the victim did not close after the goodbye"
    );

    // The victim asks the real peer, which answers as itself: nobody left.
    let left = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Ok(net::Membership::Left { peer, reason }) = changes.recv().await {
                return (peer.id, reason);
            }
        }
    })
    .await;
    assert!(left.is_err(), "the real peer was dropped: {left:?}");
    assert!(
        known(&victim.peers().await.unwrap()),
        "the real peer is gone"
    );
    victim.shutdown().await;
    fx.finish().await;
}

/// Had a call gone to an impostor, it would have timed out (they never answer); what
/// the impostor was sent says so plainly. (The victim's discovery may ask it about
/// itself over its own link, an `info` call, which is not one of these.)
fn no_call_reached(name: &str, stream: &tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    if let Ok(n) = stream.try_read(&mut buf) {
        let seen = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !seen.contains("hostile.echo"),
            "{name} impostor got a call: {seen}"
        );
    }
}
