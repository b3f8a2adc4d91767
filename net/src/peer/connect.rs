//! Opening links: connecting to a peer, the handshake on a fresh transport, and serving an
//! accepted connection, which may also be another protocol that a service claimed by its
//! first byte (app-net's JSON requests start with `{`, which never starts one of our
//! frames).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::{claims, Peer};
use crate::error::{Error, Result};
use crate::link::{Handshaken, Inbound, Link, Transport};
use crate::wire;

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
        match self.link_over_tcp(stream).await {
            Ok(link) => {
                self.adopt(&link, true);
                link.closed().await;
            }
            Err(e) => tracing::warn!(%from, error = %e, "refused a connection"),
        }
    }

    /// Connects to `addr` and opens a link on this peer's runtime (sockets belong to the
    /// runtime that drives them, and the caller may be on another one or on none).
    pub(super) async fn open(&self, addr: SocketAddr, budget: Duration) -> Result<Arc<Link>> {
        let peer = self.clone();
        let task = self.inner.runtime.spawn(async move {
            let stream = match tokio::time::timeout(budget, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(Error::unreachable(addr, e)),
                Err(_) => {
                    let silent = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {budget:?}"),
                    );
                    return Err(Error::unreachable(addr, silent));
                }
            };
            let link = peer.link_over_tcp(stream).await?;
            peer.adopt(&link, false);
            Ok(link)
        });
        task.await.map_err(|e| {
            Error::unreachable_because(addr, format!("the connect task failed: {e}"))
        })?
    }

    /// Shakes hands over a TCP stream and starts a link on it.
    pub(crate) async fn link_over_tcp(&self, stream: TcpStream) -> Result<Arc<Link>> {
        let transport =
            Transport::tcp(stream).map_err(|e| Error::io("preparing a connection", e))?;
        self.link_over(transport).await
    }

    /// Shakes hands over any transport and starts a link on it.
    pub(crate) async fn link_over(&self, transport: Transport) -> Result<Arc<Link>> {
        let Transport {
            read,
            write,
            remote_addr,
        } = transport;
        let max_in = self.inner.config.max_frame;
        let mut reader = FramedRead::new(read, wire::codec(max_in));
        let mut writer = FramedWrite::new(write, wire::codec(u32::MAX as usize));
        let remote = wire::handshake(
            &mut reader,
            &mut writer,
            &self.hello(),
            &remote_addr.to_string(),
            self.inner.config.limits.hello_timeout,
        )
        .await?;
        let handshaken = Handshaken {
            reader,
            writer: writer.into_inner(),
            remote,
            remote_addr,
            max_in,
        };
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
