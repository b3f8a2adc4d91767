//! Turning how a remote call ended (a wire outcome) into the caller's result: values,
//! typed errors, flags (whose handlers run here), panics and bad arguments.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::serve::{dispatch_flag, FlagEvent, INVALID_CONNECTION, NULL};
use crate::wire::{Payload, WireOutcome};

/// Turns how a call ended into its result. `returns_result` rebuilds `Ok`/`Err` for
/// functions declared to return `Result<T, E>`.
pub(crate) fn decode<R: DeserializeOwned>(
    outcome: WireOutcome,
    peer: &str,
    tag: &str,
    returns_result: bool,
) -> Result<R> {
    match outcome {
        WireOutcome::Ok(payload) if returns_result => decode_in(payload, "Ok", peer, tag),
        WireOutcome::Ok(payload) => decode_payload(&payload, peer, tag),
        WireOutcome::Raised(payload) if returns_result => decode_in(payload, "Err", peer, tag),
        WireOutcome::Raised(payload) => Err(Error::Remote {
            peer: peer.to_owned(),
            tag: tag.to_owned(),
            message: format!("the function raised {}", payload.text()),
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

/// Decodes a payload into `R`.
fn decode_payload<R: DeserializeOwned>(payload: &Payload, peer: &str, tag: &str) -> Result<R> {
    payload.decode().map_err(|e| Error::Decode {
        peer: peer.to_owned(),
        tag: tag.to_owned(),
        message: e.to_string(),
    })
}

/// Decodes a payload as the `variant` (`Ok` or `Err`) of a `Result`: `{"Ok": payload}`,
/// whose markers still refer to the payload's attachments (the JSON part is small; any
/// bulk is in the attachments).
fn decode_in<R: DeserializeOwned>(
    payload: Payload,
    variant: &str,
    peer: &str,
    tag: &str,
) -> Result<R> {
    let mut json = Vec::with_capacity(payload.json.len() + variant.len() + 5);
    json.extend_from_slice(b"{\"");
    json.extend_from_slice(variant.as_bytes());
    json.extend_from_slice(b"\":");
    json.extend_from_slice(&payload.json);
    json.push(b'}');
    let wrapped = Payload {
        json: json.into(),
        ..payload
    };
    decode_payload(&wrapped, peer, tag)
}
