//! The serving side of the table's calls: what a member does when asked, after checking
//! that it is the member asked for and that what arrived is well-formed.

use std::sync::Arc;

use super::digest::{self, Digest};
use super::error::TableError;
use super::ids::Key;
use super::placement::{bucket_of, Bucket, BUCKETS};
use super::record::Record;
use super::state::{Member, TableState};
use super::terms::Terms;
use super::version::Version;
use super::wire::{
    self, Ack, Found, GetAnswer, MembersAnswer, PutAnswer, ScanAnswer, SyncKeysAnswer, WireError,
    WireMember, WireRecord, WireVersion,
};
use crate::peer::Peer;
use crate::serve::Caller;
use crate::sync::lock;

/// Most records one `put` or `transfer` may carry, and most keys one `sync_keys`: a bound
/// on the work one call can cause.
const MAX_BATCH: usize = 100_000;

/// The peer serving a call; a call with none (a local call without a process-wide peer)
/// is answered as a non-member would.
pub(crate) fn serving(caller: &Caller) -> Result<Peer, WireError> {
    caller.server().ok_or(WireError::NotMember)
}

/// The table and member state of `table` on `peer`, if it is a member, and the member
/// `to` when one is named.
fn member_of(
    peer: &Peer,
    table: &str,
    to: Option<&str>,
) -> Result<(Arc<TableState>, Arc<Member>), WireError> {
    let state = peer.tables().get(table).ok_or(WireError::NotMember)?;
    let member = state.member().ok_or(WireError::NotMember)?;
    match to {
        Some(to) if to != member.id.as_str() => Err(WireError::NotMember),
        _ => Ok((state, member)),
    }
}

/// The member that an exchange (`sync.rs`: anti-entropy, catching up, a handoff) asks
/// to take records: refused while it unjoins. A member that gets buckets handed to it
/// by a leaver still lists the leaver as their owner until the leaver's last gossip
/// arrives; if its own handoff loop ran in between, it would give them straight back to
/// the leaver (who has them, so the exchange succeeds at once) and drop them, and the
/// leaver would take them away when it exits (seen under load: the new owner held
/// nothing right after a clean leave). Refused, the exchange fails and the bucket stays.
fn syncing(
    peer: &Peer,
    table: &str,
    to: &str,
) -> Result<(Arc<TableState>, Arc<Member>), WireError> {
    let (state, member) = member_of(peer, table, Some(to))?;
    if member.leaving.load(std::sync::atomic::Ordering::Acquire) {
        return Err(WireError::NotMember);
    }
    Ok((state, member))
}

/// Refuses other terms, loudly on this side too.
fn check_terms(state: &TableState, from: &str, terms: Terms) -> Result<(), WireError> {
    let from = super::ids::MemberId::from(from);
    state
        .terms
        .check(&state.name, &from, terms)
        .map_err(|refused| {
            tracing::error!(table = %state.name, "refused: {refused}");
            WireError::Incompatible { terms: state.terms }
        })
}

/// The refusal of a member that does not hold `bucket` in its view, with the view.
fn owned(state: &TableState, member: &Member, bucket: Bucket) -> Result<(), WireError> {
    let view = lock(&state.view);
    if view.placement().holds(&member.id, bucket) {
        Ok(())
    } else {
        Err(WireError::NotOwner {
            members: view.to_wire(),
        })
    }
}

fn store_err(e: TableError) -> WireError {
    tracing::error!(error = %e, "table store");
    WireError::Store(e.to_string())
}

fn bucket(n: u16) -> Result<Bucket, WireError> {
    Bucket::new(n)
        .ok_or_else(|| WireError::BadRequest(format!("bucket {n} (there are {BUCKETS}, from 0)")))
}

fn buckets(list: &[u16]) -> Result<Vec<Bucket>, WireError> {
    if list.len() > BUCKETS as usize {
        return Err(WireError::BadRequest(format!("{} buckets", list.len())));
    }
    let mut out: Vec<Bucket> = list.iter().map(|&n| bucket(n)).collect::<Result<_, _>>()?;
    // The digest steps walk buckets in order, as placement lists them.
    out.sort();
    out.dedup();
    Ok(out)
}

fn records(
    state: &TableState,
    list: Vec<(Key, WireRecord)>,
) -> Result<Vec<(Key, Record)>, WireError> {
    if list.len() > MAX_BATCH {
        return Err(WireError::BadRequest(format!("{} records", list.len())));
    }
    list.into_iter()
        .map(|(key, record)| {
            wire::check_key(&key)?;
            let record = record.into_record()?;
            // A version from a broken clock is still ordered by, only not adopted.
            let _ = state.clock.observe(&record.version);
            Ok((key, record))
        })
        .collect()
}

