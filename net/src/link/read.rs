//! The reader task of a link: frames from the other side until it ends.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::{Link, ReadHalf};
use crate::sync::lock;
use crate::wire::{self, Frame, Incoming, ReplyFrame};

/// Reads frames until the link ends, then closes it.
pub(super) async fn read_loop(
    link: Arc<Link>,
    mut frames: FramedRead<ReadHalf, LengthDelimitedCodec>,
) {
    let reason = loop {
        let next = tokio::select! {
            next = frames.next() => next,
            _ = link.closed.cancelled() => break None,
        };
        match next {
            None => break Some(("the peer closed the connection".to_owned(), None)),
            Some(Err(e)) => {
                let message = wire::describe_read_error(&e, link.max_in);
                tracing::warn!(peer = %link.label, %message, "closing connection");
                break Some((message.clone(), Some(Frame::Error { message })));
            }
            Some(Ok(bytes)) => {
                let bytes = bytes.freeze();
                // Checked as UTF-8 once here rather than string by string while parsing.
                let parsed = std::str::from_utf8(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|text| wire::decode(text).map_err(|e| e.to_string()));
                match parsed {
                    Ok(frame) => {
                        if let Err(reason) = receive(&link, frame, &bytes) {
                            break Some((reason, None));
                        }
                    }
                    Err(e) => {
                        let message = format!("malformed frame: {e} (see docs/PROTOCOL.md)");
                        tracing::warn!(peer = %link.label, %message, "closing connection");
                        break Some((message.clone(), Some(Frame::Error { message })));
                    }
                }
            }
        }
    };
    match reason {
        Some((reason, last_words)) => link.shut(&reason, last_words),
        None => link.shut("closed", None),
    }
}

/// Handles one frame from the other side (`bytes` holds it); `Err` ends the link with
/// that reason.
fn receive(link: &Arc<Link>, frame: Incoming<'_>, bytes: &Bytes) -> Result<(), String> {
    match frame {
        Incoming::Call(call) => {
            link.handler.call(link, call, bytes);
            Ok(())
        }
        Incoming::Reply(ReplyFrame { id, outcome }) => {
            match lock(&link.pending).remove(&id) {
                Some(tx) => {
                    let _ = tx.send(Ok(outcome));
                }
                // The caller gave up (timeout) before the reply came.
                None => tracing::debug!(peer = %link.label, id, "late reply dropped"),
            }
            Ok(())
        }
        Incoming::Cancel { id } => {
            link.cancel_inbound(id);
            Ok(())
        }
        Incoming::Error { message } => Err(format!("the peer reported an error: {message}")),
        Incoming::Goodbye => {
            link.handler.goodbye(link);
            Err("the peer shut down".to_owned())
        }
        Incoming::Hello(_) => Err("a second hello on an open connection".to_owned()),
    }
}
