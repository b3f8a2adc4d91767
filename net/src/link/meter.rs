//! What a link has read, as its guard (`guard.rs`) needs to know it: the byte stream under
//! the frame reader passes through [`Metered`], which follows the framing (a 4-byte length,
//! then the body) without copying, counts the bytes, says how much of the frame in
//! progress has arrived, and holds a large frame back until the peer's memory budget has
//! room for all of it, so that frames never half-arrive into a spent budget.
//!
//! Nothing here reads a clock: the guard's ticks turn counts into rates.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::guard::Budget;
use super::ReadHalf;

/// Frames at least this long wait for room in the peer's budget before their body is
/// read. Smaller ones go at once: a connection's partial small frame costs at most this.
pub(crate) const LARGE: usize = 64 * 1024;

/// What the reader has read, shared with the guard.
#[derive(Default)]
pub(crate) struct Meter {
    /// Bytes read so far; the guard compares it between ticks to see activity.
    pub(crate) bytes_in: AtomicU64,
    /// Frames begun so far, so that the guard can tell one frame in progress from the
    /// next.
    pub(crate) frames: AtomicU64,
    /// Bytes of the frame in progress read so far (length included); 0 between frames.
    pub(crate) partial: AtomicUsize,
    /// The frame in progress waits for room in the peer's budget.
    pub(crate) blocked: AtomicBool,
}

/// Where the reader is in the framing.
enum At {
    /// Reading a length: the bytes of it so far.
    Head { got: usize, bytes: [u8; 4] },
    /// Reading a body: the bytes of it still to come.
    Body { left: usize },
}

/// The read half of a link's transport, metered.
pub(crate) struct Metered {
    inner: ReadHalf,
    meter: Arc<Meter>,
    /// The peer's budget for large frames; `None`: no budget (tests without a guard).
    budget: Option<Arc<Budget>>,
    /// Frames over this are refused by the codec anyway: nothing to reserve for them.
    max_frame: usize,
    at: At,
    /// Bytes of the current frame read, length included.
    got: usize,
    /// What the current frame holds of the budget, given back when it is read whole.
    reserved: usize,
    /// A large frame's length whose reservation failed: nothing more is read until it
    /// succeeds.
    waiting: Option<usize>,
}

impl Metered {
    /// Meters `inner`; `buffered` is what the frame reader already holds of the stream
    /// (read past the hello), which starts at a frame boundary.
    pub(crate) fn new(
        inner: ReadHalf,
        meter: Arc<Meter>,
        budget: Option<Arc<Budget>>,
        max_frame: usize,
        buffered: &[u8],
    ) -> Metered {
        let mut metered = Metered {
            inner,
            meter,
            budget,
            max_frame,
            at: At::Head {
                got: 0,
                bytes: [0; 4],
            },
            got: 0,
            reserved: 0,
            waiting: None,
        };
        metered.follow(buffered);
        metered
    }

    /// Follows the framing over bytes just read.
    fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.at {
                At::Head { got, bytes: head } => {
                    if *got == 0 {
                        self.meter.frames.fetch_add(1, Ordering::Relaxed);
                    }
                    let take = (4 - *got).min(bytes.len());
                    head[*got..*got + take].copy_from_slice(&bytes[..take]);
                    *got += take;
                    self.got += take;
                    bytes = &bytes[take..];
                    if *got == 4 {
                        let len = u32::from_be_bytes(*head) as usize;
                        self.at = At::Body { left: len };
                        if len >= LARGE && len <= self.max_frame && self.budget.is_some() {
                            self.reserve(len);
                        }
                    }
                }
                At::Body { left } => {
                    let take = (*left).min(bytes.len());
                    *left -= take;
                    self.got += take;
                    bytes = &bytes[take..];
                }
            }
            if matches!(self.at, At::Body { left: 0 }) {
                self.frame_done();
            }
        }
        self.meter.partial.store(self.got, Ordering::Relaxed);
    }

    fn frame_done(&mut self) {
        self.at = At::Head {
            got: 0,
            bytes: [0; 4],
        };
        self.got = 0;
        self.release();
    }

    /// Takes `len` of the budget for the frame just begun, or notes that it waits.
    fn reserve(&mut self, len: usize) {
        if let Some(budget) = &self.budget {
            if budget.try_reserve(len) {
                self.reserved = len;
            } else {
                self.waiting = Some(len);
                self.meter.blocked.store(true, Ordering::Relaxed);
            }
        }
    }

    fn release(&mut self) {
        if let (Some(budget), n) = (&self.budget, std::mem::take(&mut self.reserved)) {
            if n > 0 {
                budget.release(n);
            }
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.release();
    }
}

