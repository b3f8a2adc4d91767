//! The listener: binding a port of the configured range, and the accept loop with a
//! connection limit. What an accepted connection becomes is the business of the layer
//! above, which hands the loop a function for it.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::slots::Slots;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::wire::{self, Frame};

/// Newcomers at most that wait, when the peer is full, for a slot taken back from an idle
/// connection; further ones are refused at once.
const OVERFLOW: usize = 64;

/// How long a newcomer waits for the slot taken back for it.
const RECLAIM_WAIT: Duration = Duration::from_secs(1);

/// How long a refused newcomer is read from before its socket closes.
const REFUSE_LINGER: Duration = Duration::from_millis(500);

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
/// of `tracker` holding one of the `NET_MAX_CONNECTIONS` slots; its failures are its own
/// business and cost only that connection. When every slot is taken, the one of the
/// connection idle the longest is taken back for the newcomer (`slots.rs`); when none is
/// idle, the newcomer is refused with an error frame saying so, not left in the backlog.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    stop: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Slots>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(slots.max()));
    let overflow = Arc::new(Semaphore::new(OVERFLOW));
    let mut backoff = Duration::from_millis(10);
    loop {
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
        if let Ok(permit) = limit.clone().try_acquire_owned() {
            tracker.spawn(run(&slots, permit, serve(stream, from), from));
            continue;
        }
        // Full. A slot taken back from an idle connection is free once its task ends.
        let waiting = overflow.clone().try_acquire_owned().ok();
        match waiting {
            Some(waiting) if !slots.reclaim_one() => {
                tracker.spawn(refuse(stream, from, slots.max(), Some(waiting)));
            }
            Some(waiting) => {
                let (limit, slots, serve) = (limit.clone(), slots.clone(), serve.clone());
                tracker.spawn(async move {
                    let permit = tokio::time::timeout(RECLAIM_WAIT, limit.acquire_owned()).await;
                    match permit {
                        Ok(Ok(permit)) => {
                            drop(waiting);
                            run(&slots, permit, serve(stream, from), from).await
                        }
                        _ => refuse(stream, from, slots.max(), Some(waiting)).await,
                    }
                });
            }
            None => refuse(stream, from, slots.max(), None).await,
        }
    }
    tracing::debug!(addr = ?listener.local_addr().ok(), "stopped accepting");
}

/// Serves one connection holding `permit`, under a slot of its own.
fn run(
    slots: &Slots,
    permit: OwnedSemaphorePermit,
    connection: impl Future<Output = ()> + Send + 'static,
    from: SocketAddr,
) -> impl Future<Output = ()> + Send + 'static {
    let slot = slots.open();
    async move {
        let _permit = permit;
        let evicted = slot.evict.clone();
        tokio::select! {
            _ = slot.scope(connection) => {}
            _ = evicted.cancelled() => {
                tracing::debug!(%from, "full: dropped the idlest connection");
            }
        }
    }
}

/// Refuses a newcomer of a full peer with an error frame (a client of ours reads it in
/// place of the hello and reports it) and closes. With a permit of the overflow it reads
/// what the client sends for a moment, so that the close is not a reset that could
/// drop the frame; without one (a flood), it writes and closes at once.
async fn refuse(
    mut stream: TcpStream,
    from: SocketAddr,
    max: usize,
    overflow: Option<OwnedSemaphorePermit>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let message = format!(
        "this peer is full: {max} connections (NET_MAX_CONNECTIONS), none idle; try again later"
    );
    tracing::warn!(%from, max, "refused a connection: every slot is busy");
    let body = wire::encode(&Frame::Error { message });
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    // Small, into an empty socket buffer: it does not wait.
    let _ = stream.try_write(&frame);
    if overflow.is_none() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(REFUSE_LINGER, drain).await;
}
