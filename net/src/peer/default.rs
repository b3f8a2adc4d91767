//! The process-wide default peer (app-net's `net.Peer()` singleton) and the small runtime
//! it lives on when the program has none of its own.
//!
//! Its lazy start is the one place where this layer reaches above itself: a first remote
//! call from anywhere must start a whole peer, services included, and only the composition
//! root (`start.rs`) knows how. Every other start goes through the root directly.

use std::sync::{Mutex, MutexGuard, OnceLock};

use tokio::runtime::{Handle, Runtime};

use super::Peer;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::serve::{EVENTS, SUBSCRIPTIONS};
use crate::sync::lock;

/// The default peer, once started.
static DEFAULT_PEER: Mutex<Option<Peer>> = Mutex::new(None);
static DEFAULT_RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The default peer's slot, locked: whoever holds it may start the peer into it.
pub(crate) struct DefaultSlot(MutexGuard<'static, Option<Peer>>);

impl DefaultSlot {
    pub(crate) fn lock() -> DefaultSlot {
        DefaultSlot(lock(&DEFAULT_PEER))
    }

    /// The running default peer, if any.
    pub(crate) fn running(&self) -> Option<&Peer> {
        self.0.as_ref().filter(|p| !p.is_shut_down())
    }
}

/// Puts a freshly started peer into the default slot.
pub(crate) fn install_default(slot: &mut DefaultSlot, peer: &Peer) {
    *slot.0 = Some(peer.clone());
}

/// The runtime the default peer runs on when the program gives none.
pub(crate) fn default_runtime() -> Result<Handle> {
    let runtime = DEFAULT_RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("net")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match runtime {
        Ok(runtime) => Ok(runtime.handle().clone()),
        Err(message) => Err(Error::io_text("starting the net runtime", message.clone())),
    }
}

/// The process-wide default peer, started from the `NET_*` variables on first use (as
/// app-net's `net.Peer()` singleton). It runs on a small runtime of its own, so remote
/// calls work from plain synchronous code and from any async runtime alike.
///
/// **Started by itself, it is a client** when the program has no `#[net::subscribe]` and
/// no `#[net::event]` functions: a program whose only use of `net` is calling (its first
/// `.on(peer)`, `net::peers()` or `net::membership()` starts the peer) takes no port of
/// the range, is not advertised and is not listed by other peers' discovery; callbacks
/// over the connections it opens still work. A program that serves starts its peer with
/// [`net::start`](crate::start) (or [`Peer::start`]); `NET_CLIENT=1` or `NET_CLIENT=0`
/// decides either way. (Whether it registers `#[net::connect]` functions cannot decide
/// it: a client that calls `app::add(..)` links the functions of `app` too.)
///
/// ```no_run
/// // The whole program: it calls, so its peer is a client.
/// #[net::connect]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// fn main() -> net::Result<()> {
///     println!("{}", add(1, 2).on("127.0.0.1:3010").wait()?);
///     assert!(net::local_peer()?.config().client);
///     Ok(())
/// }
/// ```
pub fn local_peer() -> Result<Peer> {
    let mut slot = DefaultSlot::lock();
    if let Some(peer) = slot.running() {
        return Ok(peer.clone());
    }
    let mut config = Config::from_env()?;
    let decided = std::env::var("NET_CLIENT").is_ok_and(|v| !v.trim().is_empty());
    if !decided && SUBSCRIPTIONS.is_empty() && EVENTS.is_empty() {
        config.client = true;
    }
    // The documented exception to the layering: see the module docs.
    crate::start::start_default(&mut slot, config, default_runtime()?)
}

/// The default peer if it already runs; never starts it.
pub(crate) fn running_default() -> Option<Peer> {
    DefaultSlot::lock().running().cloned()
}
