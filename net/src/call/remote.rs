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
use super::{block_on, decode, decode_json, Fallible, Plain};
use crate::error::{Error, Result, TimeoutStep};
use crate::peer::{self, Peer};

/// A call on its way to a peer: `.await` it (default timeout), set `.timeout(d)`, block on
/// it with `.wait()`, hand it callbacks with `.then(ok, err)`, or send it `.oneway()`.
///
/// Its output is `Result<R, net::Error>`; for a function returning `Result<T, E>` that is
/// `Result<Result<T, E>, net::Error>`, the remote `E` arriving typed.
///
/// ```
/// use std::time::Duration;
///
/// #[net::connect]
/// fn multiply(a: i64, b: i64) -> i64 {
///     a * b
/// }
///
/// #[net::connect(oneway)]
/// fn note(text: String) {
///     eprintln!("note: {text}");
/// }
///
/// fn main() -> net::Result<()> {
///     // Plain synchronous code: the peers run on a runtime of their own.
///     let runtime = tokio::runtime::Runtime::new().expect("a runtime");
///     let config = || net::Config::default().loopback(true).port(0);
///     let server = net::Peer::start_on(config(), runtime.handle().clone())?;
///     let me = net::Peer::start_on(config(), runtime.handle().clone())?;
///
///     // Block until the reply is there (the default timeout is NET_TIMEOUT):
///     assert_eq!(multiply(6, 7).on(&server).via(&me).wait()?, 42);
///     // A timeout of its own (Duration::ZERO: none):
///     let quick = multiply(2, 3).on(&server).via(&me).timeout(Duration::from_millis(500));
///     assert_eq!(quick.wait()?, 6);
///     // Callbacks; the handle says when one has run:
///     let done = multiply(4, 5)
///         .on(&server)
///         .via(&me)
///         .then(|product| assert_eq!(product, 20), |error| panic!("{error}"))?;
///     runtime.block_on(done).expect("the callback ran");
///     // One-way: done once handed to the connection; no reply comes back.
///     note("hello".into()).on(&server).via(&me).wait()?;
///     // In async code, `.await` it instead of `.wait()`:
///     let product = runtime.block_on(async { multiply(7, 8).on(&server).via(&me).await })?;
///     assert_eq!(product, 56);
///     Ok(())
/// }
/// ```
#[must_use = "a remote call does nothing until awaited, waited on or given callbacks"]
pub struct RemoteCall<R, M = Plain> {
    tag: Cow<'static, str>,
    returns_result: bool,
    oneway: bool,
    args: Result<Payload>,
    kwargs: Option<Map<String, Value>>,
    target: Target,
    timeout: Option<Duration>,
    via: Option<Peer>,
    _marker: PhantomData<fn() -> (R, M)>,
}

impl<R, M> RemoteCall<R, M> {
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
    /// is cancelled when it runs out. `Duration::ZERO` means no timeout (Peers'
    /// convention): the call waits as long as the peer takes.
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

