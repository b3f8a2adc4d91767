//! One probe (connect through the local peer, call `info`, with a short timeout) and many
//! probes with at most `NET_THREAD_LIMIT` in flight, tallied for the report.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::net::TcpStream;

use super::table::PeerInfo;
use super::Discovery;
use crate::error::Error;
use crate::peer::Peer;
use crate::wire::Info;

/// What probing one address showed.
#[derive(Debug)]
pub(crate) enum Probe {
    /// A net peer answered (boxed: the other outcomes are small and far more common).
    Found(Box<PeerInfo>),
    /// The address is this very peer.
    Myself,
    /// Nothing listens there (refused at once).
    Closed,
    /// No answer within the timeout: a silent host, a firewall, or a busy peer.
    Silent,
    /// Something listens but does not speak net: ignored.
    Foreign,
    /// A net peer with another protocol version: ignored, and said loudly.
    Incompatible(String),
    /// A net peer on the other side of the shared secret (it requires one and this peer
    /// has none, or the other way round, or they differ): ignored, with what it said. It
    /// learns nothing more of us than we of it.
    Secured(String),
    /// Not probed: loopback confinement forbids the address.
    Confined,
    /// Any other failure (no route, network down), with the reason.
    Failed(String),
}

/// Probes `addr` from `peer`: a connection (the pooled one if open, else a new one that
/// then joins the pool for later calls) and an `info` call, all within `timeout`. Giving
/// up drops the socket at once, so a silent or foreign service never holds more than
/// `NET_THREAD_LIMIT` connections. Waits for one of the peer's probe permits first.
pub(crate) async fn probe(
    peer: &Peer,
    addr: SocketAddr,
    timeout: Duration,
    found_by: Discovery,
) -> Probe {
    if peer.config().loopback && !addr.ip().is_loopback() {
        return Probe::Confined;
    }
    if addr == peer.addr() {
        return Probe::Myself;
    }
    let state = peer.discovery();
    // The semaphore is never closed while the peer exists.
    let Ok(_permit) = state.probes.acquire().await else {
        return Probe::Failed("the peer is shutting down".into());
    };
    let started = Instant::now();
    // A known Python app-net peer is asked in its own format at once: the framed hello
    // only makes it log a traceback.
    let known_app_net = state
        .table
        .snapshot()
        .iter()
        .any(|p| p.addr == addr && p.app_net);
    if known_app_net {
        return app_net(addr, timeout, started, found_by)
            .await
            .unwrap_or(Probe::Closed);
    }
    let result = tokio::time::timeout(timeout, ask_info(peer, addr, timeout)).await;
    let rtt = started.elapsed();
    match result {
        Err(_) => Probe::Silent,
        Ok(Ok(info)) if &info.id == peer.id() => Probe::Myself,
        Ok(Ok(info)) => Probe::Found(Box::new(PeerInfo::new(addr, info, rtt, found_by))),
        Ok(Err(e)) => match classify(e) {
            // Something answered, but not in our frames: perhaps a Python app-net peer,
            // which answers app-net's own `info` request.
            Probe::Foreign => app_net(addr, timeout, Instant::now(), found_by)
                .await
                .unwrap_or(Probe::Foreign),
            other => other,
        },
    }
}

/// Asks `addr` app-net's `info` in app-net's format: `Found` (marked app-net) when a
/// Python app-net peer answers.
async fn app_net(
    addr: SocketAddr,
    timeout: Duration,
    started: Instant,
    found_by: Discovery,
) -> Option<Probe> {
    let info = crate::appnet::probe_info(addr, timeout).await?;
    let mut found = PeerInfo::new(addr, info, started.elapsed(), found_by);
    found.app_net = true;
    Some(Probe::Found(Box::new(found)))
}

/// Connects (unless a pooled connection is open) and hands the connection to the pool, so
/// that the `info` call below, an ordinary call, uses it and later calls reuse it. The
/// connect and handshake run here, inside the caller's timeout, rather than in the pool's
/// own connect task, which outlives a dropped caller.
///
/// When a call to the same address opened a link meanwhile, the probe's link is a spare:
/// it is retired, parting as soon as nothing is in flight on it (the other side may have
/// paired it and be calling over it; such a call goes again over the other link).
async fn ask_info(peer: &Peer, addr: SocketAddr, timeout: Duration) -> Result<Info, Error> {
    if peer.pooled(addr).is_none() {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| Error::unreachable(addr, e))?;
        let deadline = tokio::time::Instant::now() + timeout;
        let link = peer.link_over_tcp(stream, deadline).await?;
        peer.adopt(&link, false);
        if !peer.offer(addr, &link) {
            link.retire();
        }
    }
    crate::call::call_tag::<Info>(crate::wire::INFO_TAG, serde_json::Value::Array(Vec::new()))
        .on(addr)
        .via(peer)
        .timeout(timeout)
        .await
}

