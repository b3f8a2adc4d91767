//! One peer-to-peer connection: a TCP stream shared by many calls in flight in both
//! directions, matched to their replies by request id, with cancellation.
//!
//! Each connection runs two tasks on its local peer's runtime. The reader parses frames:
//! calls from the other side are dispatched to the registry on tasks of their own, replies
//! complete the waiting caller, cancels stop the work. The writer drains a queue of encoded
//! frames and flushes once per burst, so many small replies share one write.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use crate::caller::Caller;
use crate::error::Error;
use crate::peer::{Peer, PeerInner};
use crate::wire::{self, CallFrame, Frame, Hello, ReplyFrame, WireOutcome};

/// How many encoded frames may wait for the writer before senders wait: enough for
/// thousands of calls in flight, bounded so a stalled socket pushes back.
const WRITE_QUEUE: usize = 4096;

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
    /// Encoded frames for the writer task; dropped with the connection to end it.
    out: mpsc::Sender<Bytes>,
    /// Our calls waiting for replies, by request id.
    pending: Mutex<HashMap<u64, ReplySlot>>,
    /// Next request id for our calls on this connection.
    next_id: AtomicU64,
    /// The other side's calls running here, by their request id, so a cancel stops them.
    serving: Mutex<HashMap<u64, Serving>>,
    /// Cancelled when the connection ends, which stops both tasks.
    closed: CancellationToken,
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

/// A call from the other side running here.
struct Serving {
    /// Seen by the handler through `Caller::is_cancelled`, so a synchronous handler can
    /// stop early; async handlers are also aborted.
    cancel: CancellationToken,
    /// Aborts the task running the handler.
    abort: Option<AbortHandle>,
}

