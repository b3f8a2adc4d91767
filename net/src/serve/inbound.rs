//! The serving side of a connection: calls from the other side run here, synchronous
//! functions on a handler thread that also sends the reply, async ones on a task of
//! their own; and the sweep that stops synchronous calls past their budget.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use super::outbox::{with_scratch, Flush};
use super::{lock, Conn};
use crate::caller::Caller;
use crate::peer::Peer;
use crate::registry::{Args, Handler};
use crate::wire::{self, CallIn, WireOutcome};

/// A call from the other side running here.
pub(super) struct Serving {
    /// Seen by the handler through `Caller::is_cancelled`, so a synchronous handler can
    /// stop early; async handlers are also aborted.
    pub(super) cancel: CancellationToken,
    /// Aborts the task running the handler.
    pub(super) abort: Option<AbortHandle>,
    /// When a synchronous call's budget runs out: the sweep then cancels it.
    pub(super) deadline: Option<Instant>,
}

impl Conn {
    /// Runs a call from the other side and sends the reply: a synchronous function on a
    /// handler thread, which also sends the reply (no task, no timer); an async one on a
    /// task of its own, within the caller's time budget.
    pub(super) fn serve(self: &Arc<Self>, call: CallIn<'_>, bytes: &Bytes) {
        let Some(local) = self.local.upgrade().map(Peer::from_inner) else {
            return;
        };
        let id = call.id;
        let oneway = call.oneway;
        let budget = call.timeout_ms.map(Duration::from_millis);
        let connection = crate::dispatch::lookup(&call.tag).ok();
        let sync = connection.is_some_and(|c| matches!(c.handler, Handler::Sync(_)));
        let cancel = if oneway {
            // Not in `serving`: only the connection's end can cancel it.
            self.closed.child_token()
        } else {
            let mut serving = lock(&self.serving);
            if serving.contains_key(&id) {
                // Its reply would be ambiguous and its cancel would hit the wrong call.
                drop(serving);
                let outcome = WireOutcome::BadArgs {
                    message: format!("request id {id} is already in flight on this connection"),
                };
                self.reply(id, outcome, String::new, Flush::Task);
                return;
            }
            // Cancelled by a cancel frame, by `shut` or by the sweep, through `serving`; a
            // token of its own avoids contending for the connection token's lock on every
            // call.
            let cancel = CancellationToken::new();
            // A synchronous call's budget is enforced by the sweep (an async one's by its
            // task's timer).
            let deadline = budget.filter(|_| sync).map(|b| Instant::now() + b);
            serving.insert(
                id,
                Serving {
                    cancel: cancel.clone(),
                    abort: None,
                    deadline,
                },
            );
            if deadline.is_some() && !self.sweeping.swap(true, Ordering::AcqRel) {
                local.tracker().spawn(sweep(Arc::downgrade(self)));
            }
            drop(serving);
            // `shut` may have drained `serving` just before the insert.
            if self.closed.is_cancelled() {
                cancel.cancel();
            }
            cancel
        };
        let caller = Caller::remote(self.clone(), local.clone(), cancel.clone());
        if let Some(connection) = connection.filter(|_| sync) {
            let conn = self.clone();
            // Counts as a task of the peer, so that shutdown waits for it.
            let running = local.tracker().token();
            // The arguments stay in the frame's bytes (shared, not copied) until the
            // handler thread copies them out: memory allocated and freed on one
            // thread is much cheaper than memory passed between threads.
            let args = bytes.slice_ref(call.args.get().as_bytes());
            let named = call.kwargs;
            crate::dispatch::on_handler_thread(move || {
                let _running = running;
                // Given up on (cancel, budget spent, connection gone) before it could
                // start: skip it. A one-way call runs whatever happens to the connection,
                // as its sender was told it was delivered.
                if !oneway && cancel.is_cancelled() {
                    lock(&conn.serving).remove(&id);
                    return;
                }
                let outcome = match raw_args(&args) {
                    Some(positional) => {
                        crate::dispatch::run_inline(connection, Args { positional, named }, caller)
                    }
                    None => WireOutcome::BadArgs {
                        message: "the arguments are not JSON".into(),
                    },
                };
                // Only if still wanted: a cancel or the sweep removed the entry.
                if oneway || lock(&conn.serving).remove(&id).is_none() {
                    return;
                }
                conn.reply(id, outcome, || connection.tag(), Flush::Caller);
                // Sent once this thread has no more queued calls, with their replies.
                conn.outbox.promise_flush(crate::dispatch::when_idle);
            });
            return;
        }
        let conn = self.clone();
        let tag = call.tag.into_owned();
        let args = call.args.to_owned();
        let named = call.kwargs;
        let task = local.tracker().spawn(async move {
            let work = crate::dispatch::run_tag(&tag, args, named, caller);
            let outcome = match budget {
                Some(budget) => match tokio::time::timeout(budget, work).await {
                    Ok(outcome) => outcome,
                    // The caller has given up too; nobody waits for a reply. A synchronous
                    // function it called back sees the cancel through its Caller.
                    Err(_) => {
                        cancel.cancel();
                        lock(&conn.serving).remove(&id);
                        return;
                    }
                },
                None => work.await,
            };
            if oneway {
                return;
            }
            lock(&conn.serving).remove(&id);
            conn.reply(id, outcome, || tag, Flush::Task);
        });
        if !oneway {
            if let Some(serving) = lock(&self.serving).get_mut(&id) {
                serving.abort = Some(task.abort_handle());
            }
        }
    }

