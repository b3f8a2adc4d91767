//! The mesh key: the 32-byte Noise PSK derived from the shared secret.
//!
//! `psk = BLAKE2s-256("net secure psk v1" || 0x00 || secret)`. BLAKE2s is the pattern's own
//! hash, so an implementation in another language needs nothing more than the handshake
//! does (Python: `hashlib.blake2s(b"net secure psk v1\0" + secret).digest()`). The fixed
//! context keeps this key apart from any other use of the same secret.
//!
//! **Strength.** The derivation is a plain hash, not a password hash: anyone who records one
//! handshake can test guesses of the secret offline as fast as they can hash. Use at least
//! 16 random bytes, and preferably 32 (`head -c 32 /dev/urandom | base64`); a shorter secret
//! is accepted with a warning, an empty one is refused. A slow KDF (argon2, scrypt) would
//! only raise the cost of a guessable secret, and would cost every implementer a dependency.

use std::fmt;

use blake2::{Blake2s256, Digest};
use zeroize::Zeroize;

use super::SecureError;

/// Domain separation for the PSK: part of the protocol (docs/PROTOCOL.md section 17).
const PSK_CONTEXT: &[u8] = b"net secure psk v1\0";

/// Below this many bytes a secret is easy to guess from a recorded handshake: warned about.
const RECOMMENDED_SECRET_LEN: usize = 16;

/// The key every handshake of the mesh is keyed with. Derive it once (at configuration) and
/// share it; cloning is cheap. Its `Debug` shows nothing, and it is zeroed when dropped.
#[derive(Clone)]
pub struct MeshKey([u8; 32]);

impl MeshKey {
    /// Derives the key from the secret's bytes (NET_SECRET's text, or the contents of
    /// NET_SECRET_FILE through [`secret_from_file`]). An empty secret is refused.
    pub fn from_secret(secret: &[u8]) -> Result<MeshKey, SecureError> {
        if secret.is_empty() {
            return Err(SecureError::EmptySecret);
        }
        if secret.len() < RECOMMENDED_SECRET_LEN {
            tracing::warn!(
                bytes = secret.len(),
                "the shared secret is short: anyone who records one handshake can guess it \
                 offline; use at least 32 random bytes (e.g. `head -c 32 /dev/urandom | base64`)"
            );
        }
        let mut hash = Blake2s256::new();
        hash.update(PSK_CONTEXT);
        hash.update(secret);
        Ok(MeshKey(hash.finalize().into()))
    }

    /// The Noise PSK.
    pub(super) fn psk(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MeshKey(..)")
    }
}

impl Drop for MeshKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_psk_is_blake2s_of_the_context_and_the_secret() {
        // Computed by Python's hashlib: blake2s(b"net secure psk v1\0" + b"hunter2").
        let key = MeshKey::from_secret(b"hunter2").unwrap();
        assert_eq!(
            hex(key.psk()),
            "c81a9600be6cb93eb1af4ae2cced62a320e380d703049a3d23d9b21f71126ea8"
        );
    }

    #[test]
    fn different_secrets_give_different_keys() {
        let a = MeshKey::from_secret(b"one secret").unwrap();
        let b = MeshKey::from_secret(b"another secret").unwrap();
        assert_ne!(a.psk(), b.psk());
    }

    #[test]
    fn an_empty_secret_is_refused() {
        let err = MeshKey::from_secret(b"").unwrap_err();
        assert!(matches!(err, SecureError::EmptySecret));
        assert!(err.to_string().contains("NET_SECRET"));
    }

    #[test]
    fn debug_shows_no_key() {
        let key = MeshKey::from_secret(b"hunter2").unwrap();
        assert_eq!(format!("{key:?}"), "MeshKey(..)");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
