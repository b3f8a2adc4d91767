//! The two frames every call sends, a call and its reply, written and read by hand: the
//! same JSON as serde's, without its per-key machinery (about a fifth of a call's work
//! in the call benchmark). Reading takes the fast way only for the exact layout this
//! crate writes and hands anything else to serde, so what is accepted, and how, does not
//! change.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{CallIn, CallRef, Incoming, Payload, ReplyIn, WireOutcome};

/// Writes a call frame's JSON into `buf` (cleared first); the same text as serde writes
/// for [`super::Outgoing::Call`].
pub(crate) fn encode_call(call: &CallRef<'_>, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(br#"{"call":{"id":"#);
    put_u64(buf, call.id);
    buf.extend_from_slice(br#","tag":"#);
    put_str(buf, call.tag);
    buf.extend_from_slice(br#","args":"#);
    buf.extend_from_slice(call.args);
    if let Some(kwargs) = call.kwargs {
        buf.extend_from_slice(br#","kwargs":"#);
        put_json(buf, kwargs);
    }
    if let Some(timeout_ms) = call.timeout_ms {
        buf.extend_from_slice(br#","timeout_ms":"#);
        put_u64(buf, timeout_ms);
    }
    if call.oneway {
        buf.extend_from_slice(br#","oneway":true"#);
    }
    buf.extend_from_slice(b"}}");
}

/// Writes a reply frame's JSON into `buf` (cleared first); the same text as serde writes
/// for [`super::Frame::Reply`]. A value's markers stay in with `attachments`, for a frame
/// that carries them; without, the attachments are written in as base64.
pub(crate) fn encode_reply(id: u64, outcome: &WireOutcome, attachments: bool, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(br#"{"reply":{"id":"#);
    put_u64(buf, id);
    buf.extend_from_slice(br#","outcome":"#);
    let value = |key: &[u8], payload: &Payload, buf: &mut Vec<u8>| {
        buf.extend_from_slice(key);
        match attachments {
            true => buf.extend_from_slice(&payload.json),
            false => buf.extend_from_slice(&payload.inline_json()),
        }
        buf.push(b'}');
    };
    match outcome {
        WireOutcome::Ok(payload) => value(br#"{"ok":"#, payload, buf),
        WireOutcome::Raised(payload) => value(br#"{"raised":"#, payload, buf),
        WireOutcome::Flag { name, detail } => put_json(buf, &OutcomeRef::Flag { name, detail }),
        WireOutcome::Panic { message, location } => {
            put_json(buf, &OutcomeRef::Panic { message, location })
        }
        WireOutcome::BadArgs { message } => put_json(buf, &OutcomeRef::BadArgs { message }),
    }
    buf.extend_from_slice(b"}}");
}

/// The outcomes that are no payload, borrowed, as serde writes them.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeRef<'a> {
    Flag { name: &'a str, detail: &'a Value },
    Panic { message: &'a str, location: &'a str },
    BadArgs { message: &'a str },
}

/// Reads one frame's JSON (`json`, checked as UTF-8 here, once). A reply's value is a
/// slice of `json`, not a copy.
pub(crate) fn decode(json: &Bytes) -> Result<Incoming<'_>, String> {
    let text = std::str::from_utf8(json).map_err(|e| e.to_string())?;
    let fast = match text.as_bytes().get(2) {
        Some(b'c') => call(text).map(Incoming::Call),
        Some(b'r') => reply(json, text).map(Incoming::Reply),
        _ => None,
    };
    match fast {
        Some(frame) => Ok(frame),
        None => serde_json::from_str(text).or_else(|e| parting(text).ok_or(e.to_string())),
    }
}

/// `{"goodbye":{"reason":R}}`, the goodbye of a peer that closes an idle connection (a
/// unit variant's object form, which serde does not read).
fn parting(text: &str) -> Option<Incoming<'static>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Parting {
        goodbye: Reason,
    }
    #[derive(serde::Deserialize)]
    struct Reason {
        #[serde(default)]
        reason: Option<String>,
    }
    let parting: Parting = serde_json::from_str(text).ok()?;
    Some(Incoming::Parting {
        reason: parting.goodbye.reason,
    })
}

/// `{"call":{"id":N,"tag":"T","args":A[,"timeout_ms":N][,"oneway":true]}}` with a tag
/// free of escapes; `None` for anything else.
fn call(text: &str) -> Option<CallIn<'_>> {
    let rest = text.strip_prefix(r#"{"call":{"id":"#)?;
    let (id, rest) = take_u64(rest)?;
    let rest = rest.strip_prefix(r#","tag":""#)?;
    let end = rest.find('"')?;
    let tag = &rest[..end];
    if tag.bytes().any(|b| b == b'\\' || b < 0x20) {
        return None;
    }
    let rest = rest[end + 1..].strip_prefix(r#","args":"#)?;
    // serde finds where the arguments end, and checks them.
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
    let args = values.next()?.ok()?;
    let mut rest = &rest[values.byte_offset()..];
    let mut timeout_ms = None;
    if let Some(after) = rest.strip_prefix(r#","timeout_ms":"#) {
        let (ms, after) = take_u64(after)?;
        timeout_ms = Some(ms);
        rest = after;
    }
    let mut oneway = false;
    if let Some(after) = rest.strip_prefix(r#","oneway":true"#) {
        oneway = true;
        rest = after;
    }
    (rest == "}}").then_some(CallIn {
        id,
        tag: Cow::Borrowed(tag),
        args,
        kwargs: None,
        timeout_ms,
        oneway,
    })
}

/// `{"reply":{"id":N,"outcome":{"ok":V}}}` or with `"raised"` (`text` is `json`); `None`
/// for anything else.
fn reply(json: &Bytes, text: &str) -> Option<ReplyIn> {
    let rest = text.strip_prefix(r#"{"reply":{"id":"#)?;
    let (id, rest) = take_u64(rest)?;
    let rest = rest.strip_prefix(r#","outcome":{"#)?;
    let (raised, rest) = match rest.strip_prefix(r#""ok":"#) {
        Some(rest) => (false, rest),
        None => (true, rest.strip_prefix(r#""raised":"#)?),
    };
    // Exactly one JSON value, checked by serde, between the key and the closing braces.
    let value = rest.strip_suffix("}}}")?;
    serde_json::from_str::<&RawValue>(value).ok()?;
    let start = value.as_ptr() as usize - text.as_ptr() as usize;
    let payload = Payload::json(json.slice(start..start + value.len()));
    let outcome = match raised {
        false => WireOutcome::Ok(payload),
        true => WireOutcome::Raised(payload),
    };
    Some(ReplyIn { id, outcome })
}

/// A JSON number that fits a u64, written as serde writes one (no sign, no leading zero,
/// no fraction or exponent), and what follows it.
fn take_u64(text: &str) -> Option<(u64, &str)> {
    let bytes = text.as_bytes();
    let mut n: u64 = 0;
    let mut digits = 0;
    while let Some(&b) = bytes.get(digits).filter(|b| b.is_ascii_digit()) {
        // Too big for a u64: serde says so.
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    if digits == 0 || (digits > 1 && bytes[0] == b'0') {
        return None;
    }
    if matches!(bytes.get(digits), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some((n, &text[digits..]))
}

fn put_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A string as JSON: as is between quotes when it needs no escape (tags almost never
/// do), which is what serde writes too; through serde otherwise.
fn put_str(buf: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else {
        put_json(buf, text);
    }
}

fn put_json(buf: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Strings, maps of JSON values and outcomes: writing them into memory cannot fail.
    let _ = serde_json::to_writer(&mut *buf, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CallSerde, Frame, OutcomeJson, Outgoing, ReplyFrame};
    use serde_json::{json, Map, Value};

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn calls_are_written_as_serde_writes_them() {
        let args = raw(r#"[5,"x\"y",{"a":[1,2]}]"#);
        let mut kwargs = Map::new();
        kwargs.insert("b".into(), json!({"c": null}));
        for tag in ["bXVs", "registry.get", "qu\"ote\\ and \u{1} café"] {
            for (kwargs, timeout_ms, oneway) in [
                (None, Some(30_000), false),
                (None, None, true),
                (Some(&kwargs), Some(0), false),
                (Some(&kwargs), None, true),
            ] {
                let call = CallRef {
                    id: u64::MAX,
                    tag,
                    args: args.get().as_bytes(),
                    kwargs,
                    timeout_ms,
                    oneway,
                };
                let mut ours = Vec::new();
                encode_call(&call, &mut ours);
                let reference = CallSerde {
                    id: u64::MAX,
                    tag,
                    args: &args,
                    kwargs,
                    timeout_ms,
                    oneway,
                };
                let serde = serde_json::to_vec(&Outgoing::Call(reference)).unwrap();
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    String::from_utf8(serde).unwrap()
                );
            }
        }
    }

    #[test]
    fn replies_are_written_as_serde_writes_them() {
        let outcomes = || {
            [
                OutcomeJson::Ok(raw("50")),
                OutcomeJson::Ok(raw(r#"{"k":[1,"}}}"]}"#)),
                OutcomeJson::Raised(raw(r#"{"key":"arrakis"}"#)),
                OutcomeJson::Flag {
                    name: "NULL".into(),
                    detail: Value::Null,
                },
                OutcomeJson::Panic {
                    message: "boom \"x\"".into(),
                    location: "a.rs:1:2".into(),
                },
                OutcomeJson::BadArgs {
                    message: "no".into(),
                },
            ]
        };
        for (id, (reference, outcome)) in (0..).zip(outcomes().into_iter().zip(outcomes())) {
            let outcome = WireOutcome::from(outcome);
            let serde = serde_json::to_string(&Frame::Reply(ReplyFrame {
                id,
                outcome: reference,
            }))
            .unwrap();
            for attachments in [false, true] {
                let mut ours = Vec::new();
                encode_reply(id, &outcome, attachments, &mut ours);
                assert_eq!(String::from_utf8(ours).unwrap(), serde);
            }
        }
    }

    /// Every frame text reads the same through the fast way as through serde, and the
    /// fast way is taken for the layouts this crate writes.
    #[test]
    fn reading_agrees_with_serde() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"call":{"id":7,"tag":"bXVs","args":[5,10],"timeout_ms":500}}"#,
                true,
            ),
            (
                r#"{"call":{"id":0,"tag":"","args":[],"oneway":true}}"#,
                true,
            ),
            (
                r#"{"call":{"id":9,"tag":"t","args":[{"}}":"]"}],"timeout_ms":1,"oneway":true}}"#,
                true,
            ),
            (r#"{"call":{"id":7,"tag":"caf\u00e9","args":[]}}"#, false),
            (
                r#"{"call":{"id":7,"tag":"t","args":[],"kwargs":{"a":1}}}"#,
                false,
            ),
            (r#"{"call":{"tag":"t","id":7,"args":[]}}"#, false),
            (r#"{"call":{"id":7, "tag":"t","args":[]}}"#, false),
            (r#"{"call":{"id":07,"tag":"t","args":[]}}"#, false),
            (r#"{"call":{"id":7.0,"tag":"t","args":[]}}"#, false),
            (
                r#"{"call":{"id":99999999999999999999,"tag":"t","args":[]}}"#,
                false,
            ),
            (r#"{"call":{"id":7,"tag":"t","args":[1,}}"#, false),
            (
                r#"{"call":{"id":7,"tag":"t","args":[],"timeout_ms":5,"extra":1}}"#,
                false,
            ),
            (r#"{"reply":{"id":7,"outcome":{"ok":50}}}"#, true),
            (r#"{"reply":{"id":7,"outcome":{"ok":{"a":"}}}"}}}}"#, true),
            (
                r#"{"reply":{"id":7,"outcome":{"raised":{"key":"x"}}}}"#,
                true,
            ),
            (r#"{"reply":{"id":7,"outcome":{"ok":1}},"x":2}}}"#, false),
            (r#"{"reply":{"id":7,"outcome":{"ok":}}}"#, false),
            (
                r#"{"reply":{"id":7,"outcome":{"panic":{"message":"m","location":"l"}}}}"#,
                false,
            ),
            (r#"{"reply":{"outcome":{"ok":1},"id":7}}"#, false),
            (r#"{"cancel":{"id":7}}"#, false),
            (r#""goodbye""#, false),
            (r#"{"cx"#, false),
        ];
        for &(text, fast) in cases {
            let by_hand = match text.as_bytes().get(2) {
                Some(b'c') => call(text).map(|c| format!("{c:?}")),
                Some(b'r') => reply(&Bytes::from(text.to_owned()), text).map(|r| format!("{r:?}")),
                _ => None,
            };
            assert_eq!(by_hand.is_some(), fast, "{text}: fast way taken?");
            let json = Bytes::from(text.to_owned());
            let ours = decode(&json).map(|f| format!("{f:?}"));
            let serde = serde_json::from_str::<Incoming>(text)
                .map(|f| format!("{f:?}"))
                .map_err(|e| e.to_string());
            assert_eq!(ours, serde, "{text}");
        }
    }
}
