//! The terms members of one table must share, checked at join: a member with other
//! terms places keys elsewhere or counts majorities differently, so it is refused with
//! an error naming both sides (py2p's check failed silently).

use super::error::TableError;
use super::ids::MemberId;

/// The table protocol this build speaks: placement seeds, bucket count, record and
/// digest layouts, and the built-in calls. Bumped on any change to them.
pub const PROTOCOL: u32 = 1;

/// What two members of one table must agree on; on the wire as `{"protocol": 1,
/// "replicas": 3}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terms {
    /// The table protocol version.
    pub protocol: u32,
    /// The replication factor (NET_TABLE_REPLICAS).
    pub replicas: usize,
}

impl Terms {
    /// This build's terms with `replicas` copies per key.
    pub fn new(replicas: usize) -> Terms {
        Terms {
            protocol: PROTOCOL,
            replicas,
        }
    }

    /// Accepts `peer`'s terms for `table` if they are ours; otherwise the error names
    /// both.
    pub fn check(&self, table: &str, peer: &MemberId, theirs: Terms) -> Result<(), TableError> {
        if *self == theirs {
            return Ok(());
        }
        Err(TableError::Incompatible {
            table: table.to_owned(),
            peer: peer.clone(),
            theirs,
            mine: *self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_terms_pass_and_others_name_both_sides() {
        let mine = Terms::new(crate::config::DEFAULT_TABLE_REPLICAS);
        let peer = MemberId::from("peer-b");
        assert!(mine.check("users", &peer, Terms::new(3)).is_ok());
        let err = mine
            .check("users", &peer, Terms::new(5))
            .expect_err("other replication factor");
        assert_eq!(
            err.to_string(),
            "member peer-b of table \"users\" uses table protocol 1 with NET_TABLE_REPLICAS=5, \
             this member protocol 1 with NET_TABLE_REPLICAS=3: every member must use the same \
             (set NET_TABLE_REPLICAS alike, or upgrade the older build)"
        );
        let newer = Terms {
            protocol: PROTOCOL + 1,
            replicas: 3,
        };
        assert!(mine.check("users", &peer, newer).is_err());
    }
}
