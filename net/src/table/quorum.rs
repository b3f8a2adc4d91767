//! Deciding a read or a write from the answers of a key's replicas: a majority or a
//! [`NoQuorum`] error that says who answered, never a silent stale answer.

use std::fmt;
use std::net::SocketAddr;

use super::ids::{Key, MemberId};
use super::placement::{bucket_of, Bucket};
use super::record::Record;
use super::version::Version;
pub use crate::error::{NoQuorum, QuorumOp as Op, QuorumReplica, QuorumReply as Reply};

/// How many of `replicas` copies make a majority.
pub fn majority(replicas: usize) -> usize {
    replicas / 2 + 1
}

/// What a replica answered to a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteAck {
    /// The record is now what the replica holds.
    Applied,
    /// The replica holds a newer version, which stays: the write is ordered before it.
    /// Counts as an acknowledgement (the replica has the write or something later), and
    /// tells the writer what it lost to.
    Superseded(Version),
}

/// A write that a majority acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The replicas that acknowledged.
    pub acked: Vec<MemberId>,
    /// The replicas that failed to answer: anti-entropy brings them up to date.
    pub missed: Vec<MemberId>,
    /// The newest version a replica held instead of the write, if any did: a writer
    /// whose clock lagged may re-issue the write above it (see the module docs).
    pub superseded_by: Option<Version>,
}

/// A read that a majority answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The newest record among the answers: the newest write a majority acknowledged is
    /// always among them, since two majorities of one replica set share a member. A
    /// tombstone means the key is absent; `None` that no answering replica has heard of it.
    pub newest: Option<Record>,
    /// Replicas that answered with something older (or nothing): read repair sends them
    /// `newest`.
    pub stale: Vec<MemberId>,
    /// Replicas that did not answer.
    pub missed: Vec<MemberId>,
}

/// Decides a write from the answers of the key's replicas (`answers` in any order, one
/// per replica; a replica without an answer counts as failed).
pub fn decide_write<E: fmt::Display>(
    key: &Key,
    replicas: &[MemberId],
    answers: &[(MemberId, Result<WriteAck, E>)],
) -> Result<Written, NoQuorum> {
    let mut acked = Vec::new();
    let mut superseded_by: Option<Version> = None;
    for member in replicas {
        if let Some(Ok(ack)) = answer_of(answers, member) {
            acked.push(member.clone());
            if let WriteAck::Superseded(held) = ack {
                superseded_by = superseded_by.max(Some(held.clone()));
            }
        }
    }
    if acked.len() < majority(replicas.len()) {
        return Err(no_quorum(
            Op::Write,
            Some(key),
            bucket_of(key),
            replicas,
            answers,
        ));
    }
    Ok(Written {
        missed: missed(replicas, &acked),
        acked,
        superseded_by,
    })
}

/// Decides a read from the answers of the key's replicas: each answer is the record the
/// replica holds, or `None`.
pub fn decide_read<E: fmt::Display>(
    key: &Key,
    replicas: &[MemberId],
    answers: &[(MemberId, Result<Option<Record>, E>)],
) -> Result<Read, NoQuorum> {
    let answered: Vec<(&MemberId, Option<&Record>)> = replicas
        .iter()
        .filter_map(|member| match answer_of(answers, member) {
            Some(Ok(held)) => Some((member, held.as_ref())),
            _ => None,
        })
        .collect();
    if answered.len() < majority(replicas.len()) {
        return Err(no_quorum(
            Op::Read,
            Some(key),
            bucket_of(key),
            replicas,
            answers,
        ));
    }
    let newest = answered
        .iter()
        .filter_map(|(_, held)| *held)
        .max_by(|a, b| a.version.cmp(&b.version))
        .cloned();
    let stale = answered
        .iter()
        .filter(|(_, held)| match (&newest, held) {
            (Some(newest), Some(held)) => held.version < newest.version,
            (Some(_), None) => true,
            (None, _) => false,
        })
        .map(|(member, _)| (*member).clone())
        .collect();
    let answered: Vec<MemberId> = answered.iter().map(|(m, _)| (*m).clone()).collect();
    Ok(Read {
        newest,
        stale,
        missed: missed(replicas, &answered),
    })
}