impl AsyncRead for Metered {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let (Some(len), Some(budget)) = (this.waiting, &this.budget) {
            // Registered before trying, so that a release in between is not missed.
            budget.wait(cx.waker());
            if !budget.try_reserve(len) {
                return Poll::Pending;
            }
            this.reserved = len;
            this.waiting = None;
            this.meter.blocked.store(false, Ordering::Relaxed);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let fresh = &buf.filled()[before..];
                this.meter
                    .bytes_in
                    .fetch_add(fresh.len() as u64, Ordering::Relaxed);
                this.follow(fresh);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn frame(len: usize) -> Vec<u8> {
        let mut out = (len as u32).to_be_bytes().to_vec();
        out.resize(4 + len, b'x');
        out
    }

    /// The meter follows frames cut anywhere, and a large frame waits for the budget.
    #[tokio::test]
    async fn follows_the_framing_and_holds_large_frames_for_the_budget() {
        let budget = Arc::new(Budget::new(3 * LARGE));
        let meter = Arc::new(Meter::default());
        let mut stream = frame(10);
        stream.extend(frame(2 * LARGE));
        stream.extend(frame(2 * LARGE));
        let head = stream[..7].to_vec();
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut metered = Metered::new(
            Box::new(rx),
            meter.clone(),
            Some(budget.clone()),
            1 << 20,
            &head,
        );
        assert_eq!(meter.partial.load(Ordering::Relaxed), 7);
        tokio::io::AsyncWriteExt::write_all(&mut tx, &stream[7..])
            .await
            .unwrap();
        let mut sink = vec![0u8; 4 + 10 - 7 + 4 + 2 * LARGE];
        metered.read_exact(&mut sink).await.unwrap();
        // The second large frame's head came with the first one's end, or will: either
        // way the first is whole and its budget given back or taken by the next.
        // Read exactly to the end of the first large frame: its budget is given back.
        assert_eq!(budget.used(), 0);
        assert_eq!(meter.frames.load(Ordering::Relaxed), 2);
        let mut rest = vec![0u8; 4 + 2 * LARGE];
        metered.read_exact(&mut rest).await.unwrap();
        assert_eq!(meter.frames.load(Ordering::Relaxed), 3);
        assert_eq!(budget.used(), 0);
        assert_eq!(meter.partial.load(Ordering::Relaxed), 0);
        assert_eq!(
            meter.bytes_in.load(Ordering::Relaxed),
            (stream.len() - 7) as u64
        );
    }

    #[tokio::test]
    async fn a_large_frame_waits_until_the_budget_has_room() {
        let budget = Arc::new(Budget::new(2 * LARGE));
        assert!(budget.try_reserve(LARGE + 1));
        let meter = Arc::new(Meter::default());
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let mut metered = Metered::new(
            Box::new(rx),
            meter.clone(),
            Some(budget.clone()),
            1 << 20,
            &[],
        );
        tokio::io::AsyncWriteExt::write_all(&mut tx, &frame(LARGE))
            .await
            .unwrap();
        let mut head = [0u8; 4];
        metered.read_exact(&mut head).await.unwrap();
        assert!(meter.blocked.load(Ordering::Relaxed));
        let mut body = vec![0u8; LARGE];
        let read =
            tokio::spawn(async move { metered.read_exact(&mut body).await.map(|_| metered) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "read past a spent budget");
        budget.release(LARGE + 1);
        let metered = read.await.unwrap().unwrap();
        assert!(!meter.blocked.load(Ordering::Relaxed));
        drop(metered);
        assert_eq!(budget.used(), 0);
    }
}
