//! The background refresh that keeps a peer's table current on every path, so that a
//! peer started later is seen without anyone asking again, subscriptions reach it, and
//! `membership()` reports it.
//!
//! # Cadence
//!
//! - **This host** (the on-host scan of `NET_PORT..=NET_PORT+NET_PORT_RANGE`): re-scanned
//!   after 250 ms, then at twice the interval each time nothing changed, up to once a
//!   second; any change starts again at 250 ms. A newcomer on this machine is therefore
//!   in the table within about a second. A port whose peer is known and whose link is
//!   open is not probed at all (the open link says it is there), so a quiet mesh costs
//!   one refused connect per empty port and round, and no call.
//! - **Seeds and peer exchange, ARP neighbours** (when selected), known peers that are
//!   neither on this host nor on an open link, and Python app-net peers (one TCP
//!   connection per request is their protocol): every 2 s at first, backing off to once
//!   a minute while nothing changes.
//! - **mDNS** keeps itself current (announcements and goodbyes) and is not polled.
//!
//! It starts with the peer's first discovery (`peers()`, `membership()`, a subscription
//! that follows discovery, a `known_peers` question) and stops when the peer shuts down.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::probe::{probe, Probe};
use super::{arp, scan, seeds, verify, Discovery};
use crate::id::PeerId;
use crate::peer::Peer;

/// The first and the longest interval between two re-scans of this host.
const HOST_FIRST: Duration = Duration::from_millis(250);
const HOST_MOST: Duration = Duration::from_secs(1);

/// The first and the longest interval between two rounds of the other paths.
const OTHERS_FIRST: Duration = Duration::from_secs(2);
const OTHERS_MOST: Duration = Duration::from_secs(60);

/// Starts the refresh of `peer`'s table, once.
pub(crate) fn start(peer: &Peer) {
    let state = peer.discovery();
    if state
        .refreshing
        .swap(true, std::sync::atomic::Ordering::AcqRel)
        || peer.is_shut_down()
    {
        return;
    }
    let stop = peer.shutdown_token().clone();
    let task = run(peer.clone());
    peer.tracker().spawn_on(
        async move {
            tokio::select! {
                _ = task => {}
                _ = stop.cancelled() => {}
            }
        },
        peer.runtime(),
    );
}

async fn run(peer: Peer) {
    let mut host_every = HOST_FIRST;
    let mut others_every = OTHERS_FIRST;
    let mut others_next = Instant::now() + others_every;
    loop {
        tokio::time::sleep(host_every).await;
        let before = known(&peer);
        rescan_host(&peer).await;
        let host_changed = known(&peer) != before;
        host_every = backoff(host_every, host_changed, HOST_FIRST, HOST_MOST);
        if Instant::now() >= others_next {
            let before = known(&peer);
            others(&peer).await;
            let changed = known(&peer) != before;
            others_every = backoff(others_every, changed, OTHERS_FIRST, OTHERS_MOST);
            others_next = Instant::now() + others_every;
        }
    }
}

/// The next interval: back to `first` after a change, else twice as long, at most `most`.
fn backoff(now: Duration, changed: bool, first: Duration, most: Duration) -> Duration {
    if changed {
        first
    } else {
        (now * 2).min(most)
    }
}

fn known(peer: &Peer) -> BTreeSet<PeerId> {
    peer.discovery()
        .table
        .snapshot()
        .into_iter()
        .map(|p| p.id.clone())
        .collect()
}

/// Probes every port of the range on this host that no known peer holds an open link
/// on; adds who answers, and drops a known peer whose port now refuses.
async fn rescan_host(peer: &Peer) {
    let state = peer.discovery();
    let table = &state.table;
    let known = table.snapshot();
    let targets: Vec<_> = scan::background_targets(peer)
        .into_iter()
        .filter(|addr| {
            let here = known.iter().find(|p| p.addr == *addr);
            !here.is_some_and(|p| p.app_net || peer.pooled(p.addr).is_some())
        })
        .collect();
    let timeout = peer.config().probe_timeout;
    let probes = futures_util::future::join_all(
        targets
            .iter()
            .map(|addr| probe(peer, *addr, timeout, Discovery::Scan)),
    )
    .await;
    for (addr, result) in targets.iter().zip(probes) {
        match result {
            Probe::Found(found) => table.upsert(*found),
            Probe::Closed => {
                for gone in known.iter().filter(|p| p.addr == *addr) {
                    table.remove(
                        &gone.id,
                        "it stopped answering (nothing listens at its port)",
                    );
                }
            }
            _ => {}
        }
    }
}

/// One round of the paths other than this host's scan and mDNS, then a check of the known
/// peers that are neither on this host nor on an open link.
async fn others(peer: &Peer) {
    let ((seed_found, _), (arp_found, _)) = tokio::join!(seeds::run(peer), arp::run(peer));
    let state = peer.discovery();
    let mut confirmed = BTreeSet::new();
    for found in seed_found.into_iter().chain(arp_found) {
        confirmed.insert(found.id.clone());
        state.table.upsert(found);
    }
    for known in state.table.snapshot() {
        // A Python app-net peer is checked here, at this slower pace (one connection per
        // request is its protocol), not by the host's re-scan.
        let on_host = known.found_by == Discovery::Scan && !known.app_net;
        let linked = peer.pooled(known.addr).is_some();
        if on_host || linked || known.found_by == Discovery::Mdns {
            confirmed.insert(known.id.clone());
        }
    }
    verify(peer, &confirmed).await;
}
