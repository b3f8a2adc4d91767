//! What can go wrong in the secure handshake, and the refusals each side sends the other in
//! plain before it closes.

use std::io;

use super::{MAX_HANDSHAKE_FRAME, MAX_PAYLOAD, PATTERN, SECURE_PROTOCOL};

/// A failed secure handshake, or a secret that cannot key one. Every message names the
/// peer and says what to do; the lead maps these into `net::Error` (keeping this as the
/// source), so nothing above the link needs to know about Noise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// The secret given (NET_SECRET, NET_SECRET_FILE or the builder) is empty.
    #[error(
        "the shared secret is empty; set NET_SECRET (or NET_SECRET_FILE) to the mesh's secret, \
         at least 32 random bytes (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    EmptySecret,

    /// The other side holds another secret (or the handshake was tampered with).
    #[error(
        "the secrets differ: peer {peer} holds another shared secret than this peer; give \
         both the same NET_SECRET (or NET_SECRET_FILE)"
    )]
    SecretsDiffer {
        /// The other side.
        peer: String,
    },

    /// This side has a secret and the other has none (it spoke plain, or said so).
    #[error(
        "peer {peer} has no shared secret; set NET_SECRET on both peers (or NET_SECRET_FILE), \
         since this peer requires one"
    )]
    NoSecret {
        /// The other side.
        peer: String,
    },

    /// The other side requires a secret and this side has none: what an unsecured side
    /// reports when it gets a secure request or a `secret_required` refusal.
    #[error(
        "peer {peer} requires a shared secret; set NET_SECRET (or NET_SECRET_FILE) to the \
         mesh's secret on this peer too"
    )]
    SecretRequired {
        /// The other side.
        peer: String,
    },

    /// The other side offers another version of the secure handshake.
    #[error(
        "peer {peer} offers the secure handshake {theirs}; this peer speaks protocol \
         {SECURE_PROTOCOL} with {PATTERN}; upgrade the older side"
    )]
    Unsupported {
        /// The other side.
        peer: String,
        /// What it offered or said.
        theirs: String,
    },

    /// The other side refused with a reason this side has no code for.
    #[error("peer {peer} refused the secure handshake: {message}")]
    Refused {
        /// The other side.
        peer: String,
        /// Its error frame's message.
        message: String,
    },

    /// The other side sent something that is not the secure handshake.
    #[error(
        "protocol error with {peer} during the secure handshake: {reason} (see \
         docs/PROTOCOL.md section 17)"
    )]
    Malformed {
        /// The other side.
        peer: String,
        /// What was wrong.
        reason: String,
    },

    /// A frame before the end of the handshake announced more than the cap: never read.
    #[error(
        "peer {peer} announced a {size}-byte frame during the secure handshake, over the \
         {MAX_HANDSHAKE_FRAME}-byte limit; is it a net peer?"
    )]
    TooLarge {
        /// The other side.
        peer: String,
        /// The announced length.
        size: usize,
    },

    /// This side's handshake payload (its hello) is over the limit: nothing was sent.
    #[error("a {size}-byte handshake payload exceeds the {MAX_PAYLOAD}-byte limit")]
    PayloadTooLarge {
        /// The payload's length.
        size: usize,
    },

    /// The other side closed before the handshake was done.
    #[error("peer {peer} closed the connection during the secure handshake")]
    Closed {
        /// The other side.
        peer: String,
    },

    /// The socket failed during the handshake.
    #[error("{context} with {peer}: {source}")]
    Io {
        /// The other side.
        peer: String,
        /// What was being done.
        context: &'static str,
        /// The socket's error.
        #[source]
        source: io::Error,
    },

    /// The Noise library failed on this side (e.g. no randomness): not the peer's fault.
    #[error("the secure handshake with {peer} failed locally: {source}")]
    Noise {
        /// The other side.
        peer: String,
        /// snow's error.
        #[source]
        source: snow::Error,
    },
}

/// Why a side refuses a connection at the start: each goes to the other side as one plain
/// error frame, `{"error":{"message":..,"code":..}}`, before the sender closes. The `code`
/// lets the receiver decide by value, not by text; peers that predate it ignore the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Sent by a secured side that received a plain hello.
    SecretRequired,
    /// Sent by an unsecured side that received a secure request.
    NoSecret,
    /// Sent by a secured side that could not authenticate the first handshake message.
    SecretsDiffer,
    /// Sent by a secured side offered another handshake version or pattern.
    Unsupported,
    /// Sent by a secured side whose first frame was neither a secure request nor a hello.
    Malformed,
}

