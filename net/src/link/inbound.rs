//! The other side's calls running here: registered when they start, so that a cancel
//! frame, the end of the link or a spent budget stops them, and so that a draining peer
//! knows when the last one has ended. The sweep enforces the budgets of synchronous calls.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::Link;
use crate::sync::lock;

/// A call from the other side running here.
pub(super) struct Serving {
    /// Seen by the handler through `Caller::is_cancelled`, so a synchronous handler can
    /// stop early; async handlers are also aborted.
    cancel: CancellationToken,
    /// Aborts the task running the handler.
    abort: Option<AbortHandle>,
    /// When a synchronous call's budget runs out: the sweep then cancels it.
    deadline: Option<Instant>,
    /// The bytes of its frame, counted in the link's `inflight_bytes` while it runs.
    bytes: usize,
}

impl Serving {
    fn stop(self) {
        self.cancel.cancel();
        if let Some(abort) = self.abort {
            abort.abort();
        }
    }
}

/// A call arrived under a request id that is already in flight on this link: its reply
/// would be ambiguous and its cancel would hit the wrong call.
pub(crate) struct Duplicate;

impl Link {
    /// Registers call `id` from the other side, whose frame is `bytes` long, and returns
    /// the token that cancels it. A `deadline` (synchronous calls with a budget) is
    /// enforced by the sweep; async calls are bounded by their task's timer instead.
    pub(crate) fn begin(
        self: &Arc<Self>,
        id: u64,
        deadline: Option<Duration>,
        bytes: usize,
    ) -> Result<CancellationToken, Duplicate> {
        let mut serving = lock(&self.serving);
        if serving.contains_key(&id) {
            return Err(Duplicate);
        }
        // A token of its own avoids contending for the link token's lock on every call.
        let cancel = CancellationToken::new();
        let deadline = deadline.map(|budget| Instant::now() + budget);
        serving.insert(
            id,
            Serving {
                cancel: cancel.clone(),
                abort: None,
                deadline,
                bytes,
            },
        );
        self.counted(serving.len(), bytes as isize);
        if deadline.is_some() && !self.sweeping.swap(true, Ordering::AcqRel) {
            self.tracker.spawn(sweep(Arc::downgrade(self)));
        }
        drop(serving);
        // `shut` may have drained `serving` just before the insert.
        if self.closed.is_cancelled() {
            cancel.cancel();
        }
        Ok(cancel)
    }

    /// Whether call `id` of the other side is running here.
    pub(crate) fn is_serving(&self, id: u64) -> bool {
        lock(&self.serving).contains_key(&id)
    }

    /// A token for a one-way call: not registered (nobody can cancel it), stopped only by
    /// the end of the link.
    pub(crate) fn oneway_token(&self) -> CancellationToken {
        self.closed.child_token()
    }

    /// Remembers how to abort the task running call `id`, if it still runs.
    pub(crate) fn set_abort(&self, id: u64, abort: AbortHandle) {
        if let Some(serving) = lock(&self.serving).get_mut(&id) {
            serving.abort = Some(abort);
        }
    }

    /// Call `id` has ended; true if it was still wanted (no cancel, budget or end of the
    /// link came first), so its reply should be sent.
    pub(crate) fn finish(&self, id: u64) -> bool {
        let mut serving = lock(&self.serving);
        let Some(ended) = serving.remove(&id) else {
            return false;
        };
        self.counted(serving.len(), -(ended.bytes as isize));
        if serving.is_empty() {
            self.drained.notify_waiters();
        }
        drop(serving);
        self.relieve();
        true
    }

    /// Keeps the counts the reader and the guard read without the lock (called under
    /// it): `calls` running, and `bytes` more (or fewer) of their frames.
    fn counted(&self, calls: usize, bytes: isize) {
        self.watched.serving.store(calls, Ordering::SeqCst);
        if bytes > 0 {
            self.watched
                .inflight_bytes
                .fetch_add(bytes as usize, Ordering::SeqCst);
        } else if bytes < 0 {
            self.watched
                .inflight_bytes
                .fetch_sub(bytes.unsigned_abs(), Ordering::SeqCst);
        }
    }

    /// The other side cancelled call `id`.
    pub(super) fn cancel_inbound(&self, id: u64) {
        let stopped = {
            let mut serving = lock(&self.serving);
            let stopped = serving.remove(&id);
            if let Some(stopped) = &stopped {
                self.counted(serving.len(), -(stopped.bytes as isize));
            }
            if serving.is_empty() {
                self.drained.notify_waiters();
            }
            stopped
        };
        if let Some(serving) = stopped {
            serving.stop();
            self.relieve();
        }
    }

    /// The link ended: every call of the other side stops.
    pub(super) fn cancel_all_inbound(&self) {
        let stopped: Vec<Serving> = {
            let mut serving = lock(&self.serving);
            let stopped: Vec<Serving> = serving.drain().map(|(_, s)| s).collect();
            let bytes: usize = stopped.iter().map(|s| s.bytes).sum();
            self.counted(0, -(bytes as isize));
            stopped
        };
        self.drained.notify_waiters();
        for serving in stopped {
            serving.stop();
        }
    }

    /// Completes when no call of the other side runs here.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.serving).is_empty() {
                return;
            }
            notified.await;
        }
    }
}

/// How often the sweep looks for synchronous calls past their budget. The caller cancels
/// at its own timeout anyway; the sweep stops the work of callers that do not (clients
/// written from docs/PROTOCOL.md may not), without a timer per call.
const SWEEP: Duration = Duration::from_millis(10);

/// While synchronous calls with a budget run, cancels those past it (their handlers see
/// `Caller::is_cancelled`, and no reply is sent), as the callee promises in
/// docs/PROTOCOL.md. Ends when none is left; the next one starts it again.
async fn sweep(link: Weak<Link>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Some(link) = link.upgrade() else { return };
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut left = false;
        {
            let mut serving = lock(&link.serving);
            let mut freed = 0;
            serving.retain(|_, call| match call.deadline {
                Some(deadline) if deadline <= now => {
                    expired.push(call.cancel.clone());
                    freed += call.bytes;
                    false
                }
                Some(_) => {
                    left = true;
                    true
                }
                None => true,
            });
            link.counted(serving.len(), -(freed as isize));
            if serving.is_empty() {
                link.drained.notify_waiters();
            }
            if !left || !link.is_open() {
                // Under the lock, so a call inserted next sees it and starts a new sweep.
                link.sweeping.store(false, Ordering::Release);
            }
        }
        if !expired.is_empty() {
            link.relieve();
        }
        for cancel in expired {
            cancel.cancel();
        }
        if !left || !link.is_open() {
            return;
        }
    }
}
