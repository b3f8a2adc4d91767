//! Calling a Python app-net peer: one TCP connection per call, the request in app-net's
//! JSON, the reply read to the end and turned into the outcome a `net` call expects.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::info::AppNetInfo;
use super::json;
use super::{INFO_TAG, PYTHON_READ_LIMIT};
use crate::error::Error;
use crate::serve::{self, INVALID_CONNECTION};
use crate::wire::{Payload, WireOutcome};

/// How long the follow-up `info` that lists an app-net peer's tags for an
/// INVALID_CONNECTION error may take at most.
const LIST_TAGS_BUDGET: Duration = Duration::from_secs(1);

/// Calls `tag` on the app-net peer at `addr`, all within `budget`; a reply is read up to
/// `max_reply` bytes. `None` for a one-way call, which returns once the request is sent
/// (the reply is read and dropped in the background so app-net's server is not cut off
/// mid-answer).
pub(crate) async fn call(
    addr: SocketAddr,
    tag: &str,
    args: &RawValue,
    kwargs: Option<&Map<String, Value>>,
    budget: Duration,
    max_reply: usize,
    oneway: bool,
) -> Result<Option<WireOutcome>, Error> {
    let started = Instant::now();
    // Unlike app-net's own client we never send `peer`: it would be passed on to the
    // Python function, which then needs a `peer` parameter or **kwargs.
    let empty = Map::new();
    let request = json::encode_request(tag, args, kwargs.unwrap_or(&empty));
    if request.len() > PYTHON_READ_LIMIT {
        return Err(Error::Encode {
            tag: tag.to_owned(),
            message: format!(
                "the request is {} bytes, but an app-net 0.6 peer reads only the first {} bytes \
                 of a request and would fail to parse it; send smaller arguments (for example \
                 a path or key to fetch the data by)",
                request.len(),
                PYTHON_READ_LIMIT
            ),
        });
    }
    let label = format!("app-net peer {addr}");
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(addr, e))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(&request)
            .await
            .map_err(|e| closed(&label, format!("while sending the request: {e}")))?;
        if oneway {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(budget, stream.read_to_end(&mut sink)).await;
            });
            return Ok(None);
        }
        // app-net's server sends the whole reply and closes: the reply ends at EOF.
        let mut reply = Vec::new();
        let limit = u64::try_from(max_reply)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        (&mut stream)
            .take(limit)
            .read_to_end(&mut reply)
            .await
            .map_err(|e| closed(&label, format!("while reading the reply: {e}")))?;
        if reply.len() > max_reply {
            return Err(Error::FrameTooLarge {
                size: reply.len(),
                max: max_reply,
                side: "this peer (reading an app-net reply)".into(),
            });
        }
        interpret(&reply, &label).map(Some)
    };
    let outcome = match tokio::time::timeout(budget, exchange).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Error::Timeout {
                peer: label,
                tag: tag.to_owned(),
                after: budget,
                step: crate::error::TimeoutStep::Reply,
            })
        }
    };
    match outcome {
        // app-net's flag says nothing about what the peer has; its info does (unless info
        // itself is what the peer lacks).
        Some(WireOutcome::Flag { name, .. }) if name == INVALID_CONNECTION && tag != INFO_TAG => {
            let left = budget
                .saturating_sub(started.elapsed())
                .min(LIST_TAGS_BUDGET);
            let detail = match info(addr, left).await {
                Some(info) => info.connections.into_iter().map(Value::String).collect(),
                None => vec![Value::String(
                    "(unknown: the app-net peer's info did not answer)".into(),
                )],
            };
            Ok(Some(WireOutcome::Flag {
                name,
                detail: Value::Array(detail),
            }))
        }
        other => Ok(other),
    }
}

/// Asks the app-net peer at `addr` for its `info`; `None` if it does not answer in time or
/// is not a Python app-net peer.
async fn info(addr: SocketAddr, budget: Duration) -> Option<AppNetInfo> {
    let args = RawValue::from_string("[]".to_owned()).ok()?;
    match Box::pin(call(addr, INFO_TAG, &args, None, budget, 1 << 20, false)).await {
        Ok(Some(WireOutcome::Ok(payload))) => AppNetInfo::recognise(&payload.decode().ok()?),
        _ => None,
    }
}

/// app-net's error packet.
#[derive(Deserialize)]
struct ErrorPacket {
    payload: Option<Value>,
    traceback: Option<Value>,
}

