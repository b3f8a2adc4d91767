//! Property tests ("fuzzing" on stable Rust) for everything of this layer that parses bytes
//! from the network: the frame decoder, the attachment layout, the fast frame reader and
//! the hello check. Random and mutated input must never panic, nor read past a limit;
//! valid input must read back as written, however the stream is cut.
//!
//! The normal suite runs a bounded number of cases; `scripts/fuzz` runs many more
//! (`PROPTEST_CASES`). A failure found that way is kept as a regular test below.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use serde_json::Value;
use tokio_util::codec::Decoder;

use super::frame::{CallRef, Incoming};
use super::{check_hello, codec, fast, split};

/// Cases per property: `PROPTEST_CASES` when set (the long run), else `default`, small
/// enough that the suite stays quick.
pub(crate) fn config(default: u32) -> ProptestConfig {
    match std::env::var("PROPTEST_CASES") {
        Ok(_) => ProptestConfig::default(),
        Err(_) => ProptestConfig::with_cases(default),
    }
}

/// A JSON value of a few levels, with the strings that trouble hand-written readers.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[\\PC\"\\\\{}\\[\\]]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z\"\\\\{}]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `bytes` fed to a decoder of `max_frame` in pieces cut at `cuts`: the frames it gives,
/// or the first error.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize], max_frame: usize) -> Result<Vec<Bytes>, ()> {
    let mut decoder = codec(max_frame);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    for end in ends {
        buf.extend_from_slice(&bytes[at..end.max(at)]);
        at = end.max(at);
        while let Some(frame) = decoder.decode(&mut buf).map_err(|_| ())? {
            frames.push(frame.freeze());
        }
    }
    Ok(frames)
}

/// Every way a frame body is read after the length: attachments split off, then the
/// message. None may panic.
fn read_body(frame: Bytes) {
    if let Ok((json, _attachments)) = split(frame) {
        let _ = fast::decode(&json);
    }
}

fn framed(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for body in bodies {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_through_the_decoder_never_panic_nor_pass_the_limit(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
        max_frame in 1usize..1024,
    ) {
        if let Ok(frames) = decode_in_pieces(&bytes, &cuts, max_frame) {
            for frame in frames {
                prop_assert!(frame.len() <= max_frame);
                read_body(frame);
            }
        }
    }

    #[test]
    fn frames_read_back_however_the_stream_is_cut(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let frames = decode_in_pieces(&framed(&bodies), &cuts, 300).map_err(|()| {
            TestCaseError::fail("a valid stream did not decode")
        })?;
        let frames: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(frames, bodies);
    }

    #[test]
    fn attachment_layouts_never_panic(
        mut body in prop::collection::vec(any::<u8>(), 0..200),
        words in prop::collection::vec((any::<usize>(), any::<u32>()), 0..4),
    ) {
        // Mostly well-formed heads with lengths that lie.
        body.insert(0, 0x00);
        for (at, word) in words {
            let at = at % body.len();
            let end = (at + 4).min(body.len());
            body[at..end].copy_from_slice(&word.to_be_bytes()[..end - at]);
        }
        read_body(Bytes::from(body));
    }

    #[test]
    fn the_fast_reader_agrees_with_serde_on_written_and_mutated_calls(
        id in any::<u64>(),
        tag in "[\\PC\"\\\\]{0,16}",
        args in prop::collection::vec(json_value(), 0..4),
        timeout_ms in any::<Option<u64>>(),
        oneway in any::<bool>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let args = serde_json::to_vec(&args).unwrap();
        let call = CallRef { id, tag: &tag, args: &args, kwargs: None, timeout_ms, oneway };
        let mut bytes = Vec::new();
        fast::encode_call(&call, &mut bytes);
        let json = Bytes::from(bytes.clone());
        match fast::decode(&json) {
            Ok(Incoming::Call(read)) => {
                prop_assert_eq!(read.id, id);
                prop_assert_eq!(&*read.tag, tag.as_str());
                let got: Value = serde_json::from_str(read.args.get()).unwrap();
                let sent: Value = serde_json::from_slice(&args).unwrap();
                prop_assert_eq!(got, sent);
            }
            other => prop_assert!(false, "a written call read as {other:?}"),
        }
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        agree_with_serde(&bytes)?;
    }

    #[test]
    fn any_bytes_read_as_serde_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        agree_with_serde(&bytes)?;
    }

    #[test]
    fn any_hello_is_checked_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        hello in json_value(),
        protocol in prop_oneof![Just(Value::from(1)), json_value()],
    ) {
        let _ = check_hello(&bytes, "fuzz");
        let framed = serde_json::json!({"hello": hello});
        let _ = check_hello(framed.to_string().as_bytes(), "fuzz");
        let versioned = serde_json::json!({"hello": {"protocol": protocol, "id": hello}});
        let _ = check_hello(versioned.to_string().as_bytes(), "fuzz");
    }
}

/// The fast reader and serde read `bytes` alike (the fast way covers only the layouts this
/// crate writes and falls back to serde for the rest): the same message, or both an error
/// (not always worded alike: the fast reader checks UTF-8 before serde sees the bytes).
/// What only the fast reader knows (a goodbye with a reason) is left out.
fn agree_with_serde(bytes: &[u8]) -> Result<(), TestCaseError> {
    let json = Bytes::from(bytes.to_vec());
    let ours = fast::decode(&json);
    if matches!(ours, Ok(Incoming::Parting { .. })) {
        return Ok(());
    }
    let ours = ours.map(|f| format!("{f:?}")).ok();
    let serde = serde_json::from_slice::<Incoming>(bytes)
        .map(|f| format!("{f:?}"))
        .ok();
    prop_assert_eq!(ours, serde, "{}", String::from_utf8_lossy(bytes));
    Ok(())
}
