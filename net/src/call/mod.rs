//! Calling: the [`Call`] value an annotated function returns, its `.local()` run, and the
//! [`RemoteCall`] builder behind `.on(peer)` with its four conventions (await, explicit
//! timeout, blocking `wait`, continuation callbacks) and one-way calls.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::caller::Caller;
use crate::dispatch;
use crate::error::{Error, Result};
use crate::flags::{self, FlagEvent, INVALID_CONNECTION, NULL};
use crate::peer::{self, Peer};
use crate::registry::{Args, Connection, Registry};
use crate::target::{Target, TargetKind};
use crate::wire::WireOutcome;

/// Marks the [`Call`] of a plain `fn`: `.local()` returns the result directly.
#[derive(Debug)]
pub enum SyncFn {}

/// Marks the [`Call`] of an `async fn`: `.local()` is async.
#[derive(Debug)]
pub enum AsyncFn {}

/// Marks a [`Call`] made by tag with [`call_tag`]: remote only.
#[derive(Debug)]
pub enum ByTag {}

/// A call of a `#[net::connect]` function, not yet run: `f(args)` returns one. Run it
/// in-process with `.local()` or on a peer with `.on(target)`.
///
/// `R` is the function's return type. Both ways go through the function's registry entry
/// and its JSON encoding, so a local result equals the remote one.
///
/// ```
/// #[net::connect]
/// fn multiply(a: i64, b: i64) -> i64 {
///     a * b
/// }
///
/// assert_eq!(multiply(5, 10).local().unwrap(), 50);
/// ```
#[must_use = "a call does nothing until `.local()` or `.on(peer)` runs it"]
pub struct Call<R, K = SyncFn> {
    tag: String,
    /// The registry entry, for `.local()`; `None` for calls by tag.
    connection: Option<&'static Connection>,
    returns_result: bool,
    oneway: bool,
    /// The encoded arguments, or why they could not be encoded (reported when run).
    args: Result<Box<RawValue>>,
    _marker: PhantomData<fn() -> (R, K)>,
}

// By hand: a derive would demand `R: Clone` and `K: Clone`, which only mark types.
impl<R, K> Clone for Call<R, K> {
    fn clone(&self) -> Self {
        Call {
            tag: self.tag.clone(),
            connection: self.connection,
            returns_result: self.returns_result,
            oneway: self.oneway,
            args: self.args.clone(),
            _marker: PhantomData,
        }
    }
}

impl<R, K> Call<R, K> {
    pub(crate) fn new(connection: &'static Connection, args: &impl Serialize) -> Self {
        let tag = tag_of(connection);
        // No arguments (`()`) encode as null; the wire always carries an array.
        let args = serde_json::value::to_raw_value(args)
            .and_then(|raw| match raw.get() {
                "null" => RawValue::from_string("[]".into()),
                _ => Ok(raw),
            })
            .map_err(|e| Error::Encode {
                tag: tag.clone(),
                message: e.to_string(),
            });
        Call {
            tag,
            connection: Some(connection),
            returns_result: connection.returns_result,
            oneway: connection.oneway,
            args,
            _marker: PhantomData,
        }
    }

    /// The tag the call is sent under.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Runs the call on a peer. `target` is a peer id, `"host:port"`, a `SocketAddr`, a
    /// local [`Peer`], or the [`Caller`] of the current handler (the reverse channel).
    pub fn on(self, target: impl Into<Target>) -> RemoteCall<R> {
        RemoteCall {
            tag: self.tag,
            returns_result: self.returns_result,
            oneway: self.oneway,
            args: self.args,
            kwargs: None,
            target: target.into(),
            timeout: None,
            via: None,
            _marker: PhantomData,
        }
    }
}

