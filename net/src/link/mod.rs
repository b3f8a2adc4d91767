//! The link: one multiplexed stream to another peer, shared by many calls in flight in
//! both directions, matched to their replies by request id, with cancellation and budgets.
//!
//! A link knows no peer, registry or discovery. It runs over any [`Transport`] (TCP, an
//! in-memory pair, an encrypted stream) after the handshake, and hands each call from the
//! other side to its [`Inbound`] handler, which runs it and replies through the link. It
//! runs two tasks: the reader (`read.rs`) parses frames; the writer (`outbox.rs`) sends
//! what async code queued, once per burst, while handler threads send their replies
//! themselves. `inbound.rs` keeps the other side's calls running here, for cancels,
//! budgets and drain.

mod guard;
mod inbound;
mod meter;
mod outbox;
mod parting;
mod pending;
mod pressure;
mod read;
mod share;
mod transport;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, Notify};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, TimeoutStep};
use crate::sync::lock;
use crate::wire::{self, CallIn, CallRef, Frame, Hello, Payload, WireOutcome};
use guard::Watched;
use inbound::Serving;
use meter::Metered;
use outbox::{with_scratch, Outbox, HIGH_WATER};

pub(crate) use guard::{Budget, Guard};
pub(crate) use outbox::Flush;
pub(crate) use share::Job;
pub(crate) use transport::{ReadHalf, Transport, WriteHalf};

/// What a link hands upward: calls from the other side, and its goodbye. Implemented by
/// the layers above; the link calls it from its reader task, so it must not block.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// Runs a call from the other side and replies through `link`. `frame` holds the
    /// frame's JSON, which `call` borrows from; `attachments` are what its markers refer
    /// to.
    fn call(&self, link: &Arc<Link>, call: CallIn<'_>, frame: &Bytes, attachments: Vec<Bytes>);

    /// The other side said goodbye: it is shutting down.
    fn goodbye(&self, link: &Link);

    /// The limits the links of this handler are held to; `None`: none (tests).
    fn guard(&self) -> Option<Arc<Guard>> {
        None
    }

    /// A link of this handler has started, in the task that shook hands.
    fn opened(&self, _link: &Arc<Link>) {}
}

/// Calls by request id. Ids are a counter, so a multiplication spreads them well enough;
/// SipHash, the default, showed in the call benchmark.
type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this keeps any other use correct.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A reply, or why none will come.
type ReplySlot = oneshot::Sender<Result<WireOutcome, Error>>;

/// A transport after a successful handshake, ready to become a link.
pub(crate) struct Handshaken {
    /// Frames from the other side; holds whatever was read past the hello.
    pub(crate) reader: FramedRead<ReadHalf, LengthDelimitedCodec>,
    /// Bytes to the other side.
    pub(crate) writer: WriteHalf,
    /// The other side's hello.
    pub(crate) remote: Hello,
    /// The other side's address.
    pub(crate) remote_addr: SocketAddr,
    /// The largest frame this side accepts (NET_MAX_FRAME).
    pub(crate) max_in: usize,
}

