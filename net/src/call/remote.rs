//! [`RemoteCall`]: a call on its way to a peer, and how it is run: from which local peer,
//! over which link or route, within which budget, awaited, waited on, or given callbacks.

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use crate::wire::Payload;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::target::{RouteCall, Target, TargetKind};
use super::{block_on, decode, decode_json};
use crate::error::{Error, Result};
use crate::peer::{self, Peer};

/// A call on its way to a peer: `.await` it (default timeout), set `.timeout(d)`, block on
/// it with `.wait()`, hand it callbacks with `.then(ok, err)`, or send it `.oneway()`.
///
/// Its output is `Result<R, net::Error>`; for a function returning `Result<T, E>` that is
/// `Result<Result<T, E>, net::Error>`, the remote `E` arriving typed.
#[must_use = "a remote call does nothing until awaited, waited on or given callbacks"]
pub struct RemoteCall<R> {
    tag: Cow<'static, str>,
    returns_result: bool,
    oneway: bool,
    args: Result<Payload>,
    kwargs: Option<Map<String, Value>>,
    target: Target,
    timeout: Option<Duration>,
    via: Option<Peer>,
    _marker: PhantomData<fn() -> R>,
}

impl<R> RemoteCall<R> {
    pub(super) fn new(
        tag: Cow<'static, str>,
        returns_result: bool,
        oneway: bool,
        args: Result<Payload>,
        target: Target,
    ) -> Self {
        RemoteCall {
            tag,
            returns_result,
            oneway,
            args,
            kwargs: None,
            target,
            timeout: None,
            via: None,
            _marker: PhantomData,
        }
    }

    /// Waits at most `timeout` for the reply (instead of `NET_TIMEOUT`); the remote work
    /// is cancelled when it runs out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the call from `peer` instead of the process-wide default peer.
    pub fn via(mut self, peer: &Peer) -> Self {
        self.via = Some(peer.clone());
        self
    }

    /// Adds keyword arguments, matched to the function's parameters by name.
    pub fn kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.kwargs = Some(kwargs);
        self
    }

    /// Sends the call without wanting a reply: the result is `Ok(())` once the call is
    /// handed to the connection (a process about to exit should `shutdown().await` its peer,
    /// which sends what is queued). Calls on one connection run concurrently, so a one-way
    /// call is not ordered with the calls after it: to read back what a one-way call wrote,
    /// make the write an ordinary call; for an ordered stream use `#[net::event]`, which
    /// delivers in publishing order.
    pub fn oneway(self) -> RemoteCall<()> {
        RemoteCall {
            tag: self.tag,
            returns_result: false,
            oneway: true,
            args: self.args,
            kwargs: self.kwargs,
            target: self.target,
            timeout: self.timeout,
            via: self.via,
            _marker: PhantomData,
        }
    }

    /// The peer whose runtime and connections the call uses.
    fn home(&self) -> Result<Peer> {
        if let TargetKind::Caller(caller) = &self.target.kind {
            if let (Some(_), Some(server)) = (caller.link(), caller.server()) {
                return Ok(server);
            }
        }
        match &self.via {
            Some(peer) => Ok(peer.clone()),
            None => peer::local_peer(),
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> RemoteCall<R> {
    async fn run(self) -> Result<R> {
        let started = Instant::now();
        let home = self.home()?;
        let args = self.args?;
        let budget = self.timeout.unwrap_or(home.config().timeout);
        if let TargetKind::Routed(route) = &self.target.kind {
            let call = RouteCall {
                home: &home,
                tag: &self.tag,
                args: &args,
                kwargs: self.kwargs.as_ref(),
                budget,
                oneway: self.oneway,
            };
            let (peer, outcome) = route.call(call).await?;
            return match outcome {
                Some(outcome) => decode(outcome, &peer, &self.tag, self.returns_result),
                None => decode_json("null", &peer, &self.tag),
            };
        }
        let back_channel = match &self.target.kind {
            TargetKind::Caller(caller) => caller.link().cloned(),
            _ => None,
        };
        // One clock read per call when the link is there already: the budget is whole.
        let deadline = started + budget;
        let mut addr = None;
        let (mut conn, left) = match back_channel {
            Some(conn) => (conn, budget),
            None => {
                let to = *addr.insert(self.target.addr().await?);
                match home.pooled(to) {
                    Some(link) => (link, budget),
                    None => {
                        let link = home.link_to(to, budget).await?;
                        (link, budget.saturating_sub(started.elapsed()))
                    }
                }
            }
        };
        if left.is_zero() {
            return Err(Error::Timeout {
                peer: conn.label().to_owned(),
                tag: self.tag.into_owned(),
                after: budget,
            });
        }
        let mut outcome = conn
            .call_until(
                &self.tag,
                &args,
                self.kwargs.clone(),
                left,
                deadline,
                self.oneway,
            )
            .await;
        if let (Err(Error::ConnectionClosed { .. }), Some(to)) = (&outcome, addr) {
            if conn.parted_idle() {
                // The link parted for idleness as the call went out: the call never ran
                // (docs/PROTOCOL.md section 7), so it goes again on a new link.
                conn = home.link_to(to, budget).await?;
                let left = deadline.saturating_duration_since(Instant::now());
                outcome = conn
                    .call_until(&self.tag, &args, self.kwargs, left, deadline, self.oneway)
                    .await;
            }
        }
        let outcome = outcome.map_err(|e| match e {
            // Report the whole budget the caller gave, not what was left of it.
            Error::Timeout { peer, tag, .. } => Error::Timeout {
                peer,
                tag,
                after: budget,
            },
            other => other,
        })?;
        match outcome {
            Some(outcome) => decode(outcome, conn.label(), &self.tag, self.returns_result),
            None => decode_json("null", conn.label(), &self.tag),
        }
    }

    /// Runs the call and blocks this thread until it ends: for plain synchronous code,
    /// with no runtime of its own. Inside async code use `.await`; on a current-thread
    /// runtime `wait` would block the very thread the call needs, and it returns
    /// [`Error::Usage`] instead.
    pub fn wait(self) -> Result<R> {
        let home = self.home();
        block_on(move || home, self.run())?
    }

    /// Runs the call in the background and hands the result to `on_ok` or the error to
    /// `on_err` (Peers' continuation and error handler), and returns at once. As in Peers,
    /// an error detected before anything is sent (no local peer could start) is returned
    /// here instead; the handle can be awaited to know that a callback has run.
    pub fn then<F, E>(self, on_ok: F, on_err: E) -> Result<tokio::task::JoinHandle<()>>
    where
        F: FnOnce(R) + Send + 'static,
        E: FnOnce(Error) + Send + 'static,
    {
        let home = self.home()?;
        Ok(home.runtime().spawn(async move {
            match self.run().await {
                Ok(value) => on_ok(value),
                Err(error) => on_err(error),
            }
        }))
    }
}

impl<R: DeserializeOwned + Send + 'static> IntoFuture for RemoteCall<R> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
