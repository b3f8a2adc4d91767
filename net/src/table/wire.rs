//! What the table's calls carry: records, versions, members, the answers of each call
//! and the typed error a member answers with (`docs/PROTOCOL.md` documents them). Keys
//! travel in [`TableKey`](crate::TableKey)'s wire form; hashes as hex text, so that any
//! language reads them without 64-bit integer trouble.
//!
//! Everything that arrives is checked here before the table uses it: sizes, UTF-8, ids.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ids::{Key, MemberId};
use super::record::Record;
use super::terms::Terms;
use super::version::Version;

/// The longest key a member accepts, in bytes: a key is hashed and compared on every
/// access and listed in every digest exchange; a value can be large, a key need not.
pub const MAX_KEY: usize = 4096;

/// The longest member or writer id accepted, in bytes (ours are 16).
const MAX_ID: usize = 64;

/// The most members a view may list: far past a LAN group, and a bound on what one
/// answer can make a member store.
pub const MAX_MEMBERS: usize = 4096;

/// A table name: what a peer accepts as one, or why not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a table needs a name (any text up to 255 bytes)".into());
    }
    if name.len() > 255 {
        return Err(format!(
            "a table name is at most 255 bytes, not {}",
            name.len()
        ));
    }
    Ok(())
}

/// A key as it arrived: checked for size.
pub fn check_key(key: &Key) -> Result<(), WireError> {
    if key.len() > MAX_KEY {
        return Err(WireError::BadRequest(format!(
            "a key of {} bytes (at most {MAX_KEY})",
            key.len()
        )));
    }
    Ok(())
}

/// One write's version on the wire.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireVersion {
    /// Milliseconds since the epoch (hybrid logical clock).
    pub millis: u64,
    /// Orders writes within a millisecond.
    pub counter: u32,
    /// The writer's id.
    pub writer: String,
}

impl From<&Version> for WireVersion {
    fn from(v: &Version) -> WireVersion {
        WireVersion {
            millis: v.millis,
            counter: v.counter,
            writer: v.writer.to_string(),
        }
    }
}

impl WireVersion {
    /// The version, if the writer id is acceptable.
    pub fn into_version(self) -> Result<Version, WireError> {
        check_id(&self.writer, "writer")?;
        Ok(Version {
            millis: self.millis,
            counter: self.counter,
            writer: MemberId::from(self.writer),
        })
    }
}

/// A record on the wire: its version, then the value as raw JSON, or `"deleted": true`
/// for a tombstone.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireRecord {
    /// Milliseconds of the version.
    pub millis: u64,
    /// Counter of the version.
    pub counter: u32,
    /// Writer of the version.
    pub writer: String,
    /// A tombstone: the key was popped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// The value (absent for a tombstone; a JSON `null` value may arrive as absent too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
}

impl WireRecord {
    /// The wire form of a stored record. A value whose bytes are not JSON (a damaged
    /// store) is sent as a JSON string saying so, never as bytes that break the frame.
    pub fn from_record(record: &Record) -> WireRecord {
        let value = record.value.as_ref().map(|bytes| {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| RawValue::from_string(text.to_owned()).ok())
                .unwrap_or_else(|| {
                    // A JSON string always makes a raw value.
                    RawValue::from_string("\"<unreadable stored value>\"".to_owned())
                        .expect("a JSON string literal is valid JSON")
                })
        });
        WireRecord {
            millis: record.version.millis,
            counter: record.version.counter,
            writer: record.version.writer.to_string(),
            deleted: record.is_tombstone(),
            value,
        }
    }

    /// The record, if its writer id is acceptable.
    pub fn into_record(self) -> Result<Record, WireError> {
        let version = WireVersion {
            millis: self.millis,
            counter: self.counter,
            writer: self.writer,
        }
        .into_version()?;
        if self.deleted {
            return Ok(Record::tombstone(version));
        }
        let json = self.value.as_ref().map_or("null", |raw| raw.get());
        Ok(Record {
            version,
            value: Some(Arc::from(json.as_bytes())),
        })
    }
}

fn check_id(id: &str, what: &str) -> Result<(), WireError> {
    if id.is_empty() || id.len() > MAX_ID {
        return Err(WireError::BadRequest(format!(
            "a {what} id of {} bytes (1 to {MAX_ID})",
            id.len()
        )));
    }
    Ok(())
}

/// One entry of a member's view: who, where, which life (a restarted or re-admitted
/// member comes back with a higher incarnation), and whether it is alive in it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireMember {
    /// The member's id.
    pub id: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its incarnation: the milliseconds of its latest join.
    pub inc: u64,
    /// False once it left or was found dead at this incarnation.
    pub alive: bool,
}

impl WireMember {
    /// The member id, if acceptable.
    pub fn member_id(&self) -> Result<MemberId, WireError> {
        check_id(&self.id, "member")?;
        Ok(MemberId::from(self.id.as_str()))
    }
}

/// Checks a list of members that arrived.
pub fn check_members(members: &[WireMember]) -> Result<(), WireError> {
    if members.len() > MAX_MEMBERS {
        return Err(WireError::BadRequest(format!(
            "a view of {} members (at most {MAX_MEMBERS})",
            members.len()
        )));
    }
    members.iter().try_for_each(|m| m.member_id().map(drop))
}

