//! A member's background loop: heartbeats that carry views, dropping members whose calls
//! keep failing (only with a majority in reach), receiving gained buckets, handing off
//! lost ones, comparing with a co-owner in turn, keeping its store.

use std::collections::BTreeSet;
use std::future::IntoFuture as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::time::MissedTickBehavior;

use super::calls;
use super::ids::{random_bits, MemberId};
use super::member;
use super::quorum::majority;
use super::record::TOMBSTONE_GRACE;
use super::route::{ask, Replica};
use super::state::{Member, TableState, Timing};
use super::sync;
use super::version::system_millis;
use crate::peer::Peer;
use crate::sync::lock;

/// Members asked for their view each tick besides the failing ones.
const HEARTBEATS: usize = 2;

/// How often tombstones are collected and the store marked alive.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// How often the group's peers that discovery knows but the view does not are greeted.
const REDISCOVER: Duration = Duration::from_secs(2);

/// Runs until the member unjoins or the peer shuts down: two loops side by side, so
/// that a slow exchange with a member that stopped answering never delays the heartbeats
/// that find it dead.
pub async fn run(peer: Peer, state: Arc<TableState>, member: Arc<Member>) {
    let timing = *lock(&peer.tables().timing);
    tokio::join!(
        watch(&peer, &state, &member, timing),
        keep(&peer, &state, &member, timing)
    );
}

/// Ticks until the member stops; false once it has.
async fn tick(peer: &Peer, member: &Member, ticks: &mut tokio::time::Interval) -> bool {
    tokio::select! {
        _ = member.stop.cancelled() => false,
        _ = peer.shutdown_token().cancelled() => false,
        _ = ticks.tick() => true,
    }
}

fn ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// The membership loop: announcing, heartbeats, deaths, strangers.
async fn watch(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let mut ticks = ticks(timing.tick);
    let mut next_rediscover = Instant::now() + REDISCOVER;
    while tick(peer, member, &mut ticks).await {
        if member.announce.swap(false, Ordering::Relaxed) {
            let _ = member::announce(peer, state, member, false).await;
        }
        heartbeat(peer, state, member, timing).await;
        drop_dead(peer, state, member, timing).await;
        if Instant::now() >= next_rediscover {
            next_rediscover = Instant::now() + REDISCOVER;
            greet_strangers(peer, state, member).await;
        }
    }
}

/// The data loop: receiving gained buckets, handing off lost ones, comparing with a
/// co-owner in turn, saving the view, housekeeping.
async fn keep(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let mut ticks = ticks(timing.tick);
    let mut next_compare = Instant::now() + jitter(timing.sync_every);
    let mut next_housekeeping = Instant::now();
    let mut partner = 0usize;
    while tick(peer, member, &mut ticks).await {
        sync::catch_up(peer, state, member, timing).await;
        sync::hand_off(peer, state, member, timing).await;
        if Instant::now() >= next_compare {
            next_compare = Instant::now() + jitter(timing.sync_every);
            let others = others(state, member);
            if !others.is_empty() {
                partner = (partner + 1) % others.len();
                sync::compare(peer, state, member, &others[partner], timing).await;
            }
        }
        if member.view_dirty.swap(false, Ordering::Relaxed) {
            save_view(state, member).await;
        }
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + HOUSEKEEPING;
            let kept = member
                .replicas
                .run(|store| {
                    let now = system_millis();
                    let collected = store.collect_tombstones(now, TOMBSTONE_GRACE)?;
                    store.mark_alive(now)?;
                    Ok(collected)
                })
                .await;
            if let Err(e) = kept {
                tracing::error!(table = %state.name, error = %e, "table store housekeeping");
            }
        }
    }
}

/// `period` give or take a quarter, so that members do not all call at once.
fn jitter(period: Duration) -> Duration {
    let quarter = period.as_millis() as u64 / 4;
    let spread = if quarter == 0 {
        0
    } else {
        random_bits() % (2 * quarter)
    };
    Duration::from_millis(period.as_millis() as u64 - quarter + spread)
}

/// The alive members other than this one.
fn others(state: &TableState, member: &Member) -> Vec<Replica> {
    lock(&state.view)
        .alive()
        .into_iter()
        .filter(|(id, _)| *id != member.id)
        .map(Replica::of)
        .collect()
}

