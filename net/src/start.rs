//! The composition root: starting a peer is bringing up its core (`peer/`), then its
//! services in order (app-net on the same port, discovery, events, tables); shutting it down is
//! the same in reverse. Nothing else lives here.

use tokio::runtime::Handle;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::peer::{default_runtime, install_default, DefaultSlot, Peer};
use crate::serve::{Entry, Registry, ENTRIES, EVENTS, SUBSCRIPTIONS};

/// Every built-in, named here so that the linker keeps them whatever it does with the
/// distributed slice of a dependency (dtolnay/linkme#31, #61); start-up checks that each
/// was collected.
fn builtins() -> Vec<&'static Entry> {
    let mut all = crate::builtins::ALL.to_vec();
    all.push(crate::discovery::known_peers_builtin());
    all.push(crate::peer::dialled_builtin());
    all.extend(crate::events::builtins());
    all.extend(crate::table::builtins());
    all
}

/// A serving peer whose program registered none of its own functions (only net's
/// built-ins), no events and no subscriptions has almost always lost them to the linker:
/// functions in a library crate that the binary names nothing of are not linked in. Said
/// once per process, with the fix.
fn warn_if_serving_nothing() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    let own = ENTRIES.len().saturating_sub(builtins().len());
    if own > 0 || !EVENTS.is_empty() || !SUBSCRIPTIONS.is_empty() {
        return;
    }
    ONCE.call_once(|| {
        let program = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "this program".into());
        crate::logging::warn_user(&format!(
            "{program} serves none of its own functions, only net's built-ins. If its \
             #[net::connect] functions live in a library crate, the linker left them out \
             because the program names nothing of that crate: add `use my_lib as _;` (the \
             library's crate name) to its main.rs. A program that only calls can be a \
             client instead: NET_CLIENT=1 or Config::client(true)."
        ));
    });
}

impl Peer {
    /// Starts a peer on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Peer> {
        Peer::start_on(config, Handle::current())
    }

    /// Starts a peer whose sockets and tasks live on `runtime`.
    pub fn start_on(config: Config, runtime: Handle) -> Result<Peer> {
        Registry::get()?.require(&builtins())?;
        if !config.client {
            warn_if_serving_nothing();
        }
        let peer = Peer::bring_up(config, runtime.clone())?;
        // Services start inside the runtime: they spawn their tasks on it.
        let _entered = runtime.enter();
        crate::appnet::start(&peer);
        crate::discovery::start(&peer);
        crate::table::start(&peer);
        Ok(peer)
    }

    /// Stops the peer: its subscriptions are withdrawn from the peers it subscribed to, its
    /// mDNS goodbye is said, no new connections are taken, calls in progress get a short
    /// grace period to finish, then every entry is closed with a goodbye and every
    /// task is awaited.
    pub async fn shutdown(&self) {
        if self.is_shut_down() {
            return;
        }
        crate::events::before_shutdown(self).await;
        // Tables hand their keys off while the links are open.
        crate::table::before_shutdown(self).await;
        // The mDNS goodbye first, while the peer still answers.
        crate::discovery::stop(self).await;
        self.bring_down().await;
    }
}

/// Starts the process-wide default peer with `config` instead of the environment. Fails
/// if it already runs.
///
/// ```
/// let peer = net::start(net::Config::from_env()?.loopback(true).port(0))?;
/// assert!(peer.addr().ip().is_loopback());
/// # Ok::<(), net::Error>(())
/// ```
pub fn start(config: Config) -> Result<Peer> {
    let mut slot = DefaultSlot::lock();
    refuse_second(&slot)?;
    start_default(&mut slot, config, default_runtime()?)
}

/// Starts the process-wide default peer with `config` on `runtime` (for a program that
/// wants its one runtime to carry everything). The runtime must outlive every call made
/// through the default peer; a `#[tokio::main]` runtime does. (Named apart from
/// [`Peer::start_on`], which starts another peer, not the process-wide one.)
pub fn start_with_runtime(config: Config, runtime: Handle) -> Result<Peer> {
    let mut slot = DefaultSlot::lock();
    refuse_second(&slot)?;
    start_default(&mut slot, config, runtime)
}

fn refuse_second(slot: &DefaultSlot) -> Result<()> {
    match slot.running() {
        Some(peer) => Err(Error::Usage(format!(
            "the default peer already runs as {} ({}); call net::start before any remote call",
            peer.addr(),
            peer.id()
        ))),
        None => Ok(()),
    }
}

/// Starts a peer into the default slot: as any peer, and then it subscribes by itself, as
/// app-net's `net.Peer()` did (see `events/mod.rs`).
pub(crate) fn start_default(
    slot: &mut DefaultSlot,
    config: Config,
    runtime: Handle,
) -> Result<Peer> {
    let peer = Peer::start_on(config, runtime.clone())?;
    install_default(slot, &peer);
    let _entered = runtime.enter();
    crate::events::default_started(&peer);
    Ok(peer)
}
