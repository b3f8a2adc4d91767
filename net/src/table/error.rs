//! The errors of the table's own parts, each naming the key, file or member concerned;
//! [`TableError::into_error`] turns one into the `net::Error` a user sees, with the
//! table's name.

use std::sync::Arc;

use super::ids::{Key, MemberId};
use super::terms::Terms;

/// Everything that can go wrong in the table's store, records and terms.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TableError {
    /// The replica store failed: opening, reading or committing.
    #[error("table store {path}: {action} failed: {reason}")]
    Store {
        /// The database file (or `memory`).
        path: String,
        /// What was being done ("open", "commit a write", ...).
        action: &'static str,
        /// The database's error, as text.
        reason: String,
        /// The database's or the OS's error itself, when there is one.
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
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

    /// A value could not be encoded as JSON (`Record::encode`).
    #[cfg_attr(not(test), allow(dead_code))]
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
        theirs: Terms,
        /// Ours.
        mine: Terms,
    },
}

impl TableError {
    /// The `net::Error` of this error in table `table`.
    pub fn into_error(self, table: &str) -> crate::Error {
        let table = table.to_owned();
        match self {
            TableError::Store {
                path,
                action,
                reason,
                source,
            } => crate::Error::TableStore {
                table,
                path,
                reason: format!("{action} failed: {reason}"),
                source,
            },
            TableError::Corrupt { path, key, reason } => crate::Error::TableStore {
                table,
                path,
                reason: format!(
                    "the record of key {key} is unreadable ({reason}); the file is damaged or \
                     from another version of net: move it away to start this member empty"
                ),
                source: None,
            },
            TableError::Encode { key, reason } => crate::Error::TableValue {
                table,
                key,
                reason: format!("cannot be encoded as JSON: {reason}"),
            },
            TableError::Decode {
                key,
                type_name,
                reason,
            } => crate::Error::TableValue {
                table,
                key,
                reason: format!(
                    "is not a {type_name}: {reason} (do all writers use the same value type?)"
                ),
            },
            TableError::Incompatible {
                table,
                peer,
                theirs,
                mine,
            } => crate::Error::TableIncompatible {
                table,
                member: peer.to_string(),
                their_protocol: theirs.protocol,
                their_replicas: theirs.replicas,
                our_protocol: mine.protocol,
                our_replicas: mine.replicas,
            },
        }
    }
}
