//! A peer's links: the pool of outgoing ones by address (concurrent first calls share one
//! connect), every link in either direction for shutdown and counting, and the adoption of
//! incoming links from serving peers so that calls back reuse them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio::time::Instant;

use tokio::sync::OnceCell;

use super::{News, Peer};
use crate::error::{Error, Result};
use crate::link::Link;
use crate::sync::lock;

/// One address's slot in the pool; the cell makes concurrent first calls share a connect.
type Slot = Arc<OnceCell<Arc<Link>>>;

/// The links of one peer.
#[derive(Default)]
pub(super) struct Links {
    /// Links to other peers by their serving address.
    pool: Mutex<HashMap<SocketAddr, Slot>>,
    /// Every link, both directions, for shutdown and the `connections` count.
    all: Mutex<Vec<Weak<Link>>>,
    /// What pairs the two links of two peers that call each other into one.
    pub(super) pairing: super::pairing::Pairing,
}

impl Links {
    pub(super) fn count(&self) -> usize {
        let mut all = lock(&self.all);
        all.retain(|l| l.upgrade().is_some_and(|l| l.is_open()));
        all.len()
    }

    pub(super) fn all(&self) -> Vec<Arc<Link>> {
        lock(&self.all).iter().filter_map(Weak::upgrade).collect()
    }

    pub(super) fn clear(&self) {
        lock(&self.pool).clear();
    }
}

impl Peer {
    /// Remembers a link (either direction) for shutdown and counting, and tells the
    /// services of a serving peer that called in.
    ///
    /// An incoming link does not join the pool on its word: the id its hello claims is
    /// only a claim (a process on the same host could claim a neighbour's port, and with
    /// NET_SECRET a recorded first message could be replayed by an outsider, who would
    /// never answer), so calls to that peer go over a link this peer opened to the address
    /// itself, until the peer there confirms it opened this one too (`pairing.rs`). The
    /// caller's own link still serves callbacks (`.on(&caller)`), and discovery, told of
    /// the claim, checks it by probing that address.
    pub(crate) fn adopt(&self, link: &Arc<Link>, incoming: bool) {
        {
            let mut all = lock(&self.inner.links.all);
            all.retain(|l| l.upgrade().is_some_and(|l| l.is_open()));
            all.push(Arc::downgrade(link));
        }
        if !incoming {
            return;
        }
        // Only an id whose host is where the link comes from is worth probing.
        let claimed = link
            .remote()
            .id
            .as_ref()
            .filter(|id| id.host() == link.remote_addr().ip());
        if let Some(id) = claimed {
            self.arrived(link, id.addr());
            // A peer that contacted us is a peer we know (on loopback, where there is no
            // mDNS, this is how existing peers hear of a newcomer).
            self.publish(&News::Incoming { id, link });
        }
    }

    /// The open link to `addr`, connecting if there is none, by `deadline`. Concurrent
    /// callers share one connect attempt (within the first one's deadline).
    pub(crate) async fn link_to(&self, addr: SocketAddr, deadline: Instant) -> Result<Arc<Link>> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Shutdown);
        }
        if self.inner.config.loopback && !addr.ip().is_loopback() {
            return Err(Error::InvalidTarget {
                target: addr.to_string(),
                reason: "this peer is confined to loopback (NET_LOOPBACK); it calls nothing \
                         beyond this machine"
                    .into(),
            });
        }
        for _ in 0..2 {
            let cell = lock(&self.inner.links.pool)
                .entry(addr)
                .or_default()
                .clone();
            let result = cell.get_or_try_init(|| self.open(addr, deadline)).await;
            match result {
                Ok(link) if link.is_open() => return Ok(link.clone()),
                // A dead link: forget it and connect afresh.
                Ok(_) => self.forget(addr, &cell),
                Err(e) => {
                    self.forget(addr, &cell);
                    if let Error::Unreachable { reason, .. } = &e {
                        // A peer whose calls fail disappears from discovery.
                        let reason = format!("a call found it unreachable: {reason}");
                        self.publish(&News::Unreachable {
                            addr,
                            reason: &reason,
                        });
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::unreachable_because(
            addr,
            "the connection closed as soon as it opened",
        ))
    }

    /// The open pooled link to `addr`, if there is one (discovery probes reuse it).
    pub(crate) fn pooled(&self, addr: SocketAddr) -> Option<Arc<Link>> {
        self.pooled_even_closed(addr).filter(|l| l.is_open())
    }

    /// The pooled link to `addr`, open or not (a goodbye arrives as it closes).
    pub(super) fn pooled_even_closed(&self, addr: SocketAddr) -> Option<Arc<Link>> {
        let cell = lock(&self.inner.links.pool).get(&addr).cloned()?;
        cell.get().cloned()
    }

    /// Offers a link opened elsewhere (a discovery probe) to the pool, so later calls
    /// reuse it; false when `addr` already has one.
    pub(crate) fn offer(&self, addr: SocketAddr, link: &Arc<Link>) -> bool {
        let mut pool = lock(&self.inner.links.pool);
        if let Some(cell) = pool.get(&addr) {
            let open = cell.get().is_some_and(|l| l.is_open());
            // A connect in progress holds a clone of the cell: let it win.
            let connecting = cell.get().is_none() && Arc::strong_count(cell) > 1;
            if open || connecting {
                return false;
            }
        }
        pool.insert(addr, Arc::new(OnceCell::new_with(Some(link.clone()))));
        true
    }

    /// Makes `link` the pooled link to `addr`, whatever was there (a check confirmed it
    /// is the peer's, `pairing.rs`); returns the link it replaces.
    pub(super) fn pool_instead(&self, addr: SocketAddr, link: &Arc<Link>) -> Option<Arc<Link>> {
        let slot = Arc::new(OnceCell::new_with(Some(link.clone())));
        let before = lock(&self.inner.links.pool).insert(addr, slot)?;
        before.get().cloned()
    }

    fn forget(&self, addr: SocketAddr, cell: &Slot) {
        let mut pool = lock(&self.inner.links.pool);
        if pool.get(&addr).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            pool.remove(&addr);
        }
    }
}