impl<R: DeserializeOwned> Call<R, SyncFn> {
    /// Runs the function in this thread, through its registry entry. A panic in it is
    /// caught and returned as [`Error::Remote`], exactly as a remote call would report it.
    pub fn local(self) -> Result<R> {
        let (connection, args) = self.local_parts()?;
        let outcome = dispatch::run_inline(connection, Args::positional(args), local_caller());
        decode(outcome, "local", &self.tag, self.returns_result)
    }
}

impl<R: DeserializeOwned> Call<R, AsyncFn> {
    /// Runs the async function on this task, through its registry entry.
    pub async fn local(self) -> Result<R> {
        let (connection, args) = self.local_parts()?;
        let outcome = dispatch::run_here(connection, Args::positional(args), local_caller()).await;
        decode(outcome, "local", &self.tag, self.returns_result)
    }
}

impl<R, K> Call<R, K> {
    fn local_parts(&self) -> Result<(&'static Connection, Box<RawValue>)> {
        Registry::get()?;
        let connection = self.connection.ok_or_else(|| {
            Error::Usage(format!(
                "the call of {} by tag can only run remotely",
                self.tag
            ))
        })?;
        let args = self.args.as_ref().map_err(Clone::clone)?.clone();
        Ok((connection, args))
    }
}

/// The tag of a registered function, computed once per function: building it (base64 of
/// the path) on every call was a tenth of a call's work in the call benchmark.
fn tag_of(connection: &'static Connection) -> String {
    static TAGS: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    let address = |c: &'static Connection| c as *const Connection as usize;
    let tags = TAGS.get_or_init(|| {
        let mut tags: Vec<(usize, String)> = crate::builtins::ALL
            .iter()
            .copied()
            .chain(crate::registry::CONNECTIONS.iter())
            .map(|c| (address(c), c.tag()))
            .collect();
        tags.sort_unstable_by_key(|(at, _)| *at);
        tags
    });
    match tags.binary_search_by_key(&address(connection), |(at, _)| *at) {
        Ok(i) => tags[i].1.clone(),
        // Every registered function is in the linker's slice; this is only a fallback.
        Err(_) => connection.tag(),
    }
}

fn local_caller() -> Caller {
    Caller::local(peer::running_default())
}

/// A call of whatever function a peer has under `tag`, with JSON arguments: for tools and
/// for functions this program does not link. `R` is what the reply is decoded into
/// (`serde_json::Value` takes anything).
///
/// ```no_run
/// # async fn f() -> net::Result<()> {
/// let answer: serde_json::Value =
///     net::call_tag("TXVsdGlwbHk=", serde_json::json!([5, 10])).on("127.0.0.1:3010").await?;
/// # Ok(()) }
/// ```
pub fn call_tag<R>(tag: impl Into<String>, args: Value) -> Call<R, ByTag> {
    let tag = tag.into();
    let args = match args {
        Value::Array(_) => serde_json::value::to_raw_value(&args).map_err(|e| Error::Encode {
            tag: tag.clone(),
            message: e.to_string(),
        }),
        other => Err(Error::Encode {
            tag: tag.clone(),
            message: format!("arguments must be a JSON array, got {other}"),
        }),
    };
    Call {
        tag,
        connection: None,
        returns_result: false,
        oneway: false,
        args,
        _marker: PhantomData,
    }
}

/// A call on its way to a peer: `.await` it (default timeout), set `.timeout(d)`, block on
/// it with `.wait()`, hand it callbacks with `.then(ok, err)`, or send it `.oneway()`.
///
/// Its output is `Result<R, net::Error>`; for a function returning `Result<T, E>` that is
/// `Result<Result<T, E>, net::Error>`, the remote `E` arriving typed.
#[must_use = "a remote call does nothing until awaited, waited on or given callbacks"]
pub struct RemoteCall<R> {
    tag: String,
    returns_result: bool,
    oneway: bool,
    args: Result<Box<RawValue>>,
    kwargs: Option<Map<String, Value>>,
    target: Target,
    timeout: Option<Duration>,
    via: Option<Peer>,
    _marker: PhantomData<fn() -> R>,
}

