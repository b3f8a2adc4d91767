//! Joining and leaving a table: opening the member's store (with its id and the members
//! it last knew), announcing it to the group, receiving its share; and on unjoin,
//! handing every bucket to the members that own it without this one before leaving.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::join_all;

use super::calls;
use super::ids::{random_bits, MemberId};
use super::placement::{Bucket, Placement};
use super::quorum::majority;
use super::record::TOMBSTONE_GRACE;
use super::route::{ask, Replica};
use super::state::{Member, TableState};
use super::store::Store;
use super::sync::{self, Direction};
use super::version::system_millis;
use super::view::View;
use super::wire::{WireError, WireMember};
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::sync::lock;

/// Becomes a member of `state`'s table.
pub async fn join(peer: &Peer, state: &Arc<TableState>) -> Result<()> {
    let _one = state.joining.lock().await;
    if state.member().is_some() {
        return Ok(());
    }
    if peer.config().client {
        return Err(Error::Usage(format!(
            "a client peer (Config::client) cannot join table {:?}: other peers cannot call \
             it to store replicas; start it as an ordinary peer",
            state.name
        )));
    }
    let (store, id, saved) = open(peer, state).await?;
    let member = Arc::new(Member::new(id, peer.id().addr(), store, system_millis()));
    state.set_member(Some(member.clone()));
    state.update_view(|view| {
        let mine = view.merge(member.id.clone(), member.entry());
        // The members it last knew: it looks for them, and while they are unreachable it
        // cannot gather a majority alone (no table of its own after a restart).
        let theirs: Vec<WireMember> = saved
            .into_iter()
            .filter(|m| m.id != member.id.as_str())
            .collect();
        view.merge_wire(&theirs) || mine
    });
    if let Err(error) = announce(peer, state, &member, true).await {
        member.stop.cancel();
        state.set_member(None);
        return Err(error);
    }
    {
        let view = lock(&state.view);
        member.follow(&view, &view.placement_without(&member.id));
    }
    let timing = *lock(&peer.tables().timing);
    sync::catch_up(peer, state, &member, timing).await;
    peer.tracker().spawn_on(
        super::tick::run(peer.clone(), state.clone(), member.clone()),
        peer.runtime(),
    );
    let (members, owed) = (lock(&state.view).alive_count(), lock(&member.pending).len());
    tracing::info!(
        table = %state.name, member = %member.id, members, buckets_owed = owed, "joined the table"
    );
    Ok(())
}

/// Opens the member's store: on disk in NET_TABLE_DIR with its kept id and view, or in
/// memory under a fresh id. A store whose member was away longer than tombstones are
/// kept starts empty: a value it holds may have been popped meanwhile.
async fn open(peer: &Peer, state: &TableState) -> Result<(Store, MemberId, Vec<WireMember>)> {
    let Some(dir) = peer.config().table_dir.clone() else {
        return Ok((Store::memory(), MemberId::random(), Vec::new()));
    };
    let path = Store::file_in(&dir, &state.name);
    let opened = crate::serve::blocking(move || -> std::result::Result<_, super::error::TableError> {
        let mut store = Store::open(&path)?;
        let id = match store.member_id()? {
            Some(id) => id,
            None => {
                let id = random_bits();
                store.set_member_id(id)?;
                id
            }
        };
        let now = system_millis();
        if store.away_for(now).is_some_and(|away| away > TOMBSTONE_GRACE) {
            let cleared = store.clear()?;
            tracing::warn!(path = %path.display(), cleared, "away longer than tombstones are kept: starting empty");
        }
        store.mark_alive(now)?;
        let saved = store.saved_view()?;
        Ok((store, id, saved))
    })
    .await
    .map_err(|panic| Error::io_text("opening the table store", panic))?;
    let (store, id, saved) = opened.map_err(|e| e.into_error(&state.name))?;
    let saved = saved
        .and_then(|bytes| serde_json::from_slice::<Vec<WireMember>>(&bytes).ok())
        .filter(|list| View::parse(list).is_ok())
        .unwrap_or_default();
    Ok((store, MemberId::from_bits(id), saved))
}

