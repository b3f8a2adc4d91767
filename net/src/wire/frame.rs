//! The messages peers exchange, one JSON object per frame.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Payload;
use crate::id::PeerId;

/// Bumped on any change that an older peer would misread. Peers with different versions
/// refuse each other with a clear error on both sides.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// One frame's message: a JSON object with exactly one key naming the kind.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Frame {
    /// First frame each side sends.
    Hello(Hello),
    /// Run a function.
    Call(CallFrame),
    /// The result of an earlier call from the other side.
    Reply(ReplyFrame),
    /// The caller gave up on call `id` (timeout or dropped): stop the work.
    Cancel {
        /// The call's id.
        id: u64,
    },
    /// A fatal problem; the sender closes the connection after it.
    Error {
        /// What was wrong, for the other side's logs and errors.
        message: String,
    },
    /// The sender is shutting down cleanly.
    Goodbye,
}

/// Who a peer is, sent once at the start of a connection by both sides.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub protocol: u32,
    /// The peer's id, or `None` for a client that serves nothing (e.g. a script).
    pub id: Option<PeerId>,
    pub group: Option<String>,
    pub hub: bool,
    /// The crate version, for `info` and messages.
    pub version: String,
    /// The largest frame the sender accepts; the other side checks before sending.
    pub max_frame: usize,
    /// The sender reads frames with binary attachments (`payload.rs`); without it, binary
    /// values are sent to it as base64 text inside the JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachments: bool,
    /// A random name the sender gave this connection, sent only by the side that opened
    /// it: the other side may later ask the sender at its own address whether it opened a
    /// connection of this name (`net.link.dialled`), and then use this one connection for
    /// calls both ways (docs/PROTOCOL.md section 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A call of the function registered under `tag`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CallFrame {
    /// Chosen by the caller, unique among its calls in flight on this connection.
    pub id: u64,
    pub tag: String,
    /// A JSON array of positional arguments.
    pub args: Box<RawValue>,
    /// Keyword arguments by parameter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<Map<String, Value>>,
    /// How long the caller waits, relative (so clocks need not agree); the callee stops
    /// the work when it runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// No reply is wanted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oneway: bool,
}

/// A frame as this side reads it: [`Frame`], with a call's tag and arguments borrowed
/// from the frame's bytes, so that reading a call allocates nothing (the arguments are
/// copied later, on the thread that runs the handler).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Incoming<'a> {
    /// As [`Frame::Hello`]; only ever an error after the handshake, so not kept.
    Hello(serde::de::IgnoredAny),
    /// As [`Frame::Call`].
    #[serde(borrow)]
    Call(CallIn<'a>),
    /// As [`Frame::Reply`].
    Reply(ReplyIn),
    /// As [`Frame::Cancel`].
    Cancel {
        /// The call's id.
        id: u64,
    },
    /// As [`Frame::Error`].
    Error {
        /// What was wrong.
        message: String,
    },
    /// As [`Frame::Goodbye`].
    Goodbye,
    /// A goodbye with a reason: `{"goodbye":{"reason":"idle"}}`, a peer that closes an
    /// idle connection but still runs (read by `fast::decode`, not by serde).
    #[serde(skip_deserializing)]
    Parting {
        /// Why, e.g. `idle`.
        reason: Option<String>,
    },
}

/// [`CallFrame`], borrowed from the frame's bytes.
#[derive(Debug, Deserialize)]
pub(crate) struct CallIn<'a> {
    pub id: u64,
    /// Borrowed unless it holds escapes.
    #[serde(borrow)]
    pub tag: Cow<'a, str>,
    #[serde(borrow)]
    pub args: &'a RawValue,
    #[serde(default)]
    pub kwargs: Option<Map<String, Value>>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub oneway: bool,
}

/// A call frame from borrowed parts, as serde writes it: the reference that
/// `fast::encode_call` is tested against.
#[cfg(test)]
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outgoing<'a> {
    /// As [`Frame::Call`].
    Call(CallSerde<'a>),
}

/// [`CallRef`] with its arguments as a `RawValue`, for serde (tests only).
#[cfg(test)]
#[derive(Serialize)]
pub(crate) struct CallSerde<'a> {
    pub id: u64,
    pub tag: &'a str,
    pub args: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kwargs: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oneway: bool,
}

/// [`CallFrame`], borrowed: what a call is sent from, without copying its tag and
/// arguments first. `args` is JSON text (a payload's, markers or base64 as the link
/// takes them).
pub(crate) struct CallRef<'a> {
    pub id: u64,
    pub tag: &'a str,
    pub args: &'a [u8],
    pub kwargs: Option<&'a Map<String, Value>>,
    pub timeout_ms: Option<u64>,
    pub oneway: bool,
}

/// The answer to call `id`, as serde reads and writes it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReplyFrame {
    pub id: u64,
    pub outcome: OutcomeJson,
}

/// The answer to call `id`, as this side reads it: the value a payload, its attachments
/// added by the reader.
#[derive(Debug, Deserialize)]
#[serde(from = "ReplyFrame")]
pub(crate) struct ReplyIn {
    pub id: u64,
    pub outcome: WireOutcome,
}

impl From<ReplyFrame> for ReplyIn {
    fn from(reply: ReplyFrame) -> ReplyIn {
        ReplyIn {
            id: reply.id,
            outcome: reply.outcome.into(),
        }
    }
}