/// Turns app-net's reply into an outcome, as app-net's client does: a bare flag name or
/// the JSON string of one is that flag, `{"payload": "error", ...}` is a remote exception,
/// any other JSON is the value.
fn interpret(reply: &[u8], label: &str) -> Result<WireOutcome, Error> {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim();
    if text.is_empty() {
        return Err(closed(
            label,
            "the app-net peer closed the connection without answering".into(),
        ));
    }
    let flags = serve::flag_names();
    let is_flag = |name: &str| flags.iter().any(|f| f == name);
    if is_flag(text) {
        return Ok(flag(text));
    }
    let raw: Box<RawValue> = serde_json::from_str(text).map_err(|_| Error::Protocol {
        peer: label.to_owned(),
        message: format!(
            "the reply is neither JSON nor a flag: {:?} (is an app-net 0.6 peer listening \
             there?)",
            json::truncate(text)
        ),
    })?;
    match raw.get().as_bytes().first() {
        Some(b'{') => {
            if let Ok(ErrorPacket {
                payload: Some(Value::String(payload)),
                traceback,
            }) = serde_json::from_str::<ErrorPacket>(raw.get())
            {
                if payload == "error" {
                    let traceback = match traceback {
                        Some(Value::String(text)) => text,
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    return Ok(from_traceback(&traceback));
                }
            }
        }
        Some(b'"') => {
            if let Ok(name) = serde_json::from_str::<String>(raw.get()) {
                if is_flag(&name) {
                    return Ok(flag(&name));
                }
            }
        }
        _ => {}
    }
    Ok(WireOutcome::Ok(Payload::from_raw(raw)))
}

fn flag(name: &str) -> WireOutcome {
    WireOutcome::Flag {
        name: name.to_owned(),
        detail: Value::Null,
    }
}

/// A Python traceback as a remote failure: its last line (`ZeroDivisionError: division by
/// zero`) is the message, its innermost `File "...", line N, in f` the location.
fn from_traceback(traceback: &str) -> WireOutcome {
    let lines: Vec<&str> = traceback
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = lines
        .last()
        .map_or(
            "the app-net peer raised an exception without a traceback",
            |l| l,
        )
        .to_owned();
    let location = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("File "))
        .map_or_else(|| "the app-net peer".to_owned(), |l| format!("Python: {l}"));
    WireOutcome::Panic { message, location }
}

fn unreachable(addr: SocketAddr, e: std::io::Error) -> Error {
    Error::Unreachable {
        addr: addr.to_string(),
        reason: format!("{e} (is a Python app-net peer listening there?)"),
        source: Some(std::sync::Arc::new(e)),
    }
}

fn closed(label: &str, reason: String) -> Error {
    Error::ConnectionClosed {
        peer: label.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(reply: &str) -> WireOutcome {
        interpret(reply.as_bytes(), "test").unwrap()
    }

    #[test]
    fn reads_app_nets_replies() {
        assert!(matches!(outcome("50"), WireOutcome::Ok(p) if p.text() == "50"));
        assert!(matches!(outcome("NULL"), WireOutcome::Flag { name, .. } if name == "NULL"));
        assert!(matches!(outcome("\"NULL\""), WireOutcome::Flag { name, .. } if name == "NULL"));
        assert!(matches!(
            outcome("INVALID_CONNECTION"),
            WireOutcome::Flag { name, .. } if name == INVALID_CONNECTION
        ));
        assert!(matches!(outcome("\"hello\""), WireOutcome::Ok(p) if p.text() == "\"hello\""));
        assert!(matches!(
            outcome(r#"{"payload": "ok"}"#),
            WireOutcome::Ok(_)
        ));
    }

    #[test]
    fn a_traceback_becomes_a_remote_error() {
        let packet = r#"{"payload": "error", "traceback": "Traceback (most recent call last):\n  File \"/x/handler.py\", line 68, in handle\n    response = connection(*data['args'], **data['kwargs'])\n  File \"/t/app.py\", line 9, in divide\n    return a / b\nZeroDivisionError: division by zero\n"}"#;
        match outcome(packet) {
            WireOutcome::Panic { message, location } => {
                assert_eq!(message, "ZeroDivisionError: division by zero");
                assert_eq!(location, r#"Python: File "/t/app.py", line 9, in divide"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_and_silence_are_clear_errors() {
        let err = interpret(b"\x00\x00\x00\x10{\"hello\"", "p").unwrap_err();
        assert!(err.to_string().contains("neither JSON nor a flag"), "{err}");
        let err = interpret(b"", "p").unwrap_err();
        assert!(err.to_string().contains("without answering"), "{err}");
    }
}
