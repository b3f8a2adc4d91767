//! The peer table every discovery path feeds, and the membership stream (joined / updated /
//! left) it emits as entries come and go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::Discovery;
use crate::call::Target;
use crate::id::PeerId;
use crate::sync::lock;
use crate::wire::Info;

/// How many membership events a slow subscriber may fall behind before it misses some
/// (it then gets `RecvError::Lagged` and can re-read the table with `peers()`).
const EVENT_BUFFER: usize = 1024;

/// A peer found by discovery: where to call it, what it is, and how it was found. Use it
/// as a call target: `f(x).on(&peer).await`.
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// // Two peers scanning one port range find each other.
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// let config = || net::Config::default().loopback(true).port(port).port_range(3);
/// let a = net::Peer::start(config()).await?;
/// let b = net::Peer::start(config()).await?;
/// let found = b.peers().await?;
/// let peer: &net::PeerInfo = &found[0];
/// assert_eq!(peer.addr, a.addr());
/// assert_eq!(peer.found_by, net::Discovery::Scan);
/// assert!(!peer.app_net && peer.serves("info"));
/// println!("{} in group {:?}, {:.1} ms away, serving {:?}",
///     peer.id, peer.group, peer.rtt.as_secs_f64() * 1e3, peer.info.functions());
/// let info = net::info().on(peer).via(&b).await?;   // a call target
/// assert_eq!(info.id, peer.id);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's id (its advertised host, port and group).
    pub id: PeerId,
    /// The address this peer reached it at; calls go there.
    pub addr: SocketAddr,
    /// Its group.
    pub group: Option<String>,
    /// Whether it is a hub of its group.
    pub hub: bool,
    /// The path that found it first.
    pub found_by: Discovery,
    /// How long its last probe (connect if needed, and an `info` call) took, in
    /// milliseconds in JSON (`rtt_ms`).
    #[serde(rename = "rtt_ms", with = "millis")]
    pub rtt: Duration,
    /// It is a Python app-net peer: calls to it (`f(x).on(&peer)`) go in app-net's own
    /// format, and `info` holds what its app-net `info` said (its `version` is `app-net`).
    #[serde(default)]
    pub app_net: bool,
    /// What it said about itself.
    pub info: Info,
}

/// A duration as fractional milliseconds, as people read a round trip.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    }
}

impl PeerInfo {
    pub(crate) fn new(addr: SocketAddr, info: Info, rtt: Duration, found_by: Discovery) -> Self {
        PeerInfo {
            id: info.id.clone(),
            addr,
            group: info.group.clone(),
            hub: info.hub,
            found_by,
            rtt,
            app_net: false,
            info,
        }
    }

    /// Whether it serves `function`: a tag, or a function's path (`app::add`), which
    /// stands for its default tag.
    pub fn serves(&self, function: &str) -> bool {
        let function = function.trim();
        let default = function
            .contains("::")
            .then(|| crate::id::default_tag(function));
        self.info
            .connections
            .iter()
            .any(|tag| tag == function || Some(tag) == default.as_ref())
    }

    /// Equal apart from the measurement and the path: a change worth an `Updated` event.
    fn same_peer(&self, other: &PeerInfo) -> bool {
        self.addr == other.addr
            && self.group == other.group
            && self.hub == other.hub
            && self.info == other.info
    }
}

impl From<&PeerInfo> for Target {
    /// Where the peer serves; a Python app-net peer is called in app-net's format.
    fn from(peer: &PeerInfo) -> Target {
        if peer.app_net {
            Target::app_net(peer.addr)
        } else {
            Target::from(peer.addr)
        }
    }
}

impl From<PeerInfo> for Target {
    fn from(peer: PeerInfo) -> Target {
        Target::from(&peer)
    }
}

/// A change in the set of known peers, from [`membership`](crate::membership).
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// let config = || net::Config::default().loopback(true).port(port).port_range(3);
/// let watcher = net::Peer::start(config()).await?;
/// let mut changes = watcher.membership();
/// // A peer that starts later is reported by the background refresh, unasked.
/// let newcomer = net::Peer::start(config()).await?;
/// let event = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv())
///     .await
///     .expect("a join within the refresh's cadence")
///     .expect("the stream is open");
/// match event {
///     net::Membership::Joined(peer) => assert_eq!(peer.addr, newcomer.addr()),
///     net::Membership::Updated(peer) => println!("{} changed", peer.id),
///     net::Membership::Left { peer, reason } => println!("{} left: {reason}", peer.id),
///     _ => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Membership {
    /// A peer was found.
    Joined(PeerInfo),
    /// A known peer changed address, group, hub flag or functions.
    Updated(PeerInfo),
    /// A peer said goodbye or stopped answering.
    Left {
        /// What was last known of it.
        peer: PeerInfo,
        /// Why it is considered gone.
        reason: String,
    },
}

