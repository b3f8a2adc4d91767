//! `net::Bytes`: binary data as a call's argument or result, carried beside the JSON of its
//! frame rather than inside it, so that megabytes cross at memory speed.
//!
//! While a payload is encoded for a frame (`payload.rs`), a `Bytes` value is set aside as
//! an attachment and the JSON holds a short marker in its place: the string `"\u0000"`
//! followed by the attachment's index. While a frame's payload is decoded, such a marker
//! is looked up among the frame's attachments, which are slices of the frame as read (no
//! copy). Anywhere else (a peer without attachments, app-net, events, the table, a user's
//! own `serde_json::to_string`) a `Bytes` is plain standard base64 text, and base64 text is
//! read back too (so are JSON arrays of numbers, for hand-written clients).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

use base64::Engine as _;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Binary data for a call: an argument or a result that crosses the wire as raw bytes
/// beside the frame's JSON, not as a JSON array of numbers.
///
/// ```
/// #[net::connect]
/// fn reverse(data: net::Bytes) -> net::Bytes {
///     let mut bytes = data.to_vec();
///     bytes.reverse();
///     net::Bytes::from(bytes)
/// }
///
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let server = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let client = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let big = net::Bytes::from(vec![7u8; 1 << 20]);
/// let back = reverse(big.clone()).on(&server).via(&client).await?;
/// assert_eq!(back.len(), big.len());
/// assert_eq!(reverse(net::Bytes::from_static(b"abc")).local()?, b"cba"[..]);
/// # Ok(()) }
/// ```
///
/// It derefs to `[u8]`, and converts from and into `Vec<u8>` and [`bytes::Bytes`] (cheaply:
/// clones share the buffer).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(bytes::Bytes);

impl Bytes {
    /// Bytes from a static slice, without copying.
    pub const fn from_static(bytes: &'static [u8]) -> Bytes {
        Bytes(bytes::Bytes::from_static(bytes))
    }

    /// The shared buffer underneath.
    pub fn into_inner(self) -> bytes::Bytes {
        self.0
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Bytes {
        Bytes(bytes.into())
    }
}

impl From<bytes::Bytes> for Bytes {
    fn from(bytes: bytes::Bytes) -> Bytes {
        Bytes(bytes)
    }
}

impl From<&'static [u8]> for Bytes {
    fn from(bytes: &'static [u8]) -> Bytes {
        Bytes::from_static(bytes)
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(bytes: Bytes) -> Vec<u8> {
        bytes.0.into()
    }
}

impl From<Bytes> for bytes::Bytes {
    fn from(bytes: Bytes) -> bytes::Bytes {
        bytes.0
    }
}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.0 == other
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

/// The first character of an attachment marker: no base64 text starts with it.
const MARK: char = '\0';

thread_local! {
    /// While a payload is encoded for a frame: the attachments set aside so far (with
    /// where each marker starts in the JSON).
    static SINK: RefCell<Option<Vec<super::Attachment>>> = const { RefCell::new(None) };
    /// While a payload is encoded for a frame: how many bytes of JSON are written so far.
    static WRITTEN: Cell<usize> = const { Cell::new(0) };
    /// While a frame's payload is decoded: its attachments.
    static SOURCE: RefCell<Option<Vec<bytes::Bytes>>> = const { RefCell::new(None) };
}

/// Runs `encode` with `Bytes` values set aside as attachments; returns what it returned and
/// the attachments. `encode` must report the JSON written so far with [`note_written`].
pub(super) fn collecting<T>(encode: impl FnOnce() -> T) -> (T, Vec<super::Attachment>) {
    let outer = SINK.with(|sink| sink.replace(Some(Vec::new())));
    let outer_written = WRITTEN.with(|w| w.replace(0));
    let out = encode();
    let attachments = SINK.with(|sink| sink.replace(outer)).unwrap_or_default();
    WRITTEN.with(|w| w.set(outer_written));
    (out, attachments)
}

/// The JSON written so far by the encoder of [`collecting`].
pub(super) fn note_written(len: usize) {
    WRITTEN.with(|w| w.set(len));
}

/// Runs `decode` with `attachments` as the ones markers refer to.
pub(crate) fn resolving<T>(attachments: &[bytes::Bytes], decode: impl FnOnce() -> T) -> T {
    if attachments.is_empty() {
        return decode();
    }
    let outer = SOURCE.with(|source| source.replace(Some(attachments.to_vec())));
    let out = decode();
    SOURCE.with(|source| source.replace(outer));
    out
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let marker = SINK.with(|sink| {
            let mut sink = sink.borrow_mut();
            let sink = sink.as_mut()?;
            let at = WRITTEN.with(Cell::get);
            let index = sink.len();
            sink.push(super::Attachment {
                at,
                bytes: self.0.clone(),
            });
            Some(format!("{MARK}{index}"))
        });
        match marker {
            Some(marker) => serializer.serialize_str(&marker),
            None => {
                serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_any(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("binary data: base64 text, an array of byte values, or an attachment")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Bytes, E> {
        if let Some(index) = text.strip_prefix(MARK) {
            let index: usize = index
                .parse()
                .map_err(|_| E::custom("a malformed attachment marker"))?;
            return SOURCE.with(|source| match &*source.borrow() {
                Some(attachments) => attachments.get(index).cloned().map(Bytes).ok_or_else(|| {
                    E::custom(format!(
                        "attachment {index} is missing: the frame has {}",
                        attachments.len()
                    ))
                }),
                None => Err(E::custom(
                    "an attachment marker outside a frame with attachments",
                )),
            });
        }
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| E::custom(format!("binary data that is not base64: {e}")))
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes::from(bytes.to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(byte) = seq.next_element::<u8>()? {
            out.push(byte);
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_frame_bytes_are_base64_and_read_back_from_base64_or_numbers() {
        let bytes = Bytes::from(vec![0u8, 1, 2, 250]);
        let json = serde_json::to_string(&bytes).unwrap();
        assert_eq!(json, "\"AAEC+g==\"");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), bytes);
        assert_eq!(serde_json::from_str::<Bytes>("[0,1,2,250]").unwrap(), bytes);
        let err = serde_json::from_str::<Bytes>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        let err = serde_json::from_str::<Bytes>("\"\\u00000\"").unwrap_err();
        assert!(err.to_string().contains("outside a frame"), "{err}");
    }
}