impl Refusal {
    /// The value of the error frame's `code` field.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::SecretRequired => "secret_required",
            Refusal::NoSecret => "no_secret",
            Refusal::SecretsDiffer => "secrets_differ",
            Refusal::Unsupported => "secure_unsupported",
            Refusal::Malformed => "secure_malformed",
        }
    }

    /// The error frame's `message`, exactly (a detail may follow `Malformed`'s after ": ").
    pub fn message(self) -> &'static str {
        match self {
            Refusal::SecretRequired => {
                "this peer requires a shared secret; set NET_SECRET (or NET_SECRET_FILE) to the \
                 mesh's secret on the connecting side (docs/PROTOCOL.md section 17)"
            }
            Refusal::NoSecret => {
                "this peer has no shared secret; set NET_SECRET on both peers, or on neither"
            }
            Refusal::SecretsDiffer => {
                "the secrets differ: this peer could not authenticate your handshake; give both \
                 peers the same NET_SECRET"
            }
            Refusal::Unsupported => {
                "this peer speaks secure protocol 1 with Noise_NNpsk0_25519_AESGCM_BLAKE2s only"
            }
            Refusal::Malformed => {
                "the first frame must be a secure handshake request (see docs/PROTOCOL.md \
                 section 17)"
            }
        }
    }

    /// The refusal an error frame's `code` names, if this side knows it.
    pub fn from_code(code: &str) -> Option<Refusal> {
        [
            Refusal::SecretRequired,
            Refusal::NoSecret,
            Refusal::SecretsDiffer,
            Refusal::Unsupported,
            Refusal::Malformed,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// What the side that received this refusal (with the frame's `message`) reports.
    pub fn received_from(self, peer: &str, message: &str) -> SecureError {
        let peer = peer.to_owned();
        match self {
            Refusal::SecretRequired => SecureError::SecretRequired { peer },
            Refusal::NoSecret => SecureError::NoSecret { peer },
            Refusal::SecretsDiffer => SecureError::SecretsDiffer { peer },
            Refusal::Unsupported => SecureError::Unsupported {
                peer,
                theirs: message.to_owned(),
            },
            Refusal::Malformed => SecureError::Refused {
                peer,
                message: message.to_owned(),
            },
        }
    }
}

impl From<SecureError> for crate::error::Error {
    fn from(error: SecureError) -> crate::error::Error {
        use crate::error::SecureFailure as Kind;
        let (peer, kind) = match &error {
            SecureError::SecretRequired { peer } => (peer.clone(), Kind::SecretRequired),
            SecureError::NoSecret { peer } => (peer.clone(), Kind::NoSecret),
            SecureError::SecretsDiffer { peer } => (peer.clone(), Kind::SecretsDiffer),
            SecureError::Unsupported { peer, .. } => (peer.clone(), Kind::Unsupported),
            SecureError::Refused { peer, .. }
            | SecureError::Malformed { peer, .. }
            | SecureError::TooLarge { peer, .. }
            | SecureError::Closed { peer }
            | SecureError::Io { peer, .. }
            | SecureError::Noise { peer, .. } => (peer.clone(), Kind::Handshake),
            SecureError::EmptySecret | SecureError::PayloadTooLarge { .. } => {
                (String::new(), Kind::Handshake)
            }
        };
        crate::error::Error::Secure {
            peer,
            kind,
            message: error.to_string(),
            source: Some(std::sync::Arc::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_round_trips_through_its_code() {
        for r in [
            Refusal::SecretRequired,
            Refusal::NoSecret,
            Refusal::SecretsDiffer,
            Refusal::Unsupported,
            Refusal::Malformed,
        ] {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
        }
        assert_eq!(Refusal::from_code("nope"), None);
    }

    #[test]
    fn the_unsupported_text_names_this_pattern() {
        assert!(Refusal::Unsupported.message().contains(PATTERN));
        assert!(Refusal::Unsupported
            .message()
            .contains(&format!("protocol {SECURE_PROTOCOL}")));
    }

    #[test]
    fn errors_say_what_to_do() {
        let differ = SecureError::SecretsDiffer { peer: "p".into() }.to_string();
        assert!(differ.contains("the secrets differ") && differ.contains("same NET_SECRET"));
        let none = SecureError::NoSecret { peer: "p".into() }.to_string();
        assert!(none.contains("peer p has no shared secret; set NET_SECRET"));
        let required = SecureError::SecretRequired { peer: "p".into() }.to_string();
        assert!(required.contains("peer p requires a shared secret"));
    }
}
