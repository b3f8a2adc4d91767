//! The integration tests, in one binary: one module per area, sharing `support`.
//!
//! Every module's `#[net::connect]`, `#[net::flag]`, `#[net::event]` and `#[net::subscribe]`
//! lands in this one program's registry, so the modules keep three rules:
//!
//! - Every remote call, publication and query names the peer it goes through
//!   (`.via(&peer)`, `peer.peers()`), or calls back over a `Caller`. The process-wide default
//!   peer never starts here: it would subscribe to the peers it finds with every handler of
//!   every module, and a running default peer changes what `.local()` calls see. Tests
//!   that need it live in tests/default_peer.rs.
//! - Custom tags are unique across modules (a duplicate tag fails every peer's start;
//!   tests/duplicate_tag.rs shows that on its own), and so are the events modules subscribe
//!   to. Two modules may publish one event name to subscribers outside this process
//!   (events_appnet and events_processes both publish `line`).
//! - A test that checks a list the registry makes (functions, flags, events, the events a
//!   subscriber registers) checks its own entries, not the whole list, which holds every
//!   module's.

mod support;

mod appnet;
mod binary;
mod calls;
mod cli;
mod discovery;
mod discovery_events;
mod events;
mod events_appnet;
mod events_macros;
mod events_processes;
mod hostile;
mod lan;
mod layering;
mod macros_hygiene;
mod newcomer;
mod pairing;
mod peers_examples;
mod processes;
mod protocol_client;
mod secure;
mod secure_wire;
mod table;
mod wire_abuse;
