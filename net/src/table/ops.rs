//! The table's operations on one key: a read (ask every owner of the key, decide at a
//! majority of those that hold the key's whole bucket, repair the stale ones) and a
//! write (put on every owner, decide at a majority of acknowledgements; the others
//! finish in the background). When a replica answers from another view (the members
//! changed), the peer merges it and tries once more with the owners it now knows.
//! `scan.rs` has the operation on every key.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::ids::{Key, MemberId};
use super::lanes::Got;
use super::quorum::{self, decide_read, decide_write, majority, WriteAck};
use super::record::Record;
use super::route::{self, Failure, Replica};
use super::state::TableState;
use super::version::Version;
use super::wire::{WireError, WireRecord};
use crate::error::{Error, NoQuorum, Result};
use crate::peer::Peer;
use crate::sync::lock;

/// How each replica answered for one key or bucket: its record, or why it does not count.
pub(super) type Answers<T> = Vec<(MemberId, std::result::Result<T, String>)>;

/// Why an answer from a replica still receiving its bucket does not count.
pub(super) const NOT_READY: &str = "still receiving its share of the table";

/// The owners of `key` as this peer knows them, and its view's hash.
fn owners(state: &TableState, key: &Key) -> (Vec<Replica>, Arc<str>) {
    let view = lock(&state.view);
    let owners = view.owners(key).into_iter().map(Replica::of).collect();
    (owners, view.hash_hex())
}

/// Notes what answers said about the view: a `NotOwner` brings the member's view, which
/// is merged; another hash marks this peer's view stale. Returns whether it changed.
pub(super) fn learn(
    state: &TableState,
    refused: Option<&WireError>,
    their_view: Option<&str>,
    mine: &str,
) -> bool {
    if let Some(WireError::NotOwner { members }) = refused {
        state.stale.store(true, Ordering::Relaxed);
        return state.update_view(|view| view.merge_wire(members));
    }
    if their_view.is_some_and(|theirs| theirs != mine) {
        state.stale.store(true, Ordering::Relaxed);
    }
    false
}

/// Names the table and addresses in a quorum failure and makes it a `net::Error`.
pub(super) fn no_quorum(state: &TableState, error: NoQuorum) -> Error {
    let view = lock(&state.view);
    let error = quorum::locate(error, &state.name, |member| {
        view.addr_of(&MemberId::from(member))
    });
    Error::NoQuorum(Box::new(error))
}

/// The replicas' answers to one read still on their way.
type Asked = FuturesUnordered<
    Pin<Box<dyn Future<Output = (Replica, std::result::Result<Got, Failure>)> + Send>>,
>;

/// One replica's answer to a read, sorted out.
enum Heard {
    /// It holds the key's whole bucket: its answer counts.
    Ready(Option<Record>),
    /// It is still receiving the bucket: its record is a candidate, its answer no vote.
    Catching(Option<Record>),
    /// It did not answer, or not usably.
    Failed(String),
}

/// Sorts one outcome out, noting what it says about the view.
fn hear(
    state: &TableState,
    hash: &str,
    outcome: std::result::Result<Got, Failure>,
) -> (Heard, bool) {
    match outcome {
        Ok(answer) => {
            let changed = learn(state, None, Some(&answer.view), hash);
            let ready = answer.found.ready;
            match answer.found.record.map(WireRecord::into_record).transpose() {
                Ok(record) if ready => (Heard::Ready(record), changed),
                Ok(record) => (Heard::Catching(record), changed),
                Err(bad) => (Heard::Failed(bad.to_string()), changed),
            }
        }
        Err(failure) => {
            let changed = match &failure {
                Failure::Refused(refused) => learn(state, Some(refused), None, hash),
                Failure::Call(_) | Failure::Busy(_) => false,
            };
            (Heard::Failed(failure.to_string()), changed)
        }
    }
}