pub(crate) fn hello(
    peer: &Peer,
    table: &str,
    joining: WireMember,
    terms: Terms,
) -> Result<Vec<WireMember>, WireError> {
    let (state, _) = member_of(peer, table, None)?;
    check_terms(&state, &joining.addr.to_string(), terms)?;
    let id = joining.member_id()?;
    if state.update_view(|view| view.merge_wire(std::slice::from_ref(&joining))) {
        tracing::info!(table, member = %id, addr = %joining.addr, "member joined the table");
    }
    state.health.ok(&id);
    let view = lock(&state.view).to_wire();
    Ok(view)
}

pub(crate) fn members(
    peer: &Peer,
    table: &str,
    asker: Option<String>,
) -> Result<MembersAnswer, WireError> {
    let (state, _) = member_of(peer, table, None)?;
    let view = lock(&state.view);
    let hash = view.hash_hex().to_string();
    Ok(MembersAnswer {
        terms: state.terms,
        members: (asker.as_deref() != Some(hash.as_str())).then(|| view.to_wire()),
        view: hash,
    })
}

pub(crate) fn gossip(
    peer: &Peer,
    table: &str,
    terms: Terms,
    members: Vec<WireMember>,
) -> Result<String, WireError> {
    let (state, _) = member_of(peer, table, None)?;
    check_terms(&state, "gossip", terms)?;
    wire::check_members(&members)?;
    state.update_view(|view| view.merge_wire(&members));
    let hash = lock(&state.view).hash_hex().to_string();
    Ok(hash)
}