/// The first answer `member` gave: a replica answering twice (or a member that is not a
/// replica of the key answering at all) must not make a majority.
fn answer_of<'a, T, E>(
    answers: &'a [(MemberId, Result<T, E>)],
    member: &MemberId,
) -> Option<&'a Result<T, E>> {
    answers.iter().find(|(m, _)| m == member).map(|(_, a)| a)
}

fn missed(replicas: &[MemberId], answered: &[MemberId]) -> Vec<MemberId> {
    replicas
        .iter()
        .filter(|m| !answered.contains(m))
        .cloned()
        .collect()
}

/// Builds the [`NoQuorum`] of `op` on `key` (or, for a scan, `bucket`) from the answers
/// of its replicas; the caller adds the table's name and the replicas' addresses.
pub fn no_quorum<T, E: fmt::Display>(
    op: Op,
    key: Option<&Key>,
    bucket: Bucket,
    replicas: &[MemberId],
    answers: &[(MemberId, Result<T, E>)],
) -> NoQuorum {
    NoQuorum {
        op,
        table: String::new(),
        key: key.cloned(),
        bucket: bucket.index(),
        needed: majority(replicas.len()),
        replicas: replicas
            .iter()
            .map(|member| QuorumReplica {
                member: member.to_string(),
                addr: None,
                reply: match answer_of(answers, member) {
                    Some(Ok(_)) => Reply::Answered,
                    Some(Err(e)) => Reply::Failed(e.to_string()),
                    None => Reply::Failed("not asked".to_owned()),
                },
            })
            .collect(),
    }
}

