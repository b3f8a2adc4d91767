//! One link per pair of peers. Two peers that call each other would otherwise hold two
//! links, one dialled by each: a link that called in is not used for calls out, since
//! the id its hello claims is only a claim (`pool.rs`). That doubles the sockets of a
//! mesh: a table of 100 members in one process needed 20,000.
//!
//! So a peer checks the claim with the claimed peer itself, at the address it serves:
//! the side that opens a link puts a random ticket in its hello and remembers it; the
//! other side, holding a link it opened to the claimed address, asks over that link
//! `net.link.dialled(ticket)`, and only the process that opened the link with that ticket
//! says yes. An impostor on the same host cannot know the ticket (it travels only inside
//! the link it names); with NET_SECRET it travels encrypted, and a replay of a recorded
//! first message repeats a ticket that is already in use, which this side refuses to
//! adopt.
//!
//! Of the two links, the one dialled by the peer with the lower id stays (both sides
//! agree without talking): the higher peer checks the lower one's link, puts it in its
//! pool, and retires its own, which parts like an idle link once nothing is in flight
//! on it (a call that meets the parting goes again on the pooled link). The lower peer
//! changes nothing. A check happens when a link from a lower peer arrives while this
//! peer holds one to it, and when this peer opens a link to a lower peer from which one
//! has arrived, so whichever comes second finds the first.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::Peer;
use crate::link::Link;
use crate::serve::Caller;
use crate::sync::lock;
use crate::wire::{Payload, WireOutcome};

/// The built-in the check asks (docs/PROTOCOL.md section 9).
pub(crate) const DIALLED_TAG: &str = "net.link.dialled";

/// How long the other peer may take to answer a check; a peer that does not answer
/// keeps its two links.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a peer knows for pairing its links.
#[derive(Default)]
pub(super) struct Pairing {
    /// The links this peer opened, by the ticket their hello carried; `None` while the
    /// handshake runs (the other side may ask before this side has finished it).
    dialled: Mutex<HashMap<String, watch::Sender<Option<Weak<Link>>>>>,
    /// Links that came in from lower peers with a ticket, by the address their hello's
    /// id claims, waiting for a check.
    arrived: Mutex<HashMap<SocketAddr, Vec<Arrived>>>,
    /// Addresses a check is running for.
    checking: Mutex<HashSet<SocketAddr>>,
    /// Links arrived so far, so that a check sees whether one came while it ran.
    arrivals: AtomicU64,
}

/// A link that came in, with the ticket its hello carried.
type Arrived = (String, Weak<Link>);

