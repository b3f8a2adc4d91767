//! Framing: a 4-byte big-endian length, then that many bytes of JSON. The limit is
//! enforced on both reading and writing.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{LengthDelimitedCodec, LengthDelimitedCodecError};

use super::Frame;

/// The codec for one connection, refusing frames longer than `max_frame`.
pub(crate) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame)
        .new_codec()
}

/// Encodes a message's JSON body into `buf`, replacing what it held (the sender adds the
/// length). Used with a reused buffer, so that sending allocates nothing per frame.
pub(crate) fn encode_into(message: &impl serde::Serialize, buf: &mut Vec<u8>) {
    buf.clear();
    // Messages hold only strings, numbers, JSON values and raw JSON: writing them into
    // memory cannot fail.
    let _ = serde_json::to_writer(&mut *buf, message);
}

/// Encodes a frame's JSON body (the codec adds the length).
pub(crate) fn encode(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::with_capacity(128).writer();
    // Frames hold only strings, numbers, JSON values and raw JSON: writing them into
    // memory cannot fail.
    let _ = serde_json::to_writer(&mut buf, frame);
    buf.into_inner().freeze()
}

/// Whether a read failed because a frame announced more than the limit.
pub(crate) fn is_too_long(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
}

/// Says what was wrong with an unreadable frame: over the size limit (and what to do), or
/// the socket's own error.
pub(crate) fn describe_read_error(error: &std::io::Error, max_frame: usize) -> String {
    match error
        .get_ref()
        .map(|inner| inner.is::<LengthDelimitedCodecError>())
    {
        Some(true) => format!(
            "a frame exceeds this peer's {max_frame}-byte limit (NET_MAX_FRAME); send less or \
             raise NET_MAX_FRAME on both peers"
        ),
        _ => format!("unreadable frame: {error}"),
    }
}
