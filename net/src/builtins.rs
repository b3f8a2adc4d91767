//! The built-in functions every peer serves (app-net's defaults): `info`,
//! `pass_through`, `null`, `connections`, and `subscription_handler` /
//! `unsubscription_handler` for events. They are ordinary `#[net::connect]` functions,
//! callable like any other: `net::info().on(&peer).await?`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::caller::Caller;
use crate::flags::{Flag, NULL};
use crate::id::PeerId;
use crate::peer::{self, Peer};
use crate::registry::{self, Connection, Registry};

/// The built-ins' registry entries, named so that they are linked whatever the linker
/// does with the distributed slice of a dependency.
pub(crate) static ALL: [&Connection; 8] = [
    &__NET_CONNECTION_info,
    &__NET_CONNECTION_pass_through,
    &__NET_CONNECTION_null,
    &__NET_CONNECTION_connections,
    &__NET_CONNECTION_known_peers,
    &__NET_CONNECTION_subscription_handler,
    &__NET_CONNECTION_unsubscription_handler,
    &__NET_CONNECTION_app_net_subscription_handler,
];

/// Every built-in: [`ALL`] and those of other modules.
pub(crate) fn all() -> impl Iterator<Item = &'static Connection> {
    ALL.iter().copied().chain(crate::events::builtins())
}

/// What `info` says about a peer: app-net's `friendly_id` fields, plus the protocol and
/// crate versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Info {
    /// The peer's id.
    pub id: PeerId,
    /// The host it advertises.
    pub host: String,
    /// The port it serves.
    pub port: u16,
    /// The user running it.
    pub user: String,
    /// The program running it.
    pub executable: String,
    /// Its group.
    pub group: Option<String>,
    /// Whether it is a hub.
    pub hub: bool,
    /// The tags of its functions, sorted.
    pub connections: Vec<String>,
    /// The events other peers have subscribed to on it, sorted (app-net's meaning: the
    /// keys of its subscriber table).
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// The flags it handles, sorted.
    pub flags: Vec<String>,
    /// The events its `#[net::event]` functions publish, sorted.
    #[serde(default)]
    pub events: Vec<String>,
    /// The `net` crate version.
    pub version: String,
    /// The wire protocol version.
    pub protocol: u32,
}

fn serving_peer(caller: &Caller) -> Peer {
    match caller
        .server()
        .cloned()
        .map(Ok)
        .unwrap_or_else(peer::local_peer)
    {
        Ok(peer) => peer,
        // Reported to the caller as a remote error with this message.
        Err(e) => panic!("no local peer to describe: {e}"),
    }
}

/// The user running this program: `USER` or `LOGNAME` when set, else the name of this
/// process's uid in /etc/passwd (services and containers often have neither variable).
fn current_user() -> String {
    if let Some(name) = ["USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
    {
        return name;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) {
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let name = passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2) == Some(&uid.to_string().as_str())).then(|| fields[0].to_owned())
            });
            return name.unwrap_or_else(|| format!("uid {uid}"));
        }
    }
    String::new()
}

/// Describes the peer: id, address, user, program, group, hub, functions, flags.
#[crate::connect("info")]
pub fn info(caller: Caller) -> Info {
    let peer = serving_peer(&caller);
    let tags = Registry::get().map(|r| r.tags()).unwrap_or_default();
    Info {
        id: peer.id().clone(),
        host: peer.id().host().to_string(),
        port: peer.addr().port(),
        user: current_user(),
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        group: peer.group().map(str::to_owned),
        hub: peer.is_hub(),
        connections: tags.into_keys().collect(),
        subscriptions: crate::events::subscribed_events(&peer),
        flags: registry::flag_names(),
        events: registry::event_names(),
        version: crate::VERSION.to_owned(),
        protocol: crate::wire::PROTOCOL_VERSION,
    }
}

/// Returns its argument unchanged: for testing what survives the trip.
#[crate::connect("pass_through")]
pub fn pass_through(value: serde_json::Value) -> serde_json::Value {
    value
}

/// Answers with the `NULL` flag: a call of it returns `()` (or `None`).
#[crate::connect("null")]
pub fn null() -> Result<(), Flag> {
    Err(Flag::new(NULL))
}

/// The peer's functions: every tag with the path of the function behind it.
#[crate::connect("connections")]
pub fn connections() -> BTreeMap<String, String> {
    Registry::get().map(|r| r.tags()).unwrap_or_default()
}

pub use crate::discovery::KnownPeer;

/// The peers this peer knows (its discovery table), for peer exchange: a peer joining
/// through a seed (`NET_PEERS`) asks it, and then asks the peers it learns of. The asker,
/// if new, is probed and added to this peer's table.
#[crate::connect("known_peers")]
pub async fn known_peers(caller: Caller) -> Vec<KnownPeer> {
    let peer = serving_peer(&caller);
    crate::discovery::answer_known_peers(&peer, &caller).await
}

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
    subscription_handler_run(&event, &host, port, &connection, &caller)
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
    let peer = serving_peer(&caller);
    crate::events::unregister_subscriber(&peer, &event, &host, port, &connection, &caller)
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
    subscription_handler_run(&event, &host, port, &connection, &caller)
}

fn subscription_handler_run(
    event: &str,
    host: &str,
    port: u16,
    connection: &str,
    caller: &Caller,
) -> Result<(), String> {
    let peer = serving_peer(caller);
    crate::events::register_subscriber(&peer, event, host, port, connection, caller)
}
