//! Opening links: connecting to a peer, the handshake on a fresh connection (plain, or the
//! secure one when NET_SECRET is set), and serving an accepted connection, which may also
//! be another protocol that a service claimed by its first byte (app-net's JSON requests
//! start with `{`, which never starts one of our frames).
//!
//! Every wait here has a deadline: a caller's connect and handshake come out of its
//! call's budget, and an accepted connection gets `NET_HELLO_TIMEOUT` for its handshake
//! (a caller's handshake never takes longer either).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{claims, Peer};
use crate::error::{Error, Result, TimeoutStep};
use crate::link::{Handshaken, Inbound, Link, Transport};
use crate::secure::{self, MeshKey};
use crate::wire::{self, Frame, Hello};

/// How long a TCP connect may take at most, whatever the call's budget: a live host on a
/// LAN answers in well under a millisecond, an absent one never does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a new connection may stay silent before we decide it is ours: an app-net
/// client sends its request in the same breath as its connect; a client of ours may wait
/// for our hello before sending its own (docs/PROTOCOL.md allows either order), so the
/// wait must stay short: after it, the framed handshake starts and sends our hello.
const SNIFF_TIMEOUT: Duration = Duration::from_millis(300);

/// What serves a connection claimed by its first byte.
type ClaimFn =
    dyn Fn(Peer, TcpStream, SocketAddr) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// A protocol other than ours on the peer's port, claimed by a service.
#[derive(Clone)]
pub(crate) struct Claim {
    /// The first byte its connections start with.
    first_byte: u8,
    /// Serves one such connection.
    serve: Arc<ClaimFn>,
}

impl Peer {
    /// Lets a service serve the connections whose first byte is `first_byte`.
    pub(crate) fn claim<F, Fut>(&self, first_byte: u8, serve: F)
    where
        F: Fn(Peer, TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        claims(self).push(Claim {
            first_byte,
            serve: Arc::new(move |peer, stream, from| Box::pin(serve(peer, stream, from))),
        });
    }

    /// Serves one accepted connection until it ends: a claimed protocol, or a link.
    pub(super) async fn serve_stream(self, stream: TcpStream, from: SocketAddr) {
        let mut first = [0u8; 1];
        let claim = match tokio::time::timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await {
            // Closed or reset before sending anything (app-net's port `ping` does this).
            Ok(Ok(0)) | Ok(Err(_)) => {
                tracing::debug!(%from, "closed before sending a byte");
                return;
            }
            Ok(Ok(_)) => claims(&self)
                .iter()
                .find(|c| c.first_byte == first[0])
                .cloned(),
            Err(_) => None,
        };
        if let Some(claim) = claim {
            return (claim.serve)(self, stream, from).await;
        }
        let deadline = Instant::now() + self.inner.config.limits.hello_timeout;
        let accepted = self.handshake(stream, self.hello(), false, deadline).await;
        match accepted.and_then(|handshaken| self.start_link(handshaken)) {
            Ok(link) => {
                self.adopt(&link, true);
                link.closed().await;
            }
            Err(e) => tracing::warn!(%from, error = %e, "refused a connection"),
        }
    }