/// One live link to another peer.
pub(crate) struct Link {
    /// How errors name the other side: its id when it has one, else its address.
    label: String,
    /// The other side's hello: id, group, hub flag, frame limit.
    remote: Hello,
    /// The other side's address.
    remote_addr: SocketAddr,
    /// Frames on their way out, and the transport's write side.
    outbox: Arc<Outbox>,
    /// Our calls waiting for replies, by request id.
    pending: Mutex<IdMap<ReplySlot>>,
    /// Next request id for our calls on this link.
    next_id: AtomicU64,
    /// The other side's calls running here, by their request id, so a cancel stops them.
    serving: Mutex<IdMap<Serving>>,
    /// Signalled when the last of the other side's calls running here ends, for drain.
    drained: Notify,
    /// Cancelled when the link ends, which stops both tasks.
    closed: CancellationToken,
    /// True until the link ends: what `is_open` reads (a token's `is_cancelled` takes a
    /// lock, and this is asked on every call).
    open: AtomicBool,
    /// A task sweeps `serving` for synchronous calls past their budget (`inbound.rs`).
    sweeping: AtomicBool,
    /// Why it ended, for the errors of calls made afterwards.
    close_reason: Mutex<Option<String>>,
    /// The largest frame we may send: the smaller of both sides' limits.
    max_out: usize,
    /// The largest frame we accept (NET_MAX_FRAME), for error messages.
    max_in: usize,
    /// The other side reads frames with binary attachments (its hello said so).
    attachments: bool,
    /// Where calls from the other side go.
    handler: Arc<dyn Inbound>,
    /// Tracks the link's tasks, so that whoever owns the tracker can wait for them.
    tracker: TaskTracker,
    /// The runtime the link's tasks run on, for a reader started from outside it.
    runtime: tokio::runtime::Handle,
    /// Frames from the other side. Locked by the reader for each poll, never while it
    /// serves a frame: a call served inline that runs long hands the reading to a fresh
    /// task (`move_reader`), which takes the lock and goes on.
    reader: Mutex<FramedRead<ReadHalf, LengthDelimitedCodec>>,
    /// Whose turn it is to read: bumped when the reading moves to a fresh task, so that
    /// the one it moved from stops once its call is served.
    reader_turn: AtomicU64,
    /// The limits it is held to, and the guard that watches its deadlines.
    guard: Option<Arc<Guard>>,
    /// What the guard, the reader and the calls share (`guard.rs`).
    watched: Watched,
    /// The other side's synchronous calls on handler threads, and those waiting their
    /// turn (`share.rs`).
    share: share::Share,
}

