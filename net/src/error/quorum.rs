//! [`NoQuorum`]: a replicated table's read, write or scan that too few of the replicas
//! answered, with how each fared, so the message says whether the table is partitioned,
//! overloaded or has no members. It lives with the errors (the base layer) because
//! [`Error::NoQuorum`](super::Error::NoQuorum) carries it; the table decides it.

use std::fmt;
use std::net::SocketAddr;

use crate::id::TableKey;

/// What was being done when the quorum was missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumOp {
    /// A get (or the read half of a pop).
    Read,
    /// A set, an update or a pop's tombstone.
    Write,
    /// keys, values, items, len, copy or popitem: one bucket of the key space.
    Scan,
}

/// How one replica fared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuorumReply {
    /// It answered.
    Answered,
    /// It did not count: why (timed out, refused, still receiving its share, ...).
    Failed(String),
}

/// One replica of the key (or bucket) and how it fared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumReplica {
    /// The member's id in the table.
    pub member: String,
    /// Where it serves, when known.
    pub addr: Option<SocketAddr>,
    /// How it fared.
    pub reply: QuorumReply,
}

/// No majority of a key's replicas answered: the table, the key (or the bucket of a
/// scan), the replicas and how each fared. Never a silent stale answer instead.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NoQuorum {
    /// Read, write or scan.
    pub op: QuorumOp,
    /// The table's name.
    pub table: String,
    /// The key; `None` for a scan, which names its bucket.
    pub key: Option<TableKey>,
    /// The key's bucket (of 4,096).
    pub bucket: u16,
    /// Answers needed: a majority of the replicas.
    pub needed: usize,
    /// Every replica, primary first, with how it fared.
    pub replicas: Vec<QuorumReplica>,
}

impl NoQuorum {
    /// The replicas that answered.
    pub fn answered(&self) -> impl Iterator<Item = &QuorumReplica> {
        self.replicas
            .iter()
            .filter(|r| r.reply == QuorumReply::Answered)
    }
}

impl fmt::Display for NoQuorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            QuorumOp::Read => "read",
            QuorumOp::Write => "write",
            QuorumOp::Scan => "scan",
        };
        match &self.key {
            Some(key) => write!(f, "no quorum to {op} key {key}")?,
            None => write!(f, "no quorum to {op} bucket {}", self.bucket)?,
        }
        if !self.table.is_empty() {
            write!(f, " of table {:?}", self.table)?;
        }
        if self.replicas.is_empty() {
            return write!(
                f,
                ": the table has no members (no peer of this group joined it; start one with \
                 `net serve --join {}` or Table::join)",
                self.table
            );
        }
        write!(
            f,
            ": {} of {} replicas answered, {} needed (",
            self.answered().count(),
            self.replicas.len(),
            self.needed
        )?;
        for (i, replica) in self.replicas.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            match replica.addr {
                Some(addr) => write!(f, "{addr} ({})", replica.member)?,
                None => f.write_str(&replica.member)?,
            }
            match &replica.reply {
                QuorumReply::Answered => f.write_str(" answered")?,
                QuorumReply::Failed(why) => write!(f, ": {why}")?,
            }
        }
        f.write_str("); a majority of the replicas must answer: are members down or cut off?")
    }
}

impl std::error::Error for NoQuorum {}