    /// The same call under another marker (a broadcast keeps plain results).
    pub(super) fn plain(self) -> RemoteCall<R, Plain> {
        RemoteCall {
            tag: self.tag,
            returns_result: self.returns_result,
            oneway: self.oneway,
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

impl<R: DeserializeOwned + Send + 'static, M: 'static> RemoteCall<R, M> {
    async fn run(self) -> Result<R> {
        let started = Instant::now();
        let home = self.home()?;
        let args = self.args?;
        // Zero is no timeout (Peers' convention).
        let budget = crate::config::budget(self.timeout.unwrap_or(home.config().timeout));
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
            TargetKind::Link(link) => Some(link.clone()),
            _ => None,
        };
        // One clock read per call when the link is there already: the budget is whole.
        // Otherwise connecting and the handshake come out of it too.
        let deadline = started + budget;
        let whole = |e: Error| match e {
            Error::Timeout { peer, step, .. } => Error::Timeout {
                peer,
                tag: self.tag.to_string(),
                after: budget,
                step,
            },
            other => other,
        };
        let mut addr = None;
        let (mut conn, left) = match back_channel {
            Some(conn) => (conn, budget),
            None => {
                let to = *addr.insert(self.target.addr().await?);
                match home.pooled(to) {
                    Some(link) => (link, budget),
                    None => {
                        let link = home.link_to(to, deadline).await.map_err(whole)?;
                        (link, deadline.saturating_duration_since(Instant::now()))
                    }
                }
            }
        };
        if left.is_zero() {
            return Err(Error::Timeout {
                peer: conn.label().to_owned(),
                tag: self.tag.into_owned(),
                after: budget,
                step: TimeoutStep::Handshake,
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
                conn = home.link_to(to, deadline).await.map_err(whole)?;
                let left = deadline.saturating_duration_since(Instant::now());
                outcome = conn
                    .call_until(&self.tag, &args, self.kwargs, left, deadline, self.oneway)
                    .await;
            }
        }
        // Report the whole budget the caller gave, not what was left of it.
        let outcome = outcome.map_err(whole)?;
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
}

impl<R: DeserializeOwned + Send + 'static> RemoteCall<R, Plain> {
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

impl<T, E> RemoteCall<Result<T, E>, Fallible>
where
    T: DeserializeOwned + Send + 'static,
    E: DeserializeOwned + Send + 'static,
{
    /// Runs the call in the background and hands `T` to `on_ok`, or what went wrong to
    /// `on_err`: the function's own `Err(E)` as [`Failure::Returned`], and a call that
    /// failed (timeout, unreachable peer, panic, ...) as [`Failure::Call`]. This is
    /// Peers' continuation and error handler: a remote function that fails reaches the
    /// error handler, whichever way it failed. Returns at once; the handle can be
    /// awaited to know that a callback has run. (`.await` and `.wait()` keep the two
    /// apart instead: `Result<Result<T, E>, net::Error>`.)
    ///
    /// ```
    /// #[net::connect]
    /// fn checked_div(a: i64, b: i64) -> Result<i64, String> {
    ///     a.checked_div(b).ok_or_else(|| format!("{a} / {b}: division by zero"))
    /// }
    ///
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// # let server = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// # let me = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// checked_div(1, 0)
    ///     .on(&server)
    ///     .via(&me)
    ///     .then(|quotient| println!("{quotient}"), move |failure| {
    ///         let _ = tx.send(failure.to_string());
    ///     })?
    ///     .await
    ///     .expect("the callback ran");
    /// assert_eq!(rx.recv().unwrap(), "1 / 0: division by zero");
    /// # Ok(()) }
    /// ```
    pub fn then<F, G>(self, on_ok: F, on_err: G) -> Result<tokio::task::JoinHandle<()>>
    where
        F: FnOnce(T) + Send + 'static,
        G: FnOnce(Failure<E>) + Send + 'static,
    {
        let home = self.home()?;
        Ok(home.runtime().spawn(async move {
            match self.run().await {
                Ok(Ok(value)) => on_ok(value),
                Ok(Err(returned)) => on_err(Failure::Returned(returned)),
                Err(error) => on_err(Failure::Call(error)),
            }
        }))
    }
}

/// What reaches the error handler of [`RemoteCall::then`] for a function returning
/// `Result<T, E>`: its typed error, or the failure of the call itself.
#[derive(Debug, Clone)]
pub enum Failure<E> {
    /// The function ran and returned `Err(e)`.
    Returned(E),
    /// The call did not produce a result: a timeout, an unreachable peer, a panic, ...
    Call(Error),
}

impl<E: std::fmt::Display> std::fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Returned(e) => e.fmt(f),
            Failure::Call(e) => e.fmt(f),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for Failure<E> {}

impl<R: DeserializeOwned + Send + 'static, M: 'static> IntoFuture for RemoteCall<R, M> {
    type Output = Result<R>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<R>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
