//! The two directions of an encrypted stream: [`Sender`] cuts written bytes into Noise
//! transport messages (2-byte big-endian length, ciphertext and tag), [`Receiver`] reads
//! such messages and hands out their plaintext. Each owns its buffers and its nonce, so the
//! reader and the writer of one stream can run in different tasks without a lock.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The authentication tag that ends every Noise transport message.
pub(crate) const TAG_LEN: usize = 16;
/// The longest Noise message (ciphertext and tag), so that its length fits the 2 bytes.
pub(crate) const MAX_MESSAGE: usize = 65535;
/// The most plaintext one message carries.
pub(crate) const MAX_PLAIN: usize = MAX_MESSAGE - TAG_LEN;
/// The read buffer holds up to two whole messages, so one read call can take the rest of
/// one message and the start of the next.
const MAX_READ_BUF: usize = 2 * (2 + MAX_MESSAGE);
/// The read buffer's first size: what a connection of small frames ever uses.
const FIRST_READ_BUF: usize = 4096;

/// The keys of both directions, from the handshake. snow's stateless transport takes the
/// nonce from the caller, which lets the two directions share it behind an `Arc` (`&self`
/// methods, `Sync`) and keep their own counters.
pub(crate) type Keys = Arc<StatelessTransportState>;

/// Says a message failed to authenticate, the one way a decrypt can fail.
fn tampered() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a secure message failed to authenticate: the stream was tampered with, or the two \
         sides hold different keys",
    )
}

/// Noise reserves the last nonce; 2^64 - 1 messages of one direction are out of reach (at
/// a million messages a second, 580,000 years), so this is an error, not a rekey.
fn exhausted() -> io::Error {
    io::Error::other("the secure stream used up its 2^64 nonces")
}

/// The reading direction.
pub(crate) struct Receiver {
    /// The keys, shared with the [`Sender`].
    keys: Keys,
    /// The nonce of the next message: messages are numbered from 0 in each direction,
    /// which is also what rejects a replayed, dropped or reordered message.
    nonce: u64,
    /// Bytes read from the stream and not yet decrypted: `buf[start..end]`. Grown as
    /// messages need (up to two messages), then reused.
    buf: Vec<u8>,
    /// Where the unread ciphertext starts in `buf`.
    start: usize,
    /// Where it ends.
    end: usize,
    /// The last message's plaintext, handed out from `plain_pos` to `plain_end`. Kept at
    /// the largest size used, so that decrypting never zeroes memory again.
    plain: Vec<u8>,
    /// Where the plaintext not yet handed out starts.
    plain_pos: usize,
    /// Where it ends.
    plain_end: usize,
    /// Set once the stream is broken (tampered, truncated): every later read fails the
    /// same way, since the nonces can no longer line up.
    failed: Option<io::ErrorKind>,
    /// The initiator has heard from the responder once the handshake is done.
    #[cfg_attr(not(test), allow(dead_code))]
    initiator: bool,
}

impl Receiver {
    pub(crate) fn new(keys: Keys) -> Receiver {
        let initiator = keys.is_initiator();
        Receiver {
            keys,
            nonce: 0,
            buf: Vec::new(),
            start: 0,
            end: 0,
            plain: Vec::new(),
            plain_pos: 0,
            plain_end: 0,
            failed: None,
            initiator,
        }
    }

