//! Seeds and peer exchange: the `NET_PEERS` addresses are probed, each is asked for the
//! peers it knows (the `known_peers` built-in), and so on outward, so that joining through
//! one address finds the rest. A peer asked also learns the asker.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::probe::{probe, probe_all, Probe};
use super::report::PathReport;
use super::table::PeerInfo;
use super::Discovery;
use crate::id::PeerId;
use crate::link::Link;
use crate::peer::Peer;
use crate::serve::Caller;

/// Most peers asked for their known peers in one round: exchange is breadth-first from
/// the seeds and stops here, so a huge mesh costs a bounded number of calls.
const MAX_ASKED: usize = 64;

/// A seed may be farther away than the LAN; it gets at least this long to answer.
const SEED_TIMEOUT: Duration = Duration::from_secs(1);

/// One entry of a peer's table, as the `known_peers` built-in returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KnownPeer {
    /// The peer's id.
    pub id: PeerId,
    /// The address the answering peer reaches it at.
    pub addr: SocketAddr,
}

/// The peers this peer knows (its discovery table), for peer exchange: a peer joining
/// through a seed (`NET_PEERS`) asks it, and then asks the peers it learns of. The asker,
/// if new, is probed and added to this peer's table.
#[crate::connect("known_peers")]
pub async fn known_peers(caller: Caller) -> Vec<KnownPeer> {
    match caller.serving_peer() {
        Ok(peer) => answer(&peer, &caller).await,
        // Reported to the caller as a remote error with this message.
        Err(e) => panic!("no local peer to answer for: {e}"),
    }
}

/// The registry entry of `known_peers`, for the composition root's list of built-ins.
pub(crate) fn known_peers_builtin() -> &'static crate::serve::Entry {
    &__NET_ENTRY_known_peers
}

/// The answer of the `known_peers` built-in: `peer`'s table without the caller. A caller
/// it does not know yet is probed in the background and added (the asker is a peer too).
async fn answer(peer: &Peer, caller: &Caller) -> Vec<KnownPeer> {
    let state = peer.discovery();
    // A peer that never ran discovery would know nobody; run a round first unless one is
    // running (it may be the very round that is asking us, which must not wait on us).
    state.ensure_discovered(peer).await;
    let asker = caller.id().cloned();
    if let Some(id) = &asker {
        if let Some(link) = caller.link() {
            learn(peer, id, link);
        }
    }
    state
        .table
        .snapshot()
        .into_iter()
        .filter(|p| Some(&p.id) != asker.as_ref())
        .map(|p| KnownPeer {
            id: p.id.clone(),
            addr: p.addr,
        })
        .collect()
}

/// Learns a peer that contacted this one (asked for `known_peers`, or opened a connection
/// with its id): if the table does not have it, it is probed in the background, where it
/// was seen first, then at its id's address, and added. Gated like peer exchange.
pub(super) fn learn(peer: &Peer, id: &PeerId, link: &Arc<Link>) {
    let state = peer.discovery();
    if id == peer.id()
        || !peer.config().discovery.contains(Discovery::Seeds)
        || state.table.get(id).is_some()
        || peer.is_shut_down()
    {
        return;
    }
    // Where the peer serves, as seen from here: its id's port on the address it came from.
    let addr = SocketAddr::new(link.remote_addr().ip(), id.port());
    // A peer on this host is what the on-host scan covers; others come by exchange.
    let own = crate::addrs::own_ips();
    let path = if id.host().is_loopback() || crate::addrs::is_own(id.host(), &own) {
        Discovery::Scan
    } else {
        Discovery::Seeds
    };
    let (peer2, link, id) = (peer.clone(), link.clone(), id.clone());
    // Asked over the link it came on: no second connection, and the answer must claim
    // the same id (a peer's calls to it still go over a link this peer opens itself).
    let learn = async move {
        let started = std::time::Instant::now();
        let asked = crate::call::call_tag::<crate::wire::Info>(
            crate::wire::INFO_TAG,
            serde_json::json!([]),
        )
        .on(crate::call::Target::over(link))
        .via(&peer2)
        .timeout(SEED_TIMEOUT)
        .await;
        match asked {
            Ok(info) if info.id == id => {
                let found = PeerInfo::new(addr, info, started.elapsed(), path);
                peer2.discovery().table.upsert(found);
            }
            Ok(info) => {
                tracing::debug!(claimed = %id, answered = %info.id, "a peer's hello and info disagree")
            }
            Err(e) => {
                tracing::debug!(peer = %id, error = %e, "a peer that called in did not answer info")
            }
        }
    };
    peer.tracker().spawn_on(learn, peer.runtime());
}

/// Probes `candidates` in order and returns the first peer that answers.
async fn first_answer(
    peer: &Peer,
    candidates: Vec<SocketAddr>,
    timeout: Duration,
    path: Discovery,
) -> Option<PeerInfo> {
    let mut tried = BTreeSet::new();
    for addr in candidates {
        if !tried.insert(addr) {
            continue;
        }
        if let Probe::Found(info) = probe(peer, addr, timeout, path).await {
            return Some(*info);
        }
    }
    None
}

