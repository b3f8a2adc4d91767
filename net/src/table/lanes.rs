//! A peer's reads and writes to one replica travel in lanes: one `get` and one `put`
//! call in flight per replica, and what queues up meanwhile goes in the next call
//! together (as events' delivery lanes do). Alone, a read or write goes at once; under
//! load, 64 writes to a member cost a few calls instead of 64. A replica that stops
//! answering holds up only its own lane, and each waiting operation gives up at its own
//! deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::calls;
use super::ids::{Key, MemberId};
use super::route::{ask, Failure, Replica};
use super::state::TableState;
use super::wire::{Ack, Found, WireError, WireRecord, WireVersion};
use crate::error::Error;
use crate::peer::Peer;
use crate::sync::lock;

/// Most keys or records in one call.
const MAX_BATCH: usize = 512;

/// Most operations that may wait for one replica's lane: past it, new ones fail at once
/// rather than pile up behind a replica that does not answer.
const MAX_WAITING: usize = 100_000;

/// What one replica answered for one key of a read.
pub struct Got {
    /// Its record and readiness.
    pub found: Found,
    /// Its view hash.
    pub view: Arc<str>,
}

/// What one replica answered for one record of a write.
pub struct Put {
    /// `None`: applied; else the newer version it holds instead.
    pub superseded: Option<WireVersion>,
    /// Its view hash.
    pub view: Arc<str>,
}

type Reply<T> = oneshot::Sender<Result<T, Failure>>;

/// Operations waiting for one call, and whether a call is under way.
struct Queue<R> {
    waiting: Vec<R>,
    sending: bool,
}

impl<R> Default for Queue<R> {
    fn default() -> Self {
        Queue {
            waiting: Vec::new(),
            sending: false,
        }
    }
}

/// One replica's two lanes.
#[derive(Default)]
struct Lane {
    gets: Mutex<Queue<(Key, Reply<Got>)>>,
    puts: Mutex<Queue<(Key, WireRecord, Reply<Put>)>>,
}

/// The lanes of one table on one peer, per replica (id and address: a member that
/// restarted elsewhere gets a lane of its own).
#[derive(Default)]
pub struct Lanes {
    by_replica: Mutex<HashMap<(MemberId, std::net::SocketAddr), Arc<Lane>>>,
}

impl Lanes {
    fn lane(&self, to: &Replica) -> Arc<Lane> {
        lock(&self.by_replica)
            .entry((to.id.clone(), to.addr))
            .or_default()
            .clone()
    }
}

/// Whether a read of `to` is under way from this peer (its read lane has a call out).
pub fn reading(state: &TableState, to: &Replica) -> bool {
    lock(&state.lanes.lane(to).gets).sending
}

/// Queues `item` and says whether the caller must start the lane's sender.
fn enqueue<R>(queue: &Mutex<Queue<R>>, item: R) -> Result<bool, Failure> {
    let mut queue = lock(queue);
    if queue.waiting.len() >= MAX_WAITING {
        return Err(Failure::Busy(queue.waiting.len()));
    }
    queue.waiting.push(item);
    Ok(!std::mem::replace(&mut queue.sending, true))
}

/// The next batch, or `None` (and the lane idle) when nothing waits.
fn next_batch<R>(queue: &Mutex<Queue<R>>) -> Option<Vec<R>> {
    let mut queue = lock(queue);
    if queue.waiting.is_empty() {
        queue.sending = false;
        return None;
    }
    let n = queue.waiting.len().min(MAX_BATCH);
    Some(queue.waiting.drain(..n).collect())
}

/// Waits for an operation's answer. Every batch ends (its call has a timeout), so the
/// wait does too; the operation bounds it by its own deadline as well.
async fn answer<T>(rx: oneshot::Receiver<Result<T, Failure>>) -> Result<T, Failure> {
    rx.await.unwrap_or(Err(Failure::Call(Error::Shutdown)))
}