    /// Connects to `addr` and opens a link by `deadline`, on this peer's runtime (sockets
    /// belong to the runtime that drives them, and the caller may be on another one or on
    /// none).
    pub(super) async fn open(&self, addr: SocketAddr, deadline: Instant) -> Result<Arc<Link>> {
        let peer = self.clone();
        let task = self.inner.runtime.spawn(async move {
            let limit = deadline.min(Instant::now() + CONNECT_TIMEOUT);
            let stream = match tokio::time::timeout_at(limit, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(Error::unreachable(addr, e)),
                Err(_) if limit == deadline => return Err(timed_out(addr, TimeoutStep::Connect)),
                Err(_) => {
                    let silent = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {CONNECT_TIMEOUT:?}"),
                    );
                    return Err(Error::unreachable(addr, silent));
                }
            };
            let link = peer.link_over_tcp(stream, deadline).await?;
            peer.adopt(&link, false);
            Ok(link)
        });
        task.await.map_err(|e| {
            Error::unreachable_because(addr, format!("the connect task failed: {e}"))
        })?
    }

    /// Shakes hands over a TCP stream this peer opened, by `deadline`, and starts a link
    /// on it. Its hello carries a fresh ticket, which this peer remembers so that the
    /// other side can ask whether this link is ours (`pairing.rs`).
    pub(crate) async fn link_over_tcp(
        &self,
        stream: TcpStream,
        deadline: Instant,
    ) -> Result<Arc<Link>> {
        let ticket = self
            .serves_others()
            .then(super::pairing::new_ticket)
            .flatten();
        let hello = Hello {
            ticket: ticket.clone(),
            ..self.hello()
        };
        // Forgets the ticket unless the link starts, also if this future is dropped.
        let dialling = ticket.map(|ticket| self.dialling(ticket));
        let link = self
            .handshake(stream, hello, true, deadline)
            .await
            .and_then(|handshaken| self.start_link(handshaken))?;
        if let Some(dialling) = dialling {
            dialling.started(&link);
        }
        Ok(link)
    }

    /// The handshake of a new connection, as the side that opened it (`initiator`) or
    /// accepted it: the secure one when this peer has a NET_SECRET, else the plain hello
    /// exchange. It must end by `deadline` (and within `NET_HELLO_TIMEOUT`: a silent or
    /// slow client must not hold a connection slot for long); past a caller's deadline it
    /// is that call's timeout.
    async fn handshake(
        &self,
        stream: TcpStream,
        hello: Hello,
        initiator: bool,
        deadline: Instant,
    ) -> Result<Handshaken> {
        let remote_addr = stream
            .peer_addr()
            .map_err(|e| Error::io("reading a connection's address", e))?;
        let hello_timeout = self.inner.config.limits.hello_timeout;
        let limit = deadline.min(Instant::now() + hello_timeout);
        let work = async {
            match &self.inner.key {
                Some(key) => {
                    self.secure_handshake(stream, remote_addr, key, &hello, initiator)
                        .await
                }
                None => {
                    let transport = Transport::tcp(stream)
                        .map_err(|e| Error::io("preparing a connection", e))?;
                    self.plain_handshake(transport, &hello).await
                }
            }
        };
        match tokio::time::timeout_at(limit, work).await {
            Ok(handshaken) => handshaken,
            Err(_) if initiator && limit == deadline => {
                Err(timed_out(remote_addr, TimeoutStep::Handshake))
            }
            Err(_) => Err(Error::Protocol {
                peer: remote_addr.to_string(),
                message: format!("no hello within {hello_timeout:?} (NET_HELLO_TIMEOUT)"),
            }),
        }
    }

    /// The plain hello exchange over any transport, sending `hello`.
    async fn plain_handshake(&self, transport: Transport, hello: &Hello) -> Result<Handshaken> {
        let Transport {
            read,
            write,
            remote_addr,
        } = transport;
        let max_in = self.inner.config.max_frame;
        let mut reader = FramedRead::new(read, wire::codec(max_in));
        let mut writer = FramedWrite::new(write, wire::codec(u32::MAX as usize));
        let remote =
            wire::handshake(&mut reader, &mut writer, hello, &remote_addr.to_string()).await?;
        Ok(Handshaken {
            reader,
            writer: writer.into_inner(),
            remote,
            remote_addr,
            max_in,
        })
    }

    /// The secure handshake (docs/PROTOCOL.md section 17): each side's hello rides inside
    /// it, and the link then runs over the encrypted stream.
    async fn secure_handshake(
        &self,
        mut stream: TcpStream,
        remote_addr: SocketAddr,
        key: &MeshKey,
        hello: &Hello,
        initiator: bool,
    ) -> Result<Handshaken> {
        let _ = stream.set_nodelay(true);
        let label = remote_addr.to_string();
        let hello = wire::encode(&Frame::Hello(hello.clone()));
        let secured = if initiator {
            secure::connect(stream, key, &hello, &label).await?
        } else {
            let first = secure::read_frame(&mut stream, &label).await?;
            secure::accept(stream, &first, key, &hello, &label).await?
        };
        // The other side holds the secret: its hello needs no answer if it is wrong, only
        // the error here (the link never starts).
        let remote: Hello = wire::check_hello(&secured.payload, &label).map_err(|(e, _)| e)?;
        let (read, write) = secured.stream.split_with(TcpStream::into_split);
        let max_in = self.inner.config.max_frame;
        Ok(Handshaken {
            reader: FramedRead::new(Box::new(read), wire::codec(max_in)),
            writer: Box::new(write),
            remote,
            remote_addr,
            max_in,
        })
    }

    /// Starts a link on a handshaken connection.
    fn start_link(&self, handshaken: Handshaken) -> Result<Arc<Link>> {
        let server: Arc<dyn Inbound> = match self.inner.server.get() {
            Some(server) => server.clone(),
            // Set in `bring_up` before the peer is handed to anyone.
            None => return Err(Error::Shutdown),
        };
        Ok(Link::start(
            handshaken,
            server,
            &self.inner.shutdown,
            &self.inner.tracker,
        ))
    }
}

/// A call's budget ran out at `step` (its tag and budget are filled in by the call).
fn timed_out(addr: SocketAddr, step: TimeoutStep) -> Error {
    Error::Timeout {
        peer: addr.to_string(),
        tag: String::new(),
        after: Duration::ZERO,
        step,
    }
}
