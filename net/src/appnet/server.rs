//! Serving app-net requests on the peer's own port: telling them from our protocol by the
//! first byte, reading one unframed JSON request, running it, answering as app-net does.
//!
//! A request is held to the peer's limits like a frame: it must be whole within
//! `NET_FRAME_TIMEOUT` plus its size at `NET_MIN_RATE` (a byte now and then does not keep
//! it open), what it buffers counts against `NET_PEER_MEMORY`, and its function must end
//! within `NET_TIMEOUT`. While it is read, its connection slot may be taken back for a
//! newcomer when the peer is full.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::info::app_net_info;
use super::json::{self, ObjectEnd, Parsed, Request};
use super::{CONNECTIONS_TAG, INFO_TAG, NULL_TAG, PASS_THROUGH_TAG};
use crate::config::Limits;
use crate::link::Budget;
use crate::peer::Peer;
use crate::serve::{self, Args, Caller, Registry, INVALID_CONNECTION, NULL};
use crate::wire::WireOutcome;

/// How much to read at a time.
const READ_CHUNK: usize = 64 * 1024;

/// After refusing an oversized request, how long to keep reading (and discarding) so that
/// the client, still sending, receives the error instead of a reset.
const DRAIN: Duration = Duration::from_secs(2);

/// How reading a request ended.
enum Read {
    /// The complete JSON value.
    Request(Vec<u8>),
    /// More than the limit arrived without the value ending (bytes seen).
    TooLarge(usize),
    /// The request did not keep up the minimum rate (bytes seen, time taken).
    Slow(usize, Duration),
    /// The peer's memory budget had no room for more of it within its time (bytes seen).
    Busy(usize),
    /// The client closed or failed before the value ended (bytes seen).
    Gone(usize),
}

/// Serves one app-net request on `stream` and closes it.
pub(crate) async fn serve<S>(mut stream: S, from: SocketAddr, peer: Peer)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = peer.config().max_frame;
    let limits = peer.config().limits.clone();
    let shutdown = peer.shutdown_token().clone();
    // What the request buffers, taken from the peer's budget and given back at the end.
    let mut held = Held {
        budget: peer.guard().map(|g| g.budget.clone()),
        bytes: 0,
    };
    let read = tokio::select! {
        read = read_request(&mut stream, max, &limits, &mut held) => read,
        _ = shutdown.cancelled() => return,
    };
    serve::appnet_request(false);
    let mut drain = false;
    let reply = match read {
        Read::Request(bytes) => {
            // Cancelled by shutdown: a synchronous handler sees it through the Caller; an
            // async one is dropped with this future.
            let cancel = shutdown.child_token();
            let budget = peer.config().timeout;
            let run = tokio::time::timeout(budget, answer(&bytes, from, &peer, cancel.clone()));
            tokio::select! {
                reply = run => reply.unwrap_or_else(|_| {
                    cancel.cancel();
                    error_packet(&peer, "", "TimeoutError", &format!(
                        "the function did not finish within {budget:?} (NET_TIMEOUT of this peer)"
                    ))
                }),
                _ = shutdown.cancelled() => error_packet(&peer, "", "RuntimeError", "the peer shut down before the function finished"),
            }
        }
        Read::TooLarge(size) => {
            tracing::warn!(%from, size, max, "app-net request over NET_MAX_FRAME refused");
            drain = true;
            error_packet(
                &peer,
                "",
                "ValueError",
                &format!(
                    "the request is over {max} bytes ({size} so far), the NET_MAX_FRAME limit of \
                     this peer; send less or raise NET_MAX_FRAME where this peer runs"
                ),
            )
        }
        Read::Slow(size, took) => {
            tracing::debug!(%from, size, "app-net client too slow with its request");
            error_packet(
                &peer,
                "",
                "TimeoutError",
                &format!(
                    "no complete JSON request after {size} bytes in {took:.1?}: a request must \
                     arrive within {:?} (NET_FRAME_TIMEOUT) plus its size at {} bytes/s \
                     (NET_MIN_RATE), without a pause that long; send one JSON object {{\"connection\": TAG, \"args\": \
                     [...], \"kwargs\": {{...}}}} and wait for the reply",
                    limits.frame_timeout, limits.min_rate
                ),
            )
        }
        Read::Busy(size) => {
            tracing::warn!(%from, size, "app-net request held back by the memory budget");
            error_packet(
                &peer,
                "",
                "MemoryError",
                &format!(
                    "this peer's memory budget (NET_PEER_MEMORY) has no room for the rest of \
                     the request after {size} bytes; try again later"
                ),
            )
        }
        Read::Gone(size) => {
            tracing::debug!(%from, size, "app-net client left before its request was complete");
            return;
        }
    };
    let write = async {
        stream.write_all(&reply).await?;
        stream.flush().await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(peer.config().timeout, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%from, error = %e, "app-net client left before the reply"),
        Err(_) => tracing::debug!(%from, "app-net client did not read its reply in time"),
    }
    if drain {
        let mut sink = [0u8; 8192];
        let discard = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(DRAIN, discard).await;
    }
}

