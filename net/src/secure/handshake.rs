//! The secure handshake: one round trip of Noise_NNpsk0 messages carried in plain `secure`
//! frames, each side's payload (its hello) riding inside, then the encrypted stream.

use snow::{Builder, HandshakeState};
use tokio::io::{AsyncRead, AsyncWrite};

use super::cipher::MAX_MESSAGE;
use super::preamble::{parse, read_frame, refuse, secure_frame, write_frame, Parsed};
use super::{MeshKey, Refusal, SecureError, SecureStream, MAX_PAYLOAD, PATTERN, PROLOGUE};

/// A finished handshake: the encrypted stream and the other side's payload, which came
/// encrypted and authenticated by the handshake's transcript (it cannot have been changed
/// or moved from another connection).
pub struct Secured<S> {
    /// The encrypted stream, ready for the link.
    pub stream: SecureStream<S>,
    /// What the other side sent as its handshake payload (its hello).
    pub payload: Vec<u8>,
}

impl<S> std::fmt::Debug for Secured<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secured")
            .field("payload", &String::from_utf8_lossy(&self.payload))
            .finish_non_exhaustive()
    }
}

/// Runs the handshake as the side that opened the connection: sends the `secure` request
/// with `payload` inside, reads the answer. `peer` names the other side in errors.
///
/// Errors a caller can act on: [`SecureError::SecretsDiffer`],
/// [`SecureError::NoSecret`] (the other side speaks plain or says it has no secret),
/// [`SecureError::Unsupported`]. The handshake has no deadline of its own: wrap it in one.
pub async fn connect<S>(
    mut io: S,
    key: &MeshKey,
    payload: &[u8],
    peer: &str,
) -> Result<Secured<S>, SecureError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    check_payload(payload)?;
    let mut noise = handshake_state(key, true, peer)?;
    let mut message = vec![0u8; MAX_MESSAGE];
    let n = noise
        .write_message(payload, &mut message)
        .map_err(|source| noise_error(peer, source))?;
    write_frame(&mut io, &secure_frame(&message[..n]), peer).await?;

    let answer = read_frame(&mut io, peer).await?;
    let theirs = match parse(&answer) {
        Parsed::Secure(theirs) => theirs,
        // A plain peer greets first; an old one then refuses the secure frame, a new one
        // says "no_secret": either way it has no secret.
        Parsed::Hello => return Err(SecureError::NoSecret { peer: peer.into() }),
        Parsed::Error { message, code } => {
            return Err(match code.as_deref().and_then(Refusal::from_code) {
                Some(refusal) => refusal.received_from(peer, &message),
                None => SecureError::Refused {
                    peer: peer.into(),
                    message,
                },
            })
        }
        Parsed::Unsupported(theirs) => {
            return Err(SecureError::Unsupported {
                peer: peer.into(),
                theirs,
            })
        }
        Parsed::Other(reason) => {
            return Err(SecureError::Malformed {
                peer: peer.into(),
                reason: format!("instead of the secure answer, {reason}"),
            })
        }
    };
    let mut their_payload = vec![0u8; MAX_MESSAGE];
    let n = match noise.read_message(&theirs, &mut their_payload) {
        Ok(n) => n,
        // Only a holder of the same key can answer our fresh ephemeral key.
        Err(snow::Error::Decrypt) => return Err(SecureError::SecretsDiffer { peer: peer.into() }),
        Err(e) => {
            return Err(SecureError::Malformed {
                peer: peer.into(),
                reason: format!("an unreadable secure answer ({e})"),
            })
        }
    };
    their_payload.truncate(n);
    finish(io, noise, their_payload, peer)
}

