//! The wire format: message types, framing with a size limit, and the handshake. Bytes are
//! handled here and nowhere else; docs/PROTOCOL.md describes the same format for clients
//! in other languages.

mod codec;
mod frame;
mod handshake;

pub(crate) use codec::{codec, describe_read_error, encode};
pub(crate) use frame::{CallFrame, Frame, Hello, ReplyFrame, WireOutcome, PROTOCOL_VERSION};
pub(crate) use handshake::handshake;
