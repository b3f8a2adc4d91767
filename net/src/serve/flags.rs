//! Flags: named responses (app-net's `NULL`, `INVALID_CONNECTION`, and the user's own) and
//! the `#[net::flag]` handlers that run on the calling side when a call gets one.

use serde::{Deserialize, Serialize};

/// Flags every peer knows.
pub(crate) const BUILT_IN: [&str; 2] = [NULL, INVALID_CONNECTION];

/// The response of a function that has nothing to say (the built-in `null`); a call that
/// gets it decodes JSON `null` into its return type (`()`, `Option::None`, ...).
pub const NULL: &str = "NULL";

/// The response to a call of a tag the peer does not have; it becomes
/// [`Error::UnknownTag`](crate::Error::UnknownTag) on the calling side.
pub const INVALID_CONNECTION: &str = "INVALID_CONNECTION";

/// A named response. A function raises one by returning `Err(net::Flag::new("BUSY"))`
/// from a `Result<T, net::Flag>`; the caller's `#[net::flag("BUSY")]` handlers run and the
/// call ends in [`Error::Flag`](crate::Error::Flag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// The flag's name.
    pub name: String,
    /// Detail for the handler (JSON; `null` when none).
    pub detail: serde_json::Value,
}

impl Flag {
    /// A flag with no detail.
    pub fn new(name: impl Into<String>) -> Flag {
        Flag {
            name: name.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// A flag with detail for its handler.
    pub fn with_detail(name: impl Into<String>, detail: serde_json::Value) -> Flag {
        Flag {
            name: name.into(),
            detail,
        }
    }
}

/// What a `#[net::flag]` handler is told: which flag, from whom, for which call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlagEvent {
    /// The flag's name.
    pub name: String,
    /// The peer that answered with it.
    pub peer: String,
    /// The tag that was called.
    pub tag: String,
    /// The flag's detail.
    pub detail: serde_json::Value,
}

/// Runs every handler registered for the event's flag. A panicking handler is logged and
/// does not stop the others or the call.
pub(crate) fn dispatch(event: &FlagEvent) {
    for flag in super::registry::flag_handlers(&event.name) {
        let run = std::panic::AssertUnwindSafe(|| (flag.handler)(event));
        if std::panic::catch_unwind(run).is_err() {
            tracing::warn!(flag = %event.name, "a #[net::flag] handler panicked");
        }
    }
}