/// Reads until one JSON value is complete, at most `max` bytes, within the grace of
/// `NET_FRAME_TIMEOUT` plus its bytes so far at `NET_MIN_RATE` and with no silence as
/// long as the grace, taking what it buffers from the peer's budget into `held`.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    max: usize,
    limits: &Limits,
    held: &mut Held,
) -> Read {
    let started = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut end = ObjectEnd::default();
    loop {
        if let Some(len) = end.feed(&buf) {
            if len > max {
                return Read::TooLarge(len);
            }
            // Bytes after the value are not part of the request (app-net sends none).
            buf.truncate(len);
            return Read::Request(buf);
        }
        if buf.len() > max {
            return Read::TooLarge(buf.len());
        }
        let rate = Duration::from_secs_f64(buf.len() as f64 / limits.min_rate.max(1) as f64);
        let deadline = started + limits.frame_timeout + rate;
        if !held.cover(buf.len() + READ_CHUNK, deadline).await {
            return Read::Busy(buf.len());
        }
        buf.reserve(READ_CHUNK);
        // Nor may it stall for a whole grace, however far ahead of the rate it is.
        let deadline = deadline.min(Instant::now() + limits.frame_timeout);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Read::Slow(buf.len(), started.elapsed()),
            Ok(Ok(0)) | Ok(Err(_)) => return Read::Gone(buf.len()),
            Ok(Ok(_)) => serve::appnet_request(true),
        }
    }
}

/// What one request holds of the peer's memory budget, given back when dropped.
struct Held {
    budget: Option<Arc<Budget>>,
    bytes: usize,
}

impl Held {
    /// Holds at least `bytes`, waiting until `deadline` for room; false if there was none.
    async fn cover(&mut self, bytes: usize, deadline: Instant) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if bytes <= self.bytes {
            return true;
        }
        let more = bytes - self.bytes;
        let reserved = tokio::time::timeout_at(deadline, budget.reserve(more)).await;
        if reserved.is_ok() {
            self.bytes = bytes;
        }
        reserved.is_ok()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let (Some(budget), true) = (&self.budget, self.bytes > 0) {
            budget.release(self.bytes);
        }
    }
}

/// Runs a request and encodes the reply in app-net's shapes: the value's JSON, the error
/// packet, or a bare flag.
async fn answer(bytes: &[u8], from: SocketAddr, peer: &Peer, cancel: CancellationToken) -> Vec<u8> {
    let request = match json::parse_request(bytes) {
        Ok(Parsed::Call(request)) => request,
        // app-net answers an empty request with its bare NULL flag.
        Ok(Parsed::Empty) => return NULL.as_bytes().to_vec(),
        Err(message) => return error_packet(peer, "", "ValueError", &message),
    };
    let registry = match Registry::get() {
        Ok(registry) => registry,
        Err(e) => return error_packet(peer, &request.tag, "RuntimeError", &e.to_string()),
    };
    // Registered functions first, so a program can take over an app-net tag.
    if let Some(entry) = registry.lookup(&request.tag) {
        let named = app_net_kwargs(request.kwargs, entry.params);
        let args = Args::owned(request.args, Some(named), Vec::new());
        let caller = Caller::app_net(from, peer.host(), cancel);
        let outcome = serve::run(entry, args, caller).await;
        return encode_outcome(outcome, peer, &request.tag);
    }
    match builtin(&request, peer) {
        Some(reply) => reply,
        // app-net answers an unknown tag with its bare INVALID_CONNECTION flag.
        None => INVALID_CONNECTION.as_bytes().to_vec(),
    }
}

/// Drops what app-net adds to every call's keyword arguments: `peer`, the address of the
/// peer being called (app-net forwards it to the function), and `time_out`, its client's
/// socket timeout (sent by its discovery), unless the function has a parameter so named.
fn app_net_kwargs(mut kwargs: Map<String, Value>, params: &[&str]) -> Map<String, Value> {
    kwargs.remove("peer");
    if !params.contains(&"time_out") {
        kwargs.remove("time_out");
    }
    kwargs
}

/// app-net's built-ins, answered as app-net answers them.
fn builtin(request: &Request, peer: &Peer) -> Option<Vec<u8>> {
    match request.tag.as_str() {
        INFO_TAG => Some(app_net_info(peer)),
        // app-net returns its one argument, or `(args, kwargs)`.
        PASS_THROUGH_TAG => {
            let args: Vec<Value> = match serde_json::from_str(request.args.get()) {
                Ok(args) => args,
                Err(e) => {
                    return Some(error_packet(
                        peer,
                        &request.tag,
                        "ValueError",
                        &e.to_string(),
                    ))
                }
            };
            let kwargs = app_net_kwargs(request.kwargs.clone(), &[]);
            Some(match <[Value; 1]>::try_from(args) {
                Ok([one]) => json::to_ascii_json(&one),
                Err(args) => json::to_ascii_json(&(args, kwargs)),
            })
        }
        // app-net's `null` returns the flag's name as a JSON string.
        NULL_TAG => Some(json::to_ascii_json(NULL)),
        CONNECTIONS_TAG => {
            let tags = Registry::get().map(|r| r.tags()).unwrap_or_default();
            let listing: Vec<String> = tags
                .iter()
                .map(|(tag, path)| format!("{tag}\n\t\t{path}"))
                .collect();
            let text = format!(
                "Connections on {}:\n\t{}",
                peer.addr(),
                listing.join("\n\n\t")
            );
            Some(json::to_ascii_json(&text))
        }
        _ => None,
    }
}