impl<R> RemoteCall<R> {
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
            if let Some((_, server)) = caller.conn() {
                return Ok(server.clone());
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
        if let TargetKind::AppNet(inner) = &self.target.kind {
            let addr = inner.addr().await?;
            let peer = format!("app-net peer {addr}");
            let max_reply = home.config().max_frame;
            let (kwargs, oneway) = (self.kwargs.as_ref(), self.oneway);
            let outcome =
                crate::legacy::call(addr, &self.tag, &args, kwargs, budget, max_reply, oneway);
            return match outcome.await? {
                Some(outcome) => decode(outcome, &peer, &self.tag, self.returns_result),
                None => decode_json("null", &peer, &self.tag),
            };
        }
        let back_channel = match &self.target.kind {
            TargetKind::Caller(caller) => caller.conn().map(|(conn, _)| conn.clone()),
            _ => None,
        };
        let conn = match back_channel {
            Some(conn) => conn,
            None => {
                let addr = self.target.addr().await?;
                home.connection(addr, budget).await?
            }
        };
        let left = budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Timeout {
                peer: conn.label().to_owned(),
                tag: self.tag,
                after: budget,
            });
        }
        let outcome = conn
            .call(&self.tag, args, self.kwargs, left, self.oneway)
            .await
            .map_err(|e| match e {
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
        peer::block_on(move || home, self.run())?
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

/// Turns how a call ended into its result. `returns_result` rebuilds `Ok`/`Err` for
/// functions declared to return `Result<T, E>`.
pub(crate) fn decode<R: DeserializeOwned>(
    outcome: WireOutcome,
    peer: &str,
    tag: &str,
    returns_result: bool,
) -> Result<R> {
    match outcome {
        WireOutcome::Ok(raw) if returns_result => {
            decode_json(&format!("{{\"Ok\":{}}}", raw.get()), peer, tag)
        }
        WireOutcome::Ok(raw) => decode_json(raw.get(), peer, tag),
        WireOutcome::Raised(raw) if returns_result => {
            decode_json(&format!("{{\"Err\":{}}}", raw.get()), peer, tag)
        }
        WireOutcome::Raised(raw) => Err(Error::Remote {
            peer: peer.to_owned(),
            tag: tag.to_owned(),
            message: format!("the function raised {}", raw.get()),
            location: "its typed error (declare the return type as Result<T, E> to receive it)"
                .into(),
        }),
        WireOutcome::Flag { name, detail } => {
            flags::dispatch(&FlagEvent {
                name: name.clone(),
                peer: peer.to_owned(),
                tag: tag.to_owned(),
                detail: detail.clone(),
            });
            match name.as_str() {
                NULL if returns_result => decode_json("{\"Ok\":null}", peer, tag),
                NULL => decode_json("null", peer, tag),
                INVALID_CONNECTION => Err(Error::UnknownTag {
                    peer: peer.to_owned(),
                    tag: tag.to_owned(),
                    available: match detail {
                        Value::Array(tags) => tags
                            .into_iter()
                            .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_owned))
                            .collect(),
                        _ => Vec::new(),
                    },
                }),
                _ => Err(Error::Flag {
                    peer: peer.to_owned(),
                    tag: tag.to_owned(),
                    name,
                }),
            }
        }
        WireOutcome::Panic { message, location } => Err(Error::Remote {
            peer: peer.to_owned(),
            tag: tag.to_owned(),
            message,
            location,
        }),
        WireOutcome::BadArgs { message } => Err(Error::BadArguments {
            peer: peer.to_owned(),
            tag: tag.to_owned(),
            message,
        }),
    }
}

fn decode_json<R: DeserializeOwned>(json: &str, peer: &str, tag: &str) -> Result<R> {
    serde_json::from_str(json).map_err(|e| Error::Decode {
        peer: peer.to_owned(),
        tag: tag.to_owned(),
        message: e.to_string(),
    })
}
