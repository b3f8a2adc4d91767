//! The reader of a link: frames from the other side until it ends. It serves every frame
//! that has arrived before it writes the replies that queued meanwhile, in one write, just
//! before it would wait for more; so a burst of calls costs one read and one write.
//!
//! It is also where the link pushes back: it stops reading while the other side has too
//! many calls running here or leaves its replies unread (`pressure.rs`), writes what it
//! queued every [`FLUSH_EVERY`] frames served in a row, and parts when the guard finds
//! the link idle (only the reader knows that no frame is half-served).

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_util::StreamExt;

use super::Link;
use crate::sync::lock;
use crate::wire::{self, Frame, Incoming, ReplyIn, WireOutcome};

/// Frames served in a row before the replies they queued are written anyway, so that a
/// peer that never lets the reader wait still gets its replies.
const FLUSH_EVERY: u32 = 64;

/// What the reader found when it looked.
enum Next<T> {
    /// The next frame, an error, or the end of the stream.
    Frame(Option<T>),
    /// Another reader has the frames now.
    Moved,
    /// The link parted for idleness.
    Parted,
}

/// Reads frames while it is reader `turn` and the link is open, then closes it.
pub(super) async fn read_loop(link: Arc<Link>, turn: u64) {
    let mut served = 0u32;
    let reason = loop {
        if link.pressure() {
            // What the frames so far queued goes out first: it may be what relieves it.
            link.outbox.flush_now();
            served = 0;
            tokio::select! {
                _ = link.relief() => {}
                _ = link.closed.cancelled() => break None,
            }
            continue;
        }
        let ready = poll_fn(|cx| {
            let mut frames = lock(&link.reader);
            if link.reader_turn.load(Ordering::Acquire) != turn {
                // Moved on: another reader has the frames.
                return Poll::Ready(Next::Moved);
            }
            if link.asked_to_part() && link.part() {
                return Poll::Ready(Next::Parted);
            }
            match frames.poll_next_unpin(cx) {
                Poll::Pending => {
                    link.reader_waits(cx.waker());
                    drop(frames);
                    // About to wait: what the frames so far queued goes out now.
                    link.outbox.flush_now();
                    served = 0;
                    Poll::Pending
                }
                Poll::Ready(next) => Poll::Ready(Next::Frame(next)),
            }
        });
        let next = tokio::select! {
            next = ready => next,
            _ = link.closed.cancelled() => break None,
        };
        let next = match next {
            Next::Frame(next) => next,
            Next::Moved => {
                link.outbox.flush_now();
                return;
            }
            Next::Parted => return,
        };
        if !link.is_open() {
            // Closed while the frame came (the guard, or a part): frames after the last
            // words are not served, as the other side was told.
            break None;
        }
        match next {
            None => break Some(("the peer closed the connection".to_owned(), None)),
            Some(Err(e)) => {
                let message = wire::describe_read_error(&e, link.max_in);
                tracing::warn!(peer = %link.label, %message, "closing connection");
                break Some((message.clone(), Some(Frame::Error { message })));
            }
            Some(Ok(bytes)) => {
                let parsed = wire::split(bytes.freeze()).and_then(|(json, attachments)| {
                    let frame = wire::decode(&json)?;
                    Ok(receive(&link, frame, &json, attachments))
                });
                match parsed {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => break Some((reason, None)),
                    Err(e) => {
                        let message = format!("malformed frame: {e} (see docs/PROTOCOL.md)");
                        tracing::warn!(peer = %link.label, %message, "closing connection");
                        break Some((message.clone(), Some(Frame::Error { message })));
                    }
                }
            }
        }
        if link.reader_turn.load(Ordering::Acquire) != turn {
            // The reading moved on while a call was served here; the new reader has it,
            // and may be waiting already: the reply queued here goes out now.
            link.outbox.flush_now();
            return;
        }
        served += 1;
        if served >= FLUSH_EVERY {
            link.outbox.flush_now();
            served = 0;
            // No yield here: a peer whose calls never let the reader wait still cannot
            // keep this worker from the other links' readers, since every read of the
            // socket spends tokio's cooperative budget and a spent budget makes the read
            // return Pending (tested: tests/it/hostile/links.rs, the flood of inline
            // calls). A yield every 64 frames cost a third of the calls/s with 64 in
            // flight on one connection (cargo bench --bench calls: 400k to 280k/s), by
            // putting the reader behind a poll of the I/O driver after every burst.
        }
    };
    link.outbox.flush_now();
    match reason {
        Some((reason, last_words)) => link.shut(&reason, last_words.as_ref()),
        None => link.shut("closed", None),
    }
}

impl Link {
    /// Moves the reading to a fresh task: the current reader is serving a call that runs
    /// long, and the link's other frames must not wait for it.
    pub(crate) fn move_reader(self: &Arc<Self>) {
        // Not quiet until that run ends (`unstuck_inline`), whatever happens to the link.
        self.stuck_inline();
        if !self.is_open() {
            return;
        }
        let turn = self.reader_turn.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::debug!(peer = %self.label, "a call served inline runs long; reading moves on");
        self.tracker
            .spawn_on(read_loop(self.clone(), turn), &self.runtime);
    }
}

/// Handles one frame from the other side (`json` holds its JSON, and `attachments` what
/// its markers refer to); `Err` ends the link with that reason.
fn receive(
    link: &Arc<Link>,
    frame: Incoming<'_>,
    json: &Bytes,
    attachments: Vec<Bytes>,
) -> Result<(), String> {
    match frame {
        Incoming::Call(call) => {
            link.handler.call(link, call, json, attachments);
            Ok(())
        }
        Incoming::Reply(ReplyIn { id, mut outcome }) => {
            if let WireOutcome::Ok(payload) | WireOutcome::Raised(payload) = &mut outcome {
                payload.attachments = attachments;
            }
            match lock(&link.pending).remove(&id) {
                Some(tx) => {
                    let _ = tx.send(Ok(outcome));
                }
                // The caller gave up (timeout) before the reply came.
                None => tracing::debug!(peer = %link.label, id, "late reply dropped"),
            }
            Ok(())
        }
        Incoming::Cancel { id } => {
            link.cancel_inbound(id);
            Ok(())
        }
        Incoming::Error { message } => Err(format!("the peer reported an error: {message}")),
        Incoming::Goodbye => {
            link.handler.goodbye(link);
            Err("the peer shut down".to_owned())
        }
        Incoming::Parting { reason } if reason.as_deref() == Some("idle") => {
            // Still running: no goodbye news, and the calls it left unanswered never ran.
            link.parted_by_other_side();
            Err("the peer closed the idle connection; a new call reconnects".to_owned())
        }
        Incoming::Parting { reason } => {
            link.handler.goodbye(link);
            Err(format!(
                "the peer said goodbye ({})",
                reason.unwrap_or_default()
            ))
        }
        Incoming::Hello(_) => Err("a second hello on an open connection".to_owned()),
    }
}
