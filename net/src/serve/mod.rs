//! The serving layer: the registry of this program's functions, and the one place where a
//! call becomes a handler run and a reply (sync handlers on the handler threads, async
//! ones on tasks, budgets, panics caught), for links ([`Server`]) and for local calls
//! alike; plus the listener and its accept loop.
//!
//! | file | owns |
//! | --- | --- |
//! | `registry.rs` | the link-time registry: entries, tags, flags, events, subscriptions |
//! | `inbound.rs` | [`Server`]: a link's inbound call to a handler run and its reply |
//! | `run.rs` | running an entry for any caller; turning what it did into an outcome |
//! | `speed.rs` | how long each function takes, so whether it runs inline or on a thread |
//! | `inline.rs` | running a quick synchronous function on the reader, under a watch |
//! | `pool.rs` | the handler threads for the other synchronous functions |
//! | `caller.rs` | `net::Caller`, what a handler learns of who called |
//! | `state.rs` | `net::State<T>`, the shared state a handler takes |
//! | `outcome.rs`, `flags.rs`, `panic.rs` | what a run produced; named responses; caught panics |
//! | `listen.rs` | binding the port range, the accept loop with its connection limit |
//! | `slots.rs` | the connection slots, what each connection does with its own, reclaiming idle ones |

mod caller;
mod flags;
mod inbound;
mod inline;
mod listen;
mod outcome;
mod panic;
mod pool;
mod registry;
mod run;
mod slots;
mod speed;
mod state;

use std::any::Any;
use std::sync::Arc;

pub use caller::Caller;
pub use flags::{Flag, FlagEvent, INVALID_CONNECTION, NULL};
pub use outcome::Outcome;
pub use registry::{
    Args, BoxFuture, Entry, EventDecl, FlagHandler, Handler, Subscription, ENTRIES, EVENTS, FLAGS,
    SUBSCRIPTIONS,
};
pub use state::State;

pub(crate) use flags::dispatch as dispatch_flag;
pub(crate) use inbound::Server;
pub(crate) use listen::{accept_loop, bind};
pub(crate) use registry::{event_names, flag_names, Registry};
pub(crate) use run::{blocking, run, run_here, run_inline};
pub(crate) use slots::{request as appnet_request, Slots};

/// The peer a call is served for, erased: this layer is below the peer's, which attaches
/// `Caller::server` from above and is the only one to look inside.
pub(crate) type Host = Arc<dyn Any + Send + Sync>;
