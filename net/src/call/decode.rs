//! Turning how a remote call ended (a wire outcome) into the caller's result: values,
//! typed errors, flags (whose handlers run here), panics and bad arguments.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::serve::{dispatch_flag, FlagEvent, INVALID_CONNECTION, NULL};
use crate::wire::WireOutcome;

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
            dispatch_flag(&FlagEvent {
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

pub(crate) fn decode_json<R: DeserializeOwned>(json: &str, peer: &str, tag: &str) -> Result<R> {
    serde_json::from_str(json).map_err(|e| Error::Decode {
        peer: peer.to_owned(),
        tag: tag.to_owned(),
        message: e.to_string(),
    })
}