pub(crate) async fn get(
    peer: &Peer,
    table: &str,
    to: &str,
    keys: Vec<Key>,
) -> Result<GetAnswer, WireError> {
    let (state, member) = member_of(peer, table, Some(to))?;
    if keys.len() > MAX_BATCH {
        return Err(WireError::BadRequest(format!("{} keys", keys.len())));
    }
    keys.iter().try_for_each(wire::check_key)?;
    let (owned, members) = owned_keys(&state, &member, &keys);
    let ready: Vec<bool> = keys.iter().map(|k| member.ready(bucket_of(k))).collect();
    let held = member
        .replicas
        .run(move |store| {
            keys.iter()
                .zip(&owned)
                .map(|(key, &owned)| owned.then(|| store.get(key)).transpose())
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(store_err)?;
    let found = held
        .into_iter()
        .zip(ready)
        .map(|(held, ready)| {
            held.map(|record| Found {
                record: record.as_ref().map(WireRecord::from_record),
                ready,
            })
        })
        .collect();
    let view = lock(&state.view).hash_hex().to_string();
    Ok(GetAnswer {
        found,
        view,
        members,
    })
}

/// Which of `keys` the member holds in its view, and its view if some are not.
fn owned_keys(
    state: &TableState,
    member: &Member,
    keys: &[Key],
) -> (Vec<bool>, Option<Vec<WireMember>>) {
    let view = lock(&state.view);
    let placement = view.placement();
    let owned: Vec<bool> = keys
        .iter()
        .map(|k| placement.holds(&member.id, bucket_of(k)))
        .collect();
    let members = owned.contains(&false).then(|| view.to_wire());
    (owned, members)
}

pub(crate) async fn put(
    peer: &Peer,
    table: &str,
    to: &str,
    list: Vec<(Key, WireRecord)>,
) -> Result<PutAnswer, WireError> {
    let (state, member) = member_of(peer, table, Some(to))?;
    let list = records(&state, list)?;
    let keys: Vec<Key> = list.iter().map(|(k, _)| k.clone()).collect();
    let (owned, members) = owned_keys(&state, &member, &keys);
    let acks = member
        .replicas
        .run(move |store| {
            let mut acks = Vec::with_capacity(list.len());
            let mut newer = Vec::new();
            for ((key, record), owned) in list.into_iter().zip(owned) {
                if !owned {
                    acks.push(Ack::NotOwner);
                    continue;
                }
                match store.get(&key)? {
                    // The same write again (a retry) is simply there.
                    Some(held) if held.version > record.version => {
                        acks.push(Ack::Superseded(WireVersion::from(&held.version)))
                    }
                    _ => {
                        acks.push(Ack::Applied);
                        newer.push((key, record));
                    }
                }
            }
            store.apply_all(newer)?;
            Ok(acks)
        })
        .await
        .map_err(store_err)?;
    let view = lock(&state.view).hash_hex().to_string();
    Ok(PutAnswer {
        acks,
        view,
        members,
    })
}

pub(crate) async fn scan(
    peer: &Peer,
    table: &str,
    to: &str,
    list: Vec<u16>,
) -> Result<ScanAnswer, WireError> {
    let (state, member) = member_of(peer, table, Some(to))?;
    let asked = buckets(&list)?;
    for &b in &asked {
        owned(&state, &member, b)?;
    }
    let not_ready = asked
        .iter()
        .filter(|&&b| !member.ready(b))
        .map(|b| b.index())
        .collect();
    let held = member
        .replicas
        .run(move |store| {
            let mut all = Vec::new();
            for b in asked {
                all.extend(store.bucket(b)?);
            }
            Ok(all)
        })
        .await
        .map_err(store_err)?;
    let view = lock(&state.view).hash_hex().to_string();
    Ok(ScanAnswer {
        records: held
            .iter()
            .map(|(key, record)| (key.clone(), WireRecord::from_record(record)))
            .collect(),
        not_ready,
        view,
    })
}

pub(crate) fn sync(
    peer: &Peer,
    table: &str,
    to: &str,
    list: Vec<u16>,
    summary: String,
) -> Result<Option<Vec<(u16, String)>>, WireError> {
    let (_, member) = syncing(peer, table, to)?;
    let asked = buckets(&list)?;
    let theirs = wire::parse128(&summary)?;
    Ok(member.replicas.peek(|store| {
        let digests = store.digests();
        (digests.summary(&asked) != theirs).then(|| {
            digests
                .groups(&asked)
                .into_iter()
                .map(|(group, hash)| (group, wire::hex128(hash)))
                .collect()
        })
    }))
}

pub(crate) fn sync_buckets(
    peer: &Peer,
    table: &str,
    to: &str,
    list: Vec<u16>,
) -> Result<Vec<(u16, String, u32)>, WireError> {
    let (_, member) = syncing(peer, table, to)?;
    let asked = buckets(&list)?;
    Ok(member.replicas.peek(|store| {
        asked
            .iter()
            .map(|&b| (b, store.digests().get(b)))
            .filter(|(_, d)| !d.is_empty())
            .map(|(b, d): (Bucket, Digest)| (b.index(), wire::hex128(d.hash), d.count))
            .collect()
    }))
}

pub(crate) async fn sync_keys(
    peer: &Peer,
    table: &str,
    to: &str,
    lists: Vec<(u16, Vec<(Key, WireVersion)>)>,
) -> Result<SyncKeysAnswer, WireError> {
    let (_, member) = syncing(peer, table, to)?;
    if lists.len() > BUCKETS as usize
        || lists.iter().map(|(_, l)| l.len()).sum::<usize>() > MAX_BATCH
    {
        return Err(WireError::BadRequest(
            "too many keys in one sync_keys".into(),
        ));
    }
    let mut theirs: Vec<(Bucket, Vec<(Key, Version)>)> = Vec::with_capacity(lists.len());
    for (n, list) in lists {
        let mut versions = list
            .into_iter()
            .map(|(key, v)| {
                wire::check_key(&key)?;
                Ok((key, v.into_version()?))
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        // reconcile walks both lists in key order.
        versions.sort_by(|a, b| a.0.cmp(&b.0));
        theirs.push((bucket(n)?, versions));
    }
    member
        .replicas
        .run(move |store| {
            let mut answer = SyncKeysAnswer::default();
            for (b, theirs) in theirs {
                let reconciled = digest::reconcile(&store.versions(b)?, &theirs);
                for key in reconciled.they_lack {
                    if let Some(record) = store.get(&key)? {
                        answer.records.push((key, WireRecord::from_record(&record)));
                    }
                }
                answer.lack.extend(reconciled.i_lack);
            }
            Ok(answer)
        })
        .await
        .map_err(store_err)
}

pub(crate) async fn transfer(
    peer: &Peer,
    table: &str,
    to: &str,
    list: Vec<(Key, WireRecord)>,
) -> Result<usize, WireError> {
    let (state, member) = syncing(peer, table, to)?;
    let list = records(&state, list)?;
    member
        .replicas
        .run(move |store| store.apply_all(list))
        .await
        .map_err(store_err)
}
