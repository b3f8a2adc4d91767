//! One peer-to-peer connection: a TCP stream shared by many calls in flight in both
//! directions, matched to their replies by request id, with cancellation.
//!
//! Each connection runs two tasks on its local peer's runtime. The reader parses frames:
//! calls from the other side go to a handler thread (synchronous functions) or a task of
//! their own (async ones), replies complete the waiting caller, cancels stop the work.
//! Outgoing frames collect in an [`Outbox`]: the writer task sends those of async code
//! once per burst, a handler thread sends its replies itself.

mod outbox;
mod serve;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::peer::{Peer, PeerInner};
use crate::wire::{self, CallRef, Frame, Hello, Incoming, ReplyFrame, WireOutcome};
use outbox::{with_scratch, Flush, Outbox, HIGH_WATER};
use serve::Serving;

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

/// One live connection to another peer.
pub(crate) struct Conn {
    /// How errors name the other side: its id when it has one, else its address.
    label: String,
    /// The other side's hello: id, group, hub flag, frame limit.
    remote: Hello,
    /// The other side's socket address.
    remote_addr: SocketAddr,
    /// Frames on their way out, and the socket's write side.
    outbox: Arc<Outbox>,
    /// Our calls waiting for replies, by request id.
    pending: Mutex<IdMap<ReplySlot>>,
    /// Next request id for our calls on this connection.
    next_id: AtomicU64,
    /// The other side's calls running here, by their request id, so a cancel stops them.
    serving: Mutex<IdMap<Serving>>,
    /// Cancelled when the connection ends, which stops both tasks.
    closed: CancellationToken,
    /// A task sweeps `serving` for synchronous calls past their budget (see [`sweep`]).
    sweeping: AtomicBool,
    /// Why it ended, for the errors of calls made afterwards.
    close_reason: Mutex<Option<String>>,
    /// The largest frame we may send: the smaller of both sides' limits.
    max_out: usize,
    /// The largest frame we accept (NET_MAX_FRAME), for error messages.
    max_in: usize,
    /// The peer this connection belongs to; weak so that connections never keep a
    /// dropped peer alive.
    local: Weak<PeerInner>,
}

impl Conn {
    /// Runs the handshake on a fresh stream and starts the reader and writer tasks on the
    /// local peer's runtime.
    pub(crate) async fn start(stream: TcpStream, local: &Peer) -> Result<Arc<Conn>, Error> {
        let remote_addr = stream
            .peer_addr()
            .map_err(|e| Error::io("reading a connection's address", e))?;
        let _ = stream.set_nodelay(true);
        // A second handle on the socket, so the outbox can shut its write side down.
        let stream = stream
            .into_std()
            .map_err(|e| Error::io("preparing a connection", e))?;
        let shutdown = stream
            .try_clone()
            .map_err(|e| Error::io("preparing a connection", e))?;
        let stream = TcpStream::from_std(stream)
            .map_err(|e| Error::io("registering a connection with the runtime", e))?;
        let (read, write) = stream.into_split();
        let max_in = local.config().max_frame;
        let mut reader = FramedRead::new(read, wire::codec(max_in));
        let mut writer = FramedWrite::new(write, wire::codec(u32::MAX as usize));
        let remote = wire::handshake(
            &mut reader,
            &mut writer,
            &local.hello(),
            &remote_addr.to_string(),
        )
        .await?;
        let label = match &remote.id {
            Some(id) => format!("{} ({})", id.addr(), id),
            None => remote_addr.to_string(),
        };
        let outbox = Arc::new(Outbox::new(writer.into_inner(), shutdown));
        let conn = Arc::new(Conn {
            label,
            // A hello claiming a tiny limit would make even error replies unsendable.
            max_out: remote.max_frame.clamp(crate::config::MIN_FRAME, max_in),
            max_in,
            remote,
            remote_addr,
            outbox: outbox.clone(),
            pending: Mutex::new(IdMap::default()),
            next_id: AtomicU64::new(1),
            serving: Mutex::new(IdMap::default()),
            closed: local.shutdown_token().child_token(),
            sweeping: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            local: Arc::downgrade(local.inner()),
        });
        let tracker = local.tracker();
        let weak = Arc::downgrade(&conn);
        // Batching pays only when several calls are in flight; a lone call goes at once.
        let batch = move || weak.upgrade().is_some_and(|conn| conn.in_flight() > 1);
        tracker.spawn(outbox.write_loop(conn.closed.clone(), batch));
        tracker.spawn(read_loop(conn.clone(), reader));
        tracing::debug!(peer = %conn.label, "connected");
        Ok(conn)
    }

    /// How errors name the other side.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The other side's hello.
    pub(crate) fn remote(&self) -> &Hello {
        &self.remote
    }

    /// The other side's socket address.
    pub(crate) fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// True while calls from the other side run here.
    pub(crate) fn is_serving(&self) -> bool {
        !lock(&self.serving).is_empty()
    }

    /// Calls in flight in both directions.
    fn in_flight(&self) -> usize {
        lock(&self.pending).len() + lock(&self.serving).len()
    }

    /// Completes when the connection has ended.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// False once the connection has ended.
    pub(crate) fn is_open(&self) -> bool {
        !self.closed.is_cancelled()
    }

    /// Ends the connection: tells the other side why, fails our waiting calls, stops the
    /// work we run for it.
    pub(crate) fn close(&self, reason: &str) {
        self.shut(reason, Some(Frame::Goodbye));
    }

