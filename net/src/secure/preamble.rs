//! The plain frames around the secure handshake: the `secure` frames that carry the two
//! Noise messages, the error frames that refuse a connection, and telling a secure request
//! from a plain hello. Every length read here is capped before anything is allocated.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Refusal, SecureError, MAX_HANDSHAKE_FRAME, PATTERN, SECURE_PROTOCOL};

/// What the first frame of a connection asks for, so the accept path can answer a secured
/// peer and an unsecured one each in the way it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFrame {
    /// `{"secure":{...}}`: the other side has a secret and starts the secure handshake.
    SecureRequest,
    /// `{"hello":{...}}`: the other side speaks the plain protocol.
    PlainHello,
    /// Anything else (not JSON, another kind): a protocol error either way.
    Other,
}

/// Tells what a connection's first frame body asks for. Cheap enough for every accept:
/// the body is at most [`MAX_HANDSHAKE_FRAME`] bytes when read with [`read_frame`].
pub fn classify_first_frame(body: &[u8]) -> FirstFrame {
    match parse(body) {
        Parsed::Secure(_) | Parsed::Unsupported(_) => FirstFrame::SecureRequest,
        Parsed::Hello => FirstFrame::PlainHello,
        Parsed::Error { .. } | Parsed::Other(_) => FirstFrame::Other,
    }
}

/// A plain frame before or during the handshake, as this side understands it.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A `secure` frame of our version and pattern: its Noise message, decoded.
    Secure(Vec<u8>),
    /// A `secure` frame of another version or pattern: what it offers.
    Unsupported(String),
    /// A plain `hello`.
    Hello,
    /// A plain `error`: its message, and its code if it has one.
    Error {
        message: String,
        code: Option<String>,
    },
    /// Anything else: why it is not one of the above.
    Other(String),
}

/// Parses a plain frame body. The version and pattern are checked before the message is
/// decoded, so a peer of another version gets "unsupported" whatever else it sends.
pub(super) fn parse(body: &[u8]) -> Parsed {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Parsed::Other(format!("not JSON: {e}")),
    };
    let Some((kind, fields)) = value.as_object().and_then(|o| {
        let mut entries = o.iter();
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Some(entry),
            _ => None,
        }
    }) else {
        return Parsed::Other("not an object with one key naming the kind".into());
    };
    match kind.as_str() {
        "hello" => Parsed::Hello,
        "error" => Parsed::Error {
            message: fields
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_owned(),
            code: fields
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        "secure" => {
            let protocol = fields.get("protocol").and_then(Value::as_u64);
            let noise = fields.get("noise").and_then(Value::as_str);
            if protocol != Some(u64::from(SECURE_PROTOCOL)) || noise != Some(PATTERN) {
                let protocol = protocol.map_or("?".to_owned(), |p| p.to_string());
                return Parsed::Unsupported(format!(
                    "protocol {protocol} with {}",
                    noise.unwrap_or("?")
                ));
            }
            match fields.get("message").and_then(Value::as_str) {
                None => Parsed::Other("a secure frame without a message".into()),
                Some(text) => match STANDARD.decode(text) {
                    Ok(message) => Parsed::Secure(message),
                    Err(e) => Parsed::Other(format!("a secure message that is not base64: {e}")),
                },
            }
        }
        other => Parsed::Other(format!("a frame of kind {other:?}")),
    }
}

/// A plain frame this side writes, in the field order docs/PROTOCOL.md shows.
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Outgoing<'a> {
    Secure {
        protocol: u32,
        noise: &'a str,
        message: String,
    },
    Error {
        message: String,
        code: &'a str,
    },
}

impl Outgoing<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        // Strings and numbers only: writing them into memory cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The body of a `secure` frame carrying one Noise handshake message.
pub(super) fn secure_frame(message: &[u8]) -> Vec<u8> {
    Outgoing::Secure {
        protocol: SECURE_PROTOCOL,
        noise: PATTERN,
        message: STANDARD.encode(message),
    }
    .to_bytes()
}

/// The body of the error frame that tells the other side why it is refused; `detail`
/// follows the fixed message after ": ".
pub fn refusal_frame(refusal: Refusal, detail: Option<&str>) -> Vec<u8> {
    let message = match detail {
        Some(detail) => format!("{}: {detail}", refusal.message()),
        None => refusal.message().to_owned(),
    };
    Outgoing::Error {
        message,
        code: refusal.code(),
    }
    .to_bytes()
}

/// Reads one plain frame (4-byte big-endian length, body) of at most
/// [`MAX_HANDSHAKE_FRAME`] bytes, reading nothing past it: whatever follows belongs to the
/// encrypted stream. A longer announced length is refused before any of it is read.
pub async fn read_frame<S>(io: &mut S, peer: &str) -> Result<Vec<u8>, SecureError>
where
    S: AsyncRead + Unpin,
{
    let io_error = |source| SecureError::Io {
        peer: peer.to_owned(),
        context: "reading the secure handshake",
        source,
    };
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(SecureError::Closed {
                peer: peer.to_owned(),
            })
        }
        Err(e) => return Err(io_error(e)),
    }
    let size = u32::from_be_bytes(len) as usize;
    if size > MAX_HANDSHAKE_FRAME {
        return Err(SecureError::TooLarge {
            peer: peer.to_owned(),
            size,
        });
    }
    let mut body = vec![0u8; size];
    match io.read_exact(&mut body).await {
        Ok(_) => Ok(body),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(SecureError::Closed {
            peer: peer.to_owned(),
        }),
        Err(e) => Err(io_error(e)),
    }
}

