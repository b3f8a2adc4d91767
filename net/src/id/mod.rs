//! Peer ids: short base64 text that decodes back to a peer's host, port and group, as
//! app-net's `generate_id` / `decode_id` do; function tags as people read them (a
//! default tag is base64 of the function's path, which messages show instead); and the
//! keys of replicated tables (`key.rs`).

mod key;

pub use key::TableKey;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A peer's id: URL-safe base64 (no padding) of the bytes port (2, big-endian), address
/// family (4 or 6), address (4 or 16 bytes) and group (UTF-8, the rest). It is one short
/// word on a command line (10 characters for an IPv4 peer without a group), it still says
/// where the peer is, and because the port comes first, ids of peers on one host differ
/// from their first characters, so a short prefix names one (`net call 0LIEfw multiply`).
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

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct IdParts {
    host: IpAddr,
    port: u16,
    group: Option<String>,
}

impl PeerId {
    /// The id of a peer listening on `host:port` in `group`.
    pub fn new(host: IpAddr, port: u16, group: Option<String>) -> PeerId {
        let mut bytes = port.to_be_bytes().to_vec();
        match host {
            IpAddr::V4(ip) => {
                bytes.push(4);
                bytes.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                bytes.push(6);
                bytes.extend_from_slice(&ip.octets());
            }
        }
        if let Some(group) = &group {
            bytes.extend_from_slice(group.as_bytes());
        }
        PeerId {
            encoded: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            parts: IdParts { host, port, group },
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
        let not_parts = || invalid("not a port, an address and a group");
        let (port, rest) = bytes.split_at_checked(2).ok_or_else(not_parts)?;
        let port = u16::from_be_bytes([port[0], port[1]]);
        let (host, group): (IpAddr, &[u8]) = match rest.split_first() {
            Some((4, rest)) if rest.len() >= 4 => {
                let (ip, group) = rest.split_at(4);
                (IpAddr::from([ip[0], ip[1], ip[2], ip[3]]), group)
            }
            Some((6, rest)) if rest.len() >= 16 => {
                let (ip, group) = rest.split_at(16);
                let mut octets = [0u8; 16];
                octets.copy_from_slice(ip);
                (IpAddr::from(octets), group)
            }
            _ => return Err(not_parts()),
        };
        let group = match group {
            [] => None,
            bytes => Some(String::from_utf8(bytes.to_vec()).map_err(|_| not_parts())?),
        };
        Ok(PeerId::new(host, port, group))
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

/// The default tag of the function at `path` (`crate::module::name`): base64 of it, as
/// app-net tags functions by module and name.
pub(crate) fn default_tag(path: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(path)
}

/// The `crate::module::name` path a default tag stands for; `None` for a custom tag.
pub(crate) fn tag_path(tag: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(tag.trim())
        .ok()?;
    let path = String::from_utf8(bytes).ok()?;
    let segments: Vec<&str> = path.split("::").collect();
    let ident = |s: &&str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
    };
    (segments.len() >= 2 && segments.iter().all(ident)).then_some(path)
}

/// The modules net's own built-in functions live in. (A path that merely starts with
/// `net::` is not one: the `net` command line's crate is called `net` too.)
const BUILTIN_MODULES: [&str; 6] = [
    "net::builtins::",
    "net::discovery::",
    "net::peer::",
    "net::events::",
    "net::appnet::",
    "net::table::",
];

/// Whether the function at `path` is one of net's built-ins.
pub(crate) fn is_builtin_path(path: &str) -> bool {
    BUILTIN_MODULES.iter().any(|m| path.starts_with(m))
}

/// A tag as messages show it: the function's path for a default tag (`app::add`, not
/// `YXBwOjphZGQ=`), the tag itself for a custom one.
pub(crate) fn readable_tag(tag: &str) -> String {
    tag_path(tag).unwrap_or_else(|| tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tags_read_as_paths() {
        let tag = default_tag("app::add");
        assert_eq!(tag, "YXBwOjphZGQ=");
        assert_eq!(tag_path(&tag).as_deref(), Some("app::add"));
        assert_eq!(readable_tag(&tag), "app::add");
        assert_eq!(readable_tag("registry.get"), "registry.get");
        assert_eq!(readable_tag("info"), "info");
        // base64 that decodes to no path stays as it is.
        assert_eq!(tag_path(&default_tag("not a path")), None);
        assert_eq!(tag_path(&default_tag("add")), None);
    }

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
        assert!(err.contains("a port, an address and a group"), "{err}");
    }

    #[test]
    fn ids_are_short_and_differ_early() {
        let a = PeerId::new("127.0.0.1".parse().unwrap(), 3010, None);
        let b = PeerId::new("127.0.0.1".parse().unwrap(), 3011, None);
        assert_eq!(a.as_str().len(), 10);
        assert_ne!(a.as_str()[..3], b.as_str()[..3]);
        let v6 = PeerId::new("fe80::1".parse().unwrap(), 9, Some("ünï".into()));
        assert_eq!(v6.as_str().parse::<PeerId>().unwrap(), v6);
    }
}
