//! Anti-entropy between two members: the exchange that narrows a difference down from
//! one summary to the keys that differ (`digest.rs` has the levels), and its three uses:
//! a member receiving buckets it gained (`catch_up`), handing off buckets it no longer
//! owns (`hand_off`), and the periodic comparison with a co-owner (`compare`).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use super::calls;
use super::digest::{differing, group_of, Digest};
use super::ids::{Key, MemberId};
use super::placement::Bucket;
use super::route::{ask, Failure, Replica};
use super::state::{Member, TableState, Timing};
use super::wire::{self, WireError, WireRecord};
use crate::peer::Peer;
use crate::sync::lock;

/// Buckets whose keys are compared in one `sync_keys` call.
const KEYS_CHUNK: usize = 64;

/// Records sent in one `transfer` call.
const TRANSFER_CHUNK: usize = 1000;

/// Whether the exchange takes what the other member holds newer (`Both`), or only gives
/// (`Give`: a handoff, whose buckets this member is about to drop).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Each side gets what it lacks.
    Both,
    /// Only the other side does.
    Give,
}

/// Makes this member and `with` agree on `buckets`.
pub async fn exchange(
    peer: &Peer,
    state: &TableState,
    member: &Member,
    with: &Replica,
    buckets: &[Bucket],
    direction: Direction,
    timing: Timing,
) -> Result<(), Failure> {
    let (name, to) = (state.name.clone(), with.id.to_string());
    let list: Vec<u16> = buckets.iter().map(|b| b.index()).collect();
    let t = timing.call_timeout;
    let summary = member.replicas.peek(|s| s.digests().summary(buckets));
    let call = calls::sync(name.clone(), to.clone(), list, wire::hex128(summary));
    let Some(their_groups) = ask(peer, state, with, call, t).await? else {
        return Ok(());
    };
    let theirs = their_groups
        .iter()
        .map(|(g, h)| Ok((*g, wire::parse128(h)?)))
        .collect::<Result<Vec<(u16, u128)>, WireError>>()
        .map_err(Failure::Refused)?;
    let mine = member.replicas.peek(|s| s.digests().groups(buckets));
    let groups = differing(&mine, &theirs);
    let in_groups: Vec<Bucket> = buckets
        .iter()
        .copied()
        .filter(|b| groups.contains(&group_of(*b)))
        .collect();
    let list: Vec<u16> = in_groups.iter().map(|b| b.index()).collect();
    let call = calls::sync_buckets(name.clone(), to.clone(), list);
    let theirs = ask(peer, state, with, call, t)
        .await?
        .into_iter()
        .map(|(b, hash, count)| {
            let bucket =
                Bucket::new(b).ok_or_else(|| WireError::BadRequest(format!("bucket {b}")))?;
            Ok((
                bucket,
                Digest {
                    hash: wire::parse128(&hash)?,
                    count,
                },
            ))
        })
        .collect::<Result<Vec<(Bucket, Digest)>, WireError>>()
        .map_err(Failure::Refused)?;
    let mine = member
        .replicas
        .peek(|s| s.digests().sparse(&in_groups, &groups));
    let differ = differing(&mine, &theirs);
    for chunk in differ.chunks(KEYS_CHUNK) {
        let chunk = chunk.to_vec();
        let versions = member
            .replicas
            .run(move |store| {
                chunk
                    .into_iter()
                    .map(|b| {
                        let list = store.versions(b)?;
                        Ok((
                            b.index(),
                            list.iter().map(|(k, v)| (k.clone(), v.into())).collect(),
                        ))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| Failure::Refused(WireError::Store(e.to_string())))?;
        let call = calls::sync_keys(name.clone(), to.clone(), versions);
        let answer = ask(peer, state, with, call, t).await?;
        if direction == Direction::Both && !answer.records.is_empty() {
            let records: Vec<(Key, super::record::Record)> = answer
                .records
                .into_iter()
                .filter(|(k, _)| wire::check_key(k).is_ok())
                .filter_map(|(k, r)| r.into_record().ok().map(|r| (k, r)))
                .collect();
            member
                .replicas
                .run(move |store| store.apply_all(records))
                .await
                .map_err(|e| Failure::Refused(WireError::Store(e.to_string())))?;
        }
        if !answer.lack.is_empty() {
            give(peer, state, member, with, answer.lack, timing).await?;
        }
    }
    Ok(())
}

/// Sends `with` the records of `keys`.
async fn give(
    peer: &Peer,
    state: &TableState,
    member: &Member,
    with: &Replica,
    keys: Vec<Key>,
    timing: Timing,
) -> Result<(), Failure> {
    let records = member
        .replicas
        .run(move |store| {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(record) = store.get(&key)? {
                    out.push((key, WireRecord::from_record(&record)));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Failure::Refused(WireError::Store(e.to_string())))?;
    for chunk in records.chunks(TRANSFER_CHUNK) {
        let call = calls::transfer(state.name.clone(), with.id.to_string(), chunk.to_vec());
        ask(peer, state, with, call, timing.call_timeout).await?;
    }
    Ok(())
}

/// Takes the buckets this member gained from their old owners, each owner once with all
/// the buckets it is still owed; a bucket is ready once every old owner gave it.
pub async fn catch_up(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let mut owed: BTreeMap<MemberId, Vec<Bucket>> = BTreeMap::new();
    for (bucket, from) in lock(&member.pending).iter() {
        for m in from {
            owed.entry(m.clone()).or_default().push(*bucket);
        }
    }
    let sources: Vec<(Replica, Vec<Bucket>)> = {
        let view = lock(&state.view);
        owed.into_iter()
            .filter_map(|(id, buckets)| {
                view.addr_of(&id)
                    .map(|addr| (Replica { id, addr }, buckets))
            })
            .collect()
    };
    let runs = sources.iter().map(|(source, buckets)| async move {
        let done = exchange(
            peer,
            state,
            member,
            source,
            buckets,
            Direction::Both,
            timing,
        )
        .await;
        (source, buckets, done)
    });
    for (source, buckets, done) in join_all(runs).await {
        match done {
            Ok(()) => {
                let mut pending = lock(&member.pending);
                for b in buckets {
                    if let Some(from) = pending.get_mut(b) {
                        from.remove(&source.id);
                        if from.is_empty() {
                            pending.remove(b);
                        }
                    }
                }
                if pending.is_empty() {
                    tracing::debug!(table = %state.name, "holds all of its share");
                }
            }
            Err(why) => {
                tracing::debug!(table = %state.name, from = %source.addr, %why, "catching up failed")
            }
        }
    }
}

/// Hands the buckets this member holds but no longer owns to their owners, and drops
/// each once every owner has it and nothing new arrived meanwhile.
pub async fn hand_off(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let placement = lock(&state.view).placement();
    let held: Vec<(Bucket, Digest)> = member.replicas.peek(|s| {
        Bucket::all()
            .map(|b| (b, s.digests().get(b)))
            .filter(|(b, d)| !d.is_empty() && !placement.holds(&member.id, *b))
            .collect()
    });
    if held.is_empty() || placement.members().is_empty() {
        return;
    }
    let mut to: BTreeMap<MemberId, Vec<Bucket>> = BTreeMap::new();
    for (b, _) in &held {
        for owner in placement.bucket_owners(*b) {
            to.entry(owner.clone()).or_default().push(*b);
        }
    }
    let targets: Vec<(Replica, Vec<Bucket>)> = {
        let view = lock(&state.view);
        to.into_iter()
            .filter_map(|(id, bs)| view.addr_of(&id).map(|addr| (Replica { id, addr }, bs)))
            .collect()
    };
    let runs = targets.iter().map(|(target, buckets)| async move {
        let done = exchange(
            peer,
            state,
            member,
            target,
            buckets,
            Direction::Give,
            timing,
        )
        .await;
        (buckets, done.is_ok())
    });
    let mut failed: BTreeSet<Bucket> = BTreeSet::new();
    for (buckets, ok) in join_all(runs).await {
        if !ok {
            failed.extend(buckets.iter().copied());
        }
    }
    for (bucket, before) in held {
        if failed.contains(&bucket) {
            continue;
        }
        let dropped = member
            .replicas
            .run(move |store| {
                // A record that arrived during the handoff waits for the next round.
                if store.digests().get(bucket) == before {
                    store.drop_bucket(bucket).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await;
        if let Ok(Some(n)) = dropped {
            tracing::debug!(table = %state.name, bucket = bucket.index(), records = n, "handed off");
        }
    }
}

/// Compares the buckets this member shares with `with`, both ways.
pub async fn compare(
    peer: &Peer,
    state: &TableState,
    member: &Member,
    with: &Replica,
    timing: Timing,
) {
    let shared = lock(&state.view).placement().shared(&member.id, &with.id);
    if shared.is_empty() {
        return;
    }
    if let Err(why) = exchange(peer, state, member, with, &shared, Direction::Both, timing).await {
        tracing::debug!(table = %state.name, with = %with.addr, %why, "anti-entropy failed");
    }
}
