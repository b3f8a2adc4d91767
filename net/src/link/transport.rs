//! The transport seam: a link runs over any byte stream split into a read half and a write
//! half. TCP is one adapter; an in-memory pair (for tests of the link and the serving layer
//! without sockets) is another; an encrypted stream is a third.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a transport.
pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;

/// The write half of a transport. The link writes it from its writer task, and from
/// handler threads through a context whose waker does nothing (see `outbox.rs`), so it
/// must accept being polled with a different waker each time, as every correct
/// `AsyncWrite` does.
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// A byte stream to another peer, ready for a handshake.
pub(crate) struct Transport {
    /// Bytes from the other side.
    pub(crate) read: ReadHalf,
    /// Bytes to the other side.
    pub(crate) write: WriteHalf,
    /// Where the other side is: its socket address for TCP, a made-up one in memory.
    pub(crate) remote_addr: SocketAddr,
}

impl Transport {
    /// A TCP stream, with Nagle's algorithm off: a call is one small frame, and waiting to
    /// coalesce it would add a round trip's worth of delay.
    pub(crate) fn tcp(stream: TcpStream) -> io::Result<Transport> {
        let remote_addr = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Transport {
            read: Box::new(read),
            write: Box::new(write),
            remote_addr,
        })
    }

    /// Any stream, split in two.
    #[cfg(test)]
    pub(crate) fn split<S>(stream: S, remote_addr: SocketAddr) -> Transport
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        Transport {
            read: Box::new(read),
            write: Box::new(write),
            remote_addr,
        }
    }

    /// Two connected in-memory transports, as if `a` had called `b`: for tests of the
    /// link and the serving layer without sockets.
    #[cfg(test)]
    pub(crate) fn memory_pair(a: SocketAddr, b: SocketAddr) -> (Transport, Transport) {
        let (one, two) = tokio::io::duplex(256 * 1024);
        (Transport::split(one, b), Transport::split(two, a))
    }
}
