//! The built-ins through which subscribers register with a publishing peer:
//! `subscription_handler` and `unsubscription_handler` with app-net's four arguments, and
//! the former under the tag Python app-net peers call it by.

use crate::serve::Caller;

/// Records the caller as a subscriber of `event` on this peer: events published here under
/// that name are delivered to the function tagged `connection` on the peer at
/// `host:port`. app-net's four arguments, so that app-net peers can subscribe too; peers
/// running `net` call it for each `#[net::subscribe]` function.
#[crate::connect("subscription_handler")]
pub fn subscription_handler(
    event: String,
    host: String,
    port: u16,
    connection: String,
    caller: Caller,
) -> Result<(), String> {
    register(&event, &host, port, &connection, &caller)
}

/// Withdraws what `subscription_handler` recorded; a subscription that was not there is
/// no error.
#[crate::connect("unsubscription_handler")]
pub fn unsubscription_handler(
    event: String,
    host: String,
    port: u16,
    connection: String,
    caller: Caller,
) -> Result<(), String> {
    let peer = caller.serving_peer().map_err(|e| e.to_string())?;
    super::unregister_subscriber(&peer, &event, &host, port, &connection, &caller)
}

/// `subscription_handler` under the tag Python app-net peers call it by (app-net tags its
/// built-ins `net.defaults.handlers.NAME`): a Python `@net.subscribe` registers with a
/// `net` peer through it, and the events reach the Python function in app-net's format.
#[crate::connect("net.defaults.handlers.subscription_handler")]
#[allow(dead_code)] // called by tag from Python, never through this function
pub(crate) fn app_net_subscription_handler(
    event: String,
    host: String,
    port: u16,
    connection: String,
    caller: Caller,
) -> Result<(), String> {
    register(&event, &host, port, &connection, &caller)
}

fn register(
    event: &str,
    host: &str,
    port: u16,
    connection: &str,
    caller: &Caller,
) -> Result<(), String> {
    let peer = caller.serving_peer().map_err(|e| e.to_string())?;
    super::register_subscriber(&peer, event, host, port, connection, caller)
}
