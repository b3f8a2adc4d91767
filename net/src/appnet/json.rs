//! app-net's JSON on the wire: where an unframed request ends, what it holds, and writing
//! JSON the way app-net 0.6 can read it (ASCII only).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Finds where one JSON object ends in bytes that arrive in pieces, without parsing it:
/// app-net sends a request with no length prefix or delimiter and then waits, so the end
/// of the value is the only end there is. State carries over between calls, so the total
/// work is linear in the request's size however it is split.
#[derive(Debug, Default)]
pub(crate) struct ObjectEnd {
    /// Open `{` and `[` not yet closed.
    depth: usize,
    /// Inside a string literal, where brackets do not count.
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escaped: bool,
    /// How much of the buffer earlier calls have looked at.
    scanned: usize,
}

impl ObjectEnd {
    /// Looks at the bytes of `buf` added since the last call (`buf` only grows) and returns
    /// the length of the complete value once its last closing bracket is in. Malformed
    /// JSON is left for the parser to describe; this only has to find a plausible end.
    pub(crate) fn feed(&mut self, buf: &[u8]) -> Option<usize> {
        for (i, &byte) in buf.iter().enumerate().skip(self.scanned) {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.scanned = i + 1;
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        self.scanned = buf.len();
        None
    }
}

/// One app-net request: `{"connection": TAG, "args": [...], "kwargs": {...}}`.
#[derive(Debug)]
pub(crate) struct Request {
    /// The function's tag (app-net calls it the connection).
    pub tag: String,
    /// A JSON array of positional arguments.
    pub args: Box<RawValue>,
    /// Keyword arguments as sent, app-net's own `peer` still among them.
    pub kwargs: Map<String, Value>,
}

/// What a request turned out to be.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// `{}`: app-net answers an empty request with its bare `NULL` flag.
    Empty,
    /// A call.
    Call(Request),
}

/// Reads a complete request. The error says what was wrong in terms a client author can
/// act on; it goes back in app-net's error packet.
pub(crate) fn parse_request(bytes: &[u8]) -> Result<Parsed, String> {
    let mut fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(bytes).map_err(|e| {
            let hint = if bytes.contains(&b'\'') {
                " (single quotes suggest app-net fell back to Python's str() because an \
                 argument was not JSON-serialisable, e.g. a net.Peer passed as peer=; pass \
                 (host, port) instead)"
            } else {
                ""
            };
            format!("the request is not valid JSON: {e}{hint}")
        })?;
    if fields.is_empty() {
        return Ok(Parsed::Empty);
    }
    let tag = match fields.remove("connection") {
        Some(raw) => serde_json::from_str::<String>(raw.get()).map_err(|_| {
            format!(
                "\"connection\" must be the function's tag as a string, got {}",
                truncate(raw.get())
            )
        })?,
        None => {
            return Err(
                "the request has no \"connection\" (the tag of the function to run); expected \
                 {\"connection\": TAG, \"args\": [...], \"kwargs\": {...}}"
                    .into(),
            )
        }
    };
    // app-net always sends both; a hand-written client may leave out what it does not use.
    let args = match fields.remove("args") {
        Some(raw) if raw.get().starts_with('[') => raw,
        Some(raw) if raw.get() == "null" => empty_array(),
        None => empty_array(),
        Some(raw) => {
            return Err(format!(
                "\"args\" must be a JSON array of positional arguments, got {}",
                truncate(raw.get())
            ))
        }
    };
    let kwargs = match fields.remove("kwargs") {
        None => Map::new(),
        Some(raw) => match serde_json::from_str::<Option<Map<String, Value>>>(raw.get()) {
            Ok(kwargs) => kwargs.unwrap_or_default(),
            Err(_) => {
                return Err(format!(
                    "\"kwargs\" must be a JSON object of keyword arguments, got {}",
                    truncate(raw.get())
                ))
            }
        },
    };
    Ok(Parsed::Call(Request { tag, args, kwargs }))
}

fn empty_array() -> Box<RawValue> {
    // "[]" is valid JSON.
    RawValue::from_string("[]".to_owned()).unwrap_or_else(|_| unreachable!())
}

/// Encodes a request the way app-net's client does.
pub(crate) fn encode_request(tag: &str, args: &RawValue, kwargs: &Map<String, Value>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a> {
        connection: &'a str,
        args: &'a RawValue,
        kwargs: &'a Map<String, Value>,
    }
    to_ascii_json(&Out {
        connection: tag,
        args,
        kwargs,
    })
}