    /// Queues the reply to call `id` of function `tag`; one over the frame limit becomes
    /// a panic outcome saying so. Replies are never held back (the reader stops taking
    /// calls instead while the socket is backed up).
    pub(super) fn reply(
        &self,
        id: u64,
        outcome: WireOutcome,
        tag: impl FnOnce() -> String,
        flush: Flush,
    ) {
        with_scratch(|buf| {
            wire::encode_reply(id, &outcome, buf);
            if buf.len() > self.max_out {
                let message = format!(
                    "the reply is {} bytes, over the {}-byte frame limit (NET_MAX_FRAME) of \
                     the caller",
                    buf.len(),
                    self.max_out
                );
                let outcome = WireOutcome::Panic {
                    message,
                    location: tag(),
                };
                wire::encode_reply(id, &outcome, buf);
            }
            // Refused only once the connection has ended: nobody to reply to.
            let _ = self.outbox.push(buf, flush);
        });
    }
}

/// How often the sweep looks for synchronous calls past their budget. The caller cancels
/// at its own timeout anyway; the sweep stops the work of callers that do not (clients
/// written from docs/PROTOCOL.md may not), without a timer per call.
const SWEEP: Duration = Duration::from_millis(10);

/// While synchronous calls with a budget run, cancels those past it (their handlers see
/// `Caller::is_cancelled`, and no reply is sent), as the callee promises in
/// docs/PROTOCOL.md. Ends when none is left; the next one starts it again.
async fn sweep(conn: Weak<Conn>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        let Some(conn) = conn.upgrade() else { return };
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut left = false;
        {
            let mut serving = lock(&conn.serving);
            serving.retain(|_, call| match call.deadline {
                Some(deadline) if deadline <= now => {
                    expired.push(call.cancel.clone());
                    false
                }
                Some(_) => {
                    left = true;
                    true
                }
                None => true,
            });
            if !left || !conn.is_open() {
                // Under the lock, so a call inserted next sees it and starts a new sweep.
                conn.sweeping.store(false, Ordering::Release);
            }
        }
        for cancel in expired {
            cancel.cancel();
        }
        if !left || !conn.is_open() {
            return;
        }
    }
}

/// The arguments of a call, copied out of its frame.
fn raw_args(bytes: &[u8]) -> Option<Box<RawValue>> {
    // Already parsed as JSON when the frame was read; this only makes it owned.
    let text = std::str::from_utf8(bytes).ok()?;
    RawValue::from_string(text.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    static SAW_CANCEL: AtomicBool = AtomicBool::new(false);

    /// Works until its caller gives up (at most 5 s), and says whether it saw that.
    #[net::connect("conn.tests.until_cancelled")]
    fn until_cancelled(caller: net::Caller) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if caller.is_cancelled() {
                SAW_CANCEL.store(true, Ordering::SeqCst);
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    async fn send(stream: &mut TcpStream, json: serde_json::Value) {
        let body = serde_json::to_vec(&json).unwrap();
        stream.write_u32(body.len() as u32).await.unwrap();
        stream.write_all(&body).await.unwrap();
    }

    /// A client that never sends a cancel (one written from docs/PROTOCOL.md, say) still
    /// gets a synchronous call stopped when its `timeout_ms` runs out, and no reply.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_call_past_its_budget_is_cancelled_without_a_cancel_frame() {
        let peer = crate::Peer::start(crate::Config::default().loopback(true).port(0))
            .await
            .unwrap();
        let mut stream = TcpStream::connect(peer.addr()).await.unwrap();
        let hello = serde_json::json!({"hello": {"protocol": crate::wire::PROTOCOL_VERSION,
            "id": null, "group": null, "hub": false, "version": "test", "max_frame": 1 << 20}});
        send(&mut stream, hello).await;
        let len = stream.read_u32().await.unwrap();
        stream.read_exact(&mut vec![0; len as usize]).await.unwrap();

        let call = serde_json::json!({"call": {"id": 1, "tag": "conn.tests.until_cancelled",
            "args": [], "timeout_ms": 100}});
        let started = Instant::now();
        send(&mut stream, call).await;
        while !SAW_CANCEL.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "the handler never saw its budget run out"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(100));
        // No reply for a call past its budget: the next frame is the goodbye at shutdown.
        let stop = {
            let peer = peer.clone();
            tokio::spawn(async move { peer.shutdown().await })
        };
        let len = stream.read_u32().await.unwrap();
        let mut body = vec![0; len as usize];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), r#""goodbye""#);
        stop.await.unwrap();
    }
}
