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
    /// once this is true. The link needs no explicit check: it acts on nothing before a
    /// frame has decrypted, which is what makes this true; the tests check the property.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn peer_confirmed(&self) -> bool {
        self.rx.peer_confirmed()
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
    #[cfg_attr(not(test), allow(dead_code))]
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

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use proptest::prelude::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::secure::preamble::write_frame;
    use crate::secure::{accept, connect, read_frame, MeshKey};

    const MB: usize = 1 << 20;
    /// The frame sizes that sit at and around the Noise message boundaries, and big ones.
    const SIZES: [usize; 7] = [0, 1, 65519, 65520, 65536, MB, 10 * MB];

    async fn secured<S: AsyncRead + AsyncWrite + Unpin + Send>(
        a: S,
        mut b: S,
    ) -> (SecureStream<S>, SecureStream<S>) {
        let key = MeshKey::from_secret(b"a secret for the stream tests").unwrap();
        let server = async {
            let first = read_frame(&mut b, "a").await?;
            accept(b, &first, &key, b"", "a").await
        };
        let (a, b) = tokio::join!(connect(a, &key, b"", "b"), server);
        (a.unwrap().stream, b.unwrap().stream)
    }

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Two secured ends with the test in the middle: `a` writes into `a_raw`, `b` reads
    /// from `b_raw`, and what passes from one to the other is up to the test.
    struct Tapped {
        a: SecureStream<DuplexStream>,
        a_raw: DuplexStream,
        b_raw: DuplexStream,
        b: SecureStream<DuplexStream>,
    }

    async fn tapped() -> Tapped {
        let key = MeshKey::from_secret(b"a secret for the stream tests").unwrap();
        let (a, mut a_raw) = duplex(1 << 20);
        let (mut b_raw, mut b) = duplex(1 << 20);
        let relay = async {
            let request = read_frame(&mut a_raw, "").await.unwrap();
            write_frame(&mut b_raw, &request, "").await.unwrap();
            let answer = read_frame(&mut b_raw, "").await.unwrap();
            write_frame(&mut a_raw, &answer, "").await.unwrap();
        };
        let server = async {
            let first = read_frame(&mut b, "a").await.unwrap();
            accept(b, &first, &key, b"", "a").await.unwrap()
        };
        let (a, (), b) = tokio::join!(connect(a, &key, b"", "b"), relay, server);
        Tapped {
            a: a.unwrap().stream,
            a_raw,
            b_raw,
            b: b.stream,
        }
    }

    /// A frame as the link writes it: 4-byte length, then a body that differs per size.
    fn frame(size: usize) -> Vec<u8> {
        let mut frame = (size as u32).to_be_bytes().to_vec();
        frame.extend((0..size).map(|i| (i * 31 + size) as u8));
        frame
    }

    /// Both ends write every size while both read, and each frame comes back byte-exact.
    async fn round_trip_all_sizes<S>(a: SecureStream<S>, b: SecureStream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let run = |end: SecureStream<S>| async move {
            let (mut reader, mut writer) = end.split_with(tokio::io::split);
            let send = async {
                for size in SIZES {
                    writer.write_all(&frame(size)).await?;
                    writer.flush().await?;
                }
                writer.shutdown().await
            };
            let receive = async {
                for size in SIZES {
                    let len = reader.read_u32().await? as usize;
                    assert_eq!(len, size);
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).await?;
                    assert!(body == frame(size)[4..], "frame of {size} bytes differs");
                }
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await?;
                assert!(rest.is_empty(), "{} bytes after the last frame", rest.len());
                Ok::<_, io::Error>(())
            };
            let (sent, received) = tokio::join!(send, receive);
            sent.and(received)
        };
        let (a, b) = tokio::join!(tokio::spawn(run(a)), tokio::spawn(run(b)));
        a.unwrap().unwrap();
        b.unwrap().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_of_every_size_round_trip_both_ways_over_duplex() {
        // A small pipe, so that writes are partial and reads come in pieces.
        let (a, b) = duplex(4096);
        let (a, b) = secured(a, b).await;
        round_trip_all_sizes(a, b).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_of_every_size_round_trip_both_ways_over_tcp() {
        let (a, b) = tcp_pair().await;
        let (a, b) = secured(a, b).await;
        round_trip_all_sizes(a, b).await;
    }

    #[tokio::test]
    async fn tcp_halves_split_without_a_lock() {
        let (a, b) = tcp_pair().await;
        let (a, b) = secured(a, b).await;
        let (mut a_read, mut a_write) = a.split_with(TcpStream::into_split);
        let (mut b_read, mut b_write) = b.split_with(TcpStream::into_split);
        let echo = tokio::spawn(async move {
            let mut buf = vec![0u8; 3 * MB];
            b_read.read_exact(&mut buf).await.unwrap();
            b_write.write_all(&buf).await.unwrap();
            b_write.shutdown().await.unwrap();
        });
        let sent = frame(3 * MB - 4);
        let writer = tokio::spawn(async move {
            a_write.write_all(&sent).await.unwrap();
            a_write.flush().await.unwrap();
            a_write
        });
        let mut back = Vec::new();
        a_read.read_to_end(&mut back).await.unwrap();
        assert!(back == frame(3 * MB - 4));
        assert!(a_read.peer_confirmed());
        echo.await.unwrap();
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn messages_on_the_wire_are_length_prefixed_and_at_most_65535_bytes() {
        let mut t = tapped().await;
        t.a.write_all(&vec![5u8; 100_000]).await.unwrap();
        t.a.write_all(b"tail").await.unwrap();
        t.a.flush().await.unwrap();
        t.a.shutdown().await.unwrap();
        let mut wire = Vec::new();
        t.a_raw.read_to_end(&mut wire).await.unwrap();
        let mut lengths = Vec::new();
        let mut rest = &wire[..];
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            lengths.push(len);
            rest = &tail[len..];
        }
        // 100,004 bytes of plaintext: one full message (65519 + tag), then the rest.
        assert_eq!(lengths, [65535, 100_004 - 65519 + 16]);
        // Nothing in clear.
        assert!(!wire.windows(4).any(|w| w == b"tail"));
        t.b_raw.write_all(&wire).await.unwrap();
        drop(t.b_raw);
        let mut plain = Vec::new();
        t.b.read_to_end(&mut plain).await.unwrap();
        assert_eq!(plain.len(), 100_004);
        assert!(plain.ends_with(b"tail"));
    }

    /// What `a` puts on the wire for `data`, flushed.
    async fn wire_of(t: &mut Tapped, data: &[u8]) -> Vec<u8> {
        t.a.write_all(data).await.unwrap();
        t.a.flush().await.unwrap();
        let mut wire = vec![0u8; 2 + data.len() + 16];
        t.a_raw.read_exact(&mut wire).await.unwrap();
        wire
    }

    #[tokio::test]
    async fn a_flipped_ciphertext_byte_is_invalid_data() {
        for at in [0, 2, 10, 2 + 11 + 15] {
            let mut t = tapped().await;
            let mut wire = wire_of(&mut t, b"hello world").await;
            wire[at] ^= 0x01;
            t.b_raw.write_all(&wire).await.unwrap();
            // Enough after it that a changed length still ends inside what was sent.
            t.b_raw.write_all(&[0u8; 1024]).await.unwrap();
            let err = t.b.read(&mut [0u8; 64]).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData, "byte {at}: {err}");
            if at >= 2 {
                assert!(err.to_string().contains("tampered with"), "{err}");
            }
            // And it stays broken.
            let again = t.b.read(&mut [0u8; 64]).await.unwrap_err();
            assert_eq!(again.kind(), ErrorKind::InvalidData);
        }
    }

    #[tokio::test]
    async fn a_replayed_or_dropped_message_is_invalid_data() {
        let mut t = tapped().await;
        let first = wire_of(&mut t, b"one").await;
        t.b_raw.write_all(&first).await.unwrap();
        t.b_raw.write_all(&first).await.unwrap();
        let mut buf = [0u8; 3];
        t.b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"one");
        let err = t.b.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);

        let mut t = tapped().await;
        let _dropped = wire_of(&mut t, b"one").await;
        let second = wire_of(&mut t, b"two").await;
        t.b_raw.write_all(&second).await.unwrap();
        let err = t.b.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn what_came_before_a_broken_message_is_read_first() {
        let mut t = tapped().await;
        let first = wire_of(&mut t, b"one").await;
        let mut second = wire_of(&mut t, b"two").await;
        second[5] ^= 0x80;
        t.b_raw.write_all(&[first, second].concat()).await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(t.b.read(&mut buf).await.unwrap(), 3);
        assert_eq!(&buf[..3], b"one");
        let err = t.b.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn buffered_messages_are_handed_out_in_one_read() {
        let mut t = tapped().await;
        let mut wire = Vec::new();
        for word in [&b"one"[..], b"two", b"three"] {
            wire.extend(wire_of(&mut t, word).await);
        }
        t.b_raw.write_all(&wire).await.unwrap();
        let mut buf = [0u8; 64];
        // One read of the inner stream takes all three; one read here hands them out.
        assert_eq!(t.b.read(&mut buf).await.unwrap(), 11);
        assert_eq!(&buf[..11], b"onetwothree");
    }

    #[tokio::test]
    async fn a_message_shorter_than_its_tag_is_invalid_data() {
        let mut t = tapped().await;
        t.b_raw.write_all(&[0, 0]).await.unwrap();
        let err = t.b.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("shorter than its 16-byte tag"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_truncated_stream_is_unexpected_eof() {
        for keep in [1, 2, 5, 2 + 11 + 15] {
            let mut t = tapped().await;
            let wire = wire_of(&mut t, b"hello world").await;
            t.b_raw.write_all(&wire[..keep]).await.unwrap();
            drop(t.b_raw);
            let err = t.b.read(&mut [0u8; 64]).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::UnexpectedEof,
                "{keep} bytes kept: {err}"
            );
        }
        // An end between messages is a clean end.
        let mut t = tapped().await;
        let wire = wire_of(&mut t, b"hello world").await;
        t.b_raw.write_all(&wire).await.unwrap();
        drop(t.b_raw);
        let mut plain = Vec::new();
        t.b.read_to_end(&mut plain).await.unwrap();
        assert_eq!(plain, b"hello world");
    }

    #[tokio::test]
    async fn a_write_is_never_zero_and_waits_for_a_slow_reader() {
        // A 1-byte pipe: every inner write is partial.
        let (a, b) = duplex(1);
        let (mut a, mut b) = secured(a, b).await;
        let data = frame(200_000);
        let reader = tokio::spawn(async move {
            let mut back = vec![0u8; data.len()];
            b.read_exact(&mut back).await.unwrap();
            back
        });
        let mut rest = &frame(200_000)[..];
        while !rest.is_empty() {
            let n = a.write(rest).await.unwrap();
            assert!(n > 0 && n <= 65519, "wrote {n}");
            rest = &rest[n..];
        }
        a.flush().await.unwrap();
        assert!(reader.await.unwrap() == frame(200_000));
    }

    #[tokio::test]
    async fn nothing_is_sent_until_a_message_fills_or_a_flush() {
        let mut t = tapped().await;
        t.a.write_all(b"buffered").await.unwrap();
        let mut probe = [0u8; 1];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            t.a_raw.read(&mut probe),
        );
        assert!(early.await.is_err(), "nothing on the wire before the flush");
        t.a.flush().await.unwrap();
        let mut wire = vec![0u8; 2 + 8 + 16];
        t.a_raw.read_exact(&mut wire).await.unwrap();
        assert_eq!(&wire[..2], &[0, 24]);
    }

    /// Writes `data` in `chunks` (cycled), flushing where `flushes` says, while the other
    /// end reads in `reads`-sized pieces; returns what it read.
    async fn through(data: &[u8], chunks: &[usize], flushes: &[bool], reads: &[usize]) -> Vec<u8> {
        let (a, b) = duplex(1 << 12);
        let (mut a, mut b) = secured(a, b).await;
        let reads = reads.to_vec();
        let len = data.len();
        let reader = tokio::spawn(async move {
            let mut got = Vec::with_capacity(len);
            let mut buf = vec![0u8; 1 << 17];
            let mut i = 0;
            loop {
                let want = reads[i % reads.len()];
                i += 1;
                match b.read(&mut buf[..want]).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = chunks[i % chunks.len()].min(rest.len());
            a.write_all(&rest[..n]).await.unwrap();
            if flushes[i % flushes.len()] {
                a.flush().await.unwrap();
            }
            rest = &rest[n..];
            i += 1;
        }
        a.shutdown().await.unwrap();
        reader.await.unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_chunking_reads_back_the_same_bytes(
            len in 0usize..300_000,
            seed in any::<u8>(),
            chunks in proptest::collection::vec(1usize..140_000, 1..8),
            flushes in proptest::collection::vec(any::<bool>(), 1..8),
            reads in proptest::collection::vec(1usize..(1 << 17), 1..8),
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = runtime.block_on(through(&data, &chunks, &flushes, &reads));
            prop_assert!(got == data, "{} bytes in, {} out", data.len(), got.len());
        }
    }
}
