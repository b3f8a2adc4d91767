//! The table's errors, each naming the key, file or member concerned. They become
//! `net::Error` variants when the table is wired into the peer (phase 2, `mod.rs`).

use super::ids::{Key, MemberId};
use super::quorum::NoQuorum;

/// Everything that can go wrong in the table's own parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// Too few of a key's replicas answered.
    #[error(transparent)]
    NoQuorum(#[from] NoQuorum),

    /// The replica store failed: opening, reading or committing.
    #[error("table store {path}: {action} failed: {reason}")]
    Store {
        /// The database file (or `memory`).
        path: String,
        /// What was being done ("open", "commit a write", ...).
        action: &'static str,
        /// The database's error.
        reason: String,
    },

    /// A stored record cannot be read back: the file is damaged or was written by an
    /// incompatible build.
    #[error(
        "table store {path}: the record of key {key} is unreadable ({reason}); the file is \
         damaged or from another version of net: move it away to start this member empty"
    )]
    Corrupt {
        /// The database file.
        path: String,
        /// The key whose record is unreadable.
        key: Key,
        /// What is wrong with the bytes.
        reason: String,
    },

    /// A value could not be encoded as JSON.
    #[error("the value for key {key} cannot be encoded as JSON: {reason}")]
    Encode {
        /// The key being written.
        key: Key,
        /// serde_json's error.
        reason: String,
    },

    /// A stored value is not of the type the table was opened with.
    #[error("the value of key {key} is not a {type_name}: {reason}")]
    Decode {
        /// The key read.
        key: Key,
        /// The type asked for.
        type_name: &'static str,
        /// serde_json's error.
        reason: String,
    },

    /// Two members of one table disagree on its terms (py2p failed silently here).
    #[error(
        "member {peer} of table {table:?} uses table protocol {} with NET_TABLE_REPLICAS={}, \
         this member protocol {} with NET_TABLE_REPLICAS={}: every member must use the same \
         (set NET_TABLE_REPLICAS alike, or upgrade the older build)",
        theirs.protocol, theirs.replicas, mine.protocol, mine.replicas
    )]
    Incompatible {
        /// The table.
        table: String,
        /// The other member.
        peer: MemberId,
        /// Its terms.
        theirs: super::terms::Terms,
        /// Ours.
        mine: super::terms::Terms,
    },
}
