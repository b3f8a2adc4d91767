//! Encrypted, authenticated links for a mesh that shares a secret (NET_SECRET): the secure
//! handshake, and the encrypted stream the link runs over in place of the socket.
//!
//! The wire format is specified in docs/PROTOCOL.md section 17; in short: the connecting
//! side's first frame is a plain frame `{"secure":{"protocol":1,"noise":"Noise_NNpsk0_...",
//! "message":"<base64>"}}` carrying the first Noise message, the other side answers with a
//! `secure` frame carrying the second (or a plain `error` frame with a `code`, and closes),
//! and from then on both directions are Noise transport messages, each a 2-byte big-endian
//! length and at most 65535 bytes of ciphertext and tag.
//!
//! # Decision record: the pattern
//!
//! `Noise_NNpsk0_25519_AESGCM_BLAKE2s`, because:
//!
//! - **One round trip.** NN is two messages, and each carries a payload, so each side's
//!   hello rides inside the handshake: a secured connection costs the same round trip as
//!   the plain hello exchange, not one more.
//! - **The PSK is the mesh.** A NET_SECRET mesh trusts every holder of the secret equally,
//!   so the secret is the only credential there is. psk0 mixes it in before the first
//!   message, so that message's payload (the connecting side's hello) is already encrypted
//!   and an outsider cannot even get the other side to answer with anything but a refusal.
//!   The answer proves the other side holds the key (only a holder can answer a fresh
//!   ephemeral key), and the first transport message proves it the other way round.
//! - **Forward secrecy.** The ephemeral-ephemeral DH (`ee`) keys the transport, so a secret
//!   that leaks later does not decrypt recorded traffic. (The first message's payload is
//!   protected by the PSK alone: it is the hello, which every holder may read anyway.)
//! - **Not XXpsk3** (or IK, KK): those authenticate static keys, which need a key
//!   distribution (who holds which public key, how it is revoked) that the mesh does not
//!   have; with one shared secret, a static key proves nothing the PSK does not, and XX
//!   costs a third message, so a round trip more before the first call.
//! - **AESGCM**, not ChaChaPoly: measured with snow's pure-Rust resolver on this
//!   project's machine (x86-64 with AES-NI), the two are alike on 64 KiB messages (about
//!   1.3 GB/s each), but a small message costs ChaChaPoly about 1.8 us (poly1305's AVX2
//!   set-up per message) and AESGCM about 0.4 us, and a call is small messages: four per
//!   round trip. On a CPU without AES instructions RustCrypto's AES is still constant-time
//!   (bitsliced) but several times slower; that is the price on such machines. Built with
//!   snow's `ring-accelerated` feature (the `ring` feature of this crate), AESGCM reaches
//!   6.6 GB/s on 64 KiB messages; the wire is the same either way.
//! - **BLAKE2s**: fast in software, and it doubles as the PSK's KDF ([`MeshKey`]), so an
//!   implementer needs one hash.
//!
//! The two handshake messages ride **inside** plain `secure` frames (base64 in JSON) rather
//! than after a plain preamble: an unsecured peer reads a well-formed frame of an unknown
//! kind and can answer in plain; the connecting side tells the answer (Noise message 2) from
//! a plain `error` or `hello` frame by its kind, with no byte-level guessing; and the
//! accepting side, which receives nothing until it answers, cannot have read any encrypted
//! bytes into a plain codec's buffer. The cost is a third more bytes on ~200-byte messages.
//!
//! The prologue is [`PROLOGUE`]: it binds the handshake to this protocol's version, so a
//! downgrade of the plain `secure` frame's fields breaks the handshake.
//!
//! # What holds and what the caller must do
//!
//! - An outsider without the secret learns that this is a net peer that requires a secret,
//!   and nothing else: no hello, no id, no error text naming a function.
//! - The accepting side cannot tell a first message replayed by an outsider from a fresh
//!   one until the first transport message arrives ([`SecureStream::peer_confirmed`]): the
//!   replayer gets nothing it can decrypt, but act on the connecting side's hello (adopt
//!   its id) only once confirmed, or when a call arrives on it (which confirms it).
//! - Deadlines are the caller's: wrap [`connect`] and [`accept`] in a timeout. Every length
//!   read before the handshake completes is capped ([`MAX_HANDSHAKE_FRAME`]).
//! - Nonces count messages per direction; 2^64 - 1 of them is out of reach, and a stream
//!   that got there would fail with an error rather than reuse one.

//!
//! # Wiring (for the link and the accept path)
//!
//! - Configuration: `MeshKey::from_secret(NET_SECRET's bytes)` (config reads
//!   NET_SECRET_FILE), once per peer.
//! - Connecting with a key: `connect(tcp, &key, &hello_json, peer)` within the hello
//!   deadline; `Secured::payload` is the other side's hello, `Secured::stream` goes under
//!   the link (`stream.split_with(TcpStream::into_split)` for a reader and a writer task).
//! - Accepting (after the app-net first-byte check): read the first frame with
//!   [`read_frame`] (capped at [`MAX_HANDSHAKE_FRAME`]) instead of the codec, and send no
//!   plain hello of our own first. With a key: `accept(tcp, &first, &key, &hello_json,
//!   peer)`, which answers every refusal itself. Without one: if
//!   `classify_first_frame(&first)` is `SecureRequest`, `refuse_secure_request(tcp, peer)`;
//!   else go on with the plain handshake on `first`.
//! - A plain side that receives an error frame whose `code` is `secret_required` reports
//!   `Refusal::SecretRequired.received_from(peer, message)`.

mod cipher;
mod error;
mod handshake;
mod key;
mod preamble;
mod stream;

pub use error::{Refusal, SecureError};
pub use handshake::{accept, connect};
pub use key::MeshKey;
pub use preamble::{classify_first_frame, read_frame, refusal_frame, FirstFrame};
pub use stream::SecureStream;

/// The Noise protocol name: pattern, DH, cipher, hash.
pub const PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";

/// The version of the secure handshake, in the `secure` frame's `protocol` field.
pub const SECURE_PROTOCOL: u32 = 1;

/// The Noise prologue both sides bind the handshake to.
pub const PROLOGUE: &[u8] = b"net secure 1";

/// The longest plain frame body read before the handshake completes: far more than the
/// `secure` frames need (a handshake message of [`MAX_PAYLOAD`] is 43.8 KB in base64),
/// far less than the link's frame limit, so an outsider cannot make us buffer much.
pub const MAX_HANDSHAKE_FRAME: usize = 65536;

/// The longest handshake payload (a hello is about 150 bytes).
pub const MAX_PAYLOAD: usize = 32768;
