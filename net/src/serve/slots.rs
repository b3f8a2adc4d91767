//! The peer's connection slots (`NET_MAX_CONNECTIONS`), and what each accepted connection
//! is doing with its slot, so that when the peer is full the listener can take back the
//! slot of the connection idle the longest instead of leaving newcomers in the backlog:
//! a link with nothing in flight (it parts politely, as for idleness), a connection
//! still opening (no hello yet), or an app-net request still being read. A connection
//! whose calls run is never taken.
//!
//! The connection's task knows its slot through a task-local, so that what runs in it
//! (the handshake, the link's start, the app-net reader) can say what it is doing
//! without the slot passing through every signature.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio_util::sync::CancellationToken;

use crate::link::{Guard, Link};
use crate::sync::lock;

tokio::task_local! {
    /// The slot of the accepted connection this task serves.
    static SLOT: Arc<Slot>;
}

/// What a connection does with its slot.
enum Phase {
    /// Accepted; no hello or request yet.
    Opening,
    /// A link: idle when the link says so.
    Link(Weak<Link>),
    /// An app-net request being read (reclaimable) or run (not).
    Request { reading: bool },
}

/// One accepted connection's slot.
pub(crate) struct Slot {
    phase: Mutex<Phase>,
    /// The guard's clock (ms) at the connection's last sign of life, for phases other
    /// than a link (a link keeps its own).
    active_ms: AtomicU64,
    /// Cancelled to take the slot back from a connection that is not a link: its task
    /// drops it.
    pub(crate) evict: CancellationToken,
    /// Being taken back already: not a candidate again.
    taken: AtomicBool,
    /// Its clock.
    guard: Arc<Guard>,
}

/// Every slot in use.
pub(crate) struct Slots {
    all: Mutex<Vec<Weak<Slot>>>,
    /// Its clock.
    guard: Arc<Guard>,
}

impl Slots {
    pub(crate) fn new(guard: Arc<Guard>) -> Slots {
        Slots {
            all: Mutex::new(Vec::new()),
            guard,
        }
    }

    /// Most connections served at once.
    pub(crate) fn max(&self) -> usize {
        self.guard.limits.max_connections
    }

    /// A slot for a connection just accepted.
    pub(crate) fn open(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            phase: Mutex::new(Phase::Opening),
            active_ms: AtomicU64::new(self.guard.now_ms()),
            evict: CancellationToken::new(),
            taken: AtomicBool::new(false),
            guard: self.guard.clone(),
        });
        let mut all = lock(&self.all);
        if all.len() >= 2 * self.max() {
            all.retain(|s| s.strong_count() > 0);
        }
        all.push(Arc::downgrade(&slot));
        slot
    }

    /// Takes back the slot of the connection idle the longest; false if none is idle.
    /// The slot is free once that connection's task ends, soon after.
    pub(crate) fn reclaim_one(&self) -> bool {
        let victim = {
            let mut all = lock(&self.all);
            all.retain(|s| s.strong_count() > 0);
            all.iter()
                .filter_map(Weak::upgrade)
                .filter(|slot| !slot.taken.load(Ordering::Relaxed))
                .filter_map(|slot| Some((slot.idle_since()?, slot)))
                .min_by_key(|(since, _)| *since)
                .map(|(_, slot)| slot)
        };
        let Some(slot) = victim else {
            return false;
        };
        slot.taken.store(true, Ordering::Relaxed);
        let link = match &*lock(&slot.phase) {
            Phase::Link(link) => Some(link.upgrade()),
            _ => None,
        };
        match link {
            Some(Some(link)) => {
                tracing::debug!(peer = %link.label(), "full: closing the idlest connection");
                link.reclaim();
            }
            Some(None) => {}
            None => slot.evict.cancel(),
        }
        true
    }
}

impl Slot {
    /// Since when (the guard's clock, ms) the connection has been idle; `None` if it has
    /// work in flight.
    fn idle_since(&self) -> Option<u64> {
        match &*lock(&self.phase) {
            Phase::Opening | Phase::Request { reading: true } => {
                Some(self.active_ms.load(Ordering::Relaxed))
            }
            Phase::Request { reading: false } => None,
            Phase::Link(link) => link.upgrade()?.idle_since(),
        }
    }

    /// Runs `serving` (the connection's task) with this slot known to it.
    pub(crate) async fn scope<F: std::future::Future>(self: Arc<Self>, serving: F) -> F::Output {
        SLOT.scope(self, serving).await
    }
}

/// The connection this task serves became `link`.
pub(crate) fn became_link(link: &Arc<Link>) {
    let _ = SLOT.try_with(|slot| *lock(&slot.phase) = Phase::Link(Arc::downgrade(link)));
}

/// The app-net request this task serves is being read (`reading`: bytes just came) or
/// runs.
pub(crate) fn request(reading: bool) {
    let _ = SLOT.try_with(|slot| {
        *lock(&slot.phase) = Phase::Request { reading };
        slot.active_ms.store(slot.guard.now_ms(), Ordering::Relaxed);
    });
}