impl Membership {
    /// The peer the event is about.
    pub fn peer(&self) -> &PeerInfo {
        match self {
            Membership::Joined(peer) | Membership::Updated(peer) => peer,
            Membership::Left { peer, .. } => peer,
        }
    }
}

/// The known peers of one local peer, by id.
pub(crate) struct Table {
    /// The entries; a peer appears once whatever the paths that found it. Shared, so a
    /// snapshot copies pointers: a mesh of N peers answers `known_peers` and probes from
    /// all N, and copying every entry's function lists each time made discovery cost
    /// O(N^3) (80% of a 60-member table simulation's CPU).
    entries: Mutex<BTreeMap<PeerId, Arc<PeerInfo>>>,
    /// Where membership events go; receivers come from `subscribe`.
    events: broadcast::Sender<Membership>,
}

impl Table {
    pub(crate) fn new() -> Table {
        Table {
            entries: Mutex::new(BTreeMap::new()),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }

    /// Adds or refreshes an entry and tells subscribers when it is new or changed. A known
    /// peer keeps the path that found it first.
    pub(crate) fn upsert(&self, mut peer: PeerInfo) {
        let event = {
            let mut entries = lock(&self.entries);
            match entries.get_mut(&peer.id) {
                Some(known) => {
                    peer.found_by = known.found_by;
                    let changed = !known.same_peer(&peer);
                    *known = Arc::new(peer.clone());
                    changed.then_some(Membership::Updated(peer))
                }
                None => {
                    entries.insert(peer.id.clone(), Arc::new(peer.clone()));
                    Some(Membership::Joined(peer))
                }
            }
        };
        if let Some(event) = event {
            tracing::debug!(?event, "membership");
            // No receiver is fine: nobody listens yet.
            let _ = self.events.send(event);
        }
    }

    /// Forgets a peer and tells subscribers why.
    pub(crate) fn remove(&self, id: &PeerId, reason: &str) -> Option<PeerInfo> {
        let gone = lock(&self.entries).remove(id)?;
        tracing::debug!(id = %id, reason, "peer left");
        let gone = Arc::unwrap_or_clone(gone);
        let _ = self.events.send(Membership::Left {
            peer: gone.clone(),
            reason: reason.to_owned(),
        });
        Some(gone)
    }

    /// One entry.
    pub(crate) fn get(&self, id: &PeerId) -> Option<Arc<PeerInfo>> {
        lock(&self.entries).get(id).cloned()
    }

    /// Every entry, ordered by address.
    pub(crate) fn snapshot(&self) -> Vec<Arc<PeerInfo>> {
        let mut peers: Vec<Arc<PeerInfo>> = lock(&self.entries).values().cloned().collect();
        peers.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.id.cmp(&b.id)));
        peers
    }

    /// A new receiver of membership events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Membership> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(port: u16, hub: bool) -> PeerInfo {
        let id = PeerId::new("127.0.0.1".parse().unwrap(), port, None);
        let info = Info {
            id: id.clone(),
            host: "127.0.0.1".into(),
            port,
            user: String::new(),
            executable: String::new(),
            group: None,
            hub,
            connections: Vec::new(),
            subscriptions: Vec::new(),
            events: Vec::new(),
            flags: Vec::new(),
            version: crate::config::VERSION.into(),
            protocol: 1,
        };
        PeerInfo::new(id.addr(), info, Duration::from_millis(1), Discovery::Scan)
    }

    #[test]
    fn joined_updated_left_and_nothing_for_a_mere_re_probe() {
        let table = Table::new();
        let mut events = table.subscribe();
        table.upsert(info(4000, false));
        let mut again = info(4000, false);
        again.rtt = Duration::from_millis(9);
        again.found_by = Discovery::Mdns;
        table.upsert(again);
        table.upsert(info(4000, true));
        let gone = table.remove(&info(4000, true).id, "test");
        assert!(gone.is_some_and(|p| p.hub && p.found_by == Discovery::Scan));
        assert!(table.remove(&info(4000, true).id, "twice").is_none());

        assert!(matches!(events.try_recv(), Ok(Membership::Joined(p)) if !p.hub));
        assert!(matches!(events.try_recv(), Ok(Membership::Updated(p)) if p.hub));
        assert!(
            matches!(events.try_recv(), Ok(Membership::Left { reason, .. }) if reason == "test")
        );
        assert!(
            events.try_recv().is_err(),
            "the re-probe and the second remove are silent"
        );
    }
}
