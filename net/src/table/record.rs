//! What a replica holds for one key: the value's JSON bytes with their version, or a
//! tombstone with the version of the pop that made it; and the record's stored form.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::TableError;
use super::ids::{Key, MemberId};
use super::version::Version;

/// How long a tombstone is kept: the longest a member may be away and come back with
/// its replicas. A member away longer rejoins empty (see the module docs), so no copy
/// the tombstone was guarding against can come back after it is collected. A day covers
/// restarts, crashes and a night with the laptop shut; a member away for a weekend
/// costs one re-transfer of its share, never a resurrected value.
pub const TOMBSTONE_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// The first byte of a stored record: the layout below. A different byte is refused
/// loudly, never guessed at.
const FORMAT: u8 = 1;

/// One key's state on one replica.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    /// The write (or pop) that made this state; the newer record wins everywhere.
    pub version: Version,
    /// The value as JSON bytes, or `None` for a tombstone: the key was popped, and the
    /// tombstone outranks every older value a lagging replica may still offer.
    pub value: Option<Arc<[u8]>>,
}

impl Record {
    /// A record holding `value` (encoded as JSON) written at `version`.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn encode<V: Serialize + ?Sized>(
        key: &Key,
        version: Version,
        value: &V,
    ) -> Result<Record, TableError> {
        let bytes = serde_json::to_vec(value).map_err(|e| TableError::Encode {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        Ok(Record {
            version,
            value: Some(Arc::from(bytes)),
        })
    }

    /// The tombstone a pop at `version` leaves.
    pub fn tombstone(version: Version) -> Record {
        Record {
            version,
            value: None,
        }
    }

    /// Whether this is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The value, decoded as `V`; `None` for a tombstone.
    pub fn decode<V: DeserializeOwned>(&self, key: &Key) -> Result<Option<V>, TableError> {
        let Some(bytes) = &self.value else {
            return Ok(None);
        };
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| TableError::Decode {
                key: key.clone(),
                type_name: std::any::type_name::<V>(),
                reason: e.to_string(),
            })
    }

    /// Whether this record should replace `held` (nothing held, or an older version).
    pub fn supersedes(&self, held: Option<&Record>) -> bool {
        held.is_none_or(|held| self.version > held.version)
    }

    /// Whether this is a tombstone older than `grace` at `now_millis`, so that it may be
    /// collected.
    pub fn is_expired_tombstone(&self, now_millis: u64, grace: Duration) -> bool {
        self.is_tombstone()
            && self.version.millis.saturating_add(grace.as_millis() as u64) < now_millis
    }

    /// The stored form: format byte, millis (8, big-endian), counter (4), writer length
    /// (4) and UTF-8 writer, then 0 for a tombstone or 1 and the value's JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let writer = self.version.writer.as_str().as_bytes();
        let value = self.value.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(18 + writer.len() + value.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.version.millis.to_be_bytes());
        out.extend_from_slice(&self.version.counter.to_be_bytes());
        // A writer id is a peer id, a few dozen bytes; over 4 GiB cannot be held anyway.
        out.extend_from_slice(&(writer.len() as u32).to_be_bytes());
        out.extend_from_slice(writer);
        match &self.value {
            None => out.push(0),
            Some(_) => {
                out.push(1);
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// Reads the stored form back; the error says what is wrong with the bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, String> {
        let mut input = Input { bytes, at: 0 };
        let [format] = input.array("format byte")?;
        if format != FORMAT {
            return Err(format!("record format {format}, this build reads {FORMAT}"));
        }
        let millis = u64::from_be_bytes(input.array("millis")?);
        let counter = u32::from_be_bytes(input.array("counter")?);
        let len = u32::from_be_bytes(input.array("writer length")?);
        let writer = std::str::from_utf8(input.take(len as usize, "writer")?)
            .map_err(|_| "the writer id is not UTF-8".to_owned())?;
        let writer = MemberId::from(writer);
        let [kind] = input.array("record kind")?;
        let rest = &bytes[input.at..];
        let value = match kind {
            0 if rest.is_empty() => None,
            0 => return Err(format!("a tombstone followed by {} bytes", rest.len())),
            1 => Some(Arc::from(rest)),
            other => return Err(format!("record kind {other}, expected 0 or 1")),
        };
        Ok(Record {
            version: Version {
                millis,
                counter,
                writer,
            },
            value,
        })
    }
}

/// A stored record being read, front to back.
struct Input<'a> {
    /// The whole record.
    bytes: &'a [u8],
    /// How much of it was read.
    at: usize,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let bytes: &'a [u8] = self.bytes;
        let field = bytes.get(self.at..self.at + n).ok_or_else(|| {
            format!(
                "{} bytes end before the {what} ({n} bytes)",
                self.bytes.len()
            )
        })?;
        self.at += n;
        Ok(field)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn v(millis: u64, writer: &str) -> Version {
        Version {
            millis,
            counter: 3,
            writer: MemberId::from(writer),
        }
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn values_round_trip_as_json() {
        let key = Key::from("p");
        let record = Record::encode(&key, v(1, "w"), &Point { x: 1, y: -2 }).expect("encodes");
        assert_eq!(record.value.as_deref(), Some(&br#"{"x":1,"y":-2}"#[..]));
        assert_eq!(
            record.decode::<Point>(&key).expect("decodes"),
            Some(Point { x: 1, y: -2 })
        );
        assert_eq!(
            Record::tombstone(v(2, "w"))
                .decode::<Point>(&key)
                .expect("none"),
            None
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_key_and_type() {
        let key = Key::from("p");
        let record = Record::encode(&key, v(1, "w"), "text").expect("encodes");
        let err = record.decode::<Point>(&key).expect_err("not a Point");
        let text = err.to_string();
        assert!(text.contains("\"p\"") && text.contains("Point"), "{text}");
    }

    #[test]
    fn stored_form_round_trips_values_and_tombstones() {
        let key = Key::from("k");
        for record in [
            Record::encode(&key, v(u64::MAX, "writer-é"), &vec![1, 2, 3]).expect("encodes"),
            Record::tombstone(v(0, "")),
            Record::encode(&key, v(9, "w"), "").expect("encodes"),
        ] {
            assert_eq!(Record::from_bytes(&record.to_bytes()), Ok(record));
        }
    }

    #[test]
    fn damaged_stored_forms_are_refused_at_every_cut() {
        let key = Key::from("k");
        let bytes = Record::encode(&key, v(5, "writer"), &1)
            .expect("encodes")
            .to_bytes();
        // Every cut before the value's first byte is an error; later cuts are shorter
        // (different) values, which only the store's checksums could tell.
        let value_start = bytes.len() - 1;
        for cut in 0..value_start {
            assert!(Record::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(Record::from_bytes(&other)
            .expect_err("format")
            .contains("format 2"));
        let mut tomb = Record::tombstone(v(1, "w")).to_bytes();
        tomb.push(7);
        assert!(Record::from_bytes(&tomb).is_err());
    }

    #[test]
    fn only_old_tombstones_expire() {
        let grace = Duration::from_secs(10);
        let tomb = Record::tombstone(v(1_000, "w"));
        assert!(!tomb.is_expired_tombstone(5_000, grace));
        assert!(tomb.is_expired_tombstone(11_001, grace));
        let value = Record::encode(&Key::from("k"), v(1_000, "w"), &1).expect("encodes");
        assert!(!value.is_expired_tombstone(u64::MAX, grace));
    }

    #[test]
    fn newer_versions_supersede() {
        let old = Record::tombstone(v(1, "a"));
        let new = Record::tombstone(v(2, "a"));
        assert!(new.supersedes(Some(&old)));
        assert!(!old.supersedes(Some(&new)));
        assert!(
            !new.supersedes(Some(&new)),
            "the same write twice changes nothing"
        );
        assert!(old.supersedes(None));
    }
}