/// Reads `key`: the newest record a majority of its ready replicas knows (a tombstone
/// for a popped key), `None` if none has heard of it. Replicas found holding something
/// older are sent the newest (read repair), those that answer after the decision too.
pub async fn read(peer: &Peer, state: &Arc<TableState>, key: &Key) -> Result<Option<Record>> {
    let budget = route::budget(peer);
    route::prepare(peer, state).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (replicas, hash) = owners(state, key);
        let needed = majority(replicas.len());
        // Alone, every replica is asked: the read is decided at the first majority of
        // ready answers, and the later ones still get repaired. Under load (every lane
        // has a call out already), a majority is asked, a rotating one so that the
        // replicas share the work, and one more replica for each that fails or is still
        // receiving the bucket: a third fewer replica reads per operation, and waiting
        // for the slower of two costs little when calls queue anyway. Replicas not asked
        // are kept up by anti-entropy.
        let mut spare = asked_later(state, &replicas, needed);
        let ask = |r: &Replica| {
            let (peer, state, key, r) = (peer.clone(), state.clone(), key.clone(), r.clone());
            let get = async move {
                let outcome = route::get(&peer, &state, &r, &key, budget).await;
                (r, outcome)
            };
            Box::pin(get) as Pin<Box<dyn Future<Output = _> + Send>>
        };
        let mut asked: Asked = replicas
            .iter()
            .filter(|r| !spare.contains(r))
            .map(ask)
            .collect();
        let mut answers: Answers<Option<Record>> = Vec::new();
        let mut held: Vec<(Replica, Option<Record>)> = Vec::new();
        let (mut ready, mut changed) = (0, false);
        let deadline = tokio::time::sleep(budget);
        tokio::pin!(deadline);
        loop {
            let (replica, outcome) = tokio::select! {
                next = asked.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                () = &mut deadline => {
                    late(&mut answers, &replicas, budget);
                    break;
                }
            };
            let (heard, view_changed) = hear(state, &hash, outcome);
            changed |= view_changed;
            let id = replica.id.clone();
            match heard {
                Heard::Ready(record) => {
                    ready += 1;
                    answers.push((id, Ok(record.clone())));
                    held.push((replica, record));
                }
                Heard::Catching(record) => {
                    answers.push((id, Err(NOT_READY.to_owned())));
                    held.push((replica, record));
                    asked.extend(spare.pop().as_ref().map(ask));
                }
                Heard::Failed(why) => {
                    answers.push((id, Err(why)));
                    asked.extend(spare.pop().as_ref().map(ask));
                }
            }
            if ready >= needed {
                break;
            }
        }
        match decide_read(key, &ids(&replicas), &answers) {
            Ok(_) => {
                let newest = held
                    .iter()
                    .filter_map(|(_, r)| r.clone())
                    .max_by(|a, b| a.version.cmp(&b.version));
                if let Some(newest) = &newest {
                    repair(peer, state, key, newest, held, asked, hash);
                }
                return Ok(newest);
            }
            Err(_) if changed && attempt == 1 => continue,
            Err(error) => return Err(no_quorum(state, error)),
        }
    }
}

/// The replicas a read asks only if one of the others fails: none when a lane to some
/// replica is idle (the read then costs no more latency than the fastest majority),
/// else all but a majority, rotating with the read count.
fn asked_later(state: &TableState, replicas: &[Replica], needed: usize) -> Vec<Replica> {
    if replicas.len() <= needed || !replicas.iter().all(|r| super::lanes::reading(state, r)) {
        return Vec::new();
    }
    let start = state.reads.fetch_add(1, Ordering::Relaxed) % replicas.len();
    (0..replicas.len() - needed)
        .map(|i| replicas[(start + needed + i) % replicas.len()].clone())
        .collect()
}

