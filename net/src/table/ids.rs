//! The two names the table deals in: keys (strings or bytes) and member ids.

use std::fmt;
use std::sync::Arc;

/// A table key: bytes, usually UTF-8 text. py2p translated every key to bytes before
/// hashing; we keep the bytes as given, so `"a"` and `b"a"` are the same key on every
/// member and in every language.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Arc<[u8]>);

impl Key {
    /// The key's bytes, as they are hashed and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as text, when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for Key {
    fn from(key: &str) -> Key {
        Key(Arc::from(key.as_bytes()))
    }
}

impl From<String> for Key {
    fn from(key: String) -> Key {
        Key(Arc::from(key.into_bytes()))
    }
}

impl From<&String> for Key {
    fn from(key: &String) -> Key {
        Key::from(key.as_str())
    }
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Key {
        Key(Arc::from(key))
    }
}

impl From<Vec<u8>> for Key {
    fn from(key: Vec<u8>) -> Key {
        Key(Arc::from(key))
    }
}

impl<const N: usize> From<&[u8; N]> for Key {
    fn from(key: &[u8; N]) -> Key {
        Key(Arc::from(&key[..]))
    }
}

/// Text keys are shown quoted, as in the code that wrote them; other keys as hex, so an
/// error message names a binary key without printing control bytes.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => write!(f, "{text:?}"),
            None => {
                f.write_str("0x")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// A member's (or a writer's) stable id: the text of a peer id in practice. Placement
/// hashes its bytes, versions compare it to break ties, so it must be the same on every
/// member and must not change while the member keeps its replicas.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(Arc<str>);

impl MemberId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for MemberId {
    fn from(id: &str) -> MemberId {
        MemberId(Arc::from(id))
    }
}

impl From<String> for MemberId {
    fn from(id: String) -> MemberId {
        MemberId(Arc::from(id))
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_name_the_same_key() {
        assert_eq!(Key::from("a"), Key::from(b"a"));
        assert_eq!(Key::from(String::from("a")), Key::from(vec![b'a']));
    }

    #[test]
    fn keys_show_as_text_or_hex() {
        assert_eq!(Key::from("user:1").to_string(), "\"user:1\"");
        assert_eq!(Key::from(&[0xff, 0x00, 0x10]).to_string(), "0xff0010");
        assert_eq!(Key::from(&[0xff]).as_str(), None);
    }
}
