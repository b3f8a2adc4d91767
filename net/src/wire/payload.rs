//! Payloads: a call's arguments or result as JSON plus the binary attachments its
//! `net::Bytes` values were set aside as (`binary.rs`), and the frame layout that carries
//! both.
//!
//! A frame with attachments is told from a JSON frame by its first byte, 0, which no JSON
//! text starts with (docs/PROTOCOL.md, "Binary attachments"):
//!
//! ```text
//! 0x00 | u32 json length | json | u32 count | u32 length x count | attachment bytes...
//! ```
//!
//! all integers big-endian. Only peers whose hello says `"attachments": true` are sent such
//! frames; others get each attachment written into the JSON as base64 text.

use std::borrow::Cow;
use std::io;

use bytes::{BufMut, Bytes};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::binary::{collecting, note_written, resolving};

/// One binary value set aside while encoding.
pub(crate) struct Attachment {
    /// Where its marker starts in the JSON.
    pub(crate) at: usize,
    /// The data.
    pub(crate) bytes: Bytes,
}

/// A value encoded for a frame: JSON, and the attachments its markers refer to.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct Payload {
    /// JSON text: written by this crate's encoder, or read from a frame (then checked as
    /// JSON when decoded into its type).
    pub(crate) json: Bytes,
    /// The attachments, in marker order.
    pub(crate) attachments: Vec<Bytes>,
    /// Where each attachment's marker starts in `json`, for a value encoded here (empty
    /// for one read from a frame, whose markers are only ever decoded).
    pub(crate) marks: Vec<usize>,
}

/// Counts what the JSON encoder has written, so that a `Bytes` knows where its marker
/// starts.
struct Counting<'a>(&'a mut Vec<u8>);

impl io::Write for Counting<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(bytes);
        note_written(self.0.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Payload {
    /// Encodes `value`, setting its `net::Bytes` aside as attachments.
    pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Payload> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let (json, found) = collecting(|| {
            SCRATCH.with(|scratch| {
                let mut owned = Vec::new();
                // Re-entered (a Serialize impl that encodes a payload itself): a fresh one.
                let mut borrowed = scratch.try_borrow_mut();
                let buf = match borrowed.as_deref_mut() {
                    Ok(buf) => buf,
                    Err(_) => &mut owned,
                };
                buf.clear();
                serde_json::to_writer(Counting(&mut *buf), value)?;
                let json = Bytes::copy_from_slice(buf);
                // Don't let one huge value pin its memory to the thread.
                if buf.capacity() > 64 * 1024 {
                    *buf = Vec::new();
                }
                Ok(json)
            })
        });
        let (marks, attachments) = found.into_iter().map(|a| (a.at, a.bytes)).unzip();
        Ok(Payload {
            json: json?,
            attachments,
            marks,
        })
    }

    /// JSON text with no attachments.
    pub(crate) fn json(text: impl Into<Bytes>) -> Payload {
        Payload {
            json: text.into(),
            ..Payload::default()
        }
    }

    /// A checked JSON value, with no attachments.
    pub(crate) fn from_raw(raw: Box<serde_json::value::RawValue>) -> Payload {
        Payload::json(String::from(Box::<str>::from(raw)))
    }

    /// Decodes into `T`, markers resolved against the attachments.
    pub(crate) fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        resolving(&self.attachments, || serde_json::from_slice(&self.json))
    }

    /// The JSON alone, each attachment written in as base64 text: what a peer that takes
    /// no attachments is sent.
    pub(crate) fn inline_json(&self) -> Cow<'_, [u8]> {
        if self.marks.is_empty() {
            return Cow::Borrowed(&self.json);
        }
        let extra: usize = self.attachments.iter().map(|a| a.len() / 3 * 4 + 4).sum();
        let mut out = Vec::with_capacity(self.json.len() + extra);
        let mut from = 0;
        for (index, (&at, bytes)) in self.marks.iter().zip(&self.attachments).enumerate() {
            out.extend_from_slice(&self.json[from..at]);
            out.push(b'"');
            base64::engine::general_purpose::STANDARD.encode_slice_into_vec(bytes, &mut out);
            out.push(b'"');
            // The marker as serde wrote it: `"\u0000` and the index's digits, then `"`.
            from = at + 8 + itoa::Buffer::new().format(index).len();
        }
        out.extend_from_slice(&self.json[from..]);
        Cow::Owned(out)
    }

    /// The JSON as text, for messages (lossy on invalid UTF-8 from a broken peer).
    pub(crate) fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.json)
    }
}

/// A base64 encoder that appends to a `Vec`.
trait EncodeIntoVec {
    fn encode_slice_into_vec(&self, input: &[u8], out: &mut Vec<u8>);
}