/// One replica's record of `key`, through its read lane.
pub async fn get(
    peer: &Peer,
    state: &Arc<TableState>,
    to: &Replica,
    key: &Key,
    timeout: Duration,
) -> Result<Got, Failure> {
    let lane = state.lanes.lane(to);
    let (tx, rx) = oneshot::channel();
    if enqueue(&lane.gets, (key.clone(), tx))? {
        let (peer2, state, to2) = (peer.clone(), state.clone(), to.clone());
        peer.tracker()
            .spawn_on(send_gets(peer2, state, to2, lane, timeout), peer.runtime());
    }
    answer(rx).await
}

async fn send_gets(
    peer: Peer,
    state: Arc<TableState>,
    to: Replica,
    lane: Arc<Lane>,
    timeout: Duration,
) {
    while let Some(batch) = next_batch(&lane.gets) {
        let keys: Vec<Key> = batch.iter().map(|(k, _)| k.clone()).collect();
        let call = calls::get(state.name.clone(), to.id.to_string(), keys);
        let outcome = ask(&peer, &state, &to, call, timeout)
            .await
            .and_then(|answer| {
                if answer.found.len() == batch.len() {
                    Ok(answer)
                } else {
                    Err(short(answer.found.len(), batch.len()))
                }
            });
        match outcome {
            Ok(answer) => {
                let members = answer.members.unwrap_or_default();
                let view: Arc<str> = Arc::from(answer.view);
                for ((_, reply), found) in batch.into_iter().zip(answer.found) {
                    let got = found
                        .map(|found| Got {
                            found,
                            view: view.clone(),
                        })
                        .ok_or_else(|| {
                            Failure::Refused(WireError::NotOwner {
                                members: members.clone(),
                            })
                        });
                    let _ = reply.send(got);
                }
            }
            Err(failure) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// Writes `record` of `key` on one replica, through its write lane.
pub async fn put(
    peer: &Peer,
    state: &Arc<TableState>,
    to: &Replica,
    key: &Key,
    record: WireRecord,
    timeout: Duration,
) -> Result<Put, Failure> {
    let lane = state.lanes.lane(to);
    let (tx, rx) = oneshot::channel();
    if enqueue(&lane.puts, (key.clone(), record, tx))? {
        let (peer2, state, to2) = (peer.clone(), state.clone(), to.clone());
        peer.tracker()
            .spawn_on(send_puts(peer2, state, to2, lane, timeout), peer.runtime());
    }
    answer(rx).await
}

async fn send_puts(
    peer: Peer,
    state: Arc<TableState>,
    to: Replica,
    lane: Arc<Lane>,
    timeout: Duration,
) {
    while let Some(batch) = next_batch(&lane.puts) {
        let records: Vec<(Key, WireRecord)> = batch
            .iter()
            .map(|(k, r, _)| (k.clone(), r.clone()))
            .collect();
        let call = calls::put(state.name.clone(), to.id.to_string(), records);
        let outcome = ask(&peer, &state, &to, call, timeout)
            .await
            .and_then(|answer| {
                if answer.acks.len() == batch.len() {
                    Ok(answer)
                } else {
                    Err(short(answer.acks.len(), batch.len()))
                }
            });
        match outcome {
            Ok(answer) => {
                let members = answer.members.unwrap_or_default();
                let shared: Arc<str> = Arc::from(answer.view);
                for ((_, _, reply), ack) in batch.into_iter().zip(answer.acks) {
                    let view = shared.clone();
                    let put = match ack {
                        Ack::Applied => Ok(Put {
                            superseded: None,
                            view,
                        }),
                        Ack::Superseded(held) => Ok(Put {
                            superseded: Some(held),
                            view,
                        }),
                        Ack::NotOwner => Err(Failure::Refused(WireError::NotOwner {
                            members: members.clone(),
                        })),
                    };
                    let _ = reply.send(put);
                }
            }
            Err(failure) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }
}

/// An answer with another count of results than was asked: the member misbehaves.
fn short(got: usize, asked: usize) -> Failure {
    Failure::Refused(WireError::BadRequest(format!(
        "answered {got} results for {asked} asked"
    )))
}