/// Where to try a peer that `via` (reached at `via_addr`) knows: its address as `via` sees
/// it, unless that is `via`'s loopback, which from here is `via`'s own address; then the
/// address in its id.
fn candidates(known: &KnownPeer, via_addr: SocketAddr) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    if known.addr.ip().is_loopback() && !via_addr.ip().is_loopback() {
        out.push(SocketAddr::new(via_addr.ip(), known.addr.port()));
    } else {
        out.push(known.addr);
    }
    out.push(known.id.addr());
    out
}

/// Probes the seeds, then exchanges peers outward from them; returns every peer found.
pub(crate) async fn run(peer: &Peer) -> (Vec<PeerInfo>, PathReport) {
    let config = peer.config();
    if !config.discovery.contains(Discovery::Seeds) {
        let why = format!("not selected (NET_DISCOVERY={})", config.discovery);
        return (Vec::new(), PathReport::idle(Discovery::Seeds, why));
    }
    if config.seeds.is_empty() {
        return (
            Vec::new(),
            PathReport::idle(
                Discovery::Seeds,
                "no seeds: NET_PEERS is unset (NET_PEERS=host:port,... reaches peers outside \
                 this broadcast domain)",
            ),
        );
    }
    let mut problems = Vec::new();
    let mut addrs = Vec::new();
    for seed in &config.seeds {
        match resolve(seed, config.loopback).await {
            Ok(addr) => addrs.push(addr),
            Err(why) => problems.push(format!("seed {seed:?}: {why}")),
        }
    }
    let timeout = config.probe_timeout.max(SEED_TIMEOUT);
    let (seeds, tally) = probe_all(peer, addrs, timeout, Discovery::Seeds).await;
    let answered = seeds.len();
    let mut found: Vec<PeerInfo> = Vec::new();
    let mut seen: BTreeSet<PeerId> = BTreeSet::from([peer.id().clone()]);
    let mut queue = Vec::new();
    for seed in seeds {
        if seen.insert(seed.id.clone()) {
            queue.push(seed.clone());
            found.push(seed);
        }
    }
    let mut asked = 0;
    while !queue.is_empty() && asked < MAX_ASKED {
        let batch: Vec<PeerInfo> = queue.drain(..queue.len().min(MAX_ASKED - asked)).collect();
        asked += batch.len();
        let lists = join_all(batch.iter().map(|p| ask(peer, p, timeout))).await;
        let mut fresh: Vec<(KnownPeer, SocketAddr)> = Vec::new();
        for (via, list) in batch.iter().zip(lists) {
            match list {
                Ok(list) => {
                    for known in list {
                        if seen.insert(known.id.clone()) {
                            fresh.push((known, via.addr));
                        }
                    }
                }
                Err(e) => problems.push(format!("{} shared no peers: {e}", via.addr)),
            }
        }
        let answers = join_all(fresh.iter().map(|(known, via)| {
            first_answer(peer, candidates(known, *via), timeout, Discovery::Seeds)
        }))
        .await;
        for info in answers.into_iter().flatten() {
            queue.push(info.clone());
            found.push(info);
        }
    }
    let exchanged = found.len() - answered;
    let mut detail = format!(
        "{} seed(s) ({}), {answered} answered: {}; exchange found {exchanged} more",
        config.seeds.len(),
        config.seeds.join(", "),
        tally.describe()
    );
    if !problems.is_empty() {
        detail.push_str(&format!(" [{}]", problems.join("; ")));
    }
    let report = PathReport::ran(Discovery::Seeds, found.len(), detail);
    (found, report)
}

async fn ask(peer: &Peer, other: &PeerInfo, timeout: Duration) -> crate::Result<Vec<KnownPeer>> {
    known_peers().on(other).via(peer).timeout(timeout).await
}

/// `host:port` to an address; a bare host gets the default port. A confined peer resolves
/// no names but `localhost`: a DNS lookup would leave the machine.
async fn resolve(seed: &str, confined: bool) -> Result<SocketAddr, String> {
    if let Ok(addr) = seed.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let with_port = if seed.contains(':') {
        seed.to_owned()
    } else {
        format!("{seed}:{}", crate::config::DEFAULT_PORT)
    };
    if confined {
        let port = with_port
            .strip_prefix("localhost:")
            .and_then(|p| p.parse::<u16>().ok());
        return port
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .ok_or_else(|| {
                "skipped: NET_LOOPBACK allows only loopback seeds (127.0.0.1:port or \
                 localhost:port)"
                    .to_owned()
            });
    }
    let mut found = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| format!("not a reachable host:port ({e})"))?;
    found
        .next()
        .ok_or_else(|| "the name resolves to no address".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_peers_loopback_address_becomes_its_own() {
        let id = PeerId::new("10.0.0.7".parse().unwrap(), 3011, None);
        let known = KnownPeer {
            id,
            addr: "127.0.0.1:3011".parse().unwrap(),
        };
        let via: SocketAddr = "10.0.0.5:3010".parse().unwrap();
        let c = candidates(&known, via);
        assert_eq!(c[0], "10.0.0.5:3011".parse().unwrap());
        assert_eq!(c[1], "10.0.0.7:3011".parse().unwrap());
        let local: SocketAddr = "127.0.0.1:3010".parse().unwrap();
        assert_eq!(candidates(&known, local)[0], known.addr);
    }
}