    /// True once the other side has proved it holds the keys: for the initiator at once
    /// (the responder's handshake message proved it), for the responder after the first
    /// message from the initiator decrypted (its handshake message alone could be a replay).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn peer_confirmed(&self) -> bool {
        self.initiator || self.nonce > 0
    }

    pub(crate) fn poll_read<R>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
    {
        // Hands out every whole message already buffered (a small frame is often one
        // message, and a batch of them arrives in one read), but reads the stream again
        // only while nothing has been handed out.
        let mut gave = false;
        loop {
            if out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if self.plain_pos < self.plain_end {
                let n = out.remaining().min(self.plain_end - self.plain_pos);
                out.put_slice(&self.plain[self.plain_pos..self.plain_pos + n]);
                self.plain_pos += n;
                gave = true;
                continue;
            }
            if let Some(kind) = self.failed {
                if gave {
                    // What came before the break first; the error on the next read.
                    return Poll::Ready(Ok(()));
                }
                return Poll::Ready(Err(match kind {
                    io::ErrorKind::InvalidData => tampered(),
                    kind => io::Error::new(kind, "the secure stream broke earlier"),
                }));
            }
            let needed = match self.message_len() {
                // A whole message the caller has room for is decrypted straight into its
                // buffer: zeroing the room first costs less than copying the plaintext.
                Some(len) if self.end - self.start >= 2 + len && out.remaining() >= len => {
                    let room = out.initialize_unfilled_to(len.saturating_sub(TAG_LEN));
                    match self.decrypt_into(len, room) {
                        Ok(n) => {
                            out.advance(n);
                            gave = true;
                            continue;
                        }
                        Err(_) if gave => return Poll::Ready(Ok(())),
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Some(len) if self.end - self.start >= 2 + len => match self.decrypt(len) {
                    Ok(()) => continue,
                    Err(_) if gave => return Poll::Ready(Ok(())),
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Some(len) => 2 + len,
                None => 2,
            };
            if gave {
                return Poll::Ready(Ok(()));
            }
            self.make_room(needed);
            let mut read = ReadBuf::new(&mut self.buf[self.end..]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                if self.start == self.end {
                    return Poll::Ready(Ok(()));
                }
                self.failed = Some(io::ErrorKind::UnexpectedEof);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the secure stream ended inside a message ({} of {needed} bytes came)",
                        self.end - self.start
                    ),
                )));
            }
            self.end += n;
        }
    }

    /// The length of the next message, once its 2 bytes have arrived.
    fn message_len(&self) -> Option<usize> {
        match self.buf.get(self.start..self.start + 2) {
            Some(&[hi, lo]) if self.end - self.start >= 2 => {
                Some(usize::from(u16::from_be_bytes([hi, lo])))
            }
            _ => None,
        }
    }

    /// Makes room in `buf` for `needed` bytes from `start`, moving the partial message to
    /// the front or growing the buffer (to at most two messages).
    fn make_room(&mut self, needed: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.start < needed {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < needed {
            let size = (self.buf.len() * 2).max(needed).max(FIRST_READ_BUF);
            self.buf.resize(size.min(MAX_READ_BUF), 0);
        }
    }

    /// Decrypts the whole message of `len` bytes at `start` into `plain`.
    fn decrypt(&mut self, len: usize) -> io::Result<()> {
        if self.plain.len() < len.saturating_sub(TAG_LEN) {
            self.plain.resize(len - TAG_LEN, 0);
        }
        let mut plain = std::mem::take(&mut self.plain);
        let decrypted = self.decrypt_into(len, &mut plain);
        self.plain = plain;
        let n = decrypted?;
        self.plain_pos = 0;
        self.plain_end = n;
        Ok(())
    }

    /// Decrypts the whole message of `len` bytes at `start` into `dst` (room for its
    /// plaintext), and moves past it; returns the plaintext's length.
    fn decrypt_into(&mut self, len: usize, dst: &mut [u8]) -> io::Result<usize> {
        if len < TAG_LEN {
            self.failed = Some(io::ErrorKind::InvalidData);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a {len}-byte secure message is shorter than its {TAG_LEN}-byte tag"),
            ));
        }
        let message = &self.buf[self.start + 2..self.start + 2 + len];
        match self.keys.read_message(self.nonce, message, dst) {
            Ok(n) => {
                self.nonce += 1;
                self.start += 2 + len;
                Ok(n)
            }
            Err(snow::Error::State(_)) => {
                self.failed = Some(io::ErrorKind::Other);
                Err(exhausted())
            }
            Err(_) => {
                self.failed = Some(io::ErrorKind::InvalidData);
                Err(tampered())
            }
        }
    }
}

