//! The calling side of the table's calls: one request to one member with its outcome
//! told apart (answered, refused, unreachable) and its health noted; the replica calls a
//! member makes to itself run in-process; and how a peer learns the members (a
//! non-member asks the group's peers, a member's own view is its answer).

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::de::DeserializeOwned;

use super::calls;
use super::handlers;
use super::ids::{Key, MemberId};
use super::lanes::{self, Got, Put};
use super::state::TableState;
use super::wire::{Ack, ScanAnswer, WireError, WireRecord};
use crate::call::{AsyncFn, Call, Fallible};
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::sync::lock;

/// One member to call: its id and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Its id.
    pub id: MemberId,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl Replica {
    /// From a view's (id, address) pair.
    pub fn of((id, addr): (MemberId, SocketAddr)) -> Replica {
        Replica { id, addr }
    }
}

/// Why a member's answer does not count.
#[derive(Clone, Debug)]
pub enum Failure {
    /// The call failed: unreachable, timed out, closed.
    Call(Error),
    /// The member refused.
    Refused(WireError),
    /// Too many operations already wait for it (it stopped answering).
    Busy(usize),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Call(Error::Timeout { after, .. }) => write!(f, "timed out after {after:?}"),
            Failure::Call(Error::Unreachable { reason, .. }) => f.write_str(reason),
            Failure::Call(Error::ConnectionClosed { reason, .. }) => {
                write!(f, "connection closed ({reason})")
            }
            Failure::Call(other) => write!(f, "{other}"),
            Failure::Refused(refused) => write!(f, "{refused}"),
            Failure::Busy(n) => write!(f, "{n} operations already wait for it"),
        }
    }
}

/// Sends `call` to `to` from `peer` within `timeout`, and notes how the member fared: a
/// member that does not answer, or answers as another peer, is failing.
pub async fn ask<T: DeserializeOwned + Send + 'static>(
    peer: &Peer,
    state: &TableState,
    to: &Replica,
    call: Call<std::result::Result<T, WireError>, AsyncFn, Fallible>,
    timeout: Duration,
) -> std::result::Result<T, Failure> {
    let outcome = call.on(to.addr).via(peer).timeout(timeout).await;
    note(state, &to.id, outcome)
}

/// Notes the health of `member` from an outcome and flattens it.
fn note<T>(
    state: &TableState,
    member: &MemberId,
    outcome: Result<std::result::Result<T, WireError>>,
) -> std::result::Result<T, Failure> {
    match outcome {
        Ok(Ok(answer)) => {
            state.health.ok(member);
            Ok(answer)
        }
        Ok(Err(WireError::NotMember)) => {
            state.health.failed(member);
            Err(Failure::Refused(WireError::NotMember))
        }
        Ok(Err(refused)) => {
            state.health.ok(member);
            Err(Failure::Refused(refused))
        }
        Err(e) => {
            state.health.failed(member);
            Err(Failure::Call(e))
        }
    }
}

/// Whether `to` is this peer's own member (its replica calls then run in-process).
fn is_me(state: &TableState, to: &Replica) -> bool {
    state.member().is_some_and(|m| m.id == to.id)
}

/// One replica's record of `key`: in-process for this peer's own member, else through
/// the replica's read lane.
pub async fn get(
    peer: &Peer,
    state: &Arc<TableState>,
    to: &Replica,
    key: &Key,
    timeout: Duration,
) -> std::result::Result<Got, Failure> {
    if !is_me(state, to) {
        return lanes::get(peer, state, to, key, timeout).await;
    }
    let outcome = handlers::get(peer, &state.name, to.id.as_str(), vec![key.clone()]).await;
    let answer = note(state, &to.id, Ok(outcome))?;
    match answer.found.into_iter().next().flatten() {
        Some(found) => Ok(Got {
            found,
            view: Arc::from(answer.view),
        }),
        None => Err(Failure::Refused(WireError::NotOwner {
            members: answer.members.unwrap_or_default(),
        })),
    }
}

/// Writes `record` of `key` on one replica: in-process for this peer's own member, else
/// through the replica's write lane.
pub async fn put(
    peer: &Peer,
    state: &Arc<TableState>,
    to: &Replica,
    key: &Key,
    record: WireRecord,
    timeout: Duration,
) -> std::result::Result<Put, Failure> {
    if !is_me(state, to) {
        return lanes::put(peer, state, to, key, record, timeout).await;
    }
    let records = vec![(key.clone(), record)];
    let outcome = handlers::put(peer, &state.name, to.id.as_str(), records).await;
    let answer = note(state, &to.id, Ok(outcome))?;
    let view: Arc<str> = Arc::from(answer.view);
    match answer.acks.into_iter().next() {
        Some(Ack::Applied) => Ok(Put {
            superseded: None,
            view,
        }),
        Some(Ack::Superseded(held)) => Ok(Put {
            superseded: Some(held),
            view,
        }),
        _ => Err(Failure::Refused(WireError::NotOwner {
            members: answer.members.unwrap_or_default(),
        })),
    }
}