/// A function's outcome in app-net's shapes. Flags travel as JSON strings, as an app-net
/// function returns a flag's name; failures as the error packet, whose traceback ends with
/// a Python-style `Kind: message` line.
fn encode_outcome(outcome: WireOutcome, peer: &Peer, tag: &str) -> Vec<u8> {
    match outcome {
        WireOutcome::Ok(payload) => json::ascii(&String::from_utf8_lossy(&payload.inline_json()))
            .into_owned()
            .into_bytes(),
        WireOutcome::Flag { name, .. } => json::to_ascii_json(&name),
        WireOutcome::Raised(payload) => error_packet(
            peer,
            tag,
            "Exception",
            &format!("the function returned an error: {}", payload.text()),
        ),
        WireOutcome::Panic { message, location } => error_packet(
            peer,
            tag,
            "RuntimeError",
            &format!("{message} (at {location})"),
        ),
        WireOutcome::BadArgs { message } => error_packet(peer, tag, "TypeError", &message),
    }
}

/// Answers one app-net request with the error that app-net is not served here (a peer with
/// a shared secret), and closes; the request itself is not read past its first bytes.
pub(crate) async fn refuse<S>(mut stream: S, from: SocketAddr, peer: Peer)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tracing::warn!(%from, "refused an app-net request: this peer has a shared secret");
    let message = if peer.is_secured() {
        "this peer requires a shared secret (NET_SECRET), and app-net's requests cannot carry \
         one; call it from a net peer with the secret, or set NET_APPNET=allow on it to serve \
         app-net in plain text"
    } else {
        "this peer does not serve app-net requests (NET_APPNET=deny)"
    };
    let packet = error_packet(&peer, "", "PermissionError", message);
    // The refusal is small: a client that does not take it within the grace of a frame
    // is not waited for.
    let grace = peer.config().limits.frame_timeout;
    let _ = tokio::time::timeout(grace, stream.write_all(&packet)).await;
    let _ = stream.shutdown().await;
}

/// app-net's error packet, `{"payload": "error", "traceback": "..."}`. app-net's client
/// raises `Exception("RemoteError\n" + traceback)` from it.
fn error_packet(peer: &Peer, tag: &str, kind: &str, message: &str) -> Vec<u8> {
    let what = if tag.is_empty() {
        "the request".to_owned()
    } else {
        format!("connection {tag:?}")
    };
    let traceback = format!(
        "Traceback (most recent call last):\n  net (Rust) peer {}, {what}\n{kind}: {message}\n",
        peer.addr()
    );
    json::to_ascii_json(&serde_json::json!({"payload": "error", "traceback": traceback}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_nets_own_keywords_are_dropped() {
        let kwargs: Map<String, Value> =
            serde_json::from_str(r#"{"peer": ["127.0.0.1", 3010], "time_out": 0.1, "b": 2}"#)
                .unwrap();
        let kept = app_net_kwargs(kwargs.clone(), &["a", "b"]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["b"]);
        let kept = app_net_kwargs(kwargs, &["time_out"]);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["b", "time_out"]);
    }

    /// A request that stalls half-way gets app-net's error packet after the idle limit,
    /// and one over the size limit gets it at once. Time is paused: the idle limit passes
    /// without waiting.
    #[tokio::test(start_paused = true)]
    async fn stalled_and_oversized_requests() {
        let peer = Peer::start(
            crate::Config::default()
                .loopback(true)
                .port(0)
                .max_frame(1024),
        )
        .await
        .unwrap();
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();

        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve(server, from, peer.clone()));
        client
            .write_all(br#"{"connection": "x", "args": ["#)
            .await
            .unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        task.await.unwrap();
        assert!(reply.contains(r#""payload":"error""#), "{reply}");
        assert!(
            reply.contains("TimeoutError: no complete JSON request"),
            "{reply}"
        );

        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve(server, from, peer.clone()));
        let big = format!(r#"{{"connection": "x", "args": ["{}"]}}"#, "a".repeat(2000));
        client.write_all(big.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; 4096];
        let n = client.read(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        drop(client);
        task.await.unwrap();
        assert!(
            reply.contains("ValueError: the request is over 1024 bytes"),
            "{reply}"
        );
        peer.shutdown().await;
    }
}