/// Serialises `value` as ASCII-only JSON. app-net decodes every message with
/// `bytes.decode('ascii')` and fails on anything else, as Python's `json.dumps` never
/// writes non-ASCII.
pub(crate) fn to_ascii_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Values here are JSON already (raw values, maps, strings): encoding into memory
    // cannot fail.
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    ascii(&text).into_owned().into_bytes()
}

/// Rewrites every non-ASCII character of JSON text as `\uXXXX` escapes (UTF-16 pairs
/// beyond the basic plane), as Python's `json.dumps` does. Outside string literals JSON
/// has only ASCII, so this is safe on any valid JSON text, raw values included.
pub(crate) fn ascii(json: &str) -> Cow<'_, str> {
    if json.is_ascii() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + json.len() / 2);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    Cow::Owned(out)
}

/// The first 200 characters of `text`, for messages.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_in_pieces(text: &str, piece: usize) -> Option<usize> {
        let mut finder = ObjectEnd::default();
        let mut buf = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            buf.extend_from_slice(chunk);
            if let Some(end) = finder.feed(&buf) {
                return Some(end);
            }
        }
        None
    }

    #[test]
    fn finds_the_end_however_the_bytes_are_split() {
        let request = r#"{"connection": "a.b", "args": [{"x": "}]\"{["}, [1, [2]]], "kwargs": {}}"#;
        for piece in 1..=request.len() {
            assert_eq!(
                end_in_pieces(request, piece),
                Some(request.len()),
                "{piece}"
            );
        }
        let with_tail = format!("{request}  trailing");
        assert_eq!(end_in_pieces(&with_tail, 7), Some(request.len()));
    }

    #[test]
    fn an_unfinished_value_has_no_end() {
        assert_eq!(
            end_in_pieces(r#"{"connection": "a", "args": [1, 2"#, 3),
            None
        );
        assert_eq!(end_in_pieces(r#"{"connection": "a}"#, 3), None);
        assert_eq!(end_in_pieces(r#"{"connection": "\"}"#, 1), None);
    }

    #[test]
    fn parses_app_nets_request() {
        let bytes = br#"{"connection": "app.multiply", "args": [5, 10], "kwargs": {"peer": ["127.0.0.1", 3010]}}"#;
        let Parsed::Call(request) = parse_request(bytes).unwrap() else {
            panic!("not a call")
        };
        assert_eq!(request.tag, "app.multiply");
        assert_eq!(request.args.get(), "[5, 10]");
        assert!(request.kwargs.contains_key("peer"));
    }

    #[test]
    fn empty_and_partial_requests() {
        assert!(matches!(parse_request(b"{}").unwrap(), Parsed::Empty));
        let Parsed::Call(request) = parse_request(br#"{"connection": "x"}"#).unwrap() else {
            panic!("not a call")
        };
        assert_eq!((request.args.get(), request.kwargs.len()), ("[]", 0));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let err = |bytes: &[u8]| parse_request(bytes).unwrap_err();
        assert!(err(br#"{"args": []}"#).contains("no \"connection\""));
        assert!(err(br#"{"connection": 5}"#).contains("as a string"));
        assert!(err(br#"{"connection": "x", "args": {"a": 1}}"#).contains("JSON array"));
        assert!(err(br#"{"connection": "x", "kwargs": [1]}"#).contains("JSON object"));
        assert!(err(br#"{"connection": "x", "args": [1,}"#).contains("not valid JSON"));
        let repr = br#"{'connection': 'x', 'args': (), 'kwargs': {'peer': <net.Peer>}}"#;
        assert!(err(repr).contains("str()"));
    }

    #[test]
    fn writes_ascii_like_python() {
        assert_eq!(
            ascii(r#"["café", "😀"]"#),
            r#"["caf\u00e9", "\ud83d\ude00"]"#
        );
        let back: Vec<String> = serde_json::from_str(&ascii(r#"["café", "😀"]"#)).unwrap();
        assert_eq!(back, ["café", "😀"]);
        assert!(matches!(ascii("[1]"), Cow::Borrowed(_)));
    }

    #[test]
    fn request_encoding_matches_app_net() {
        let args = RawValue::from_string("[5,\"é\"]".into()).unwrap();
        let bytes = encode_request("app.multiply", &args, &Map::new());
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"connection":"app.multiply","args":[5,"\u00e9"],"kwargs":{}}"#
        );
    }
}