/// Asks the failing members and a few others for their view (the heartbeat), merges
/// what differs, and pushes this member's view where the other lacked something.
async fn heartbeat(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let others = others(state, member);
    if others.is_empty() {
        return;
    }
    let mut chosen: BTreeSet<usize> = others
        .iter()
        .enumerate()
        .filter(|(_, r)| state.health.is_failing(&r.id))
        .map(|(i, _)| i)
        .collect();
    for _ in 0..HEARTBEATS {
        chosen.insert(random_bits() as usize % others.len());
    }
    let beats = chosen.into_iter().map(|i| {
        let to = &others[i];
        let hash = lock(&state.view).hash_hex().to_string();
        async move {
            let call = calls::members(state.name.clone(), Some(hash));
            (to, ask(peer, state, to, call, timing.heartbeat).await)
        }
    });
    for (to, answer) in join_all(beats).await {
        let Ok(answer) = answer else { continue };
        if answer.terms != state.terms {
            tracing::error!(table = %state.name, member = %to.addr, "a member with other terms");
            continue;
        }
        if let Some(members) = answer.members {
            state.update_view(|view| view.merge_wire(&members));
            let mine = lock(&state.view).to_wire();
            if *lock(&state.view).hash_hex() != *answer.view {
                let call = calls::gossip(state.name.clone(), state.terms, mine);
                let _ = ask(peer, state, to, call, timing.call_timeout).await;
            }
        }
    }
}

/// Drops the members whose calls have failed for long enough, if this member reaches a
/// majority of its view: the minority side of a partition keeps its view, and so
/// answers `NoQuorum` instead of placing every key on itself.
async fn drop_dead(peer: &Peer, state: &TableState, member: &Member, timing: Timing) {
    let dead: Vec<MemberId> = {
        let view = lock(&state.view);
        state
            .health
            .dead(timing.dead_after)
            .into_iter()
            .filter(|id| *id != member.id && view.is_alive(id))
            .collect()
    };
    if dead.is_empty() {
        return;
    }
    let (alive, reachable) = {
        let view = lock(&state.view);
        let alive = view.alive();
        let reachable = alive
            .iter()
            .filter(|(id, _)| !state.health.is_failing(id))
            .count();
        (alive.len(), reachable)
    };
    if reachable < majority(alive) {
        tracing::debug!(table = %state.name, reachable, alive, "cut off from a majority: keeping the view");
        return;
    }
    for id in &dead {
        let addr = lock(&state.view).addr_of(id);
        if state.update_view(|view| view.mark_dead(id)) {
            tracing::warn!(table = %state.name, member = %id, addr = ?addr, "dropped a member whose calls keep failing");
        }
        state.health.forget(id);
    }
    member::spread(peer, state).await;
}

/// Greets the group's peers that discovery knows and the view does not (two peers that
/// joined at the same moment may each have asked the other too early). A peer that has
/// not joined answers "not a member" and nothing changes.
async fn greet_strangers(peer: &Peer, state: &TableState, member: &Member) {
    let known: BTreeSet<std::net::SocketAddr> = lock(&state.view)
        .alive()
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let found = super::route::group_peers(peer, false).await;
    let timeout = lock(&peer.tables().timing).call_timeout;
    let me = super::wire::WireMember {
        id: member.id.to_string(),
        addr: member.addr,
        inc: member.incarnation(),
        alive: true,
    };
    let hellos = found
        .into_iter()
        .filter(|a| !known.contains(a))
        .map(|addr| {
            let call = calls::hello(state.name.clone(), me.clone(), state.terms);
            call.on(addr).via(peer).timeout(timeout).into_future()
        });
    for answer in join_all(hellos).await {
        if let Ok(Ok(members)) = answer {
            state.update_view(|view| view.merge_wire(&members));
        }
    }
}

/// Keeps the view in the store (with NET_TABLE_DIR), for the next start.
async fn save_view(state: &TableState, member: &Member) {
    let members = lock(&state.view).to_wire();
    let Ok(bytes) = serde_json::to_vec(&members) else {
        return;
    };
    if let Err(e) = member
        .replicas
        .run(move |store| store.save_view(&bytes))
        .await
    {
        tracing::error!(table = %state.name, error = %e, "saving the table's view");
    }
}
