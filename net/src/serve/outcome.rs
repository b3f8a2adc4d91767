//! What running a registered function produced, before it becomes a reply frame or a
//! local result: a value, a typed error, a flag, a panic, or arguments that did not fit.

use std::any::Any;

use crate::wire::Payload;
use serde::Serialize;

use super::Flag;

/// The result of one handler run.
#[derive(Debug)]
pub enum Outcome {
    /// The function returned this value (JSON, and its binary attachments).
    Value(Payload),
    /// The function returned `Err(e)`; this is `e`, decoded by the caller as its typed
    /// error.
    Raised(Payload),
    /// The function answered with a named flag (`NULL`, `INVALID_CONNECTION`, or a user's).
    Flag {
        /// The flag's name.
        name: String,
        /// Free-form detail for the flag's handler.
        detail: serde_json::Value,
    },
    /// The function panicked.
    Panic {
        /// The panic message.
        message: String,
        /// Where: the function's path and the panic's file:line when known.
        location: String,
    },
    /// The arguments did not decode into the function's parameters.
    BadArgs(String),
    /// The function's return value could not be encoded as JSON.
    Unencodable(String),
}

impl Outcome {
    /// Encodes a plain return value.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Outcome {
        match Payload::encode(value) {
            Ok(payload) => Outcome::Value(payload),
            Err(e) => Outcome::Unencodable(e.to_string()),
        }
    }

    /// Encodes a `Result<T, E>` return: `Ok` is a value, `Err` a typed error, and an
    /// `Err(net::Flag)` the named flag.
    pub fn result<T: Serialize, E: Serialize + 'static>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(value) => Outcome::value(value),
            Err(error) => {
                if let Some(flag) = (error as &dyn Any).downcast_ref::<Flag>() {
                    return Outcome::Flag {
                        name: flag.name.clone(),
                        detail: flag.detail.clone(),
                    };
                }
                match Payload::encode(error) {
                    Ok(payload) => Outcome::Raised(payload),
                    Err(e) => Outcome::Unencodable(e.to_string()),
                }
            }
        }
    }
}
