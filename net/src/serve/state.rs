//! `net::State<T>`: shared state a handler takes as a parameter, filled in by the serving
//! peer with the value it was given at start (`Config::state`, `Peer::provide`), as a
//! handler takes a `Caller`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Shared state for handlers. A parameter of this type is filled in by the serving peer
/// (it is not part of the call) with the value of type `T` the peer was given:
/// `net::start(config.state(value))`, `Peer::start(config.state(value))` or, at any time,
/// [`Peer::provide`](crate::Peer::provide). It derefs to `T`; every handler and every
/// clone shares one value, so mutable state goes behind a lock or atomics.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct Hits(AtomicU64);
///
/// #[net::connect]
/// fn hit(hits: net::State<Hits>) -> u64 {
///     hits.0.fetch_add(1, Ordering::Relaxed) + 1
/// }
///
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let config = net::Config::default().loopback(true).port(0);
/// let server = net::Peer::start(config.state(Hits::default())).await?;
/// let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// assert_eq!(hit().on(&server).via(&me).await?, 1);
/// assert_eq!(hit().on(&server).via(&me).await?, 2);
/// // A peer without it says so, naming the type:
/// let err = hit().on(&me).via(&server).await.unwrap_err();
/// assert!(err.to_string().contains("no state of type"), "{err}");
/// # Ok(()) }
/// ```
///
/// A function that takes a `State<T>` and runs with `.local()` finds it on the
/// process-wide peer.
pub struct State<T: ?Sized>(Arc<T>);

impl<T: ?Sized> State<T> {
    /// Wraps a shared value.
    pub fn new(value: Arc<T>) -> State<T> {
        State(value)
    }

    /// The shared value itself, to keep or hand on.
    pub fn arc(&self) -> &Arc<T> {
        &self.0
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}
