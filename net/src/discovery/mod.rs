//! Discovery: finding the other peers, keeping them in a table, and telling who joined and
//! left.
//!
//! Every path feeds one table per local peer ([`table`]), which emits the membership
//! stream. `peers()` ([`query`]) runs a discovery round the first time (and when asked to
//! refresh) and otherwise returns the table, which the background refresh ([`refresh`],
//! whose module docs give the cadence) and mDNS keep current.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | per-peer state, start and goodbye, the discovery round, refresh |
//! | `query.rs` | the `peers()` builder (filters, async and blocking), `peer_group`, `membership` |
//! | `table.rs` | `PeerInfo`, the peer table, `Membership` events |
//! | `paths.rs` | the path names and `NET_DISCOVERY` |
//! | `refresh.rs` | the background refresh of the table, with its back-off |
//! | `probe.rs` | one probe (connect + `info`), bounded batches, their tally |
//! | `scan.rs` | the on-host scan of the port range |
//! | `arp.rs` | the neighbour table and the neighbour scan |
//! | `mdns/mod.rs` | mDNS: starting mdns-sd, advertising, goodbye, its report |
//! | `mdns/browse.rs` | what the browser and start-up queries hear, into the table |
//! | `mdns/query.rs` | start-up queries answered by unicast, and reading their TXT |
//! | `seeds.rs` | `NET_PEERS` and peer exchange (`known_peers`) |
//! | `addrs.rs` | this host's addresses: advertised, scanned, own |
//! | `report.rs` | what each path did, and why nothing was found |

mod arp;
mod mdns;
mod probe;
mod query;
mod refresh;
mod report;
mod scan;
mod seeds;
mod table;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::peer::{News, Peer, Service};
use crate::sync::lock;

pub(crate) use crate::config::Discovery;
pub use query::{membership, peer_group, peers, Peers};
pub use report::{PathReport, Report};
pub use seeds::{known_peers, KnownPeer};
pub use table::{Membership, PeerInfo};

pub(crate) use seeds::known_peers_builtin;
use seeds::learn;

use mdns::MdnsState;
use probe::Probe;
use table::Table;

/// A known peer at `addr` is gone (a call found it unreachable, or it said goodbye): it
/// leaves the table, and the membership stream says why.
fn gone(peer: &Peer, addr: std::net::SocketAddr, reason: &str) {
    let state = peer.discovery();
    let table = &state.table;
    let gone: Vec<_> = table
        .snapshot()
        .into_iter()
        .filter(|p| p.addr == addr || p.id.addr() == addr)
        .collect();
    for known in gone {
        table.remove(&known.id, reason);
    }
}

/// A goodbye over a link nobody vouches for (it called in, and was never checked) may
/// come from an impostor claiming a known peer's id: the peers known at that address
/// are verified as a refresh does, in the background, and dropped only if they no
/// longer answer as themselves.
fn gone_if_silent(peer: &Peer, addr: std::net::SocketAddr) {
    let others: BTreeSet<crate::id::PeerId> = peer
        .discovery()
        .table
        .snapshot()
        .into_iter()
        .filter(|p| p.id.addr() != addr)
        .map(|p| p.id.clone())
        .collect();
    let peer2 = peer.clone();
    let check = async move { verify(&peer2, &others).await };
    peer.tracker().spawn_on(check, peer.runtime());
}

/// A known peer that does not answer within this long during a refresh is dropped.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// One local peer's discovery state.
pub(crate) struct State {
    /// The known peers.
    pub(crate) table: Table,
    /// `NET_THREAD_LIMIT` permits: every probe of every path holds one.
    pub(crate) probes: Semaphore,
    /// Held while a round runs, so concurrent `peers()` share one; holds the last round's
    /// path reports (`None`: no round yet).
    round: tokio::sync::Mutex<Option<Vec<PathReport>>>,
    /// Whether mDNS runs, and its handle for the goodbye.
    mdns: Mutex<MdnsState>,
    /// Set once the background refresh runs (it starts with the first discovery).
    refreshing: AtomicBool,
    /// Set once an empty table has been explained to the user; cleared when a query
    /// finds peers, so that the next empty answer is explained again.
    explained: AtomicBool,
}

impl Service for State {
    fn new(peer: &Peer) -> State {
        State::for_config(peer.config())
    }
}

impl Peer {
    /// This peer's discovery state.
    pub(crate) fn discovery(&self) -> Arc<State> {
        self.service::<State>()
    }
}

impl State {
    fn for_config(config: &Config) -> State {
        State {
            table: Table::new(),
            probes: Semaphore::new(config.thread_limit.max(1)),
            round: tokio::sync::Mutex::new(None),
            mdns: Mutex::new(MdnsState::Off("not started yet".into())),
            refreshing: AtomicBool::new(false),
            explained: AtomicBool::new(false),
        }
    }

    /// Runs a first round unless one ran or is running (never waits on a running one: it
    /// may be the round that is asking, through peer exchange).
    pub(crate) async fn ensure_discovered(&self, peer: &Peer) {
        refresh::start(peer);
        if let Ok(mut last) = self.round.try_lock() {
            if last.is_none() {
                *last = Some(run_round(peer, false, false).await);
            }
        }
    }

    fn mdns(&self) -> Option<Arc<mdns::Mdns>> {
        match &*lock(&self.mdns) {
            MdnsState::Running(mdns) => Some(mdns.clone()),
            _ => None,
        }
    }
}

