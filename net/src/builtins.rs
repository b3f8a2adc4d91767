//! The built-in functions every peer serves (app-net's defaults): `info`,
//! `pass_through`, `null`, `connections`. They are ordinary `#[net::connect]` functions,
//! callable like any other: `net::info().on(&peer).await?`. The built-ins of a service
//! live with it (`known_peers` in discovery, the subscription handlers in events).

use std::collections::BTreeMap;

use crate::serve::{self, Caller, Entry, Flag, Registry, NULL};
use crate::wire::Info;

/// The built-ins' registry entries, named so that the composition root can check that
/// the linker kept them.
pub(crate) static ALL: [&Entry; 4] = [
    &__NET_ENTRY_info,
    &__NET_ENTRY_pass_through,
    &__NET_ENTRY_null,
    &__NET_ENTRY_connections,
];

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
    let peer = match caller.serving_peer() {
        Ok(peer) => peer,
        // Reported to the caller as a remote error with this message.
        Err(e) => panic!("no local peer to describe: {e}"),
    };
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
        flags: serve::flag_names(),
        events: serve::event_names(),
        version: crate::config::VERSION.to_owned(),
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