/// What a member answers instead of doing what was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum WireError {
    /// The peer has not joined the table, or is another member than the one addressed
    /// (a restarted peer on the same port).
    #[error("not a member of the table")]
    NotMember,
    /// The peer uses other terms: its own are these.
    #[error(
        "uses table protocol {} with NET_TABLE_REPLICAS={}",
        terms.protocol,
        terms.replicas
    )]
    Incompatible {
        /// The answering member's terms.
        terms: Terms,
    },
    /// The member does not hold the key (or bucket) in its view, which it sends.
    #[error("does not hold it in its view of the members")]
    NotOwner {
        /// Its view.
        members: Vec<WireMember>,
    },
    /// Its store failed.
    #[error("its store failed: {0}")]
    Store(String),
    /// The request was malformed or too large.
    #[error("refused the request: {0}")]
    BadRequest(String),
}

/// A 128-bit digest as hex.
pub fn hex128(n: u128) -> String {
    format!("{n:032x}")
}

/// A 64-bit hash as hex.
pub fn hex64(n: u64) -> String {
    format!("{n:016x}")
}

/// A 128-bit digest from hex.
pub fn parse128(text: &str) -> Result<u128, WireError> {
    u128::from_str_radix(text, 16)
        .map_err(|_| WireError::BadRequest(format!("{text:?} is not a 128-bit hex digest")))
}

/// `members` answers: the member's terms, its view's hash, and its view unless the
/// asker's hash was the same.
#[derive(Debug, Serialize, Deserialize)]
pub struct MembersAnswer {
    /// The answering member's terms.
    pub terms: Terms,
    /// Its view's hash.
    pub view: String,
    /// Its view, when it differs from the asker's.
    pub members: Option<Vec<WireMember>>,
}

/// One key of a `get`: what the replica holds, and whether it holds the key's whole
/// bucket (a member still receiving a bucket it gained does not count towards a read).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Found {
    /// The record held, tombstones included.
    pub record: Option<WireRecord>,
    /// False while the member is still receiving the key's bucket.
    pub ready: bool,
}

/// `get` answers: per key asked, what the replica holds, or `null` for a key it does not
/// hold in its view (its view is then in `members`).
#[derive(Debug, Serialize, Deserialize)]
pub struct GetAnswer {
    /// One per key, in order.
    pub found: Vec<Option<Found>>,
    /// The answering member's view hash.
    pub view: String,
    /// Its view, when some key was not its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<WireMember>>,
}

/// How a replica took one record of a `put`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ack {
    /// The record is what it holds now (or already was).
    Applied,
    /// It holds this newer version, which stays.
    Superseded(WireVersion),
    /// It does not hold the key in its view (its view is in the answer's `members`).
    NotOwner,
}

/// `put` answers: one acknowledgement per record sent.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutAnswer {
    /// One per record, in order.
    pub acks: Vec<Ack>,
    /// The answering member's view hash.
    pub view: String,
    /// Its view, when some key was not its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<WireMember>>,
}

/// `scan` answers: the records of the buckets asked, and which of them the member is
/// still receiving.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScanAnswer {
    /// Every record of the buckets, tombstones included.
    pub records: Vec<(Key, WireRecord)>,
    /// Buckets asked that the member is still receiving.
    pub not_ready: Vec<u16>,
    /// The answering member's view hash.
    pub view: String,
}

/// `sync_keys` answers: the records the asker lacks, and the keys the member lacks (the
/// asker then sends those with `transfer`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SyncKeysAnswer {
    /// Records the member holds newer, or only it.
    pub records: Vec<(Key, WireRecord)>,
    /// Keys the asker holds newer, or only it.
    pub lack: Vec<Key>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> Version {
        Version {
            millis: 5,
            counter: 1,
            writer: MemberId::from("w"),
        }
    }

    #[test]
    fn records_cross_the_wire_values_nulls_and_tombstones_alike() {
        let key = Key::from("k");
        for record in [
            Record::encode(&key, version(), &serde_json::json!({"a": [1, 2]})).unwrap(),
            Record::encode(&key, version(), &serde_json::Value::Null).unwrap(),
            Record::tombstone(version()),
        ] {
            let json = serde_json::to_string(&WireRecord::from_record(&record)).unwrap();
            let back: WireRecord = serde_json::from_str(&json).unwrap();
            assert_eq!(back.into_record().unwrap(), record, "{json}");
        }
        let tomb = serde_json::to_string(&WireRecord::from_record(&Record::tombstone(version())));
        assert_eq!(
            tomb.unwrap(),
            r#"{"millis":5,"counter":1,"writer":"w","deleted":true}"#
        );
    }

    #[test]
    fn bad_ids_keys_and_digests_are_refused() {
        let record = WireRecord {
            millis: 1,
            counter: 0,
            writer: "x".repeat(65),
            deleted: true,
            value: None,
        };
        assert!(record.into_record().is_err());
        assert!(check_key(&Key::from(vec![0u8; MAX_KEY + 1])).is_err());
        assert!(check_key(&Key::from(vec![0u8; MAX_KEY])).is_ok());
        assert!(parse128("xyz").is_err());
        assert_eq!(parse128(&hex128(u128::MAX - 3)).unwrap(), u128::MAX - 3);
        assert!(check_name("").is_err() && check_name(&"n".repeat(256)).is_err());
    }
}