fn classify(error: Error) -> Probe {
    match error {
        ref e @ Error::Unreachable { ref reason, .. } => match e.io_kind() {
            Some(std::io::ErrorKind::ConnectionRefused) => Probe::Closed,
            Some(std::io::ErrorKind::TimedOut) => Probe::Silent,
            _ => Probe::Failed(reason.clone()),
        },
        Error::Timeout { .. } => Probe::Silent,
        e @ Error::Incompatible { .. } => Probe::Incompatible(e.to_string()),
        Error::Secure { kind, peer, .. } if kind != crate::error::SecureFailure::Handshake => {
            Probe::Secured(match kind {
                crate::error::SecureFailure::SecretRequired => {
                    format!("{peer} is a net peer that requires a shared secret")
                }
                crate::error::SecureFailure::NoSecret => {
                    format!("{peer} is a net peer without a shared secret")
                }
                crate::error::SecureFailure::SecretsDiffer => {
                    format!("{peer} is a net peer with another shared secret")
                }
                _ => format!("{peer} offers another secure handshake"),
            })
        }
        Error::Secure { .. } => Probe::Foreign,
        Error::Protocol { .. }
        | Error::ConnectionClosed { .. }
        | Error::Decode { .. }
        | Error::Remote { .. }
        | Error::UnknownTag { .. }
        | Error::BadArguments { .. }
        | Error::Flag { .. }
        | Error::FrameTooLarge { .. } => Probe::Foreign,
        Error::Shutdown => Probe::Failed("the local peer shut down".into()),
        other => Probe::Failed(other.to_string()),
    }
}

/// How a batch of probes went, for the report.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Addresses probed (this peer's own address not counted).
    pub probed: usize,
    /// Refused: nothing listening.
    pub closed: usize,
    /// No answer in time.
    pub silent: usize,
    /// Something else listening: ignored.
    pub foreign: usize,
    /// Skipped because of loopback confinement.
    pub confined: usize,
    /// Peers of another protocol version, with the message.
    pub incompatible: Vec<String>,
    /// Peers on the other side of the shared secret, with what each is.
    pub secured: Vec<String>,
    /// Other failures, with their reasons.
    pub failed: Vec<String>,
    /// Peers that answered (an id may answer on several addresses).
    pub found: usize,
}

impl Tally {
    fn count(&mut self, probe: &Probe) {
        if !matches!(probe, Probe::Myself | Probe::Confined) {
            self.probed += 1;
        }
        match probe {
            Probe::Found(_) => self.found += 1,
            Probe::Myself => {}
            Probe::Closed => self.closed += 1,
            Probe::Silent => self.silent += 1,
            Probe::Foreign => self.foreign += 1,
            Probe::Confined => self.confined += 1,
            Probe::Incompatible(m) => self.incompatible.push(m.clone()),
            Probe::Secured(m) => self.secured.push(m.clone()),
            Probe::Failed(m) => self.failed.push(m.clone()),
        }
    }

    /// One line: "12 probed: 9 closed, 1 not a net peer, 2 answered".
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.found > 0 {
            parts.push(format!("{} answered", self.found));
        }
        if self.closed > 0 {
            parts.push(format!("{} closed (nothing listening)", self.closed));
        }
        if self.silent > 0 {
            parts.push(format!("{} silent (no answer in time)", self.silent));
        }
        if self.foreign > 0 {
            parts.push(format!("{} not a net peer (ignored)", self.foreign));
        }
        if !self.incompatible.is_empty() {
            parts.push(format!(
                "{} incompatible: {}",
                self.incompatible.len(),
                self.incompatible[0]
            ));
        }
        if !self.secured.is_empty() {
            parts.push(format!(
                "{} behind another secret (NET_SECRET): {}",
                self.secured.len(),
                self.secured[0]
            ));
        }
        if !self.failed.is_empty() {
            parts.push(format!("{} failed: {}", self.failed.len(), self.failed[0]));
        }
        if self.confined > 0 {
            parts.push(format!(
                "{} skipped (NET_LOOPBACK allows only loopback addresses)",
                self.confined
            ));
        }
        format!("{} probed: {}", self.probed, parts.join(", "))
    }
}

/// Probes every address (at most `NET_THREAD_LIMIT` at once, through the peer's permits)
/// and returns the peers that answered, one per id: the address kept is the one the table
/// already has for it if that answered, else the first that answered in `addrs` order.
pub(crate) async fn probe_all(
    peer: &Peer,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    found_by: Discovery,
) -> (Vec<PeerInfo>, Tally) {
    let probes = join_all(
        addrs
            .iter()
            .map(|addr| probe(peer, *addr, timeout, found_by)),
    )
    .await;
    let mut tally = Tally::default();
    let mut by_id: BTreeMap<crate::id::PeerId, Vec<PeerInfo>> = BTreeMap::new();
    for probe in probes {
        tally.count(&probe);
        if let Probe::Found(info) = probe {
            by_id.entry(info.id.clone()).or_default().push(*info);
        }
    }
    let table = &peer.discovery().table;
    let found = by_id
        .into_values()
        .filter_map(|answers| {
            let known = table.get(&answers[0].id).map(|p| p.addr);
            let keep = answers
                .iter()
                .position(|a| Some(a.addr) == known)
                .unwrap_or(0);
            answers.into_iter().nth(keep)
        })
        .collect();
    (found, tally)
}
