//! Log output: `NET_DEV` turns on debug logs for this crate through `tracing`; warnings a
//! user must see even without a tracing subscriber.

use std::sync::Once;

static INIT: Once = Once::new();

/// Installs a stderr subscriber at debug level for `net` when `dev` is on, unless the
/// program already installed one of its own (which then decides what is shown).
pub(crate) fn init(dev: bool) {
    if !dev {
        return;
    }
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("net=debug"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    });
}

/// A warning the program's user must see (a setting with no effect, functions the linker
/// left out, nothing found): through `tracing`, and on stderr when the program has no
/// tracing subscriber to show it.
pub(crate) fn warn_user(text: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{text}");
    } else {
        eprintln!("net: warning: {text}");
    }
}