/// How a call ended: a value or typed error as a payload, or a flag, panic or refusal.
#[derive(Debug)]
pub(crate) enum WireOutcome {
    /// The return value.
    Ok(Payload),
    /// The function's typed error (`Err(e)` of a `Result`).
    Raised(Payload),
    /// A named flag; `INVALID_CONNECTION` carries the peer's tags in `detail`.
    Flag { name: String, detail: Value },
    /// The function panicked or failed.
    Panic { message: String, location: String },
    /// The arguments did not fit the parameters.
    BadArgs { message: String },
}

impl From<OutcomeJson> for WireOutcome {
    fn from(outcome: OutcomeJson) -> WireOutcome {
        let payload = Payload::from_raw;
        match outcome {
            OutcomeJson::Ok(raw) => WireOutcome::Ok(payload(raw)),
            OutcomeJson::Raised(raw) => WireOutcome::Raised(payload(raw)),
            OutcomeJson::Flag { name, detail } => WireOutcome::Flag { name, detail },
            OutcomeJson::Panic { message, location } => WireOutcome::Panic { message, location },
            OutcomeJson::BadArgs { message } => WireOutcome::BadArgs { message },
        }
    }
}

/// How a call ended, as serde reads and writes it (the fast way writes the same).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OutcomeJson {
    /// The return value.
    Ok(Box<RawValue>),
    /// The function's typed error (`Err(e)` of a `Result`).
    Raised(Box<RawValue>),
    /// A named flag; `INVALID_CONNECTION` carries the peer's tags in `detail`.
    Flag { name: String, detail: Value },
    /// The function panicked or failed.
    Panic { message: String, location: String },
    /// The arguments did not fit the parameters.
    BadArgs { message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_frame_is_plain_json() {
        let frame = Frame::Call(CallFrame {
            id: 7,
            tag: "bXVs".into(),
            args: RawValue::from_string("[5,10]".into()).unwrap(),
            kwargs: None,
            timeout_ms: Some(500),
            oneway: false,
        });
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            json,
            r#"{"call":{"id":7,"tag":"bXVs","args":[5,10],"timeout_ms":500}}"#
        );
        match serde_json::from_str::<Frame>(&json).unwrap() {
            Frame::Call(call) => assert_eq!(call.args.get(), "[5,10]"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_borrowed_call_encodes_as_the_owned_one() {
        let args = RawValue::from_string("[5,10]".into()).unwrap();
        let mut kwargs = Map::new();
        kwargs.insert("b".into(), Value::from(2));
        for (kwargs, timeout_ms, oneway) in [(None, Some(500), false), (Some(kwargs), None, true)] {
            let owned = Frame::Call(CallFrame {
                id: 7,
                tag: "bXVs".into(),
                args: args.clone(),
                kwargs: kwargs.clone(),
                timeout_ms,
                oneway,
            });
            let borrowed = Outgoing::Call(CallSerde {
                id: 7,
                tag: "bXVs",
                args: &args,
                kwargs: kwargs.as_ref(),
                timeout_ms,
                oneway,
            });
            assert_eq!(
                serde_json::to_string(&borrowed).unwrap(),
                serde_json::to_string(&owned).unwrap()
            );
        }
    }

    #[test]
    fn incoming_reads_what_frame_reads() {
        let texts = [
            r#"{"call":{"id":7,"tag":"bXVs","args":[5,10],"timeout_ms":500}}"#,
            r#"{"call":{"id":8,"tag":"caf\u00e9","args":[],"kwargs":{"a":1},"oneway":true}}"#,
            r#"{"reply":{"id":7,"outcome":{"ok":50}}}"#,
            r#"{"cancel":{"id":7}}"#,
            r#"{"error":{"message":"no"}}"#,
            r#""goodbye""#,
        ];
        for text in texts {
            let owned: Frame = serde_json::from_str(text).unwrap();
            let borrowed: Incoming = serde_json::from_str(text).unwrap();
            match (owned, borrowed) {
                (Frame::Call(a), Incoming::Call(b)) => {
                    assert_eq!(
                        (
                            a.id,
                            a.tag.as_str(),
                            a.args.get(),
                            a.kwargs,
                            a.timeout_ms,
                            a.oneway
                        ),
                        (
                            b.id,
                            &*b.tag,
                            b.args.get(),
                            b.kwargs,
                            b.timeout_ms,
                            b.oneway
                        )
                    );
                }
                (Frame::Reply(a), Incoming::Reply(b)) => assert_eq!(a.id, b.id),
                (Frame::Cancel { id: a }, Incoming::Cancel { id: b }) => assert_eq!(a, b),
                (Frame::Error { message: a }, Incoming::Error { message: b }) => {
                    assert_eq!(a, b)
                }
                (Frame::Goodbye, Incoming::Goodbye) => {}
                (a, b) => panic!("{text}: {a:?} vs {b:?}"),
            }
        }
        // The tag of a call with escapes is unescaped, not borrowed.
        match serde_json::from_str::<Incoming>(texts[1]).unwrap() {
            Incoming::Call(call) => assert_eq!(call.tag, "café"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reply_frame_round_trips() {
        let json = r#"{"reply":{"id":7,"outcome":{"ok":{"a":[1,2]}}}}"#;
        match serde_json::from_str::<Frame>(json).unwrap() {
            Frame::Reply(ReplyFrame {
                id: 7,
                outcome: OutcomeJson::Ok(raw),
            }) => assert_eq!(raw.get(), r#"{"a":[1,2]}"#),
            other => panic!("{other:?}"),
        }
    }
}
