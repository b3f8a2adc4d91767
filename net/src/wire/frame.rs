//! The messages peers exchange, one JSON object per frame.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

/// A frame as this side sends it, from borrowed parts: the same JSON as [`Frame`], so
/// that a call goes out without copying its tag and arguments first.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outgoing<'a> {
    /// As [`Frame::Call`].
    Call(CallRef<'a>),
}

/// [`CallFrame`], borrowed.
#[derive(Serialize)]
pub(crate) struct CallRef<'a> {
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

/// The answer to call `id`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReplyFrame {
    pub id: u64,
    pub outcome: WireOutcome,
}

/// How a call ended, as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireOutcome {
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
            let borrowed = Outgoing::Call(CallRef {
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
    fn reply_frame_round_trips() {
        let json = r#"{"reply":{"id":7,"outcome":{"ok":{"a":[1,2]}}}}"#;
        match serde_json::from_str::<Frame>(json).unwrap() {
            Frame::Reply(ReplyFrame {
                id: 7,
                outcome: WireOutcome::Ok(raw),
            }) => assert_eq!(raw.get(), r#"{"a":[1,2]}"#),
            other => panic!("{other:?}"),
        }
    }
}
