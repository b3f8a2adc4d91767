//! The plain handshake: both sides send `Hello` at once, then each checks the other's.
//! [`check_hello`] is the check alone, for a hello that arrived another way (inside the
//! secure handshake). Deadlines are the caller's.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::{encode, Frame, Hello, PROTOCOL_VERSION};
use crate::error::Error;
use crate::secure::{self, FirstFrame, Refusal};

/// The longest hello read: a real one is a few hundred bytes, and a connection that has
/// not said who it is must not make the peer buffer a frame of `NET_MAX_FRAME`.
pub(crate) const MAX_HELLO: usize = 64 * 1024;

/// Sends our hello, reads theirs and checks it. On a mismatch or a malformed first frame
/// the other side is told why before the error is returned; a secure handshake request
/// (the other side has a NET_SECRET and this one has not) is answered with the refusal
/// that says so. The first frame may be at most [`MAX_HELLO`] bytes.
pub(crate) async fn handshake<R, W>(
    reader: &mut FramedRead<R, LengthDelimitedCodec>,
    writer: &mut FramedWrite<W, LengthDelimitedCodec>,
    ours: &Hello,
    peer: &str,
) -> Result<Hello, Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let closed = |reason: String| Error::ConnectionClosed {
        peer: peer.to_owned(),
        reason,
    };
    writer
        .send(encode(&Frame::Hello(ours.clone())))
        .await
        .map_err(|e| closed(format!("while sending hello: {e}")))?;
    let limit = reader.decoder().max_frame_length();
    reader
        .decoder_mut()
        .set_max_frame_length(limit.min(MAX_HELLO));
    let first = reader.next().await;
    reader.decoder_mut().set_max_frame_length(limit);
    let first = match first {
        None => return Err(closed("closed during the handshake".into())),
        Some(Err(e)) => {
            let message = match super::codec::is_too_long(&e) && limit > MAX_HELLO {
                true => format!(
                    "the first frame exceeds the {MAX_HELLO}-byte limit of a hello (see \
                     docs/PROTOCOL.md)"
                ),
                false => super::codec::describe_read_error(&e, limit),
            };
            let _ = writer
                .send(encode(&Frame::Error {
                    message: message.clone(),
                }))
                .await;
            return Err(Error::Protocol {
                peer: peer.to_owned(),
                message,
            });
        }
        Some(Ok(bytes)) => bytes,
    };
    if secure::classify_first_frame(&first) == FirstFrame::SecureRequest {
        let refusal = secure::refusal_frame(Refusal::NoSecret, None);
        let _ = writer.send(bytes::Bytes::from(refusal)).await;
        tracing::warn!(
            peer,
            "refused a connection: it has a shared secret and this peer none"
        );
        return Err(Refusal::SecretRequired.received_from(peer, "").into());
    }
    match check_hello(&first, peer) {
        Ok(hello) => Ok(hello),
        Err((error, None)) => Err(error),
        Err((error, Some(message))) => {
            let _ = writer.send(encode(&Frame::Error { message })).await;
            Err(error)
        }
    }
}

/// Checks a hello frame's body: the protocol version first (so that a peer of another
/// version whose hello has other fields still gets the version mismatch), then the rest.
/// `Err` carries the error and what to tell the other side, if anything (an error frame
/// of theirs, or a refusal with a code, gets no answer).
pub(crate) fn check_hello(first: &[u8], peer: &str) -> Result<Hello, (Error, Option<String>)> {
    let json = serde_json::from_slice::<serde_json::Value>(first).ok();
    let version = json
        .as_ref()
        .and_then(|v| v.get("hello")?.get("protocol")?.as_u64());
    if let Some(theirs) = version.filter(|v| *v != u64::from(PROTOCOL_VERSION)) {
        let err = Error::Incompatible {
            peer: peer.to_owned(),
            ours: PROTOCOL_VERSION,
            theirs: u32::try_from(theirs).unwrap_or(u32::MAX),
        };
        let message = format!(
            "incompatible protocol: this peer speaks net protocol {PROTOCOL_VERSION}, you speak {theirs}"
        );
        return Err((err, Some(message)));
    }
    // A refusal of the secure handshake kind (this side has no secret, the other one
    // requires it) says so by its code.
    let code = json
        .as_ref()
        .and_then(|v| v.get("error")?.get("code")?.as_str())
        .and_then(Refusal::from_code);
    match serde_json::from_slice::<Frame>(first) {
        Ok(Frame::Hello(hello)) => Ok(hello),
        Ok(Frame::Error { message }) => Err((
            match code {
                Some(refusal) => refusal.received_from(peer, &message).into(),
                None => Error::Protocol {
                    peer: peer.to_owned(),
                    message: format!("refused the connection: {message}"),
                },
            },
            None,
        )),
        other => {
            let message = match other {
                Err(e) => format!("the first frame must be a hello: {e} (see docs/PROTOCOL.md)"),
                Ok(_) => "the first frame must be a hello (see docs/PROTOCOL.md)".to_owned(),
            };
            let error = Error::Protocol {
                peer: peer.to_owned(),
                message: message.clone(),
            };
            Err((error, Some(message)))
        }
    }
}
