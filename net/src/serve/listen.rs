//! The listener: binding a port of the configured range, and the accept loop with a
//! connection limit. What an accepted connection becomes is the business of the layer
//! above, which hands the loop a function for it.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::{Error, Result};

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

/// Accepts connections until `stop` is cancelled. Each connection runs `serve` on a task
/// of `tracker` holding a permit of the connection limit; its failures are its own
/// business and cost only that connection.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    stop: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit,
            _ = stop.cancelled() => break,
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
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
        let connection = serve(stream, from);
        tracker.spawn(async move {
            let _permit = permit;
            connection.await;
        });
    }
    tracing::debug!(addr = ?listener.local_addr().ok(), "stopped accepting");
}
