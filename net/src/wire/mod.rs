//! The wire format: message types, framing with a size limit, and the handshake. Bytes are
//! handled here and nowhere else; docs/PROTOCOL.md describes the same format for clients
//! in other languages.

mod codec;
mod fast;
mod frame;
mod handshake;

pub(crate) use codec::{codec, describe_read_error, encode, encode_into};
pub(crate) use fast::{decode, encode_call, encode_reply};
pub(crate) use frame::{
    CallIn, CallRef, Frame, Hello, Incoming, ReplyFrame, WireOutcome, PROTOCOL_VERSION,
};
pub(crate) use handshake::handshake;

#[cfg(test)]
pub(crate) use frame::Outgoing;
