//! The values handlers' `net::State<T>` parameters get: given at start
//! (`Config::state`) or later (`Peer::provide`), looked up by type for each call.

use std::any::Any;
use std::sync::Arc;

use super::Peer;
use crate::serve::{Caller, Outcome, State};

impl Peer {
    /// Gives this peer `value` for handlers that take a [`State<T>`] parameter, from now
    /// on (replacing an earlier value of the same type). See also
    /// [`Config::state`](crate::Config::state), which gives it before the first call can
    /// arrive.
    pub fn provide<T: Any + Send + Sync>(&self, value: T) {
        let mut states = self.inner.states.write().unwrap_or_else(|p| p.into_inner());
        states.insert(Arc::new(value));
    }

    /// The value of type `T` this peer holds for its handlers, if it was given one.
    pub fn state<T: Any + Send + Sync>(&self) -> Option<State<T>> {
        let states = self.inner.states.read().unwrap_or_else(|p| p.into_inner());
        states.get::<T>().map(State::new)
    }

    /// The state for a handler's parameter, or the outcome that tells its caller why
    /// there is none.
    pub(crate) fn state_for<T: Any + Send + Sync>(caller: &Caller) -> Result<State<T>, Outcome> {
        let Some(peer) = caller.server() else {
            return Err(Outcome::Panic {
                message: format!(
                    "a handler takes net::State<{}>, and no peer runs in this process to hold \
                     it; start one with net::start(config.state(value))",
                    std::any::type_name::<T>()
                ),
                location: "net::State".into(),
            });
        };
        if let Some(state) = peer.state::<T>() {
            return Ok(state);
        }
        let held = peer
            .inner
            .states
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .type_names();
        Err(Outcome::Panic {
            message: format!(
                "this peer has no state of type {}; give it when the peer starts \
                 (net::start(config.state(value)), Config::state) or with \
                 peer.provide(value); it holds {}",
                std::any::type_name::<T>(),
                if held.is_empty() {
                    "none".to_owned()
                } else {
                    held.join(", ")
                }
            ),
            location: "net::State".into(),
        })
    }
}
