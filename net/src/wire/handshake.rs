//! The handshake: both sides send `Hello` at once, then each checks the other's.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::{encode, Frame, Hello, PROTOCOL_VERSION};
use crate::error::Error;

/// A silent or slow client must not hold a connection slot for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends our hello, reads theirs and checks the protocol version. On a mismatch or a
/// malformed first frame the other side is told why before the error is returned.
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
    let first = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Err(_) => {
            return Err(Error::Protocol {
                peer: peer.to_owned(),
                message: format!("no hello within {HANDSHAKE_TIMEOUT:?}"),
            })
        }
        Ok(None) => return Err(closed("closed during the handshake".into())),
        Ok(Some(Err(e))) => {
            let message = super::codec::describe_read_error(&e, ours.max_frame);
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