    fn shut(&self, reason: &str, last_words: Option<Frame>) {
        {
            let mut slot = lock(&self.close_reason);
            if slot.is_some() {
                return;
            }
            *slot = Some(reason.to_owned());
        }
        if let Some(frame) = last_words {
            self.push(&frame, Flush::Task);
        }
        self.closed.cancel();
        let waiting: Vec<ReplySlot> = lock(&self.pending).drain().map(|(_, tx)| tx).collect();
        for tx in waiting {
            let _ = tx.send(Err(self.closed_error()));
        }
        for (_, serving) in lock(&self.serving).drain() {
            serving.cancel.cancel();
            if let Some(abort) = serving.abort {
                abort.abort();
            }
        }
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
        args: Box<RawValue>,
        kwargs: Option<Map<String, Value>>,
        timeout: Duration,
        oneway: bool,
    ) -> Result<Option<WireOutcome>, Error> {
        if !self.is_open() {
            return Err(self.closed_error());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = CallRef {
            id,
            tag,
            args: &args,
            kwargs: kwargs.as_ref(),
            timeout_ms: (!oneway).then(|| timeout.as_millis().min(u128::from(u64::MAX)) as u64),
            oneway,
        };
        if oneway {
            self.send(&frame).await?;
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let guard = CancelGuard {
            conn: self,
            id,
            armed: true,
        };
        self.send(&frame).await?;
        let result = tokio::time::timeout(timeout, rx).await;
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
            }),
        }
    }

    /// Queues a call frame for the writer task, refusing one over the frame limit; waits
    /// while the socket is backed up.
    async fn send(&self, frame: &CallRef<'_>) -> Result<(), Error> {
        let queued = with_scratch(|buf| {
            wire::encode_call(frame, buf);
            if buf.len() > self.max_out {
                return Err(Error::FrameTooLarge {
                    size: buf.len(),
                    max: self.max_out,
                    side: format!("peer {}", self.label),
                });
            }
            self.outbox
                .push(buf, Flush::Task)
                .map_err(|_| self.closed_error())
        });
        queued?;
        if self.outbox.backlog() >= HIGH_WATER {
            self.outbox.room().await;
        }
        Ok(())
    }

    /// Queues a frame of ours (cancel, goodbye, error), if the connection still takes
    /// frames.
    fn push(&self, frame: &Frame, flush: Flush) {
        with_scratch(|buf| {
            wire::encode_into(frame, buf);
            let _ = self.outbox.push(buf, flush);
        });
    }

    /// Handles one frame from the other side (`bytes` holds it); `Err` ends the
    /// connection with that reason.
    fn receive(self: &Arc<Self>, frame: Incoming<'_>, bytes: &Bytes) -> Result<(), String> {
        match frame {
            Incoming::Call(call) => {
                self.serve(call, bytes);
                Ok(())
            }
            Incoming::Reply(ReplyFrame { id, outcome }) => {
                match lock(&self.pending).remove(&id) {
                    Some(tx) => {
                        let _ = tx.send(Ok(outcome));
                    }
                    // The caller gave up (timeout) before the reply came.
                    None => tracing::debug!(peer = %self.label, id, "late reply dropped"),
                }
                Ok(())
            }
            Incoming::Cancel { id } => {
                if let Some(serving) = lock(&self.serving).remove(&id) {
                    serving.cancel.cancel();
                    if let Some(abort) = serving.abort {
                        abort.abort();
                    }
                }
                Ok(())
            }
            Incoming::Error { message } => Err(format!("the peer reported an error: {message}")),
            Incoming::Goodbye => {
                // A peer that says goodbye leaves discovery's table at once.
                if let (Some(local), Some(id)) = (self.local.upgrade(), &self.remote.id) {
                    crate::discovery::gone(&Peer::from_inner(local), id.addr(), "it said goodbye");
                }
                Err("the peer shut down".to_owned())
            }
            Incoming::Hello(_) => Err("a second hello on an open connection".to_owned()),
        }
    }
}

/// Removes a call from the pending table and asks the other side to cancel it, unless
/// the reply arrived.
struct CancelGuard<'a> {
    conn: &'a Conn,
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
        if lock(&self.conn.pending).remove(&self.id).is_some() {
            // Best effort: once the connection has ended there is nothing to cancel.
            self.conn.push(&Frame::Cancel { id: self.id }, Flush::Task);
        }
    }
}

/// Reads frames until the connection ends, then closes it.
async fn read_loop(conn: Arc<Conn>, mut frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>) {
    let reason = loop {
        let next = tokio::select! {
            next = frames.next() => next,
            _ = conn.closed.cancelled() => break None,
        };
        match next {
            None => break Some(("the peer closed the connection".to_owned(), None)),
            Some(Err(e)) => {
                let message = wire::describe_read_error(&e, conn.max_in);
                tracing::warn!(peer = %conn.label, %message, "closing connection");
                break Some((message.clone(), Some(Frame::Error { message })));
            }
            Some(Ok(bytes)) => {
                let bytes = bytes.freeze();
                // Checked as UTF-8 once here rather than string by string while parsing.
                let parsed = std::str::from_utf8(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|text| wire::decode(text).map_err(|e| e.to_string()));
                match parsed {
                    Ok(frame) => {
                        if let Err(reason) = conn.receive(frame, &bytes) {
                            break Some((reason, None));
                        }
                    }
                    Err(e) => {
                        let message = format!("malformed frame: {e} (see docs/PROTOCOL.md)");
                        tracing::warn!(peer = %conn.label, %message, "closing connection");
                        break Some((message.clone(), Some(Frame::Error { message })));
                    }
                }
            }
        }
    };
    match reason {
        Some((reason, last_words)) => conn.shut(&reason, last_words),
        None => conn.shut("closed", None),
    }
}

/// Locks a mutex that only guards short, non-panicking sections; a poisoned lock still
/// holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