impl Link {
    /// Starts the reader and writer tasks of a handshaken transport, on the current
    /// runtime. The link ends when `parent` is cancelled, or when either side closes it.
    pub(crate) fn start(
        transport: Handshaken,
        handler: Arc<dyn Inbound>,
        parent: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Arc<Link> {
        let Handshaken {
            mut reader,
            writer,
            remote,
            remote_addr,
            max_in,
        } = transport;
        let guard = handler.guard();
        let watched = Watched::new();
        // The frame reader reads through a meter from now on; what it has buffered
        // already (read past the hello) starts at a frame boundary.
        let io = std::mem::replace(reader.get_mut(), Box::new(tokio::io::empty()));
        *reader.get_mut() = Box::new(Metered::new(
            io,
            watched.meter.clone(),
            guard.as_ref().map(|g| g.budget.clone()),
            max_in,
            reader.read_buffer(),
        ));
        let label = match &remote.id {
            Some(id) => format!("{} ({})", id.addr(), id),
            None => remote_addr.to_string(),
        };
        let outbox = Arc::new(Outbox::new(writer));
        let link = Arc::new(Link {
            label,
            // A hello claiming a tiny limit would make even error replies unsendable.
            max_out: remote.max_frame.clamp(crate::config::MIN_FRAME, max_in),
            max_in,
            attachments: remote.attachments,
            remote,
            remote_addr,
            outbox: outbox.clone(),
            pending: Mutex::new(IdMap::default()),
            next_id: AtomicU64::new(1),
            serving: Mutex::new(IdMap::default()),
            drained: Notify::new(),
            closed: parent.child_token(),
            open: AtomicBool::new(true),
            sweeping: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            handler,
            tracker: tracker.clone(),
            runtime: tokio::runtime::Handle::current(),
            reader: Mutex::new(reader),
            reader_turn: AtomicU64::new(0),
            guard,
            watched,
            share: share::Share::default(),
        });
        if let Some(guard) = &link.guard {
            guard.watch(&link);
        }
        link.handler.opened(&link);
        let weak = Arc::downgrade(&link);
        // Batching pays only when several calls are in flight; a lone call goes at once.
        let batch = move || weak.upgrade().is_some_and(|link| link.in_flight() > 1);
        tracker.spawn(outbox.write_loop(link.closed.clone(), batch));
        tracker.spawn(read::read_loop(link.clone(), 0));
        tracing::debug!(peer = %link.label, "connected");
        link
    }

    /// How errors name the other side.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The other side's hello.
    pub(crate) fn remote(&self) -> &Hello {
        &self.remote
    }

    /// The other side's address.
    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// Calls in flight in both directions.
    fn in_flight(&self) -> usize {
        lock(&self.pending).len() + lock(&self.serving).len()
    }

    /// Completes when the link has ended.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// False once the link has ended.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Ends the link: tells the other side why, fails our waiting calls, stops the work
    /// we run for it.
    pub(crate) fn close(&self, reason: &str) {
        self.shut(reason, Some(&Frame::Goodbye));
    }

    fn shut(&self, reason: &str, last_words: Option<&Frame>) {
        {
            let mut slot = lock(&self.close_reason);
            if slot.is_some() {
                return;
            }
            *slot = Some(reason.to_owned());
        }
        self.open.store(false, Ordering::Release);
        if let Some(frame) = last_words {
            self.push(frame, Flush::Task);
        }
        self.closed.cancel();
        let waiting: Vec<ReplySlot> = lock(&self.pending).drain().map(|(_, tx)| tx).collect();
        for tx in waiting {
            let _ = tx.send(Err(self.closed_error()));
        }
        self.cancel_all_inbound();
        tracing::debug!(peer = %self.label, reason, "connection closed");
    }

    fn closed_error(&self) -> Error {
        let reason = lock(&self.close_reason)
            .clone()
            .unwrap_or_else(|| "closed".to_owned());
        Error::ConnectionClosed {
            peer: self.label.clone(),
            reason,
        }
    }

    /// Calls `tag` on the other side and waits up to `timeout` for the reply; `None` for a
    /// one-way call, which returns once the frame is queued. On timeout, or if this future
    /// is dropped first, the other side is told to cancel the work.
    pub(crate) async fn call(
        &self,
        tag: &str,
        args: &Payload,
        kwargs: Option<Map<String, Value>>,
        timeout: Duration,
        oneway: bool,
    ) -> Result<Option<WireOutcome>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.call_until(tag, args, kwargs, timeout, deadline, oneway)
            .await
    }