/// A fresh ticket: 128 random bits in hex; none if the system has no randomness to give
/// (a guessable ticket would let an impostor pass the check).
pub(super) fn new_ticket() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Peer {
    /// Whether this peer serves (has an id others call it by); a client peer's links are
    /// never paired, since nobody calls it at an address.
    pub(super) fn serves_others(&self) -> bool {
        !self.inner.config.client
    }

    /// A handshake with `ticket` in this peer's hello begins; the ticket is forgotten
    /// when what this returns drops, unless the link started.
    pub(super) fn dialling(&self, ticket: String) -> Dialling {
        let mut dialled = lock(&self.inner.links.pairing.dialled);
        dialled.retain(|_, l| l.borrow().as_ref().is_none_or(|l| l.strong_count() > 0));
        dialled.insert(ticket.clone(), watch::Sender::new(None));
        Dialling {
            peer: self.clone(),
            ticket,
            started: false,
        }
    }

    /// The links this peer opened and that are still alive.
    fn own_links(&self) -> Vec<Arc<Link>> {
        lock(&self.inner.links.pairing.dialled)
            .values()
            .filter_map(|l| l.borrow().as_ref()?.upgrade())
            .collect()
    }

    /// Remembers the link this peer opened with `ticket`, and checks a link that arrived
    /// from the same peer, if one did.
    fn dialled(&self, ticket: &str, link: &Arc<Link>) {
        if let Some(slot) = lock(&self.inner.links.pairing.dialled).get(ticket) {
            slot.send_replace(Some(Arc::downgrade(link)));
        }
        let addr = link.remote_addr();
        let waiting = lock(&self.inner.links.pairing.arrived).contains_key(&addr);
        if waiting {
            self.check(addr, link.clone());
        }
    }

    /// A link came in: if its hello claims a lower id at the address it came from and
    /// carries a ticket, it waits for a check, which runs now if this peer holds a link
    /// to that peer.
    pub(super) fn arrived(&self, link: &Arc<Link>, claimed: SocketAddr) {
        let Some(ticket) = link.remote().ticket.clone() else {
            return;
        };
        let lower = link.remote().id.as_ref().is_some_and(|id| id < self.id());
        if !lower || !self.serves_others() {
            return;
        }
        self.inner
            .links
            .pairing
            .arrivals
            .fetch_add(1, Ordering::SeqCst);
        {
            let mut arrived = lock(&self.inner.links.pairing.arrived);
            // At most one entry per open link (NET_MAX_CONNECTIONS of them).
            arrived.retain(|_, waiting| {
                waiting.retain(|(_, l)| l.upgrade().is_some_and(|l| l.is_open()));
                !waiting.is_empty()
            });
            arrived
                .entry(claimed)
                .or_default()
                .push((ticket, Arc::downgrade(link)));
        }
        // Our own links, not the pool: a link this peer has just opened is remembered
        // before the pool holds it, and `dialled` looks at the arrivals after that, so
        // one of the two sees the other.
        if let Some(own) = self.own_link_to(claimed) {
            self.check(claimed, own);
        }
    }

    /// An open link this peer opened to `addr`, the pooled one if it is ours.
    fn own_link_to(&self, addr: SocketAddr) -> Option<Arc<Link>> {
        let pooled = self.pooled(addr).filter(|l| self.is_own(l));
        pooled.or_else(|| {
            self.own_links()
                .into_iter()
                .find(|l| l.is_open() && l.remote_addr() == addr)
        })
    }

    /// Whether `link` is known to lead to the peer serving at `addr`: this peer opened it
    /// there, or it is the pooled link, which a check confirmed.
    pub(super) fn vouches_for(&self, link: &Link, addr: SocketAddr) -> bool {
        let same = |l: &Arc<Link>| std::ptr::eq(Arc::as_ptr(l), link);
        self.pooled_even_closed(addr).is_some_and(|l| same(&l)) || self.own_links().iter().any(same)
    }

    /// Whether this peer opened `link`.
    fn is_own(&self, link: &Arc<Link>) -> bool {
        self.own_links().iter().any(|l| Arc::ptr_eq(l, link))
    }

    /// Asks the peer at `addr`, over `own` (a link this peer opened there), whether it
    /// opened the link that arrived from it; if so, that link takes `own`'s place in the
    /// pool and `own` is retired. In the background; one check per address at a time.
    fn check(&self, addr: SocketAddr, own: Arc<Link>) {
        if !lock(&self.inner.links.pairing.checking).insert(addr) {
            return;
        }
        let peer = self.clone();
        let arrivals = self.inner.links.pairing.arrivals.load(Ordering::SeqCst);
        let check = async move {
            let outcome = peer.check_now(addr, &own).await;
            lock(&peer.inner.links.pairing.checking).remove(&addr);
            if let Err(why) = outcome {
                tracing::debug!(%addr, why, "kept two links to a peer");
            }
            // A link that arrived while this check ran was not looked at.
            let more = peer.inner.links.pairing.arrivals.load(Ordering::SeqCst) != arrivals;
            if let Some(own) = more.then(|| peer.own_link_to(addr)).flatten() {
                peer.check(addr, own);
            }
        };
        self.tracker().spawn_on(check, self.runtime());
    }

    async fn check_now(&self, addr: SocketAddr, own: &Arc<Link>) -> Result<(), String> {
        if !self.is_own(own) {
            return Err("the link to ask over is the peer's own".into());
        }
        let pooled = self.pooled(addr);
        // The latest open link that arrived from `addr` (a peer may have opened more than
        // one: a discovery probe beside a call); the arrivals stay, so that a later link
        // of ours is checked against them too. Two carrying one ticket are a replay:
        // neither is taken, ever.
        let candidate = {
            let mut arrived = lock(&self.inner.links.pairing.arrived);
            let waiting = arrived.entry(addr).or_default();
            waiting.retain(|(_, l)| l.upgrade().is_some_and(|l| l.is_open()));
            let mut tickets: Vec<&str> = waiting.iter().map(|(t, _)| t.as_str()).collect();
            tickets.sort_unstable();
            if tickets.windows(2).any(|w| w[0] == w[1]) {
                waiting.clear();
                return Err("two links arrived with one ticket".into());
            }
            waiting
                .last()
                .and_then(|(t, l)| Some((t.clone(), l.upgrade()?)))
        };
        let Some((ticket, theirs)) = candidate else {
            return Err("the link that arrived has closed".into());
        };
        if pooled.as_ref().is_some_and(|p| Arc::ptr_eq(p, &theirs)) {
            // Already the one in use: ours is a spare.
            own.retire();
            return Ok(());
        }
        let args = Payload::encode(&[&ticket]).map_err(|e| e.to_string())?;
        let answer = own
            .call(DIALLED_TAG, &args, None, CHECK_TIMEOUT, false)
            .await
            .map_err(|e| format!("the check failed: {e}"))?;
        let yes = match answer {
            Some(WireOutcome::Ok(payload)) => payload.decode::<bool>().unwrap_or(false),
            // A peer of an earlier version has no such built-in.
            _ => false,
        };
        if !yes {
            // Asked once: an impostor's link is not asked about again.
            if let Some(waiting) = lock(&self.inner.links.pairing.arrived).get_mut(&addr) {
                waiting.retain(|(t, _)| *t != ticket);
            }
            return Err("the peer at the address did not open the link".into());
        }
        if !theirs.is_open() {
            return Err("the link that arrived closed during the check".into());
        }
        let before = self.pool_instead(addr, &theirs);
        own.retire();
        // The pooled link may have been another of ours (a discovery probe's, say).
        if let Some(before) = before.filter(|l| !Arc::ptr_eq(l, &theirs) && self.is_own(l)) {
            before.retire();
        }
        tracing::debug!(%addr, "one link to a peer: its own is used both ways");
        Ok(())
    }

    /// Whether this peer opened the link whose hello carried `ticket`, to the peer the
    /// asking link claims to be (the answer of `net.link.dialled`). The other side may ask
    /// as soon as its half of the handshake is done, before this side's is: a handshake
    /// under way is waited for (it ends within NET_HELLO_TIMEOUT).
    async fn opened(&self, ticket: &str, asker: Option<&crate::id::PeerId>) -> bool {
        let Some(asker) = asker else {
            return false;
        };
        let Some(mut slot) = lock(&self.inner.links.pairing.dialled)
            .get(ticket)
            .map(watch::Sender::subscribe)
        else {
            return false;
        };
        let wait = self.inner.config.limits.hello_timeout;
        let link = match tokio::time::timeout(wait, slot.wait_for(Option::is_some)).await {
            Ok(Ok(link)) => link.as_ref().and_then(Weak::upgrade),
            // Failed (its slot dropped) or still not done.
            _ => None,
        };
        link.is_some_and(|l| l.is_open() && l.remote().id.as_ref() == Some(asker))
    }
}

/// A handshake this peer began with a ticket.
pub(super) struct Dialling {
    peer: Peer,
    ticket: String,
    started: bool,
}

impl Dialling {
    /// The link started.
    pub(super) fn started(mut self, link: &Arc<Link>) {
        self.started = true;
        self.peer.dialled(&self.ticket, link);
    }
}

impl Drop for Dialling {
    fn drop(&mut self) {
        if !self.started {
            lock(&self.peer.inner.links.pairing.dialled).remove(&self.ticket);
        }
    }
}

/// Whether the answering peer opened the link whose hello carried `ticket` to the asking
/// peer: how a peer checks that a link claiming to come from this one does (`pairing.rs`).
#[crate::connect("net.link.dialled")]
pub(crate) async fn dialled(caller: Caller, ticket: String) -> bool {
    match caller.server() {
        Some(peer) => peer.opened(&ticket, caller.id()).await,
        None => false,
    }
}

/// The registry entry of `net.link.dialled`, for the composition root's list of built-ins.
pub(crate) fn dialled_builtin() -> &'static crate::serve::Entry {
    &__NET_ENTRY_dialled
}
