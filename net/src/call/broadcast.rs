//! py-p2p's `send()` to everybody: one call run on many peers at once, each answer kept
//! with the peer it came from. (Its `send_one()` with a reply is an ordinary
//! `f(x).on(neighbour)`.)

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::de::DeserializeOwned;

use super::{block_on, Call, RemoteCall, Target, TargetKind};
use crate::error::Result;
use crate::peer::{self, Peer};

impl<R, K, M> Call<R, K, M> {
    /// Runs the call on every one of `targets`, at most `NET_THREAD_LIMIT` at a time, and
    /// gives each target's result in the order of `targets`. One peer's failure is its own
    /// entry; it never stops the others.
    ///
    /// ```no_run
    /// #[net::connect]
    /// fn set_token(token: i64) -> i64 { token }
    ///
    /// # async fn f() -> net::Result<()> {
    /// let members = ["127.0.0.1:3010", "127.0.0.1:3011"];
    /// for (peer, result) in set_token(4).broadcast(members).await {
    ///     println!("{peer}: {result:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn broadcast<T: Into<Target>>(self, targets: impl IntoIterator<Item = T>) -> Broadcast<R> {
        let calls = targets
            .into_iter()
            .map(|target| {
                let target = target.into();
                (target.clone(), self.clone().on(target).plain())
            })
            .collect();
        Broadcast {
            calls,
            via: None,
            timeout: None,
        }
    }
}

/// A call on its way to many peers: `.await` it, or `.wait()` from synchronous code. Built
/// by [`Call::broadcast`].
#[must_use = "a broadcast does nothing until awaited or waited on"]
pub struct Broadcast<R> {
    /// One call per target, kept with the target for the results.
    calls: Vec<(Target, RemoteCall<R>)>,
    /// The local peer the calls go from; the process-wide one when `None`.
    via: Option<Peer>,
    /// Each call's timeout; `NET_TIMEOUT` when `None`.
    timeout: Option<Duration>,
}

impl<R> Broadcast<R> {
    /// Sends the calls from `peer` instead of the process-wide peer.
    pub fn via(mut self, peer: &Peer) -> Self {
        self.via = Some(peer.clone());
        self
    }

    /// Waits at most `timeout` for each peer's reply (instead of `NET_TIMEOUT`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many peers it goes to.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// True when it goes to nobody.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

impl<R: DeserializeOwned + Send + 'static> Broadcast<R> {
    async fn run(self) -> Vec<(Target, Result<R>)> {
        let home = match &self.via {
            Some(peer) => Ok(peer.clone()),
            None => peer::local_peer(),
        };
        let home = match home {
            Ok(home) => home,
            Err(e) => {
                return self
                    .calls
                    .into_iter()
                    .map(|(target, _)| (target, Err(e.clone())))
                    .collect()
            }
        };
        let limit = home.config().thread_limit;
        let timeout = self.timeout;
        stream::iter(self.calls.into_iter().map(|(target, call)| {
            let mut call = call.via(&home);
            if let Some(timeout) = timeout {
                call = call.timeout(timeout);
            }
            async move { (target, call.await) }
        }))
        .buffered(limit)
        .collect()
        .await
    }

    /// Runs the broadcast and blocks this thread until every peer has answered or failed:
    /// for synchronous code (see [`RemoteCall::wait`]).
    pub fn wait(self) -> Result<Vec<(Target, Result<R>)>> {
        let home = self.via.clone();
        block_on(move || home.map_or_else(peer::local_peer, Ok), self.run())
    }
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for Broadcast<R> {
    type Output = Vec<(Target, Result<R>)>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TargetKind::Addr(addr) => write!(f, "{addr}"),
            TargetKind::Text(text) => f.write_str(text),
            TargetKind::Caller(caller) => write!(f, "{caller:?}"),
            TargetKind::Routed(route) => write!(f, "{route}"),
            TargetKind::Link(link) => f.write_str(link.label()),
        }
    }
}
