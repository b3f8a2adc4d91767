//! Peer ids: base64 text that decodes back to a peer's host, port and group, as app-net's
//! `generate_id` / `decode_id` do.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A peer's id: URL-safe base64 (no padding) of the JSON `{"host", "port", "group"}`, so
/// that it is one word on a command line and still says where the peer is.
///
/// ```
/// let id = net::PeerId::new("127.0.0.1".parse().unwrap(), 3010, Some("render".into()));
/// let decoded: net::PeerId = id.to_string().parse().unwrap();
/// assert_eq!(decoded.port(), 3010);
/// assert_eq!(decoded.group(), Some("render"));
/// assert_eq!(decoded.addr().to_string(), "127.0.0.1:3010");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    encoded: String,
    parts: IdParts,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct IdParts {
    host: IpAddr,
    port: u16,
    group: Option<String>,
}

impl PeerId {
    /// The id of a peer listening on `host:port` in `group`.
    pub fn new(host: IpAddr, port: u16, group: Option<String>) -> PeerId {
        let parts = IdParts { host, port, group };
        // Serialising three plain fields cannot fail.
        let json = serde_json::to_vec(&parts).unwrap_or_default();
        PeerId {
            encoded: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
            parts,
        }
    }

    /// The host the peer listens on.
    pub fn host(&self) -> IpAddr {
        self.parts.host
    }

    /// The port the peer listens on.
    pub fn port(&self) -> u16 {
        self.parts.port
    }

    /// The peer's group, if it has one.
    pub fn group(&self) -> Option<&str> {
        self.parts.group.as_deref()
    }

    /// Where to connect to the peer.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.parts.host, self.parts.port)
    }

    /// The base64 text.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encoded)
    }
}

impl FromStr for PeerId {
    type Err = Error;

    fn from_str(text: &str) -> Result<PeerId, Error> {
        let invalid = |reason: &str| Error::InvalidTarget {
            target: text.to_owned(),
            reason: format!("not a peer id ({reason}); ids come from net::peers() or `net peers`"),
        };
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let bytes = engine
            .decode(text.trim())
            .map_err(|_| invalid("not base64"))?;
        let parts: IdParts =
            serde_json::from_slice(&bytes).map_err(|_| invalid("not host, port and group"))?;
        Ok(PeerId::new(parts.host, parts.port, parts.group))
    }
}

impl Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encoded)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_without_group() {
        let id = PeerId::new("::1".parse().unwrap(), 9, None);
        let back: PeerId = id.as_str().parse().unwrap();
        assert_eq!(back, id);
        assert_eq!(back.group(), None);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = "not an id!".parse::<PeerId>().unwrap_err().to_string();
        assert!(err.contains("not a peer id"), "{err}");
        let err = "aGVsbG8".parse::<PeerId>().unwrap_err().to_string();
        assert!(err.contains("host, port and group"), "{err}");
    }
}
