//! The scan behind keys, values, items, len, copy and popitem: every member is asked for
//! the buckets it owns, and every bucket needs a majority of its ready owners; records
//! merge by version, tombstones drop out.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::ids::{Key, MemberId};
use super::ops::{learn, no_quorum, Answers, NOT_READY};
use super::placement::{bucket_of, Bucket};
use super::quorum::{self, majority, Op};
use super::record::Record;
use super::route::{self, Failure, Replica};
use super::state::TableState;
use super::wire;
use crate::error::Result;
use crate::peer::Peer;
use crate::sync::lock;

/// Most buckets asked of one member in one scan call.
const SCAN_CHUNK: usize = 1024;

/// Every live record of the table: each bucket from a majority of its ready owners,
/// merged by version.
pub async fn scan(peer: &Peer, state: &Arc<TableState>) -> Result<BTreeMap<Key, Record>> {
    let budget = route::budget(peer);
    route::prepare(peer, state).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (placement, members, hash) = {
            let view = lock(&state.view);
            (view.placement(), view.alive(), view.hash_hex())
        };
        let mut calls = Vec::new();
        for member in members.into_iter().map(Replica::of) {
            let owned: Vec<u16> = placement
                .buckets_of(&member.id)
                .iter()
                .map(|b| b.index())
                .collect();
            for chunk in owned.chunks(SCAN_CHUNK) {
                let (member, chunk) = (member.clone(), chunk.to_vec());
                calls.push(async move {
                    let outcome = route::scan(peer, state, &member, chunk.clone(), budget).await;
                    (member, chunk, outcome)
                });
            }
        }
        let mut answers: HashMap<u16, Answers<()>> = HashMap::new();
        let mut merged: BTreeMap<Key, Record> = BTreeMap::new();
        let mut changed = false;
        for (member, chunk, outcome) in futures_util::future::join_all(calls).await {
            match outcome {
                Ok(answer) => {
                    changed |= learn(state, None, Some(&answer.view), &hash);
                    for (key, record) in answer.records {
                        let Ok(record) = record.into_record() else {
                            continue;
                        };
                        if wire::check_key(&key).is_err()
                            || !chunk.contains(&bucket_of(&key).index())
                        {
                            continue;
                        }
                        match merged.get(&key) {
                            Some(held) if held.version >= record.version => {}
                            _ => {
                                merged.insert(key, record);
                            }
                        }
                    }
                    for b in chunk {
                        let reply = if answer.not_ready.contains(&b) {
                            Err(NOT_READY.to_owned())
                        } else {
                            Ok(())
                        };
                        answers
                            .entry(b)
                            .or_default()
                            .push((member.id.clone(), reply));
                    }
                }
                Err(failure) => {
                    if let Failure::Refused(refused) = &failure {
                        changed |= learn(state, Some(refused), None, &hash);
                    }
                    for b in chunk {
                        let reply = Err(failure.to_string());
                        answers
                            .entry(b)
                            .or_default()
                            .push((member.id.clone(), reply));
                    }
                }
            }
        }
        let short = Bucket::all().find_map(|b| {
            let owners: Vec<MemberId> = placement.bucket_owners(b).cloned().collect();
            let got = answers
                .get(&b.index())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let ok = got.iter().filter(|(_, r)| r.is_ok()).count();
            (ok < majority(owners.len()) || owners.is_empty())
                .then(|| quorum::no_quorum(Op::Scan, None, b, &owners, got))
        });
        match short {
            None => {
                merged.retain(|_, record| !record.is_tombstone());
                return Ok(merged);
            }
            Some(_) if changed && attempt == 1 => continue,
            Some(error) => return Err(no_quorum(state, error)),
        }
    }
}