/// One replica's records of `buckets`.
pub async fn scan(
    peer: &Peer,
    state: &TableState,
    to: &Replica,
    buckets: Vec<u16>,
    timeout: Duration,
) -> std::result::Result<ScanAnswer, Failure> {
    if is_me(state, to) {
        let outcome = handlers::scan(peer, &state.name, to.id.as_str(), buckets).await;
        return note(state, &to.id, Ok(outcome));
    }
    let call = calls::scan(state.name.clone(), to.id.to_string(), buckets);
    ask(peer, state, to, call, timeout).await
}

/// How long one table operation may take: the peer's NET_TIMEOUT (practically forever
/// when that is 0, no timeout).
pub fn budget(peer: &Peer) -> Duration {
    crate::config::budget(peer.config().timeout)
}

/// How long a non-member uses its copy of the view without asking again.
const VIEW_MAX_AGE: Duration = Duration::from_secs(2);

/// Makes sure the peer knows the members before an operation: a member knows; a
/// non-member asks when it knows none, its copy went stale or is a few seconds old. A
/// member found with other terms is a loud error, since keys would be placed
/// differently.
pub async fn prepare(peer: &Peer, state: &Arc<TableState>) -> Result<()> {
    let fresh = lock(&state.refreshed).is_some_and(|at| at.elapsed() < VIEW_MAX_AGE);
    if state.member().is_some() || (fresh && !state.stale.load(Ordering::Relaxed)) {
        return Ok(());
    }
    refresh(peer, state).await
}

/// A non-member refreshes its copy of the view now (for questions about the members).
pub async fn ask_members(peer: &Peer, state: &Arc<TableState>) -> Result<()> {
    if state.member().is_some() {
        return Ok(());
    }
    refresh(peer, state).await
}

/// The addresses of the other peers of this peer's group that discovery knows (a round
/// runs the first time, or now with `fresh`; quietly, since finding nobody is normal for
/// a first member).
pub async fn group_peers(peer: &Peer, fresh: bool) -> Vec<SocketAddr> {
    crate::discovery::discover(peer, fresh, false).await;
    let group = peer.group();
    peer.discovery()
        .table
        .snapshot()
        .into_iter()
        .filter(|p| p.group.as_deref() == group && p.id != *peer.id())
        .map(|p| p.addr)
        .collect()
}

/// Asks members for their view and merges what they answer: the known ones first, then
/// the peers of this peer's group that discovery finds.
pub async fn refresh(peer: &Peer, state: &Arc<TableState>) -> Result<()> {
    let timeout = budget(peer).min(Duration::from_secs(3));
    let known: Vec<SocketAddr> = {
        let view = lock(&state.view);
        view.alive()
            .into_iter()
            .filter(|(id, _)| !state.health.is_failing(id))
            .map(|(_, addr)| addr)
            .take(3)
            .collect()
    };
    let mut incompatible = None;
    let mut answered = ask_views(peer, state, known, timeout, &mut incompatible).await;
    // Then the group's peers discovery knows; then the ones a new round finds (members
    // that restarted on other ports).
    for fresh in [false, true] {
        if answered == 0 {
            let found = group_peers(peer, fresh).await;
            answered = ask_views(peer, state, found, timeout, &mut incompatible).await;
        }
    }
    if answered > 0 {
        state.stale.store(false, Ordering::Relaxed);
        *lock(&state.refreshed) = Some(std::time::Instant::now());
        return Ok(());
    }
    match incompatible {
        Some(error) => Err(error),
        // No member answered: the operation says so (NoQuorum, no members).
        None => Ok(()),
    }
}

/// Asks each address for its view (at once); merges those of the same terms and returns
/// how many answered as members.
async fn ask_views(
    peer: &Peer,
    state: &TableState,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    incompatible: &mut Option<Error>,
) -> usize {
    let asked = addrs.iter().map(|&addr| {
        calls::members(state.name.clone(), None)
            .on(addr)
            .via(peer)
            .timeout(timeout)
            .into_future()
    });
    let mut answered = 0;
    for (addr, outcome) in addrs.iter().zip(join_all(asked).await) {
        let Ok(Ok(answer)) = outcome else { continue };
        if answer.terms != state.terms {
            *incompatible = Some(Error::TableIncompatible {
                table: state.name.clone(),
                member: addr.to_string(),
                their_protocol: answer.terms.protocol,
                their_replicas: answer.terms.replicas,
                our_protocol: state.terms.protocol,
                our_replicas: state.terms.replicas,
            });
            continue;
        }
        if let Some(members) = answer.members {
            state.update_view(|view| view.merge_wire(&members));
        }
        answered += 1;
    }
    answered
}
