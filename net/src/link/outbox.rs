//! The frames waiting to go out on one link, and the rule for who writes them: the link's
//! writer task for frames queued by async code, batched per burst; the handler thread
//! itself for replies of synchronous handlers, once it has no more queued work, so that a
//! reply neither waits for the async worker to wake nor costs it a thread switch.
//!
//! A handler thread writes through the transport's `AsyncWrite` with a waker that does
//! nothing: what the transport takes at once goes out; when it would wait, the rest passes
//! to the writer task, which polls again with its own waker.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use std::collections::VecDeque;

use bytes::{Buf, Bytes};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::pending::Pending;
use super::transport::WriteHalf;

/// Unsent bytes past which callers wait until the socket drains: a stalled peer pushes
/// back on new calls. (Replies are always queued: a reader that stopped reading while
/// its replies wait could deadlock with a peer doing the same.)
pub(crate) const HIGH_WATER: usize = 1 << 20;

/// How long the last frames (goodbye, error) may take to go out when the connection ends.
const LAST_WORDS: Duration = Duration::from_secs(1);

/// One link's outgoing frames.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The transport's write half. Only the holder of the write responsibility
    /// ([`Writer`]) locks it, so the lock is never contended; it exists because that
    /// holder may be a task or a thread.
    socket: Mutex<WriteHalf>,
    /// Wakes the writer task: it has been made responsible for the buffer.
    wake: Notify,
    /// Wakes the writer task at the end of the link when a thread lets go of the write
    /// responsibility, so the last frames go out after the thread's.
    released: Notify,
    /// Wakes senders waiting for the buffer to drop below [`HIGH_WATER`].
    room: Notify,
    /// A handler thread has promised to flush when it runs out of queued work.
    flush_promised: AtomicBool,
    /// `buf.len()`, readable without the lock, for back-pressure checks per frame.
    queued: AtomicUsize,
    /// Bytes handed to the transport so far: the guard checks that the other side takes
    /// them at the minimum rate.
    written: AtomicU64,
}

struct State {
    /// Length-prefixed frames not yet handed to the socket.
    buf: Pending,
    /// Who is responsible for writing `buf` out. Only they write, so frames never
    /// interleave; they recheck `buf` before giving the responsibility up, so frames
    /// appended meanwhile go out with theirs.
    writer: Writer,
    /// The connection ended: frames are refused.
    closed: bool,
    /// The link parted for idleness: its goodbye is queued, and frames after it refused
    /// (the other side would not read them).
    parting: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Nobody: `buf` is empty, or holds frames a handler thread will flush.
    Nobody,
    /// The writer task (woken for it, or writing).
    Task,
    /// A thread in [`Outbox::flush_now`].
    Thread,
}

/// The locked state; keeps [`Outbox::backlog`] up to date when released.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    queued: &'a AtomicUsize,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.queued.store(self.state.buf.len(), Ordering::Relaxed);
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

/// Who will write a frame just appended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// The writer task, woken now if nobody writes yet.
    Task,
    /// The calling handler thread, through [`Outbox::flush_now`] later.
    Caller,
}

/// The connection ended before the frame could be queued.
pub(crate) struct Closed;