/// Runs the handshake as the side that accepted the connection, given the first frame's
/// body (read with [`read_frame`](super::read_frame), so capped and nothing read past it):
/// answers a `secure` request with `payload` inside. Every refusal is told to the other
/// side in one plain error frame, logged once here, and returned:
/// a plain hello gets `secret_required` ([`SecureError::NoSecret`]), a key that does not
/// authenticate gets `secrets_differ` ([`SecureError::SecretsDiffer`]).
pub async fn accept<S>(
    mut io: S,
    first: &[u8],
    key: &MeshKey,
    payload: &[u8],
    peer: &str,
) -> Result<Secured<S>, SecureError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    check_payload(payload)?;
    let (refusal, detail, err) = match parse(first) {
        Parsed::Secure(theirs) => {
            let mut noise = handshake_state(key, false, peer)?;
            let mut their_payload = vec![0u8; MAX_MESSAGE];
            match noise.read_message(&theirs, &mut their_payload) {
                Ok(n) => {
                    their_payload.truncate(n);
                    let mut message = vec![0u8; MAX_MESSAGE];
                    let n = noise
                        .write_message(payload, &mut message)
                        .map_err(|source| noise_error(peer, source))?;
                    write_frame(&mut io, &secure_frame(&message[..n]), peer).await?;
                    return finish(io, noise, their_payload, peer);
                }
                Err(snow::Error::Decrypt) => (
                    Refusal::SecretsDiffer,
                    None,
                    SecureError::SecretsDiffer { peer: peer.into() },
                ),
                Err(e) => {
                    let reason = format!("an unreadable secure request ({e})");
                    (Refusal::Malformed, Some(reason.clone()), malformed(peer, reason))
                }
            }
        }
        Parsed::Hello => (
            Refusal::SecretRequired,
            None,
            SecureError::NoSecret { peer: peer.into() },
        ),
        Parsed::Unsupported(theirs) => (
            Refusal::Unsupported,
            None,
            SecureError::Unsupported {
                peer: peer.into(),
                theirs,
            },
        ),
        Parsed::Error { message, .. } => (
            Refusal::Malformed,
            Some("an error frame".into()),
            SecureError::Refused {
                peer: peer.into(),
                message,
            },
        ),
        Parsed::Other(reason) => (Refusal::Malformed, Some(reason.clone()), malformed(peer, reason)),
    };
    tracing::warn!(peer, code = refusal.code(), "refused a connection: {err}");
    refuse(&mut io, refusal, detail.as_deref()).await;
    Err(err)
}

/// What a side without a secret does with a secure request (a first frame that
/// [`classify_first_frame`](super::classify_first_frame) calls `SecureRequest`): tells the
/// other side it has no secret (`no_secret`), logs once, and returns the error to report.
pub async fn refuse_secure_request<S>(mut io: S, peer: &str) -> SecureError
where
    S: AsyncWrite + Unpin,
{
    let err = SecureError::SecretRequired { peer: peer.into() };
    tracing::warn!(peer, code = Refusal::NoSecret.code(), "refused a connection: {err}");
    refuse(&mut io, Refusal::NoSecret, None).await;
    err
}

fn check_payload(payload: &[u8]) -> Result<(), SecureError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(SecureError::PayloadTooLarge {
            size: payload.len(),
        });
    }
    Ok(())
}

/// A new handshake of [`PATTERN`], keyed by the mesh key, bound to [`PROLOGUE`].
fn handshake_state(key: &MeshKey, initiator: bool, peer: &str) -> Result<HandshakeState, SecureError> {
    let built = PATTERN.parse().and_then(|params| {
        let builder = Builder::new(params).psk(0, key.psk())?.prologue(PROLOGUE)?;
        if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
    });
    built.map_err(|source| noise_error(peer, source))
}

fn finish<S>(
    io: S,
    noise: HandshakeState,
    payload: Vec<u8>,
    peer: &str,
) -> Result<Secured<S>, SecureError> {
    let transport = noise
        .into_stateless_transport_mode()
        .map_err(|source| noise_error(peer, source))?;
    tracing::debug!(peer, "secure handshake done");
    Ok(Secured {
        stream: SecureStream::new(io, transport),
        payload,
    })
}

fn noise_error(peer: &str, source: snow::Error) -> SecureError {
    SecureError::Noise {
        peer: peer.into(),
        source,
    }
}

fn malformed(peer: &str, reason: String) -> SecureError {
    SecureError::Malformed {
        peer: peer.into(),
        reason,
    }
}
