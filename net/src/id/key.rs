//! [`TableKey`]: a key of a replicated table, bytes that are usually text, and its wire
//! form (a JSON string when UTF-8, `{"b64": ...}` otherwise).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A key of a [`Table`](crate::Table): bytes, usually UTF-8 text. `"a"` and `b"a"` are the
/// same key on every member and in every language (py2p translated every key to bytes
/// before hashing; the bytes are kept as given).
///
/// ```
/// let key = net::TableKey::from("user:1");
/// assert_eq!(key.as_str(), Some("user:1"));
/// assert_eq!(key, net::TableKey::from(b"user:1"));
/// assert_eq!(net::TableKey::from(&[0xff, 0x00][..]).to_string(), "0xff00");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableKey(Arc<[u8]>);

impl TableKey {
    /// The key's bytes, as they are hashed and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as text, when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// How many bytes the key has.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key has no bytes (the empty string is a key like any other).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for TableKey {
    fn from(key: &str) -> TableKey {
        TableKey(Arc::from(key.as_bytes()))
    }
}

impl From<String> for TableKey {
    fn from(key: String) -> TableKey {
        TableKey(Arc::from(key.into_bytes()))
    }
}

impl From<&String> for TableKey {
    fn from(key: &String) -> TableKey {
        TableKey::from(key.as_str())
    }
}

impl From<&[u8]> for TableKey {
    fn from(key: &[u8]) -> TableKey {
        TableKey(Arc::from(key))
    }
}

impl From<Vec<u8>> for TableKey {
    fn from(key: Vec<u8>) -> TableKey {
        TableKey(Arc::from(key))
    }
}

impl<const N: usize> From<&[u8; N]> for TableKey {
    fn from(key: &[u8; N]) -> TableKey {
        TableKey(Arc::from(&key[..]))
    }
}

impl From<&TableKey> for TableKey {
    fn from(key: &TableKey) -> TableKey {
        key.clone()
    }
}

/// Text keys are shown quoted, as in the code that wrote them; other keys as hex, so an
/// error message names a binary key without printing control bytes.
impl fmt::Display for TableKey {
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

impl fmt::Debug for TableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableKey({self})")
    }
}

/// The wire form: a text key as a JSON string, any other as `{"b64": "<standard base64>"}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    Text(String),
    Bytes { b64: String },
}

impl Serialize for TableKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(text) => serializer.serialize_str(text),
            None => Wire::Bytes {
                b64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for TableKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TableKey, D::Error> {
        match Wire::deserialize(deserializer)? {
            Wire::Text(text) => Ok(TableKey::from(text)),
            Wire::Bytes { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(TableKey::from)
                .map_err(|e| serde::de::Error::custom(format!("a key's b64 is not base64: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_name_the_same_key() {
        assert_eq!(TableKey::from("a"), TableKey::from(b"a"));
        assert_eq!(
            TableKey::from(String::from("a")),
            TableKey::from(vec![b'a'])
        );
    }

    #[test]
    fn keys_show_as_text_or_hex() {
        assert_eq!(TableKey::from("user:1").to_string(), "\"user:1\"");
        assert_eq!(TableKey::from(&[0xff, 0x00, 0x10]).to_string(), "0xff0010");
        assert_eq!(TableKey::from(&[0xff]).as_str(), None);
    }

    #[test]
    fn keys_cross_the_wire_as_text_or_base64() {
        let text = TableKey::from("k");
        assert_eq!(serde_json::to_string(&text).unwrap(), "\"k\"");
        let bytes = TableKey::from(&[0xff, 0x00]);
        let json = serde_json::to_string(&bytes).unwrap();
        assert_eq!(json, r#"{"b64":"/wA="}"#);
        for key in [text, bytes] {
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(serde_json::from_str::<TableKey>(&json).unwrap(), key);
        }
        assert!(serde_json::from_str::<TableKey>(r#"{"b64":"!!"}"#).is_err());
        assert!(serde_json::from_str::<TableKey>("12").is_err());
    }
}