/// Starts what runs in the background for a new peer: mDNS advertising and browsing, and
/// listening to the news of the core (who called in, who left, who is unreachable).
pub(crate) fn start(peer: &Peer) {
    peer.listen(|peer, news| match news {
        News::Incoming { id, link } => learn(peer, id, link),
        News::Goodbye {
            addr,
            vouched: true,
        } => gone(peer, *addr, "it said goodbye"),
        News::Goodbye {
            addr,
            vouched: false,
        } => gone_if_silent(peer, *addr),
        News::Unreachable { addr, reason } => gone(peer, *addr, reason),
    });
    let state = mdns::start(peer);
    *lock(&peer.discovery().mdns) = state;
}

/// Says goodbye (mDNS) before the peer stops.
pub(crate) async fn stop(peer: &Peer) {
    if let Some(mdns) = peer.discovery().mdns() {
        mdns.stop().await;
    }
}

/// Runs a round if none ran yet or `refresh` is set, and returns the last round's path
/// reports. A `loud` round (one a user asked for) says so when it finds nobody; background
/// rounds (subscriptions, peer exchange) stay quiet.
pub(crate) async fn discover(peer: &Peer, refresh: bool, loud: bool) -> Vec<PathReport> {
    refresh::start(peer);
    let state = peer.discovery();
    let mut last = state.round.lock().await;
    if let (Some(reports), false) = (&*last, refresh) {
        return reports.clone();
    }
    let reports = run_round(peer, refresh, loud).await;
    *last = Some(reports.clone());
    reports
}

/// Every path at once; then the table gets what they found and, on refresh, loses the
/// known peers that no longer answer.
async fn run_round(peer: &Peer, refresh: bool, loud: bool) -> Vec<PathReport> {
    let state = peer.discovery();
    let mdns = state.mdns();
    let mdns_report = async {
        match &mdns {
            Some(mdns) => mdns.settle(peer).await,
            None => match &*lock(&state.mdns) {
                MdnsState::Off(why) => PathReport::idle(Discovery::Mdns, why.clone()),
                MdnsState::Failed(why) => {
                    PathReport::ran(Discovery::Mdns, 0, format!("failed to start: {why}"))
                }
                MdnsState::Running(_) => PathReport::idle(Discovery::Mdns, "running"),
            },
        }
    };
    let ((scan_found, scan), (arp_found, arp), (seed_found, seeds), mdns_report) = tokio::join!(
        scan::run(peer),
        arp::run(peer),
        seeds::run(peer),
        mdns_report
    );
    let mut confirmed = BTreeSet::new();
    for found in [scan_found, arp_found, seed_found].into_iter().flatten() {
        confirmed.insert(found.id.clone());
        state.table.upsert(found);
    }
    if refresh {
        verify(peer, &confirmed).await;
    }
    let reports = vec![scan, mdns_report, seeds, arp];
    if loud && refresh && state.table.snapshot().is_empty() {
        // An explicit refresh explains again; a first round leaves it to the query.
        warn_nothing_found(peer, &reports);
        state
            .explained
            .store(true, std::sync::atomic::Ordering::Release);
    }
    reports
}

/// A user's query found the table empty: explain it unless that was done since the table
/// last had peers. (The first round may have run quietly, for the subscriptions of a
/// program with `#[net::subscribe]` functions; the explanation is still owed.)
pub(crate) fn explain_if_empty(peer: &Peer, empty: bool, reports: &[PathReport]) {
    use std::sync::atomic::Ordering;
    let state = peer.discovery();
    if !empty {
        state.explained.store(false, Ordering::Release);
    } else if !state.explained.swap(true, Ordering::AcqRel) {
        warn_nothing_found(peer, reports);
    }
}

/// Probes the known peers this round did not see, and drops those that do not answer.
async fn verify(peer: &Peer, confirmed: &BTreeSet<crate::id::PeerId>) {
    let state = peer.discovery();
    let stale: Vec<std::sync::Arc<PeerInfo>> = state
        .table
        .snapshot()
        .into_iter()
        .filter(|p| !confirmed.contains(&p.id))
        .collect();
    let timeout = peer.config().probe_timeout.max(VERIFY_TIMEOUT);
    let probes = futures_util::future::join_all(
        stale
            .iter()
            .map(|p| probe::probe(peer, p.addr, timeout, p.found_by)),
    )
    .await;
    for (known, result) in stale.iter().zip(probes) {
        match result {
            Probe::Found(info) if info.id == known.id => state.table.upsert(*info),
            Probe::Found(other) => {
                state
                    .table
                    .remove(&known.id, "another peer now answers at its address");
                state.table.upsert(*other);
            }
            gone => {
                let reason = format!("it stopped answering ({gone:?})");
                state.table.remove(&known.id, &reason);
            }
        }
    }
}

/// An empty discovery is said loudly: through tracing, and on stderr when the program has
/// no tracing subscriber to show it.
fn warn_nothing_found(peer: &Peer, reports: &[PathReport]) {
    let report = Report {
        peers: Vec::new(),
        paths: reports.to_vec(),
        filtered_out: 0,
    };
    tracing::warn!(id = %peer.id(), "{report}");
    if !tracing::dispatcher::has_been_set() {
        eprintln!("net: peer {} discovery: {report}", peer.id().addr());
    }
}