/// Names the table and the replicas' addresses in a [`NoQuorum`] the deciders built.
pub fn locate(
    mut error: NoQuorum,
    table: &str,
    addr_of: impl Fn(&str) -> Option<SocketAddr>,
) -> NoQuorum {
    error.table = table.to_owned();
    for replica in &mut error.replicas {
        replica.addr = addr_of(&replica.member);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<MemberId> {
        names.iter().map(|n| MemberId::from(*n)).collect()
    }

    fn rec(millis: u64) -> Record {
        Record::encode(
            &Key::from("k"),
            Version {
                millis,
                counter: 0,
                writer: MemberId::from("w"),
            },
            &millis,
        )
        .expect("a number encodes")
    }

    fn ok<T>(member: &str, value: T) -> (MemberId, Result<T, String>) {
        (MemberId::from(member), Ok(value))
    }

    fn failed<T>(member: &str, why: &str) -> (MemberId, Result<T, String>) {
        (MemberId::from(member), Err(why.to_owned()))
    }

    #[test]
    fn majorities() {
        assert_eq!(
            [1, 2, 3, 4, 5].map(majority),
            [1, 2, 2, 3, 3],
            "a majority of R copies"
        );
    }

    #[test]
    fn a_write_needs_a_majority_of_acknowledgements() {
        let key = Key::from("k");
        let replicas = ids(&["a", "b", "c"]);
        let written = decide_write(
            &key,
            &replicas,
            &[
                ok("a", WriteAck::Applied),
                failed("b", "timed out"),
                ok("c", WriteAck::Applied),
            ],
        )
        .expect("two of three");
        assert_eq!(written.acked, ids(&["a", "c"]));
        assert_eq!(written.missed, ids(&["b"]));
        assert_eq!(written.superseded_by, None);

        let err = decide_write(
            &key,
            &replicas,
            &[
                ok("a", WriteAck::Applied),
                failed("b", "timed out after 2s"),
            ],
        )
        .expect_err("one of three");
        assert_eq!(err.op, Op::Write);
        assert_eq!(err.needed, 2);
        let answered: Vec<&str> = err.answered().map(|r| r.member.as_str()).collect();
        assert_eq!(answered, ["a"]);
        let err = locate(err, "users", |m| {
            (m == "a").then(|| "127.0.0.1:3011".parse().expect("an address"))
        });
        assert_eq!(
            err.to_string(),
            "no quorum to write key \"k\" of table \"users\": 1 of 3 replicas answered, 2 \
             needed (127.0.0.1:3011 (a) answered; b: timed out after 2s; c: not asked); a \
             majority of the replicas must answer: are members down or cut off?"
        );
    }

    #[test]
    fn a_superseded_write_is_acknowledged_and_says_by_what() {
        let key = Key::from("k");
        let newer = rec(9).version;
        let written = decide_write(
            &key,
            &ids(&["a", "b", "c"]),
            &[
                ok("a", WriteAck::Superseded(rec(5).version)),
                ok("b", WriteAck::Superseded(newer.clone())),
                ok("c", WriteAck::Applied),
            ],
        )
        .expect("all three answered");
        assert_eq!(written.superseded_by, Some(newer));
    }

    #[test]
    fn duplicate_or_foreign_answers_make_no_majority() {
        let key = Key::from("k");
        let replicas = ids(&["a", "b", "c"]);
        let answers = [
            ok("a", WriteAck::Applied),
            ok("a", WriteAck::Applied),
            ok("z", WriteAck::Applied),
        ];
        assert!(decide_write(&key, &replicas, &answers).is_err());
        let reads = [ok("a", Some(rec(1))), ok("a", Some(rec(1))), ok("z", None)];
        assert!(decide_read(&key, &replicas, &reads).is_err());
    }

    #[test]
    fn a_read_returns_the_majoritys_newest_and_the_stale_replicas() {
        let key = Key::from("k");
        let replicas = ids(&["a", "b", "c"]);
        let read = decide_read(
            &key,
            &replicas,
            &[ok("a", Some(rec(1))), ok("b", Some(rec(7))), ok("c", None)],
        )
        .expect("all answered");
        assert_eq!(read.newest, Some(rec(7)));
        assert_eq!(read.stale, ids(&["a", "c"]));
        assert!(read.missed.is_empty());

        // The newest may be held by one replica only: a write acknowledged by a and b,
        // with b down now, is still seen through a.
        let read = decide_read(
            &key,
            &replicas,
            &[
                ok("a", Some(rec(7))),
                failed("b", "refused"),
                ok("c", Some(rec(3))),
            ],
        )
        .expect("two of three");
        assert_eq!(read.newest, Some(rec(7)));
        assert_eq!((read.stale, read.missed), (ids(&["c"]), ids(&["b"])));
    }

    #[test]
    fn a_tombstone_is_the_newest_answer_and_repairs_too() {
        let key = Key::from("k");
        let tomb = Record::tombstone(rec(8).version);
        let read = decide_read(
            &key,
            &ids(&["a", "b", "c"]),
            &[
                ok("a", Some(tomb.clone())),
                ok("b", Some(rec(4))),
                ok("c", Some(tomb.clone())),
            ],
        )
        .expect("all answered");
        assert_eq!(read.newest, Some(tomb));
        assert_eq!(read.stale, ids(&["b"]));
    }

    #[test]
    fn a_key_nobody_has_reads_as_absent_with_nothing_to_repair() {
        let key = Key::from("k");
        let read = decide_read::<String>(
            &key,
            &ids(&["a", "b", "c"]),
            &[ok("a", None), ok("c", None)],
        )
        .expect("two of three");
        assert_eq!(read.newest, None);
        assert!(read.stale.is_empty());
    }

    #[test]
    fn no_quorum_on_a_read_names_everyone() {
        let key = Key::from(&[0xff, 0xfe]);
        let err = decide_read(
            &key,
            &ids(&["a", "b", "c"]),
            &[
                ok("a", None),
                failed("b", "connection refused"),
                failed("c", "timed out"),
            ],
        )
        .expect_err("one of three");
        assert!(
            err.to_string().starts_with(
                "no quorum to read key 0xfffe: 1 of 3 replicas answered, 2 needed (a \
                 answered; b: connection refused; c: timed out)"
            ),
            "{err}"
        );
        let none = decide_read::<String>(&key, &[], &[]).expect_err("no members");
        assert!(
            none.to_string().contains("the table has no members"),
            "{none}"
        );
    }
}
