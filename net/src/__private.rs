//! Items used only by the expansions of `net`'s attribute macros: not part of
//! the public API and not covered by semver (the macro crate is pinned to this version).

pub use crate::call::{AsyncFn, Fallible, Plain, SyncFn};
pub use crate::events::{payload, publish, set_batch_limit, Payload};
pub use crate::serve::{
    Args, BoxFuture, Caller, Entry, EventDecl, FlagHandler, Handler, Outcome, Subscription,
    ENTRIES, EVENTS, FLAGS, SUBSCRIPTIONS,
};
pub use linkme;
pub use serde;
pub use serde_json;

/// Builds the call value that an annotated function returns.
pub fn call<R, K, M>(entry: &'static Entry, args: impl serde::Serialize) -> crate::Call<R, K, M> {
    crate::Call::new(entry, &args)
}

/// Compile-time check that a parameter type crosses the wire; spanned at the parameter's
/// type so that rustc's error lands there.
pub fn assert_arg<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>() {}

/// Compile-time check that a return type crosses the wire; spanned at the return type.
pub fn assert_return<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>() {}

/// Boxes an async handler's future; spanned at the function so that a non-`Send` future is
/// reported on the user's code.
pub fn boxed<F>(future: F) -> BoxFuture<Outcome>
where
    F: std::future::Future<Output = Outcome> + Send + 'static,
{
    Box::pin(future)
}

/// A handler parameter that the serving peer fills in (`net::State<T>`).
pub trait FromCaller: Sized {
    /// The value for this call, or the outcome that tells the caller why there is none.
    fn from_caller(caller: &Caller) -> Result<Self, Outcome>;
}

impl<T: std::any::Any + Send + Sync> FromCaller for crate::State<T> {
    fn from_caller(caller: &Caller) -> Result<Self, Outcome> {
        crate::Peer::state_for::<T>(caller)
    }
}
