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
                    (
                        Refusal::Malformed,
                        Some(reason.clone()),
                        malformed(peer, reason),
                    )
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
        Parsed::Other(reason) => (
            Refusal::Malformed,
            Some(reason.clone()),
            malformed(peer, reason),
        ),
    };
    tracing::warn!(peer, code = refusal.code(), "refused a connection: {err}");
    refuse(&mut io, refusal, detail.as_deref()).await;
    Err(err)
}

/// What a side without a secret does with a secure request (a first frame that
/// [`classify_first_frame`](super::classify_first_frame) calls `SecureRequest`): tells the
/// other side it has no secret (`no_secret`), logs once, and returns the error to report.
#[cfg(test)]
pub async fn refuse_secure_request<S>(mut io: S, peer: &str) -> SecureError
where
    S: AsyncWrite + Unpin,
{
    let err = SecureError::SecretRequired { peer: peer.into() };
    tracing::warn!(
        peer,
        code = Refusal::NoSecret.code(),
        "refused a connection: {err}"
    );
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
fn handshake_state(
    key: &MeshKey,
    initiator: bool,
    peer: &str,
) -> Result<HandshakeState, SecureError> {
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

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::secure::preamble::{parse, Parsed};
    use crate::secure::{classify_first_frame, FirstFrame};

    const HELLO_A: &[u8] = br#"{"hello":{"protocol":1,"id":"a"}}"#;
    const HELLO_B: &[u8] = br#"{"hello":{"protocol":1,"id":"b"}}"#;

    fn key(secret: &str) -> MeshKey {
        MeshKey::from_secret(secret.as_bytes()).unwrap()
    }

    /// The accept path as the link will run it: read the first frame, then accept.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
        mut io: S,
        key: &MeshKey,
        payload: &[u8],
    ) -> Result<Secured<S>, SecureError> {
        let first = read_frame(&mut io, "initiator").await?;
        accept(io, &first, key, payload, "initiator").await
    }

    async fn both<S: AsyncRead + AsyncWrite + Unpin + Send>(
        a: S,
        b: S,
        ka: &MeshKey,
        kb: &MeshKey,
    ) -> (
        Result<Secured<S>, SecureError>,
        Result<Secured<S>, SecureError>,
    ) {
        tokio::join!(connect(a, ka, HELLO_A, "responder"), serve(b, kb, HELLO_B))
    }

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Each side's payload arrives at the other, and the streams carry bytes both ways.
    async fn check_handshake<S: AsyncRead + AsyncWrite + Unpin + Send>(a: S, b: S) {
        let k = key("the same secret for both");
        let (a, b) = both(a, b, &k, &k.clone()).await;
        let (mut a, mut b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.payload, HELLO_B);
        assert_eq!(b.payload, HELLO_A);
        assert!(a.stream.peer_confirmed());
        assert!(
            !b.stream.peer_confirmed(),
            "the first message alone could be a replay"
        );
        a.stream.write_all(b"ping").await.unwrap();
        a.stream.flush().await.unwrap();
        let mut buf = [0u8; 4];
        b.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert!(b.stream.peer_confirmed());
        b.stream.write_all(b"pong").await.unwrap();
        b.stream.flush().await.unwrap();
        a.stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn the_same_secret_completes_the_handshake_with_payloads() {
        let (a, b) = duplex(1 << 16);
        check_handshake(a, b).await;
    }

    #[tokio::test]
    async fn the_handshake_works_over_loopback_tcp() {
        let (a, b) = tcp_pair().await;
        check_handshake(a, b).await;
    }

    #[tokio::test]
    async fn different_secrets_are_told_on_both_sides() {
        let (a, b) = duplex(1 << 16);
        let (a, b) = both(a, b, &key("one secret here"), &key("another secret")).await;
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(matches!(a, SecureError::SecretsDiffer { .. }), "{a}");
        assert!(matches!(b, SecureError::SecretsDiffer { .. }), "{b}");
        assert!(
            a.to_string()
                .starts_with("the secrets differ: peer responder"),
            "{a}"
        );
        assert!(
            b.to_string()
                .starts_with("the secrets differ: peer initiator"),
            "{b}"
        );
    }

    #[tokio::test]
    async fn a_plain_hello_to_a_secured_side_is_told_it_needs_a_secret() {
        let (mut plain, b) = duplex(1 << 16);
        let server = tokio::spawn(async move { serve(b, &key("a secret"), HELLO_B).await });
        write_frame(&mut plain, HELLO_A, "").await.unwrap();
        let answer = read_frame(&mut plain, "").await.unwrap();
        match parse(&answer) {
            Parsed::Error { message, code } => {
                assert_eq!(code.as_deref(), Some("secret_required"));
                assert_eq!(message, Refusal::SecretRequired.message());
                assert!(message.starts_with("this peer requires a shared secret"));
            }
            other => panic!("{other:?}"),
        }
        // Then it closes, and has sent nothing else (no hello of its own).
        assert_eq!(plain.read(&mut [0u8; 1]).await.unwrap(), 0);
        let err = server.await.unwrap().unwrap_err();
        assert!(matches!(err, SecureError::NoSecret { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_side_without_a_secret_classifies_and_refuses_a_secure_request() {
        let (a, mut plain) = duplex(1 << 16);
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        let first = read_frame(&mut plain, "q").await.unwrap();
        assert_eq!(classify_first_frame(&first), FirstFrame::SecureRequest);
        let ours = refuse_secure_request(plain, "q").await;
        assert!(matches!(ours, SecureError::SecretRequired { .. }));
        assert!(
            ours.to_string()
                .starts_with("peer q requires a shared secret"),
            "{ours}"
        );
        let theirs = client.await.unwrap().unwrap_err();
        assert!(matches!(theirs, SecureError::NoSecret { .. }), "{theirs}");
        assert!(theirs
            .to_string()
            .starts_with("peer p has no shared secret; set NET_SECRET on both"));
    }

    #[tokio::test]
    async fn a_plain_peer_that_greets_first_has_no_secret() {
        let (a, mut plain) = duplex(1 << 16);
        // Today's plain peers send their hello as the first byte arrives, then refuse.
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        write_frame(&mut plain, HELLO_B, "").await.unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert!(matches!(err, SecureError::NoSecret { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_error_without_a_code_is_passed_on() {
        let (a, mut plain) = duplex(1 << 16);
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        write_frame(&mut plain, br#"{"error":{"message":"too busy"}}"#, "")
            .await
            .unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer p refused the secure handshake: too busy"
        );
    }

    #[tokio::test]
    async fn another_version_is_unsupported_on_both_sides() {
        let (mut old, b) = duplex(1 << 16);
        let server = tokio::spawn(async move { serve(b, &key("a secret"), HELLO_B).await });
        let offer = br#"{"secure":{"protocol":2,"noise":"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s","message":""}}"#;
        write_frame(&mut old, offer, "").await.unwrap();
        let answer = read_frame(&mut old, "").await.unwrap();
        let err = server.await.unwrap().unwrap_err();
        assert!(
            err.to_string()
                .contains("offers the secure handshake protocol 2 with Noise_XXpsk3"),
            "{err}"
        );

        // And our side, reading that answer.
        let (a, mut b) = duplex(1 << 16);
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        read_frame(&mut b, "").await.unwrap();
        write_frame(&mut b, &answer, "").await.unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert!(matches!(err, SecureError::Unsupported { .. }), "{err}");
        assert!(
            err.to_string().contains(Refusal::Unsupported.message()),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_forged_answer_does_not_authenticate() {
        let (a, mut b) = duplex(1 << 16);
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        read_frame(&mut b, "").await.unwrap();
        let forged = secure_frame(&[7u8; 32 + 16 + 10]);
        write_frame(&mut b, &forged, "").await.unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert!(matches!(err, SecureError::SecretsDiffer { .. }), "{err}");
    }

    #[tokio::test]
    async fn garbage_first_frames_are_refused_with_a_reason() {
        for first in [
            &b"GET / HTTP/1.1"[..],
            br#"{"call":{"id":1}}"#,
            &secure_frame(b"short"),
        ] {
            let (mut raw, b) = duplex(1 << 16);
            let server = tokio::spawn(async move { serve(b, &key("a secret"), HELLO_B).await });
            write_frame(&mut raw, first, "").await.unwrap();
            let answer = read_frame(&mut raw, "").await.unwrap();
            assert!(
                matches!(parse(&answer), Parsed::Error { code: Some(c), .. } if c == "secure_malformed"),
                "{}",
                String::from_utf8_lossy(&answer)
            );
            let err = server.await.unwrap().unwrap_err();
            assert!(matches!(err, SecureError::Malformed { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn an_oversize_answer_is_refused_unread() {
        let (a, mut b) = duplex(1 << 16);
        let client = tokio::spawn(async move { connect(a, &key("a secret"), HELLO_A, "p").await });
        read_frame(&mut b, "").await.unwrap();
        b.write_all(&[0x00, 0x10, 0x00, 0x01]).await.unwrap();
        let err = client.await.unwrap().unwrap_err();
        assert!(
            matches!(err, SecureError::TooLarge { size: 0x100001, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_oversize_payload_is_refused_before_sending() {
        let (a, mut b) = duplex(1 << 16);
        let big = vec![b'x'; MAX_PAYLOAD + 1];
        let err = connect(a, &key("a secret"), &big, "p").await.unwrap_err();
        assert!(matches!(err, SecureError::PayloadTooLarge { .. }), "{err}");
        assert_eq!(b.read(&mut [0u8; 1]).await.unwrap(), 0, "nothing was sent");
        // The largest payload allowed fits the frame cap in base64.
        let (a, b) = duplex(1 << 20);
        let k = key("a secret");
        let most = vec![b'x'; MAX_PAYLOAD];
        let (client, server) = tokio::join!(connect(a, &k, &most, "p"), serve(b, &k, &most));
        assert_eq!(client.unwrap().payload, most);
        assert_eq!(server.unwrap().payload, most);
    }

    #[tokio::test]
    async fn a_replayed_request_gets_an_answer_but_no_confirmed_peer() {
        // Record a genuine first frame...
        let k = key("a secret");
        let (a, mut tap) = duplex(1 << 16);
        let genuine = tokio::spawn({
            let k = k.clone();
            async move { connect(a, &k, HELLO_A, "p").await }
        });
        let recorded = read_frame(&mut tap, "").await.unwrap();
        drop(tap);
        let _ = genuine.await;
        // ...and replay it without knowing the secret.
        let (mut outsider, b) = duplex(1 << 16);
        let server = tokio::spawn(async move { serve(b, &k, HELLO_B).await });
        write_frame(&mut outsider, &recorded, "").await.unwrap();
        let mut secured = server.await.unwrap().unwrap();
        assert!(!secured.stream.peer_confirmed());
        // Whatever the outsider sends next cannot authenticate.
        outsider.write_all(&[0, 20]).await.unwrap();
        outsider.write_all(&[9u8; 20]).await.unwrap();
        let err = secured.stream.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(!secured.stream.peer_confirmed());
    }
    /// A Python with the `noiseprotocol` package: `NET_NOISE_PYTHON`, the app-net venv or
    /// `python3`, the first that imports it; none prints a loud skip line (and fails with
    /// `NET_REQUIRE_NOISE=1`).
    fn noise_python(test: &str) -> Option<std::path::PathBuf> {
        let venv = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/appnet-venv/bin/python"
        );
        let candidates = std::env::var_os("NET_NOISE_PYTHON")
            .into_iter()
            .map(std::path::PathBuf::from)
            .chain([venv.into(), "python3".into()]);
        for python in candidates {
            let imports = std::process::Command::new(&python)
                .args(["-c", "import noise.connection"])
                .stderr(std::process::Stdio::null())
                .status();
            if imports.is_ok_and(|s| s.success()) {
                return Some(python);
            }
        }
        let why = "no Python with the noiseprotocol package (set NET_NOISE_PYTHON, or pip \
                   install noiseprotocol)";
        assert!(std::env::var_os("NET_REQUIRE_NOISE").is_none(), "{why}");
        eprintln!("\n=== SKIP {test}: {why} ===\n");
        None
    }

    #[tokio::test]
    async fn a_python_client_from_the_docs_completes_the_handshake() {
        let Some(python) = noise_python("a_python_client_from_the_docs_completes_the_handshake")
        else {
            return;
        };
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/clients/noise_check.py"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let secret = "a secret that python derives the same key from";
        let client = tokio::process::Command::new(python)
            .arg(script)
            .arg(addr.to_string())
            .arg(secret)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let serve_one = async {
            let (io, _) = listener.accept().await.unwrap();
            let key = MeshKey::from_secret(secret.as_bytes()).unwrap();
            let mut secured = serve(io, &key, HELLO_B).await.unwrap();
            let hello: serde_json::Value = serde_json::from_slice(&secured.payload).unwrap();
            assert_eq!(hello["hello"]["version"], "noise_check-0.1");
            let stream = &mut secured.stream;
            let ping = read_link_frame(stream).await;
            assert_eq!(ping, b"ping from python");
            assert!(stream.peer_confirmed());
            write_link_frame(stream, b"pong from rust").await;
            let mut big = read_link_frame(stream).await;
            assert_eq!(big.len(), 100_000);
            big.reverse();
            write_link_frame(stream, &big).await;
        };
        let (output, ()) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            tokio::join!(client.wait_with_output(), serve_one)
        })
        .await
        .expect("the python client finished within 30 s");
        let output = output.unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["their_hello"]["hello"]["id"], "b");
        assert_eq!(report["pong"], "pong from rust");
        assert_eq!(report["big_back_len"], 100_000);
        assert_eq!(report["big_back_ok"], true);
    }

    async fn read_link_frame<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
        let len = io.read_u32().await.unwrap() as usize;
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await.unwrap();
        body
    }

    async fn write_link_frame<S: AsyncWrite + Unpin>(io: &mut S, body: &[u8]) {
        io.write_u32(body.len() as u32).await.unwrap();
        io.write_all(body).await.unwrap();
        io.flush().await.unwrap();
    }
}
