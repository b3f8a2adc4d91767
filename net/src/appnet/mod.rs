//! app-net 0.6 compatibility: Python app-net peers and ours call each other
//! (docs/APPNET.md).
//!
//! app-net opens one TCP connection per request, sends one JSON object
//! `{"connection": TAG, "args": [...], "kwargs": {...}}` with no length prefix or
//! delimiter, reads one reply and closes. The server (server.rs) tells such a connection
//! from ours by its first byte, `{`, which never starts one of our frames; it reads until
//! the JSON value is complete (json.rs), runs the function through the registry and
//! answers in app-net's shapes. The client (client.rs) sends calls in that format when
//! `.on()` is given a [`Target::app_net`](crate::Target::app_net), through the route in
//! route.rs. info.rs holds the `info` dict app-net's discovery reads.

mod client;
#[cfg(test)]
mod fuzz;
mod info;
mod json;
mod route;
mod server;

pub(crate) use client::call;

/// Asks `addr` for app-net's `info` in app-net's own format; `Some` when a Python app-net
/// peer answers there (discovery's fallback when the framed hello gets no answer).
pub(crate) async fn probe_info(
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> Option<crate::wire::Info> {
    let args = serde_json::value::RawValue::from_string("[]".into()).ok()?;
    let outcome = client::call(addr, INFO_TAG, &args, None, timeout, 64 * 1024, false)
        .await
        .ok()??;
    let crate::wire::WireOutcome::Ok(payload) = outcome else {
        return None;
    };
    let reply: serde_json::Value = payload.decode().ok()?;
    Some(AppNetInfo::recognise(&reply)?.as_info(addr))
}
pub use info::AppNetInfo;

use crate::peer::Peer;

/// Serves app-net requests on `peer`'s port: they are the connections whose first byte is
/// `{`, which never starts one of our frames (a frame's length is at most 1 GiB, so its
/// first byte is at most 0x40).
///
/// app-net's requests cannot be encrypted: a peer with a shared secret refuses them, with
/// an app-net error saying why, unless NET_APPNET=allow says otherwise.
pub(crate) fn start(peer: &Peer) {
    if peer.config().app_net.serves(peer.is_secured()) {
        peer.claim(b'{', |peer, stream, from| server::serve(stream, from, peer));
    } else {
        peer.claim(b'{', |peer, stream, from| {
            server::refuse(stream, from, peer)
        });
    }
}

/// app-net 0.6 reads one `recv(1024)` of a request (server) and of a reply (client) and
/// never more: a longer message arrives cut and fails to parse on the Python side.
pub(crate) const PYTHON_READ_LIMIT: usize = 1024;

/// The tags of app-net's built-in functions: `net.defaults.handlers` + the name, as app-net
/// tags every function without a custom tag by `module.name`.
pub(crate) const INFO_TAG: &str = "net.defaults.handlers.info";
const PASS_THROUGH_TAG: &str = "net.defaults.handlers.pass_through";
const NULL_TAG: &str = "net.defaults.handlers.null";
const CONNECTIONS_TAG: &str = "net.defaults.handlers.connections";

/// The app-net built-ins our peer answers in app-net's way (server.rs), listed in our
/// app-net `info` so that Python peers see them.
pub(crate) const APP_NET_BUILTINS: [&str; 4] =
    [CONNECTIONS_TAG, INFO_TAG, NULL_TAG, PASS_THROUGH_TAG];

/// The events built-ins Python peers call by name (`peer.subscription_handler(...)`,
/// events/handlers.rs registers them): listed in our app-net `info` before the program's
/// own tags, which a program with many functions would otherwise cut them behind.
pub(crate) const APP_NET_EVENT_TAGS: [&str; 3] = [
    SUBSCRIPTION_TAG,
    UNSUBSCRIPTION_TAG,
    APP_NET_SUBSCRIPTION_TAG,
];

/// The tag a subscriber registers with (`subscription_handler`, app-net's name for it).
pub(crate) const SUBSCRIPTION_TAG: &str = "subscription_handler";
/// The tag a subscriber withdraws with.
pub(crate) const UNSUBSCRIPTION_TAG: &str = "unsubscription_handler";
/// The tag Python app-net peers serve `subscription_handler` under.
pub(crate) const APP_NET_SUBSCRIPTION_TAG: &str = "net.defaults.handlers.subscription_handler";
