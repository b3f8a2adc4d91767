//! Property tests for app-net's JSON reader, which reads unframed requests from anyone who
//! connects: where a request ends must not depend on how its bytes arrive, must be found
//! exactly for every JSON object, and no input may make the reader or the request parser
//! panic. `scripts/fuzz` runs them longer (see `wire::fuzz`).

use proptest::prelude::*;
use serde_json::Value;

use super::json::{parse_request, ObjectEnd};
use crate::wire::fuzz::{config, json_value};

/// Where `bytes` ends as one JSON value, fed in pieces cut at `cuts` (the buffer only
/// grows, as the server's does).
fn end_in_pieces(bytes: &[u8], cuts: &[usize]) -> Option<usize> {
    let mut end = ObjectEnd::default();
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    ends.into_iter().find_map(|at| end.feed(&bytes[..at]))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn where_any_bytes_end_does_not_depend_on_the_pieces(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = ObjectEnd::default().feed(&bytes);
        prop_assert_eq!(end_in_pieces(&bytes, &cuts), whole);
        if let Some(len) = whole {
            prop_assert!(len <= bytes.len());
            let _ = parse_request(&bytes[..len]);
        }
        let _ = parse_request(&bytes);
    }

    #[test]
    fn every_object_ends_where_it_ends(
        fields in prop::collection::btree_map("[\\PC\"\\\\{}]{0,8}", json_value(), 0..6),
        trailing in prop::collection::vec(any::<u8>(), 0..16),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let object = serde_json::to_vec(&fields).unwrap();
        let mut bytes = object.clone();
        bytes.extend_from_slice(&trailing);
        prop_assert_eq!(end_in_pieces(&bytes, &cuts), Some(object.len()));
    }

    #[test]
    fn requests_of_any_shape_are_answered_not_panicked_on(
        connection in json_value(),
        args in json_value(),
        kwargs in json_value(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
    ) {
        let request = serde_json::json!({"connection": connection, "args": args, "kwargs": kwargs});
        let _ = parse_request(request.to_string().as_bytes());
        let named = serde_json::json!({"connection": "t", "args": args, "kwargs": kwargs});
        let mut bytes = named.to_string().into_bytes();
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let _ = parse_request(&bytes);
        let _: Option<Value> = serde_json::from_slice(&bytes).ok();
    }
}