impl Conn {
    /// Runs the handshake on a fresh stream and starts the reader and writer tasks on the
    /// local peer's runtime.
    pub(crate) async fn start(stream: TcpStream, local: &Peer) -> Result<Arc<Conn>, Error> {
        let remote_addr = stream
            .peer_addr()
            .map_err(|e| Error::io("reading a connection's address", e))?;
        let _ = stream.set_nodelay(true);
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
        let (out, rx) = mpsc::channel(WRITE_QUEUE);
        let conn = Arc::new(Conn {
            label,
            // A hello claiming a tiny limit would make even error replies unsendable.
            max_out: remote.max_frame.clamp(crate::config::MIN_FRAME, max_in),
            max_in,
            remote,
            remote_addr,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            serving: Mutex::new(HashMap::new()),
            closed: local.shutdown_token().child_token(),
            close_reason: Mutex::new(None),
            local: Arc::downgrade(local.inner()),
        });
        let tracker = local.tracker();
        tracker.spawn(write_loop(writer, rx, conn.closed.clone()));
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
            let _ = self.out.try_send(wire::encode(&frame));
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
        let frame = wire::encode(&Frame::Call(CallFrame {
            id,
            tag: tag.to_owned(),
            args,
            kwargs,
            timeout_ms: (!oneway).then(|| timeout.as_millis().min(u128::from(u64::MAX)) as u64),
            oneway,
        }));
        if frame.len() > self.max_out {
            return Err(Error::FrameTooLarge {
                size: frame.len(),
                max: self.max_out,
                side: format!("peer {}", self.label),
            });
        }
        if oneway {
            self.send(frame).await?;
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let guard = CancelGuard {
            conn: self,
            id,
            armed: true,
        };
        self.send(frame).await?;
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

    async fn send(&self, frame: Bytes) -> Result<(), Error> {
        self.out.send(frame).await.map_err(|_| self.closed_error())
    }

    /// Handles one frame from the other side; `Err` ends the connection with that reason.
    fn receive(self: &Arc<Self>, frame: Frame) -> Result<(), String> {
        match frame {
            Frame::Call(call) => {
                self.serve(call);
                Ok(())
            }
            Frame::Reply(ReplyFrame { id, outcome }) => {
                match lock(&self.pending).remove(&id) {
                    Some(tx) => {
                        let _ = tx.send(Ok(outcome));
                    }
                    // The caller gave up (timeout) before the reply came.
                    None => tracing::debug!(peer = %self.label, id, "late reply dropped"),
                }
                Ok(())
            }
            Frame::Cancel { id } => {
                if let Some(serving) = lock(&self.serving).remove(&id) {
                    serving.cancel.cancel();
                    if let Some(abort) = serving.abort {
                        abort.abort();
                    }
                }
                Ok(())
            }
            Frame::Error { message } => Err(format!("the peer reported an error: {message}")),
            Frame::Goodbye => {
                // A peer that says goodbye leaves discovery's table at once.
                if let (Some(local), Some(id)) = (self.local.upgrade(), &self.remote.id) {
                    crate::discovery::gone(&Peer::from_inner(local), id.addr(), "it said goodbye");
                }
                Err("the peer shut down".to_owned())
            }
            Frame::Hello(_) => Err("a second hello on an open connection".to_owned()),
        }
    }

    /// Runs a call from the other side on a task of its own and sends the reply.
    fn serve(self: &Arc<Self>, call: CallFrame) {
        let Some(local) = self.local.upgrade().map(Peer::from_inner) else {
            return;
        };
        let cancel = self.closed.child_token();
        let id = call.id;
        let oneway = call.oneway;
        if !oneway {
            let mut serving = lock(&self.serving);
            if serving.contains_key(&id) {
                // Its reply would be ambiguous and its cancel would hit the wrong call.
                drop(serving);
                let reply = Frame::Reply(ReplyFrame {
                    id,
                    outcome: WireOutcome::BadArgs {
                        message: format!("request id {id} is already in flight on this connection"),
                    },
                });
                let _ = self.out.try_send(wire::encode(&reply));
                return;
            }
            serving.insert(
                id,
                Serving {
                    cancel: cancel.clone(),
                    abort: None,
                },
            );
        }
        let caller = Caller::remote(self.clone(), local.clone(), cancel.clone());
        let conn = self.clone();
        let task = local.tracker().spawn(async move {
            let budget = call.timeout_ms.map(Duration::from_millis);
            let work = crate::dispatch::run_tag(&call.tag, call.args, call.kwargs, caller);
            let outcome = match budget {
                Some(budget) => match tokio::time::timeout(budget, work).await {
                    Ok(outcome) => outcome,
                    // The caller has given up too; nobody waits for a reply. A synchronous
                    // handler still running sees the cancel through its Caller.
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
            let mut frame = wire::encode(&Frame::Reply(ReplyFrame { id, outcome }));
            if frame.len() > conn.max_out {
                let message = format!(
                    "the reply is {} bytes, over the {}-byte frame limit (NET_MAX_FRAME) of the \
                     caller",
                    frame.len(),
                    conn.max_out
                );
                frame = wire::encode(&Frame::Reply(ReplyFrame {
                    id,
                    outcome: WireOutcome::Panic {
                        message,
                        location: call.tag,
                    },
                }));
            }
            let _ = conn.out.send(frame).await;
        });
        if !oneway {
            if let Some(serving) = lock(&self.serving).get_mut(&id) {
                serving.abort = Some(task.abort_handle());
            }
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
            // Best effort: a full queue means the connection is swamped; the callee's own
            // deadline stops the work then.
            let _ = self
                .conn
                .out
                .try_send(wire::encode(&Frame::Cancel { id: self.id }));
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
            Some(Ok(bytes)) => match serde_json::from_slice::<Frame>(&bytes) {
                Ok(frame) => {
                    if let Err(reason) = conn.receive(frame) {
                        break Some((reason, None));
                    }
                }
                Err(e) => {
                    let message = format!("malformed frame: {e} (see docs/PROTOCOL.md)");
                    tracing::warn!(peer = %conn.label, %message, "closing connection");
                    break Some((message.clone(), Some(Frame::Error { message })));
                }
            },
        }
    };
    match reason {
        Some((reason, last_words)) => conn.shut(&reason, last_words),
        None => conn.shut("closed", None),
    }
}

/// Writes queued frames, one flush per burst, until the connection ends; then sends what
/// is still queued (a goodbye or error frame) and closes the write side.
async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut queue: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            frame = queue.recv() => frame,
            _ = closed.cancelled() => None,
        };
        let Some(first) = first else { break };
        if sink.feed(first).await.is_err() {
            return;
        }
        while let Ok(more) = queue.try_recv() {
            if sink.feed(more).await.is_err() {
                return;
            }
        }
        if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
            return;
        }
    }
    while let Ok(last) = queue.try_recv() {
        if sink.feed(last).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), SinkExt::<Bytes>::close(&mut sink)).await;
}

/// Locks a mutex that only guards short, non-panicking sections; a poisoned lock still
/// holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
