//! The wire format: message types, framing with a size limit, the handshake, and the
//! `info` description every peer gives. Bytes are handled here and nowhere else;
//! docs/PROTOCOL.md describes the same format for clients in other languages.

mod binary;
mod codec;
mod fast;
mod frame;
#[cfg(test)]
pub(crate) mod fuzz;
mod handshake;
mod info;
mod payload;

pub(crate) use binary::resolving;
pub use binary::Bytes;
pub(crate) use codec::{codec, describe_read_error, encode, encode_into};
pub(crate) use fast::{decode, encode_call, encode_reply};
pub(crate) use frame::{
    CallIn, CallRef, Frame, Hello, Incoming, ReplyIn, WireOutcome, PROTOCOL_VERSION,
};
pub(crate) use handshake::{check_hello, handshake};
pub use info::Info;
pub(crate) use info::INFO_TAG;
pub use payload::Payload;
pub(crate) use payload::{attached_len, put_attached, split, Attachment};

#[cfg(test)]
pub(crate) use frame::{CallSerde, OutcomeJson, Outgoing, ReplyFrame};
