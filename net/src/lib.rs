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
//! - `#[net::event("name")]` functions publish what they return to the peers whose
//!   `#[net::subscribe("name")]` functions registered with the publishing peer; reports
//!   say who got it ([`DeliveryReport`]). `f(x).broadcast(peers)` runs one call on many
//!   peers ([`Broadcast`]).
//! - [`Table`] is a dict shared by the peers of a group that joined it (py2p's chord
//!   table): each key on `NET_TABLE_REPLICAS` members, majority reads and writes with
//!   repair, surviving members that leave, die or restart; [`Error::NoQuorum`] when a
//!   majority of a key's replicas cannot be reached.
//! - The process-wide peer starts on first use from the `NET_*` variables ([`Config`]);
//!   [`Peer::start`] starts more. Started by itself, by a program that only calls, it is
//!   a client ([`local_peer`] has the rule). `NET_LOOPBACK=1` confines a peer to this
//!   machine: bound to 127.0.0.1, no mDNS, no neighbour probes, nothing probed beyond
//!   loopback.
//! - A handler takes shared state as a [`State<T>`] parameter, given to the peer when it
//!   starts (`net::start(config.state(value))`); [`Peers::serving`] finds the peers that
//!   serve a function.
//!
//! # Two programs and a library crate
//!
//! Functions that several programs share live in a library crate of their own; the
//! program that serves them names that crate, and the programs that call them call them
//! through it:
//!
//! ```text
//! my-app/Cargo.toml           [workspace] members = ["shared", "server", "client"]
//! my-app/shared/src/lib.rs    #[net::connect] pub fn add(a: i64, b: i64) -> i64 { a + b }
//! my-app/server/src/main.rs   use shared as _;   // links shared's functions in
//!                             fn main() -> net::Result<()> {
//!                                 let peer = net::start(net::Config::from_env()?)?;
//!                                 println!("serving on {}", peer.addr());
//!                                 loop { std::thread::park(); }
//!                             }
//! my-app/client/src/main.rs   fn main() -> net::Result<()> {
//!                                 let server = &net::peers().serving("shared::add").wait()?[0];
//!                                 println!("{}", shared::add(2, 3).on(server).wait()?);
//!                                 Ok(())
//!                             }
//! ```
//!
//! - **`use shared as _;` in the server.** Functions register at link time, and a
//!   binary that names nothing of a library crate does not link it at all: its
//!   `#[net::connect]` functions are then silently missing. A peer that serves none of
//!   its program's own functions warns about it at start, and a call of a function
//!   whose crate the serving program lacks says which `use` line to add.
//! - **One path on both sides.** A function's default tag is its path
//!   (`shared::add`), so caller and server must reach it through the same crate; or give
//!   it a custom tag (`#[net::connect("shared.add")]`), which survives moves.
//! - **The client stays a client.** It never calls `net::start`, so its peer starts by
//!   itself on the first call and takes no port of the range (see [`local_peer`]).
//! - Each side depends on `net`, and on `serde` (with `derive`) for its own argument
//!   types; async programs add `tokio`. [`serde_json`] comes re-exported for calls by tag.
//!
//! # Layout
//!
//! The crate is built in layers, lowest first; a module imports only from its own layer or
//! below (the test suite checks it: `tests/it/layering.rs` reads this table). News travels
//! up over the peer's bus; a service's state is data the peer holds (by type), and its
//! behaviour attaches from above (`impl Peer` in the service's own files). The one
//! exception is the lazy start of the process-wide peer (`peer/default.rs`), which must
//! reach the composition root.
//!
//! | layer | modules | owns |
//! | --- | --- | --- |
//! | base | `error`, `config`, `id`, `sync`, `logging`, `addrs` | one [`Error`] (causes kept as sources), `NET_*` settings, peer ids, lock helper, log set-up, this host's addresses |
//! | wire | `wire`, `secure` | frames, the length-prefixed codec with its limit, the handshake, the hand-written fast frames, binary attachments, the `info` description; the secure handshake and encrypted stream of NET_SECRET |
//! | link | `link` | one multiplexed stream over any transport: request ids, pending calls, cancel, write scheduling, budgets; hands inbound calls to a trait |
//! | serve | `serve` | the registry, the one place a call becomes a handler run and a reply, the handler threads, [`Caller`], the listener |
//! | peer | `peer` | the [`Peer`] handle: config, id, runtime, tasks, the link pool (one link per pair of peers), the bus, the services' state, the default peer |
//! | call | `call` | [`Call`], [`RemoteCall`], [`Target`] and routes, the blocking bridge, [`Broadcast`] |
//! | services | `discovery`, `events`, `appnet`, `table` | finding peers, events and subscriptions, app-net compatibility, the replicated table |
//! | built-ins | `builtins` | `info`, `pass_through`, `null`, `connections` |
//! | root | `start`, `__private` | starting and stopping a peer in order; what the macros expand to |
//!
//! The wire format is in `docs/PROTOCOL.md`.
#![deny(missing_docs)]