/// The writing direction.
pub(crate) struct Sender {
    /// The keys, shared with the [`Receiver`].
    keys: Keys,
    /// The nonce of the next message.
    nonce: u64,
    /// Plaintext written and not yet sealed: sealed when it fills a message, or on flush.
    pending: Vec<u8>,
    /// The sealed message being written out, `out[out_pos..out_end]`; reused.
    out: Vec<u8>,
    /// How much of the sealed message the inner stream has taken.
    out_pos: usize,
    /// Where the sealed message ends.
    out_end: usize,
}

impl Sender {
    pub(crate) fn new(keys: Keys) -> Sender {
        Sender {
            keys,
            nonce: 0,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            out_end: 0,
        }
    }

    /// Takes bytes into the next message. Never `Ok(0)` for a non-empty `buf`: it waits
    /// (`Pending`) while the last sealed message has not been taken by the inner stream.
    pub(crate) fn poll_write<W>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>>
    where
        W: AsyncWrite + Unpin,
    {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_drain(io, cx))?;
        if self.pending.is_empty() && buf.len() >= MAX_PLAIN {
            // A whole message straight from the caller's bytes: no copy into `pending`.
            self.seal(&buf[..MAX_PLAIN])?;
            return Poll::Ready(Ok(MAX_PLAIN));
        }
        let n = buf.len().min(MAX_PLAIN - self.pending.len());
        let wanted = self.pending.len() + n;
        if wanted > self.pending.capacity() {
            let grown = wanted.max(self.pending.capacity() * 2).min(MAX_PLAIN);
            self.pending.reserve_exact(grown - self.pending.len());
        }
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == MAX_PLAIN {
            self.seal_pending()?;
        }
        Poll::Ready(Ok(n))
    }

    /// Seals what is pending and writes everything out, then flushes the inner stream.
    pub(crate) fn poll_flush<W>(&mut self, io: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        ready!(self.poll_drain(io, cx))?;
        if !self.pending.is_empty() {
            self.seal_pending()?;
            ready!(self.poll_drain(io, cx))?;
        }
        Pin::new(io).poll_flush(cx)
    }

    /// Flushes, then shuts the inner stream's writing side.
    pub(crate) fn poll_shutdown<W>(
        &mut self,
        io: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        ready!(self.poll_flush(io, cx))?;
        Pin::new(io).poll_shutdown(cx)
    }

    /// Writes the sealed message out, across as many partial writes as the stream needs.
    fn poll_drain<W>(&mut self, io: &mut W, cx: &mut Context<'_>) -> Poll<io::Result<()>>
    where
        W: AsyncWrite + Unpin,
    {
        while self.out_pos < self.out_end {
            let n =
                ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.out_pos..self.out_end]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out_pos = 0;
        self.out_end = 0;
        Poll::Ready(Ok(()))
    }

    fn seal_pending(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let sealed = self.seal(&pending);
        self.pending = pending;
        self.pending.clear();
        sealed
    }

    /// Encrypts `plain` (at most [`MAX_PLAIN`] bytes) into `out` behind its length. Only
    /// called with `out` drained.
    fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        let len = plain.len() + TAG_LEN;
        if self.out.len() < 2 + len {
            self.out.resize(2 + len, 0);
        }
        let n = match self
            .keys
            .write_message(self.nonce, plain, &mut self.out[2..2 + len])
        {
            Ok(n) => n,
            Err(snow::Error::State(_)) => return Err(exhausted()),
            Err(e) => {
                return Err(io::Error::other(format!(
                    "cannot seal a secure message: {e}"
                )))
            }
        };
        // n <= MAX_MESSAGE, checked by snow: it fits the 2-byte length.
        self.out[..2].copy_from_slice(&(n as u16).to_be_bytes());
        self.out_pos = 0;
        self.out_end = 2 + n;
        self.nonce += 1;
        Ok(())
    }
}
