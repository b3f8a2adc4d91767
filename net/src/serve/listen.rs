//! The peer's server: binding a port of the configured range, and the accept loop with a
//! connection limit.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::legacy::FirstByte;
use crate::peer::Peer;

/// Most connections one peer serves at once; further clients wait in the OS backlog until
/// one closes, rather than exhausting file descriptors.
const MAX_CONNECTIONS: usize = 1024;

/// Binds the first free port of `NET_PORT..=NET_PORT+NET_PORT_RANGE` on `NET_HOST` (port
/// 0, or a client peer: any free port).
pub(crate) fn bind(config: &Config) -> Result<StdListener> {
    let (start, end) = if config.port == 0 || config.client {
        (0, 0)
    } else {
        (config.port, config.port.saturating_add(config.port_range))
    };
    let mut last_error = String::from("no port tried");
    for port in start..=end {
        match StdListener::bind(SocketAddr::new(config.host, port)) {
            Ok(listener) => {
                listener
                    .set_nonblocking(true)
                    .map_err(|e| Error::io("making the listener non-blocking", e))?;
                return Ok(listener);
            }
            Err(e) => last_error = format!("port {port}: {e}"),
        }
    }
    Err(Error::NoFreePort {
        host: config.host.to_string(),
        start,
        end,
        range: config.port_range,
        reason: last_error,
    })
}

/// Accepts connections until the peer stops accepting. Each connection runs on its own
/// task holding a permit of the connection limit; a failed handshake is logged and costs
/// only that connection.
pub(crate) async fn accept_loop(listener: TcpListener, peer: Peer) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stop = peer.accepting_token().clone();
    let shutdown = peer.shutdown_token().clone();
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit,
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
            _ = shutdown.cancelled() => break,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: wait for some to be freed.
                tracing::warn!(error = %e, "accept failed; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let peer = peer.clone();
        let runtime = peer.runtime().clone();
        peer.tracker().clone().spawn_on(
            async move {
                let _permit = permit;
                // A first byte of `{` is a Python app-net request (docs/APPNET.md).
                match crate::legacy::sniff(&stream).await {
                    FirstByte::AppNet => crate::legacy::serve(stream, from, peer).await,
                    FirstByte::Gone => tracing::debug!(%from, "closed before sending a byte"),
                    FirstByte::Net => match Conn::start(stream, &peer).await {
                        Ok(conn) => {
                            peer.adopt(&conn, true);
                            conn.closed().await;
                        }
                        Err(e) => tracing::warn!(%from, error = %e, "refused a connection"),
                    },
                }
            },
            &runtime,
        );
    }
    tracing::debug!(addr = %peer.addr(), "stopped accepting");
}
