//! A link's idle parting: when it counts as quiet (nothing in flight in either
//! direction), how the guard asks its reader to part and the reader sends the idle
//! goodbye, and what a parted link tells the calls it failed (they never ran and may go
//! again on a new link). docs/PROTOCOL.md sections 3 and 7.

use std::sync::atomic::Ordering;
use std::task::Waker;

use super::guard::{IDLE_GOODBYE, NOT_QUIET};
use super::Link;
use crate::sync::lock;

impl Link {
    /// Nothing in flight in either direction.
    pub(super) fn quiet(&self) -> bool {
        let w = &self.watched;
        w.serving.load(Ordering::SeqCst) == 0
            && w.stuck_inline.load(Ordering::SeqCst) == 0
            && w.detached.load(Ordering::SeqCst) == 0
            && lock(&self.pending).is_empty()
    }

    /// Asks the reader to part for idleness.
    pub(super) fn ask_to_part(&self) {
        self.watched.idle_close.store(true, Ordering::Release);
        self.watched.reader.wake();
    }

    /// Whether the guard asked the reader to part; the reader registers `waker` to hear
    /// the next ask.
    pub(super) fn asked_to_part(&self) -> bool {
        self.watched.idle_close.load(Ordering::Acquire)
    }

    /// The reader will wait: it hears the guard through `waker`.
    pub(super) fn reader_waits(&self, waker: &Waker) {
        if self.guard.is_some() {
            self.watched.reader.register(waker);
        }
    }

    /// Parts for idleness, from the reader, if the link is still quiet: the goodbye goes
    /// out after every reply already queued, and no frame queued after it is sent, so
    /// every call of either side that got no reply never ran. False (and the ask
    /// forgotten) if something came up meanwhile.
    pub(super) fn part(&self) -> bool {
        self.watched.idle_close.store(false, Ordering::Release);
        let parted = &self.watched.parted_idle;
        if !self.outbox.part_if(|| self.quiet(), IDLE_GOODBYE, parted) {
            return false;
        }
        let reason = if self.watched.retired.load(Ordering::Relaxed) {
            "closed as the second link to the same peer; calls go over the other".to_owned()
        } else {
            let idle = self.guard.as_ref().map(|g| g.limits.idle_timeout);
            format!("closed after {idle:?} idle (NET_IDLE_TIMEOUT); a new call reconnects")
        };
        self.shut(&reason, None);
        true
    }

    /// The other side parted for idleness.
    pub(super) fn parted_by_other_side(&self) {
        self.watched.parted_idle.store(true, Ordering::Release);
    }

    /// The link ended with an idle goodbye: the calls it failed never ran, and may be sent
    /// again on a new link.
    pub(crate) fn parted_idle(&self) -> bool {
        self.watched.parted_idle.load(Ordering::Acquire)
    }

    /// Since when (the guard's clock, ms) the link has been idle; `None` if it is not.
    pub(crate) fn idle_since(&self) -> Option<u64> {
        let since = self.watched.quiet_since.load(Ordering::Relaxed);
        (since != NOT_QUIET && self.is_open()).then_some(since)
    }

    /// Closes an idle link to make room for a new connection (politely, as for idleness).
    pub(crate) fn reclaim(&self) {
        self.ask_to_part();
    }

    /// Gives way to another link to the same peer: the guard parts this one, politely, as
    /// soon as nothing is in flight on it.
    pub(crate) fn retire(&self) {
        self.watched.retired.store(true, Ordering::Relaxed);
    }

    /// An inline run of this link turned long: until it ends the link is not quiet.
    pub(crate) fn stuck_inline(&self) {
        self.watched.stuck_inline.fetch_add(1, Ordering::SeqCst);
    }

    /// A run counted by [`Link::stuck_inline`] ended.
    pub(crate) fn unstuck_inline(&self) {
        self.watched.stuck_inline.fetch_sub(1, Ordering::SeqCst);
    }

    /// A one-way call of the other side starts running off the reader (on a thread or a
    /// task); `detached_done` when it ends. Until then the link is not quiet.
    pub(crate) fn detached(&self) {
        self.watched.detached.fetch_add(1, Ordering::SeqCst);
    }

    /// See [`Link::detached`].
    pub(crate) fn detached_done(&self) {
        self.watched.detached.fetch_sub(1, Ordering::SeqCst);
    }
}