    /// [`Link::call`] with the deadline given: `timeout` is what is left until it, which
    /// the other side is told (a caller that has read the clock once need not again).
    pub(crate) async fn call_until(
        &self,
        tag: &str,
        args: &Payload,
        kwargs: Option<Map<String, Value>>,
        timeout: Duration,
        deadline: tokio::time::Instant,
        oneway: bool,
    ) -> Result<Option<WireOutcome>, Error> {
        if !self.is_open() {
            return Err(self.closed_error());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let attach = self.attachments && !args.attachments.is_empty();
        let inline;
        let json: &[u8] = if attach {
            &args.json
        } else {
            inline = args.inline_json();
            &inline
        };
        let frame = CallRef {
            id,
            tag,
            args: json,
            kwargs: kwargs.as_ref(),
            timeout_ms: (!oneway).then(|| timeout.as_millis().min(u128::from(u64::MAX)) as u64),
            oneway,
        };
        let tail: &[Bytes] = if attach { &args.attachments } else { &[] };
        if oneway {
            self.send(&frame, tail).await?;
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        // A reader held back must read again: this call's reply will come.
        self.relieve();
        let guard = CancelGuard {
            link: self,
            id,
            armed: true,
        };
        self.send(&frame, tail).await?;
        let result = tokio::time::timeout_at(deadline, rx).await;
        match result {
            Ok(Ok(reply)) => {
                guard.disarm();
                reply.map(Some)
            }
            Ok(Err(_)) => {
                guard.disarm();
                Err(self.closed_error())
            }
            Err(_) => Err(Error::Timeout {
                peer: self.label.clone(),
                tag: tag.to_owned(),
                after: timeout,
                step: TimeoutStep::Reply,
            }),
        }
    }

    /// Queues a call frame (with `attachments`, if any) for the writer task, refusing one
    /// over the frame limit; waits while the transport is backed up.
    async fn send(&self, frame: &CallRef<'_>, attachments: &[Bytes]) -> Result<(), Error> {
        let queued = with_scratch(|buf| {
            wire::encode_call(frame, buf);
            self.queue(buf, attachments, Flush::Task)
                .map_err(|size| Error::FrameTooLarge {
                    size,
                    max: self.max_out,
                    side: format!("peer {}", self.label),
                })
        })?;
        let Ok(()) = queued else {
            return Err(self.closed_error());
        };
        if self.outbox.backlog() >= HIGH_WATER {
            self.outbox.room().await;
        }
        Ok(())
    }

    /// Queues a frame whose JSON is `json` and whose attachments are `attachments`:
    /// `Err(size)` if it is over the other side's limit, `Ok(Err(Closed))` once the link
    /// has ended.
    fn queue(
        &self,
        json: &[u8],
        attachments: &[Bytes],
        flush: Flush,
    ) -> Result<Result<(), outbox::Closed>, usize> {
        if attachments.is_empty() {
            if json.len() > self.max_out {
                return Err(json.len());
            }
            return Ok(self.outbox.push(json, flush));
        }
        let mut head = Vec::new();
        wire::put_attached(&mut head, json, attachments);
        let size = wire::attached_len(head.len(), attachments);
        if size > self.max_out {
            return Err(size);
        }
        Ok(self.outbox.push_parts(&head, attachments, flush))
    }

    /// Queues a frame of ours (cancel, goodbye, error), if the link still takes frames.
    fn push(&self, frame: &Frame, flush: Flush) {
        with_scratch(|buf| {
            wire::encode_into(frame, buf);
            let _ = self.outbox.push(buf, flush);
        });
    }

    /// Queues the reply to call `id` of function `tag`; one over the frame limit becomes
    /// a panic outcome saying so. Replies are never held back (the reader stops taking
    /// calls instead while the transport is backed up).
    pub(crate) fn reply(
        &self,
        id: u64,
        outcome: WireOutcome,
        tag: impl FnOnce() -> String,
        flush: Flush,
    ) {
        let attachments: &[Bytes] = match &outcome {
            WireOutcome::Ok(payload) | WireOutcome::Raised(payload) if self.attachments => {
                &payload.attachments
            }
            _ => &[],
        };
        with_scratch(|buf| {
            wire::encode_reply(id, &outcome, !attachments.is_empty(), buf);
            // Refused only once the link has ended: nobody to reply to.
            if let Err(size) = self.queue(buf, attachments, flush) {
                let message = format!(
                    "the reply is {size} bytes, over the {}-byte frame limit (NET_MAX_FRAME) \
                     of the caller",
                    self.max_out
                );
                let outcome = WireOutcome::Panic {
                    message,
                    location: tag(),
                };
                wire::encode_reply(id, &outcome, false, buf);
                let _ = self.queue(buf, &[], flush);
            }
        });
        self.check_backlog();
    }

    /// Makes sure replies queued with [`Flush::Caller`] go out: `defer` is handed the
    /// flush to run once the caller's current batch of work is done.
    pub(crate) fn promise_flush(&self, defer: impl FnOnce(Box<dyn FnOnce()>)) {
        self.outbox.promise_flush(defer);
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Link({})", self.label)
    }
}

/// Removes a call from the pending table and asks the other side to cancel it, unless
/// the reply arrived.
struct CancelGuard<'a> {
    link: &'a Link,
    id: u64,
    armed: bool,
}

impl CancelGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if lock(&self.link.pending).remove(&self.id).is_some() {
            // Best effort: once the link has ended there is nothing to cancel.
            self.link.push(&Frame::Cancel { id: self.id }, Flush::Task);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
