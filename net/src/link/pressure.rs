//! Backpressure on one link: when its reader stops taking frames (too many calls of the
//! other side running here, their frames holding too much, or replies not being taken),
//! how it waits for relief, and when unread replies close the link (`NET_MAX_CALLS`,
//! `NET_CONN_MEMORY`; docs/PROTOCOL.md section 14.1). The guard (guard.rs) holds the
//! limits; this is the link's side of them.

use std::sync::atomic::Ordering;

use super::outbox::HIGH_WATER;
use super::Link;
use crate::sync::lock;
use crate::wire::Frame;

impl Link {
    /// True when the reader should stop taking frames: too many calls of the other side
    /// run here, their frames hold too much, or replies are not being taken; and this
    /// side waits for no reply on the link (it must read those, or the two would wait
    /// for each other).
    pub(super) fn pressure(&self) -> bool {
        let Some(guard) = &self.guard else {
            return false;
        };
        let w = &self.watched;
        let over = w.serving.load(Ordering::SeqCst) >= guard.limits.max_calls
            || w.inflight_bytes.load(Ordering::SeqCst) >= guard.limits.conn_memory / 2
            || self.outbox.backlog() >= HIGH_WATER;
        over && lock(&self.pending).is_empty()
    }

    /// Closes the link if the replies waiting for the other side to take them are over
    /// its budget (`NET_CONN_MEMORY`): the reader stopped taking calls long before, so
    /// the other side keeps calls in flight and reads nothing.
    pub(super) fn check_backlog(&self) {
        let Some(guard) = &self.guard else { return };
        let backlog = self.outbox.backlog();
        if backlog > guard.limits.conn_memory {
            let message = format!(
                "{backlog} bytes of replies wait for a peer that does not read them, over \
                 this connection's budget of {} bytes (NET_CONN_MEMORY)",
                guard.limits.conn_memory
            );
            tracing::warn!(peer = %self.label, %message, "closing connection");
            self.outbox.discard_queued();
            self.shut(
                &message,
                Some(&Frame::Error {
                    message: message.clone(),
                }),
            );
        }
    }

    /// Waits until [`Link::pressure`] is gone.
    pub(super) async fn relief(&self) {
        let w = &self.watched;
        loop {
            let relief = w.relief.notified();
            tokio::pin!(relief);
            relief.as_mut().enable();
            w.paused.store(true, Ordering::SeqCst);
            if !self.pressure() {
                break;
            }
            if self.outbox.backlog() >= HIGH_WATER {
                tokio::select! {
                    _ = relief => {}
                    _ = self.outbox.room() => {}
                }
            } else {
                relief.await;
            }
        }
        w.paused.store(false, Ordering::SeqCst);
    }

    /// Something the reader may wait for has changed: a call ended, or this side now
    /// waits for a reply.
    pub(super) fn relieve(&self) {
        if self.watched.paused.load(Ordering::SeqCst) {
            self.watched.relief.notify_one();
        }
    }
}
