//! The two names the table deals in: keys (strings or bytes, [`TableKey`](crate::TableKey)
//! in the base layer, since errors name them) and member ids.

use std::fmt;
use std::sync::Arc;

pub use crate::id::TableKey as Key;

/// A member's stable id: 16 hex digits drawn at random when the member first joins, and
/// kept in its store with NET_TABLE_DIR (so a member restarted on another port keeps its
/// buckets and catches up on the differing keys only). Placement hashes its bytes,
/// versions compare it to break ties, so it must be the same on every member and must
/// not change while the member keeps its replicas.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(Arc<str>);

impl MemberId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the 64 random bits `n`, as text.
    pub fn from_bits(n: u64) -> MemberId {
        MemberId::from(format!("{n:016x}"))
    }

    /// A fresh random id (from the operating system's random source).
    pub fn random() -> MemberId {
        MemberId::from_bits(random_bits())
    }
}

/// 64 random bits from the OS. If the OS source fails (it does not on Linux, macOS or
/// Windows), the time and process id, hashed: still distinct between members, which is
/// all an id needs.
pub fn random_bits() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_be_bytes(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let seed = format!("{now}-{}", std::process::id());
            xxhash_rust::xxh3::xxh3_64(seed.as_bytes())
        }
    }
}

impl From<&str> for MemberId {
    fn from(id: &str) -> MemberId {
        MemberId(Arc::from(id))
    }
}

impl From<String> for MemberId {
    fn from(id: String) -> MemberId {
        MemberId(Arc::from(id))
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (MemberId::random(), MemberId::random());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 16);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(MemberId::from_bits(255).as_str(), "00000000000000ff");
    }
}
