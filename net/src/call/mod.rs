//! Calling: the [`Call`] value an annotated function returns and its `.local()` run;
//! `remote.rs` has the [`RemoteCall`] behind `.on(peer)` with its four conventions (await,
//! explicit timeout, blocking `wait`, continuation callbacks) and one-way calls.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | `Call`, `call_tag`, `.local()` |
//! | `remote.rs` | `RemoteCall`: where a call goes from, its budget, how it is awaited |
//! | `decode.rs` | a wire outcome into the caller's result |
//! | `target.rs` | `Target`: what `.on(...)` accepts, and routes other than a link |
//! | `block.rs` | the blocking bridge behind every `.wait()` |
//! | `broadcast.rs` | one call on many peers |

mod block;
mod broadcast;
mod decode;
mod remote;
mod target;

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::peer;
use crate::serve::{self, Args, Caller, Entry, Registry};
use crate::wire::Payload;

pub(crate) use block::{block_on, refuse_current_thread};
pub use broadcast::Broadcast;
pub(crate) use decode::{decode, decode_json};
pub use remote::{Failure, RemoteCall};
pub use target::Target;
pub(crate) use target::{Route, RouteCall, Routed, TargetKind};

/// Marks the [`Call`] of a plain `fn`: `.local()` returns the result directly.
#[derive(Debug)]
pub enum SyncFn {}

/// Marks the [`Call`] of an `async fn`: `.local()` is async.
#[derive(Debug)]
pub enum AsyncFn {}

/// Marks a [`Call`] made by tag with [`call_tag`]: remote only.
#[derive(Debug)]
pub enum ByTag {}

/// Marks the [`Call`] and [`RemoteCall`] of a function that does not return `Result`:
/// `.then(on_ok, on_err)` hands its value to `on_ok` and a failed call to `on_err`.
#[derive(Debug)]
pub enum Plain {}

/// Marks the [`Call`] and [`RemoteCall`] of a function returning `Result<T, E>`:
/// `.then(on_ok, on_err)` hands `T` to `on_ok`, and both its typed `Err(E)` and a failed
/// call to `on_err` as a [`Failure`](crate::Failure).
#[derive(Debug)]
pub enum Fallible {}

/// The types a [`Call`] carries only as marks: its result, its kind, its mode.
type Markers<R, K, M> = PhantomData<fn() -> (R, K, M)>;

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
pub struct Call<R, K = SyncFn, M = Plain> {
    /// Borrowed from the registry for a registered function (no copy per call).
    tag: Cow<'static, str>,
    /// The registry entry, for `.local()`; `None` for calls by tag.
    entry: Option<&'static Entry>,
    returns_result: bool,
    oneway: bool,
    /// The encoded arguments, or why they could not be encoded (reported when run).
    /// The encoded arguments (`net::Bytes` among them as attachments), or why they could
    /// not be encoded (reported when run).
    args: Result<Payload>,
    _marker: Markers<R, K, M>,
}

// By hand: a derive would demand `R: Clone` and `K: Clone`, which only mark types.
impl<R, K, M> Clone for Call<R, K, M> {
    fn clone(&self) -> Self {
        Call {
            tag: self.tag.clone(),
            entry: self.entry,
            returns_result: self.returns_result,
            oneway: self.oneway,
            args: self.args.clone(),
            _marker: PhantomData,
        }
    }
}

impl<R, K, M> Call<R, K, M> {
    pub(crate) fn new(entry: &'static Entry, args: &impl Serialize) -> Self {
        let tag = tag_of(entry);
        // No arguments (`()`) encode as null; the wire always carries an array.
        let args = Payload::encode(args)
            .map(|payload| match &payload.json[..] {
                b"null" => Payload::json(&b"[]"[..]),
                _ => payload,
            })
            .map_err(|e| Error::Encode {
                tag: tag.to_string(),
                message: e.to_string(),
            });
        Call {
            tag,
            entry: Some(entry),
            returns_result: entry.returns_result,
            oneway: entry.oneway,
            args,
            _marker: PhantomData,
        }
    }

    /// The tag the call is sent under.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Runs the call on a peer. `target` is a peer id, `"host:port"`, a `SocketAddr`, a
    /// local [`Peer`](crate::Peer), or the [`Caller`] of the current handler (the reverse channel).
    pub fn on(self, target: impl Into<Target>) -> RemoteCall<R, M> {
        RemoteCall::new(
            self.tag,
            self.returns_result,
            self.oneway,
            self.args,
            target.into(),
        )
    }
}

impl<R: DeserializeOwned, M> Call<R, SyncFn, M> {
    /// Runs the function in this thread, through its registry entry. A panic in it is
    /// caught and returned as [`Error::Remote`], exactly as a remote call would report it.
    pub fn local(self) -> Result<R> {
        let (entry, args) = self.local_parts()?;
        let outcome = serve::run_inline(entry, args, local_caller());
        decode(outcome, "local", &self.tag, self.returns_result)
    }
}

impl<R: DeserializeOwned, M> Call<R, AsyncFn, M> {
    /// Runs the async function on this task, through its registry entry.
    pub async fn local(self) -> Result<R> {
        let (entry, args) = self.local_parts()?;
        let outcome = serve::run_here(entry, args, local_caller()).await;
        decode(outcome, "local", &self.tag, self.returns_result)
    }
}

impl<R, K, M> Call<R, K, M> {
    /// The entry and the arguments, as a handler takes them (parsed back from their JSON,
    /// as a remote peer would).
    fn local_parts(&self) -> Result<(&'static Entry, Args<'static>)> {
        Registry::get()?;
        let entry = self.entry.ok_or_else(|| {
            Error::Usage(format!(
                "the call of {} by tag can only run remotely",
                self.tag
            ))
        })?;
        let args = self.args.as_ref().map_err(Clone::clone)?;
        let positional =
            serde_json::from_slice::<Box<RawValue>>(&args.json).map_err(|e| Error::Encode {
                tag: self.tag.to_string(),
                message: e.to_string(),
            })?;
        Ok((
            entry,
            Args::owned(positional, None, args.attachments.clone()),
        ))
    }
}

/// The tag of a registered function, looked up in the registry.
fn tag_of(entry: &'static Entry) -> Cow<'static, str> {
    match Registry::get().ok().and_then(|r| r.tag_of(entry)) {
        Some(tag) => Cow::Borrowed(tag),
        // Every registered function is in the linker's slice; this is only a fallback.
        None => Cow::Owned(entry.tag()),
    }
}

fn local_caller() -> Caller {
    Caller::local(peer::running_default().map(|peer| peer.host()))
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
    let tag: Cow<'static, str> = Cow::Owned(tag.into());
    let args = match args {
        Value::Array(_) => Payload::encode(&args).map_err(|e| Error::Encode {
            tag: tag.to_string(),
            message: e.to_string(),
        }),
        other => Err(Error::Encode {
            tag: tag.to_string(),
            message: format!("arguments must be a JSON array, got {other}"),
        }),
    };
    Call {
        tag,
        entry: None,
        returns_result: false,
        oneway: false,
        args,
        _marker: PhantomData,
    }
}
