//! Turn ordinary functions into functions any process on the LAN can call.
//!
//! ```
//! #[net::connect]
//! fn multiply(a: i64, b: i64) -> i64 {
//!     a * b
//! }
//!
//! # #[tokio::main] async fn main() -> net::Result<()> {
//! // In-process, through the same registry entry a remote call uses:
//! assert_eq!(multiply(5, 10).local()?, 50);
//!
//! // On another peer (here one started in this process; normally another program):
//! let other = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
//! let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
//! assert_eq!(multiply(5, 10).on(&other).via(&me).await?, 50);
//! # Ok(()) }
//! ```
//!
//! # The tour
//!
//! - `#[net::connect]` registers a function at link time under a tag: base64 of its module
//!   path and name, or a custom tag (`#[net::connect("MyTag")]`) that survives renames.
//!   Arguments and results are serde types; `Result<T, E>` crosses the wire and the caller
//!   gets its typed `E` back.
//! - `f(args)` returns a [`Call`]: `.local()` runs it here, `.on(target)` returns a
//!   [`RemoteCall`] to `.await` (default timeout `NET_TIMEOUT`), give a `.timeout(d)`,
//!   block on with `.wait()` from synchronous code, hand callbacks with `.then(ok, err)`,
//!   or send `.oneway()`.
//! - A handler may take a [`Caller`] parameter to learn who called and call back over the
//!   same connection.
//! - Every peer serves the built-ins [`info`], [`pass_through`], [`null`] and
//!   [`connections`]; `#[net::flag("NAME")]` handles named responses.
//! - [`peers()`] finds the other peers (on-host port scan, mDNS, `NET_PEERS` seeds with
//!   peer exchange; the ARP-neighbour scan when asked for) and caches them; filter with
//!   `.group(g)`, `.hubs_only()`, `.on_host()`, re-discover with `.refresh()`, and use a
//!   [`PeerInfo`] as a call target. [`membership()`] streams joins and departures;
//!   [`Peers::report`] says which paths ran and why nothing was found.
//! - The process-wide peer starts on first use from the `NET_*` variables ([`Config`]);
//!   [`Peer::start`] starts more. `NET_LOOPBACK=1` confines a peer to this machine: bound
//!   to 127.0.0.1, no mDNS, no neighbour probes, nothing probed beyond loopback.
//!
//! # Layout
//!
//! `call` (the calling side) → `conn` (one TCP stream, many calls in flight both ways) →
//! `wire` (frames, codec, handshake) → `server` (bind, accept) → `dispatch` (registry
//! lookup, handler run, panics caught) → `registry` (link-time collection). The wire format
//! is in `docs/PROTOCOL.md`. `discovery/` finds peers and keeps the membership table.
#![deny(missing_docs)]

// Lets the built-ins use `#[net::connect]`, whose expansion names `::net`.
extern crate self as net;

mod builtins;
mod call;
mod caller;
mod config;
mod conn;
mod discovery;
mod dispatch;
mod error;
mod flags;
mod id;
mod legacy;
mod logging;
mod outcome;
mod panic;
mod peer;
mod registry;
mod server;
mod target;
mod wire;

#[doc(hidden)]
pub mod __private;

pub use builtins::{connections, info, null, pass_through, Info};
pub use builtins::{known_peers, KnownPeer};
pub use call::{call_tag, ByTag, Call, RemoteCall};
pub use caller::Caller;
pub use config::{Config, DEFAULT_MDNS_SERVICE, DEFAULT_PORT};
pub use discovery::{
    membership, peer_group, peers, Discovery, DiscoveryPaths, Membership, PathReport, PeerInfo,
    Peers, Report,
};
pub use error::{Error, Result};
pub use flags::{Flag, FlagEvent, INVALID_CONNECTION, NULL};
pub use id::PeerId;
pub use legacy::AppNetInfo;
pub use peer::{local_peer, start, start_on, Peer};
pub use target::Target;

/// Registers a function so that peers can call it.
///
/// ```
/// #[net::connect]                     // tag: base64 of its module path and name
/// fn multiply(a: i64, b: i64) -> i64 { a * b }
///
/// #[net::connect("MyTaggedFunction")] // also answers to this tag, whatever its name
/// async fn lookup(key: String) -> Result<String, String> { Err(key) }
///
/// #[net::connect(oneway)]             // callers never wait for a reply
/// fn log_line(line: String) { eprintln!("{line}"); }
///
/// assert_eq!(multiply(6, 7).local().unwrap(), 42);
/// ```
///
/// The function's name then returns a [`Call`] instead of running: `multiply(6, 7)` has
/// the type `Call<i64>`. Arguments and the return value must be owned serde types; a
/// parameter of type [`Caller`] is filled in by the peer and is not part of the call.
/// `self`, generics, borrowed arguments and patterns are compile errors pointing at the
/// offending part.
///
/// Inside the function's own body its name means the plain function (so recursion works);
/// to call it on another peer from there, write `self::name(args).on(peer)`.
pub use net_macros::connect;

/// Registers a handler that runs on the calling side when a call's response is the named
/// flag.
///
/// ```
/// #[net::flag("BUSY")]
/// fn on_busy(event: &net::FlagEvent) {
///     eprintln!("{} is busy ({})", event.peer, event.tag);
/// }
/// ```
pub use net_macros::flag;

/// This crate's version, as `info` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