// Lets the built-ins use `#[net::connect]`, whose expansion names `::net`.
extern crate self as net;

mod addrs;
mod appnet;
mod builtins;
mod call;
mod config;
mod discovery;
mod error;
mod events;
mod id;
mod link;
mod logging;
mod peer;
mod secure;
mod serve;
mod start;
mod sync;
mod table;
mod wire;

#[doc(hidden)]
pub mod __private;

/// serde_json, re-exported for what takes JSON values: [`call_tag`]'s arguments,
/// [`RemoteCall::kwargs`], [`Peer::watch`]'s payloads (`net::serde_json::json!`).
pub use serde_json;

pub use appnet::AppNetInfo;
pub use builtins::{connections, info, null, pass_through};
pub use call::{call_tag, Broadcast, ByTag, Call, Failure, RemoteCall, Target};
pub use config::{
    AppNetAccess, Config, Discovery, DiscoveryPaths, Limits, Secret, DEFAULT_MDNS_SERVICE,
    DEFAULT_PORT, DEFAULT_TABLE_REPLICAS, VERSION,
};
pub use discovery::{
    known_peers, membership, peer_group, peers, KnownPeer, Membership, PathReport, PeerInfo, Peers,
    Report,
};
pub use error::{
    Error, NoQuorum, QuorumOp, QuorumReplica, QuorumReply, Result, SecureFailure, TimeoutStep,
};
pub use events::{
    subscription_handler, unsubscription_handler, Delivering, Delivery, DeliveryReport,
    DeliveryStatus, Publish,
};
pub use id::{PeerId, TableKey};
pub use peer::{local_peer, Peer};
pub use serve::{Caller, Flag, FlagEvent, State, INVALID_CONNECTION, NULL};
pub use start::{start, start_with_runtime};
pub use table::{Table, TableMember, TableOp};
pub use wire::{Bytes, Info};

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

/// Makes a function publish an event: calling it runs the body, which shapes the payload,
/// and returns a [`Publish`] that delivers what the body returned to every subscriber of
/// the event on the publishing peer.
///
/// ```
/// #[net::event("line")]                 // one argument for the subscriber: the String
/// fn line(text: &str) -> String {
///     text.trim().to_owned()
/// }
///
/// #[net::event("moved")]                // a tuple is the subscriber's argument list
/// fn moved(x: i64, y: i64) -> (i64, i64) {
///     (x, y)
/// }
///
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// # let peer = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let report = line(" hello ").via(&peer).await?;   // delivered, failed, pruned per subscriber
/// moved(1, 2).via(&peer).spawn()?;                   // in the background
/// # Ok(()) }
/// ```
///
/// The body runs in the caller, so its arguments need not cross the wire (borrows and
/// generics are fine); the return type must be `serde::Serialize`. A subscriber's failure
/// is never an error of the publisher: it is logged and reported in the
/// [`DeliveryReport`]; an unreachable subscriber is pruned. Each subscriber receives one
/// peer's events in the order they were published.
pub use net_macros::event;

/// Makes a function an event handler: a started peer registers it with the peers that
/// publish the event, which then call it with each event's payload.
///
/// ```
/// #[net::subscribe("line")]
/// fn on_line(text: String) {
///     println!("{text}");
/// }
///
/// #[net::subscribe("moved", groups = ["render"], hubs_only)]
/// async fn on_moved(x: i64, y: i64) {
///     let _ = (x, y);
/// }
/// ```
///
/// Filters (app-net's): `groups = ["a", "b"]` only publishers in these groups (without it,
/// any group), `hubs_only`, `on_host` only publishers on this machine, `peers =
/// ["host:port", ...]` only these publishers; `tag = "..."` gives the handler a custom
/// tag. The function stays an ordinary `#[net::connect]` function. The process-wide peer
/// registers by itself with its seeds and with the peers discovery finds, and withdraws on
/// shutdown; any peer registers with a given publisher through [`Peer::subscribe_to`].
pub use net_macros::subscribe;