/// Says hello to the group's peers and to every member the answers name, merging their
/// views. With `strict`, a member with other terms fails the join.
pub async fn announce(
    peer: &Peer,
    state: &TableState,
    member: &Member,
    strict: bool,
) -> Result<()> {
    let timeout = *lock(&peer.tables().timing);
    let timeout = timeout.call_timeout;
    let mut targets: Vec<SocketAddr> = super::route::group_peers(peer, false).await;
    let mut asked: BTreeSet<SocketAddr> = BTreeSet::from([member.addr]);
    let me = WireMember {
        id: member.id.to_string(),
        addr: member.addr,
        inc: member.incarnation(),
        alive: true,
    };
    let mut incompatible = None;
    // Twice: the answers of the first round name members discovery did not find.
    for _ in 0..2 {
        targets.extend(lock(&state.view).alive().into_iter().map(|(_, addr)| addr));
        targets.retain(|addr| asked.insert(*addr));
        let hellos = targets.drain(..).map(|addr| {
            let call = calls::hello(state.name.clone(), me.clone(), state.terms);
            async move { (addr, call.on(addr).via(peer).timeout(timeout).await) }
        });
        for (addr, answer) in join_all(hellos).await {
            match answer {
                Ok(Ok(members)) => {
                    state.update_view(|view| view.merge_wire(&members));
                }
                Ok(Err(WireError::Incompatible { terms })) => {
                    incompatible = Some(Error::TableIncompatible {
                        table: state.name.clone(),
                        member: addr.to_string(),
                        their_protocol: terms.protocol,
                        their_replicas: terms.replicas,
                        our_protocol: state.terms.protocol,
                        our_replicas: state.terms.replicas,
                    });
                }
                _ => {}
            }
        }
    }
    match incompatible {
        Some(error) if strict => Err(error),
        Some(error) => {
            tracing::error!(table = %state.name, "{error}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// Sends this member's view to every alive member (a death found, a departure), at once.
pub async fn spread(peer: &Peer, state: &TableState) {
    let timeout = lock(&peer.tables().timing).call_timeout;
    let (members, others): (Vec<WireMember>, Vec<Replica>) = {
        let view = lock(&state.view);
        let me = state.member().map(|m| m.id.clone());
        let others = view
            .alive()
            .into_iter()
            .filter(|(id, _)| Some(id) != me.as_ref())
            .map(Replica::of)
            .collect();
        (view.to_wire(), others)
    };
    let sends = others.iter().map(|to| {
        let call = calls::gossip(state.name.clone(), state.terms, members.clone());
        ask(peer, state, to, call, timeout)
    });
    join_all(sends).await;
}

/// Stops being a member, after handing every bucket held to its owners without it.
pub async fn unjoin(peer: &Peer, state: &Arc<TableState>) -> Result<()> {
    let _one = state.joining.lock().await;
    let Some(member) = state.member() else {
        return Ok(());
    };
    member
        .leaving
        .store(true, std::sync::atomic::Ordering::Release);
    let timing = *lock(&peer.tables().timing);
    let without = lock(&state.view).placement_without(&member.id);
    let held: Vec<Bucket> = member.replicas.peek(|s| {
        Bucket::all()
            .filter(|&b| !s.digests().get(b).is_empty())
            .collect()
    });
    if without.members().is_empty() {
        if !held.is_empty() {
            tracing::warn!(
                table = %state.name,
                buckets = held.len(),
                "the last member leaves: its replicas stay only in NET_TABLE_DIR, if set"
            );
        }
    } else if let Err(e) = hand_over(peer, state, &member, &without, &held, timing).await {
        // It stays a member, and takes buckets again.
        member
            .leaving
            .store(false, std::sync::atomic::Ordering::Release);
        return Err(e);
    }
    member.stop.cancel();
    state.set_member(None);
    state.update_view(|view| view.mark_dead(&member.id));
    spread(peer, state).await;
    state
        .stale
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(table = %state.name, member = %member.id, "left the table");
    Ok(())
}

/// Gives every bucket in `held` to its owners in `without`; each bucket must reach a
/// majority of them, or unjoin fails naming the first that could not be reached.
async fn hand_over(
    peer: &Peer,
    state: &TableState,
    member: &Member,
    without: &Placement,
    held: &[Bucket],
    timing: super::state::Timing,
) -> Result<()> {
    let view_addrs: Vec<(MemberId, SocketAddr)> = lock(&state.view).alive();
    let targets: Vec<(Replica, Vec<Bucket>)> = view_addrs
        .into_iter()
        .filter(|(id, _)| *id != member.id)
        .map(|(id, addr)| {
            let buckets: Vec<Bucket> = held
                .iter()
                .copied()
                .filter(|&b| without.holds(&id, b))
                .collect();
            (Replica { id, addr }, buckets)
        })
        .filter(|(_, buckets)| !buckets.is_empty())
        .collect();
    let runs = targets.iter().map(|(to, buckets)| async move {
        let done = sync::exchange(peer, state, member, to, buckets, Direction::Give, timing).await;
        (to, buckets, done)
    });
    let results = join_all(runs).await;
    for &bucket in held {
        let owners: Vec<&MemberId> = without.bucket_owners(bucket).collect();
        let given = results
            .iter()
            .filter(|(to, buckets, done)| {
                done.is_ok() && buckets.contains(&bucket) && owners.contains(&&to.id)
            })
            .count();
        if given < majority(owners.len()) {
            let why = results
                .iter()
                .find(|(_, buckets, done)| done.is_err() && buckets.contains(&bucket))
                .map(|(to, _, done)| match done {
                    Err(failure) => format!("{}: {failure}", to.addr),
                    Ok(()) => String::new(),
                })
                .unwrap_or_else(|| format!("no owner of bucket {} was reachable", bucket.index()));
            return Err(Error::TableHandoff {
                table: state.name.clone(),
                reason: why,
            });
        }
    }
    Ok(())
}