impl<E: base64::Engine> EncodeIntoVec for E {
    fn encode_slice_into_vec(&self, input: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let len = base64::encoded_len(input.len(), true).unwrap_or(0);
        out.resize(start + len, 0);
        // Sized just above, so the slice is large enough.
        let written = self.encode_slice(input, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
    }
}

/// The first byte of a frame with attachments.
const ATTACHMENTS: u8 = 0;

/// Appends the body of a frame with attachments to `out`: `json` is the frame's JSON (a
/// call or a reply) whose markers refer to `attachments`.
pub(crate) fn put_attached(out: &mut Vec<u8>, json: &[u8], attachments: &[Bytes]) {
    out.reserve(9 + json.len() + 4 * attachments.len());
    out.put_u8(ATTACHMENTS);
    out.put_u32(json.len() as u32);
    out.put_slice(json);
    out.put_u32(attachments.len() as u32);
    for attachment in attachments {
        out.put_u32(attachment.len() as u32);
    }
}

/// The size of a frame with attachments whose head is `head` bytes.
pub(crate) fn attached_len(head: usize, attachments: &[Bytes]) -> usize {
    head + attachments.iter().map(Bytes::len).sum::<usize>()
}

/// Splits a frame into its JSON and its attachments (slices of it, no copy); a frame
/// without attachments is all JSON. `Err` says what is wrong with the layout.
pub(crate) fn split(frame: Bytes) -> Result<(Bytes, Vec<Bytes>), String> {
    if frame.first() != Some(&ATTACHMENTS) {
        return Ok((frame, Vec::new()));
    }
    let bad = |what: &str| format!("a frame with attachments {what} (see docs/PROTOCOL.md)");
    let word = |at: usize| -> Result<usize, String> {
        let bytes = frame
            .get(at..at + 4)
            .ok_or_else(|| bad("ends inside its layout"))?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let json_len = word(1)?;
    let json_end = 5usize
        .checked_add(json_len)
        .filter(|end| *end <= frame.len())
        .ok_or_else(|| bad("says its JSON is longer than the frame"))?;
    let count = word(json_end)?;
    let lengths_end = count
        .checked_mul(4)
        .and_then(|n| n.checked_add(json_end + 4))
        .filter(|end| *end <= frame.len())
        .ok_or_else(|| bad("says it has more attachments than fit"))?;
    let mut at = lengths_end;
    let mut attachments = Vec::with_capacity(count);
    for i in 0..count {
        let len = word(json_end + 4 + 4 * i)?;
        let end = at
            .checked_add(len)
            .filter(|end| *end <= frame.len())
            .ok_or_else(|| bad("says an attachment is longer than the frame"))?;
        attachments.push(frame.slice(at..end));
        at = end;
    }
    if at != frame.len() {
        return Err(bad("has bytes after its last attachment"));
    }
    Ok((frame.slice(5..json_end), attachments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Bytes as NetBytes;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Mixed {
        name: String,
        data: NetBytes,
        more: Vec<NetBytes>,
    }

    fn sample() -> Mixed {
        Mixed {
            name: "quote \" and \u{0}3".into(),
            data: NetBytes::from(vec![1u8, 2, 3]),
            more: vec![NetBytes::from(vec![9u8; 10]), NetBytes::from(Vec::new())],
        }
    }

    #[test]
    fn bytes_become_attachments_and_come_back_from_them() {
        let payload = Payload::encode(&sample()).unwrap();
        assert_eq!(payload.attachments.len(), 3);
        assert!(!payload.text().contains("AQID"), "{}", payload.text());
        assert_eq!(payload.decode::<Mixed>().unwrap(), sample());
    }

    #[test]
    fn a_peer_without_attachments_gets_base64_in_the_json() {
        let payload = Payload::encode(&sample()).unwrap();
        let inline = payload.inline_json();
        // Exactly what serde writes with no attachment sink (base64), user strings intact.
        assert_eq!(&*inline, serde_json::to_vec(&sample()).unwrap().as_slice());
        let back: Mixed = serde_json::from_slice(&inline).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn a_frame_with_attachments_splits_back_into_its_parts() {
        let attachments = vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from(vec![7u8; 70_000]),
        ];
        let mut frame = Vec::new();
        put_attached(&mut frame, b"{\"x\":1}", &attachments);
        assert_eq!(
            attached_len(frame.len(), &attachments),
            frame.len() + 70_003
        );
        for a in &attachments {
            frame.extend_from_slice(a);
        }
        let (json, back) = split(Bytes::from(frame.clone())).unwrap();
        assert_eq!(&json[..], b"{\"x\":1}");
        assert_eq!(back, attachments);
        // Every cut of the frame, and every byte past its end, is refused, never a panic.
        for cut in 0..frame.len().min(200) {
            assert!(split(Bytes::from(frame[..cut].to_vec())).is_err() || cut == 0);
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(split(Bytes::from(longer))
            .unwrap_err()
            .contains("after its last"));
        // A JSON frame passes through whole.
        let (json, none) = split(Bytes::from_static(b"\"goodbye\"")).unwrap();
        assert_eq!((&json[..], none.len()), (&b"\"goodbye\""[..], 0));
    }
}
