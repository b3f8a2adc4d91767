//! The encrypted stream the link runs over once the secure handshake is done:
//! [`SecureStream`] is `AsyncRead + AsyncWrite` like the socket under it, and splits into a
//! [`SecureReader`] and a [`SecureWriter`] for a reader task and a writer task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::cipher::{Receiver, Sender};

/// An encrypted, authenticated byte stream over `S`.
///
/// What is written is cut into Noise transport messages of at most 65535 bytes on the wire
/// (ciphertext and 16-byte tag), each behind a 2-byte big-endian length; what is read is
/// their plaintext, so the link's own length-prefixed frames pass through unchanged and a
/// frame larger than one message is split and joined transparently.
///
/// - Writes are buffered until a message is full or the stream is **flushed** (as with a
///   `BufWriter`): flush after each frame or batch of frames.
/// - A message that fails to authenticate (a changed byte, other keys, a replayed or
///   dropped message) is an [`io::ErrorKind::InvalidData`] error; a stream that ends inside
///   a message is [`io::ErrorKind::UnexpectedEof`]. After either, every read fails.
/// - Buffers grow to what the traffic needs (at most about 200 KiB for the reading side and
///   128 KiB for the writing side) and are then reused: no allocation per message.
/// - For a reader task and a writer task use [`SecureStream::split_with`] with the inner
///   stream's own split (`TcpStream::into_split` takes no lock; `tokio::io::split` works
///   for any stream). Each half owns its direction's buffers and nonce.
pub struct SecureStream<S> {
    /// The stream under the encryption.
    io: S,
    /// The reading direction's state.
    rx: Receiver,
    /// The writing direction's state.
    tx: Sender,
}

impl<S> SecureStream<S> {
    /// Starts the transport phase of a finished handshake over `io`.
    pub(super) fn new(io: S, transport: StatelessTransportState) -> SecureStream<S> {
        let keys = Arc::new(transport);
        SecureStream {
            io,
            rx: Receiver::new(keys.clone()),
            tx: Sender::new(keys),
        }
    }

    /// Splits into a reading and a writing half, splitting the inner stream with `split`
    /// (e.g. `TcpStream::into_split` or `tokio::io::split`). Unflushed writes go with the
    /// writing half, unread plaintext with the reading half.
    pub fn split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (SecureReader<R>, SecureWriter<W>) {
        let (r, w) = split(self.io);
        (
            SecureReader { io: r, rx: self.rx },
            SecureWriter { io: w, tx: self.tx },
        )
    }

    /// True once the other side has proved it holds the mesh key: on the connecting side
    /// at once; on the accepting side after the first message from the other side has
    /// decrypted (the handshake's first message alone could be a recorded one, replayed by
    /// someone without the secret). Act on the other side's claims (its hello's id) only
    /// once this is true.
    pub fn peer_confirmed(&self) -> bool {
        self.rx.peer_confirmed()
    }

    /// The stream under the encryption.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SecureStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.rx.poll_read(&mut this.io, cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SecureStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.tx.poll_write(&mut this.io, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tx.poll_flush(&mut this.io, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tx.poll_shutdown(&mut this.io, cx)
    }
}

/// The reading half of a [`SecureStream`].
pub struct SecureReader<R> {
    /// The inner stream's reading half.
    io: R,
    /// The reading direction's state.
    rx: Receiver,
}

impl<R> SecureReader<R> {
    /// As [`SecureStream::peer_confirmed`].
    pub fn peer_confirmed(&self) -> bool {
        self.rx.peer_confirmed()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SecureReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.rx.poll_read(&mut this.io, cx, buf)
    }
}

/// The writing half of a [`SecureStream`].
pub struct SecureWriter<W> {
    /// The inner stream's writing half.
    io: W,
    /// The writing direction's state.
    tx: Sender,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for SecureWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.tx.poll_write(&mut this.io, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tx.poll_flush(&mut this.io, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.tx.poll_shutdown(&mut this.io, cx)
    }
}
