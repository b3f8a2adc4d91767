//! The handshake: both sides send `Hello` at once, then each checks the other's.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::{encode, Frame, Hello, PROTOCOL_VERSION};
use crate::error::Error;

/// The longest hello read: a real one is a few hundred bytes, and a connection that has
/// not said who it is must not make the peer buffer a frame of `NET_MAX_FRAME`.
const MAX_HELLO: usize = 64 * 1024;

/// Sends our hello, reads theirs (all of it within `timeout`, `NET_HELLO_TIMEOUT`: a
/// silent or slow client must not hold a connection slot for long) and checks the
/// protocol version. On a mismatch or a malformed first frame the other side is told why
/// before the error is returned.
pub(crate) async fn handshake<R, W>(
    reader: &mut FramedRead<R, LengthDelimitedCodec>,
    writer: &mut FramedWrite<W, LengthDelimitedCodec>,
    ours: &Hello,
    peer: &str,
    timeout: Duration,
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
    let first = tokio::time::timeout(timeout, reader.next()).await;
    reader.decoder_mut().set_max_frame_length(limit);
    let first = match first {
        Err(_) => {
            return Err(Error::Protocol {
                peer: peer.to_owned(),
                message: format!("no hello within {timeout:?} (NET_HELLO_TIMEOUT)"),
            })
        }
        Ok(None) => return Err(closed("closed during the handshake".into())),
        Ok(Some(Err(e))) => {
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
        Ok(Some(Ok(bytes))) => bytes,
    };
    // The version is checked before the rest of the hello is parsed, so that a peer of
    // another version whose hello has other fields still gets the version mismatch.
    let version = serde_json::from_slice::<serde_json::Value>(&first)
        .ok()
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
        let _ = writer.send(encode(&Frame::Error { message })).await;
        return Err(err);
    }
    let theirs = match serde_json::from_slice::<Frame>(&first) {
        Ok(Frame::Hello(hello)) => hello,
        Ok(Frame::Error { message }) => {
            return Err(Error::Protocol {
                peer: peer.to_owned(),
                message: format!("refused the connection: {message}"),
            })
        }
        other => {
            let message = match other {
                Err(e) => format!("the first frame must be a hello: {e} (see docs/PROTOCOL.md)"),
                Ok(_) => "the first frame must be a hello (see docs/PROTOCOL.md)".to_owned(),
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
    };
    Ok(theirs)
}