impl Outbox {
    pub(crate) fn new(socket: WriteHalf) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                buf: Pending::default(),
                writer: Writer::Nobody,
                closed: false,
                parting: false,
            }),
            socket: Mutex::new(socket),
            wake: Notify::new(),
            released: Notify::new(),
            room: Notify::new(),
            flush_promised: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            written: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> Locked<'_> {
        // Only short, non-panicking sections run under it.
        Locked {
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()),
            queued: &self.queued,
        }
    }

    /// Bytes waiting to go out.
    pub(crate) fn backlog(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Bytes waiting while a writer is at them (the task, woken or waiting for the
    /// socket; a thread writing): what the other side is slow to take, if it stays.
    pub(crate) fn waiting_on_socket(&self) -> usize {
        let state = self.lock();
        match state.writer {
            Writer::Nobody => 0,
            Writer::Task | Writer::Thread => state.buf.len().max(1),
        }
    }

    /// Drops what is queued and not yet handed to the socket: the link ends because the
    /// other side does not take it, and holding it until the socket gives up would keep
    /// the memory for nothing. (A frame a writer had begun may be cut short, which makes
    /// the error frame after it unreadable to a side that was not reading anyway.)
    pub(crate) fn discard_queued(&self) {
        self.lock().buf.clear();
    }

    /// Bytes handed to the transport so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queues `body` as the last frame if `quiet()` holds, checked under the lock so that
    /// no frame is queued between the check and it; frames after it are refused, and
    /// `parted` is set before any is. False if the outbox is closing already or `quiet()`
    /// fails.
    pub(crate) fn part_if(
        &self,
        quiet: impl FnOnce() -> bool,
        body: &[u8],
        parted: &AtomicBool,
    ) -> bool {
        let mut state = self.lock();
        if state.closed || state.parting || !quiet() {
            return false;
        }
        parted.store(true, Ordering::Release);
        state.buf.put_u32(body.len() as u32);
        state.buf.put_slice(body);
        state.parting = true;
        if state.writer == Writer::Nobody {
            state.writer = Writer::Task;
            drop(state);
            self.wake.notify_one();
        }
        true
    }

    /// Queues one frame's body (the length prefix is added here).
    pub(crate) fn push(&self, body: &[u8], flush: Flush) -> Result<(), Closed> {
        self.push_parts(body, &[], flush)
    }

    /// Queues one frame whose body is `head` followed by `tail` (a frame's attachments).
    pub(crate) fn push_parts(
        &self,
        head: &[u8],
        tail: &[bytes::Bytes],
        flush: Flush,
    ) -> Result<(), Closed> {
        let len = head.len() + tail.iter().map(bytes::Bytes::len).sum::<usize>();
        let mut state = self.lock();
        if state.closed || state.parting {
            return Err(Closed);
        }
        // Callers check bodies against the frame limit, which is below u32::MAX.
        state.buf.reserve(4 + head.len());
        state.buf.put_u32(len as u32);
        state.buf.put_slice(head);
        for part in tail {
            state.buf.put_shared(part);
        }
        if flush == Flush::Task && state.writer == Writer::Nobody {
            state.writer = Writer::Task;
            drop(state);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Waits until the backlog is below [`HIGH_WATER`].
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                if state.buf.len() < HIGH_WATER || state.closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Makes sure a frame queued with [`Flush::Caller`] goes out: `defer` is handed a
    /// flush to run once the caller's current batch of work is done, unless one is
    /// already promised.
    pub(crate) fn promise_flush(self: &Arc<Self>, defer: impl FnOnce(Box<dyn FnOnce()>)) {
        if !self.flush_promised.swap(true, Ordering::AcqRel) {
            let outbox = self.clone();
            defer(Box::new(move || {
                outbox.flush_promised.store(false, Ordering::Release);
                outbox.flush_now();
            }));
        }
    }

    /// Writes the buffer out from this thread, unless someone else is at it. What the
    /// socket cannot take right now is left to the writer task.
    pub(crate) fn flush_now(&self) {
        let mut state = self.lock();
        if state.writer != Writer::Nobody || state.buf.is_empty() || state.closed {
            return;
        }
        state.writer = Writer::Thread;
        loop {
            let mut chunks = state.buf.take();
            drop(state);
            let result = self.write_now(&mut chunks);
            state = self.lock();
            match result {
                Ok(()) if state.buf.is_empty() => {
                    state.writer = Writer::Nobody;
                    drop(state);
                    self.room.notify_waiters();
                    self.released.notify_one();
                    return;
                }
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full: the rest goes first, by the writer task, which
                    // can wait for room. The responsibility passes to it.
                    state.buf.put_front(chunks);
                    state.writer = Writer::Task;
                    drop(state);
                    self.wake.notify_one();
                    self.released.notify_one();
                    return;
                }
                Err(e) => {
                    // The transport failed; the reader sees it too and closes the link.
                    tracing::debug!(error = %e, "write failed");
                    state.closed = true;
                    state.buf.clear();
                    state.writer = Writer::Nobody;
                    drop(state);
                    self.room.notify_waiters();
                    self.released.notify_one();
                    return;
                }
            }
        }
    }

    /// The writer task: writes the buffer whenever it is made responsible for it, until
    /// the connection ends; then sends what is left (a goodbye or error frame) and shuts
    /// the write side.
    pub(crate) async fn write_loop(
        self: Arc<Self>,
        closed: CancellationToken,
        batch: impl Fn() -> bool,
    ) {
        loop {
            tokio::select! {
                biased;
                _ = self.wake.notified() => {}
                _ = closed.cancelled() => break,
            }
            if batch() {
                // A task woken by another runs next on tokio: the first frame of a burst
                // wakes this one before the other calls ready on this worker have queued
                // theirs. Step aside once so they do, and share the write.
                tokio::task::yield_now().await;
            }
            if self.write_out().await.is_err() {
                break;
            }
        }
        let _ = tokio::time::timeout(LAST_WORDS, self.last_words()).await;
        self.lock().closed = true;
        self.room.notify_waiters();
    }

    /// Refuses further frames, writes out the rest once a thread writing has let go, and
    /// shuts the write side (the other side reads the end of the stream).
    async fn last_words(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.lock();
                state.closed = true;
                if state.writer != Writer::Thread {
                    state.writer = Writer::Task;
                    break;
                }
            }
            released.await;
        }
        let _ = self.write_out().await;
        // Nobody else writes once the responsibility is the task's and frames are refused.
        let _ = poll_fn(|cx| Pin::new(&mut **lock_socket(&self.socket)).poll_shutdown(cx)).await;
    }

    /// Writes until the buffer is empty, waiting for the socket as needed; then gives up
    /// the responsibility for it. Runs only while the task holds it.
    async fn write_out(&self) -> io::Result<()> {
        loop {
            let mut chunks = {
                let mut state = self.lock();
                if state.writer != Writer::Task {
                    // Not ours to write (cannot happen: the task is woken only when
                    // given the responsibility); leave it to whoever holds it.
                    return Ok(());
                }
                if state.buf.is_empty() {
                    state.writer = Writer::Nobody;
                    drop(state);
                    self.room.notify_waiters();
                    return Ok(());
                }
                state.buf.take()
            };
            // The task holds the responsibility, so it alone locks the socket.
            let result = poll_fn(|cx| {
                write_all(
                    &mut lock_socket(&self.socket),
                    &mut chunks,
                    &self.written,
                    cx,
                )
            })
            .await;
            if let Err(e) = result {
                let mut state = self.lock();
                state.closed = true;
                state.buf.clear();
                state.writer = Writer::Nobody;
                return Err(e);
            }
        }
    }

    /// Writes as much of `chunks` as the transport takes without waiting, from a handler
    /// thread; `WouldBlock` when it would wait. `Ok` means all of it went.
    fn write_now(&self, chunks: &mut VecDeque<Bytes>) -> io::Result<()> {
        let mut socket = lock_socket(&self.socket);
        let mut cx = Context::from_waker(Waker::noop());
        match write_all(&mut socket, chunks, &self.written, &mut cx) {
            Poll::Ready(result) => result,
            // The noop waker is dropped; the writer task polls again with its own.
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Writes all of `chunks` and flushes, taking from `chunks` what the transport takes;
/// pending while the transport cannot take more.
fn write_all(
    socket: &mut WriteHalf,
    chunks: &mut VecDeque<Bytes>,
    written: &AtomicU64,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while let Some(chunk) = chunks.front_mut() {
        if chunk.is_empty() {
            chunks.pop_front();
            continue;
        }
        match Pin::new(&mut **socket).poll_write(cx, chunk) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => {
                chunk.advance(n);
                written.fetch_add(n as u64, Ordering::Relaxed);
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    // TCP flushes nothing; an encrypting transport seals what it buffered.
    Pin::new(&mut **socket).poll_flush(cx)
}

/// Locks the write half. Only the holder of the write responsibility calls it, and
/// nothing panics under it.
fn lock_socket(socket: &Mutex<WriteHalf>) -> MutexGuard<'_, WriteHalf> {
    socket.lock().unwrap_or_else(|p| p.into_inner())
}

/// Encodes into a reusable per-thread buffer and hands the bytes to `f`: no allocation
/// per frame once warm.
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let out = f(&mut buf);
            // Don't let one huge frame pin its memory to the thread.
            if buf.capacity() > 64 * 1024 {
                *buf = Vec::new();
            }
            out
        }
        // Re-entered (cannot happen with the callers here): a fresh buffer.
        Err(_) => f(&mut Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    /// Frames pushed at once from handler threads (flushing themselves) and from tasks
    /// (through the writer task) arrive whole, each producer's in order: one writer at a
    /// time, and no frame lost when a full socket passes the responsibility on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_frames_arrive_whole_and_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut receiver, _) = accepted.unwrap();
        let (_read, write) = client.unwrap().into_split();
        let outbox = Arc::new(Outbox::new(Box::new(write)));
        let closed = CancellationToken::new();
        let writer = tokio::spawn(outbox.clone().write_loop(closed.clone(), || true));

        const PER_PRODUCER: usize = 2_000;
        // Big enough frames that the socket fills and writes come back short or blocked.
        let frame = |producer: usize, n: usize| {
            let mut body = format!("{producer}:{n}:").into_bytes();
            body.resize(body.len() + (n % 7) * 300, b'x');
            body
        };
        let mut threads = Vec::new();
        for producer in 0..3 {
            let outbox = outbox.clone();
            threads.push(std::thread::spawn(move || {
                for n in 0..PER_PRODUCER {
                    assert!(outbox.push(&frame(producer, n), Flush::Caller).is_ok());
                    if n % 5 == 0 {
                        outbox.flush_now();
                    }
                }
                outbox.flush_now();
            }));
        }
        let mut tasks = Vec::new();
        for producer in 3..5 {
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..PER_PRODUCER {
                    assert!(outbox.push(&frame(producer, n), Flush::Task).is_ok());
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }

        // All pushed before anything is read: ~9 MB, far more than the socket buffers, so
        // writes block and handler threads pass the rest to the writer task.
        for thread in threads {
            thread.join().unwrap();
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            outbox.backlog() > 0,
            "the socket took everything; make frames bigger"
        );

        let mut next: HashMap<usize, usize> = HashMap::new();
        let mut received = 0;
        while received < 5 * PER_PRODUCER {
            let len = receiver.read_u32().await.unwrap() as usize;
            let mut body = vec![0; len];
            receiver.read_exact(&mut body).await.unwrap();
            let text = String::from_utf8(body.clone()).unwrap();
            let mut parts = text.splitn(3, ':');
            let producer: usize = parts.next().unwrap().parse().unwrap();
            let n: usize = parts.next().unwrap().parse().unwrap();
            assert_eq!(body, frame(producer, n), "frame {producer}:{n} garbled");
            let expected = next.entry(producer).or_default();
            assert_eq!(n, *expected, "producer {producer} out of order");
            *expected += 1;
            received += 1;
        }
        // Ending: the rest goes out, then the write side shuts (the reader sees EOF).
        closed.cancel();
        writer.await.unwrap();
        assert!(outbox.push(b"late", Flush::Task).is_err());
        assert_eq!(receiver.read_u8().await.ok(), None);
    }
}