/// Sends `newest` to the replicas that answered with something older, and to those
/// still to answer that turn out to (read repair), in the background.
fn repair(
    peer: &Peer,
    state: &Arc<TableState>,
    key: &Key,
    newest: &Record,
    held: Vec<(Replica, Option<Record>)>,
    mut rest: Asked,
    hash: Arc<str>,
) {
    let older =
        |record: &Option<Record>| record.as_ref().is_none_or(|r| r.version < newest.version);
    let stale: Vec<Replica> = held
        .into_iter()
        .filter(|(_, record)| older(record))
        .map(|(replica, _)| replica)
        .collect();
    if stale.is_empty() && rest.is_empty() {
        return;
    }
    let (peer2, state, key) = (peer.clone(), state.clone(), key.clone());
    let (record, version) = (WireRecord::from_record(newest), newest.version.clone());
    let timeout = route::budget(peer);
    let work = async move {
        let mut stale = stale;
        while let Some((replica, outcome)) = rest.next().await {
            let (heard, _) = hear(&state, &hash, outcome);
            if let Heard::Ready(r) | Heard::Catching(r) = heard {
                if r.is_none_or(|r| r.version < version) {
                    stale.push(replica);
                }
            }
        }
        for replica in stale {
            if route::put(&peer2, &state, &replica, &key, record.clone(), timeout)
                .await
                .is_ok()
            {
                tracing::debug!(table = %state.name, key = %key, replica = %replica.id, "read repair");
            }
        }
    };
    peer.tracker().spawn_on(work, peer.runtime());
}

/// Records "no answer in time" for every replica that has not answered.
fn late<T>(answers: &mut Answers<T>, replicas: &[Replica], budget: std::time::Duration) {
    for replica in replicas {
        if !answers.iter().any(|(id, _)| *id == replica.id) {
            answers.push((
                replica.id.clone(),
                Err(format!("no answer within {budget:?}")),
            ));
        }
    }
}

fn ids(replicas: &[Replica]) -> Vec<MemberId> {
    replicas.iter().map(|r| r.id.clone()).collect()
}

/// What a write that a majority acknowledged learned.
pub struct Written {
    /// The newest version a replica held instead of the write, if any.
    pub superseded_by: Option<Version>,
}

/// Writes `record` for `key` on its replicas: done at a majority of acknowledgements.
pub async fn write(
    peer: &Peer,
    state: &Arc<TableState>,
    key: &Key,
    record: &Record,
) -> Result<Written> {
    let budget = route::budget(peer);
    route::prepare(peer, state).await?;
    let wire = WireRecord::from_record(record);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (replicas, hash) = owners(state, key);
        let needed = majority(replicas.len());
        let mut puts: FuturesUnordered<_> = replicas
            .iter()
            .map(|replica| {
                let (peer, state, replica) = (peer.clone(), state.clone(), replica.clone());
                let (key, wire) = (key.clone(), wire.clone());
                async move {
                    let outcome = route::put(&peer, &state, &replica, &key, wire, budget).await;
                    (replica.id, outcome)
                }
            })
            .collect();
        let mut answers: Answers<WriteAck> = Vec::new();
        let (mut acked, mut changed) = (0, false);
        let deadline = tokio::time::sleep(budget);
        tokio::pin!(deadline);
        loop {
            let (id, outcome) = tokio::select! {
                next = puts.next() => match next {
                    Some(next) => next,
                    None => break,
                },
                () = &mut deadline => {
                    late(&mut answers, &replicas, budget);
                    break;
                }
            };
            let ack = match outcome {
                Ok(answer) => {
                    changed |= learn(state, None, Some(&answer.view), &hash);
                    match answer.superseded {
                        None => Ok(WriteAck::Applied),
                        Some(held) => held
                            .into_version()
                            .map(WriteAck::Superseded)
                            .map_err(|e| e.to_string()),
                    }
                }
                Err(failure) => {
                    if let Failure::Refused(refused) = &failure {
                        changed |= learn(state, Some(refused), None, &hash);
                    }
                    Err(failure.to_string())
                }
            };
            acked += usize::from(ack.is_ok());
            answers.push((id, ack));
            if acked >= needed {
                break;
            }
        }
        // The puts still under way finish in the background: every replica that can be
        // reached gets the write, never cancelled by the writer moving on.
        if !puts.is_empty() {
            let rest = async move { while puts.next().await.is_some() {} };
            peer.tracker().spawn_on(rest, peer.runtime());
        }
        match decide_write(key, &ids(&replicas), &answers) {
            Ok(written) => {
                return Ok(Written {
                    superseded_by: written.superseded_by,
                })
            }
            Err(_) if changed && attempt == 1 => continue,
            Err(error) => return Err(no_quorum(state, error)),
        }
    }
}