/// Writes one plain frame and flushes it.
pub(super) async fn write_frame<S>(io: &mut S, body: &[u8], peer: &str) -> Result<(), SecureError>
where
    S: AsyncWrite + Unpin,
{
    // The handshake's frames are built here and kept under the cap; a u32 always holds them.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    let written = async {
        io.write_all(&frame).await?;
        io.flush().await
    };
    written.await.map_err(|source| SecureError::Io {
        peer: peer.to_owned(),
        context: "writing the secure handshake",
        source,
    })
}

/// Tells the other side why it is refused, in one plain error frame, then shuts the
/// stream. Failures are ignored: the connection is being closed anyway, and the caller
/// returns the reason as its own error.
pub async fn refuse<S>(io: &mut S, refusal: Refusal, detail: Option<&str>)
where
    S: AsyncWrite + Unpin,
{
    let _ = write_frame(io, &refusal_frame(refusal, detail), "").await;
    let _ = io.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_frames_are_classified() {
        let hello =
            br#"{"hello":{"protocol":1,"id":null,"hub":false,"version":"x","max_frame":1024}}"#;
        assert_eq!(classify_first_frame(hello), FirstFrame::PlainHello);
        assert_eq!(
            classify_first_frame(&secure_frame(b"noise bytes")),
            FirstFrame::SecureRequest
        );
        let newer = br#"{"secure":{"protocol":2,"noise":"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s"}}"#;
        assert_eq!(classify_first_frame(newer), FirstFrame::SecureRequest);
        for other in [
            &b"not json"[..],
            br#""goodbye""#,
            br#"{"call":{"id":1}}"#,
            br#"{"hello":{},"secure":{}}"#,
            b"",
        ] {
            assert_eq!(classify_first_frame(other), FirstFrame::Other, "{other:?}");
        }
    }

    #[test]
    fn a_secure_frame_carries_its_message_in_base64() {
        let body = secure_frame(&[0, 1, 2, 255]);
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!(r#"{{"secure":{{"protocol":1,"noise":"{PATTERN}","message":"AAEC/w=="}}}}"#)
        );
        assert!(matches!(parse(&body), Parsed::Secure(m) if m == [0, 1, 2, 255]));
    }

    #[test]
    fn another_version_is_unsupported_before_its_message_is_read() {
        let body = format!(r#"{{"secure":{{"protocol":2,"noise":"{PATTERN}","message":7}}}}"#);
        assert!(
            matches!(parse(body.as_bytes()), Parsed::Unsupported(what) if what == format!("protocol 2 with {PATTERN}"))
        );
        let body =
            br#"{"secure":{"protocol":1,"noise":"Noise_NN_25519_AESGCM_SHA256","message":""}}"#;
        assert!(matches!(parse(body), Parsed::Unsupported(_)));
    }

    #[test]
    fn a_refusal_frame_has_message_and_code() {
        let body = refusal_frame(Refusal::SecretsDiffer, None);
        match parse(&body) {
            Parsed::Error { message, code } => {
                assert_eq!(message, Refusal::SecretsDiffer.message());
                assert_eq!(code.as_deref(), Some("secrets_differ"));
            }
            other => panic!("{other:?}"),
        }
        let body = refusal_frame(Refusal::Malformed, Some("not JSON"));
        assert!(
            matches!(parse(&body), Parsed::Error { message, .. } if message.ends_with("section 17): not JSON"))
        );
    }

    #[tokio::test]
    async fn an_oversize_length_is_refused_unread() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let announced = (MAX_HANDSHAKE_FRAME as u32 + 1).to_be_bytes();
        a.write_all(&announced).await.unwrap();
        let err = read_frame(&mut b, "p").await.unwrap_err();
        assert!(
            matches!(err, SecureError::TooLarge { size, .. } if size == MAX_HANDSHAKE_FRAME + 1)
        );
        assert!(err.to_string().contains("65536-byte limit"), "{err}");
    }

    #[tokio::test]
    async fn a_frame_at_the_cap_is_read_and_nothing_after_it() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let body = vec![b'x'; MAX_HANDSHAKE_FRAME];
        write_frame(&mut a, &body, "p").await.unwrap();
        a.write_all(b"next").await.unwrap();
        assert_eq!(read_frame(&mut b, "p").await.unwrap(), body);
        let mut rest = [0u8; 4];
        b.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"next");
    }

    #[tokio::test]
    async fn a_cut_frame_is_a_close() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, b'{']).await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame(&mut b, "p").await.unwrap_err(),
            SecureError::Closed { .. }
        ));
    }
}
