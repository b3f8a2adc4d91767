//! The publishing side: who subscribed to which event on this peer, and one ordered
//! delivery lane per subscriber, drained by a worker that sends what has queued up in
//! batches, with at most `NET_THREAD_LIMIT` deliveries of the peer in flight.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};

use super::deliver;
use super::publish::{Delivery, DeliveryStatus};
use super::subs::Subs;
use crate::peer::Peer;
use crate::sync::lock;

/// Most events one delivery call carries. Batches form only when events queue up faster
/// than the subscriber takes them, so a quiet stream still goes one event per call.
const MAX_BATCH: usize = 256;

/// Most payload bytes one delivery call carries (a single larger event still goes alone,
/// up to the frame limit).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Most events that may wait for one subscriber. Past it, new events fail for that
/// subscriber at once ("too far behind") instead of growing the publisher's memory.
pub(crate) const MAX_QUEUE: usize = 100_000;

/// The batch limit in force; 1 turns batching off (for measurements).
static BATCH_LIMIT: AtomicUsize = AtomicUsize::new(MAX_BATCH);

/// Sets how many events one delivery call may carry (1 to 256); for benchmarks.
pub(crate) fn set_batch_limit(limit: usize) {
    BATCH_LIMIT.store(limit.clamp(1, MAX_BATCH), Ordering::Relaxed);
}

/// Where a delivery's outcome is reported, when someone awaits the publication.
pub(crate) type Reporter = mpsc::UnboundedSender<Delivery>;

/// The subscriber table of one peer.
pub(crate) struct Table {
    inner: Mutex<Inner>,
    /// `NET_THREAD_LIMIT` permits: one per delivery call in flight, across all lanes.
    limit: Arc<Semaphore>,
}

#[derive(Default)]
struct Inner {
    /// Event name to its subscribers: address and handler tag, without repeats.
    subs: Subs,
    /// One lane per subscriber address, shared by all its events so that they arrive in
    /// the order they were published.
    lanes: HashMap<SocketAddr, Arc<Lane>>,
    /// Subscribers that registered over app-net's JSON (Python app-net peers): their
    /// events go in app-net's format, one connection per event.
    app_net: HashSet<SocketAddr>,
}

/// The ordered queue of one subscriber.
pub(crate) struct Lane {
    /// The subscriber's address.
    pub(crate) addr: SocketAddr,
    state: Mutex<LaneState>,
}

struct LaneState {
    /// Events waiting, oldest first.
    queue: VecDeque<Item>,
    /// True while a worker drains the queue; at most one does, which keeps the order.
    running: bool,
    /// How events reach this subscriber.
    mode: Mode,
}

/// How a lane delivers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Whatever has queued up, in one call of the subscriber's `net.events.deliver`.
    Batch,
    /// One call per event straight to the handler: the subscriber lacks the batch
    /// built-in (an older or foreign peer).
    Direct,
    /// One app-net request per event: a Python app-net subscriber.
    AppNet,
}

/// One event waiting for one subscriber's handler.
pub(crate) struct Item {
    /// The subscriber's handler.
    pub(crate) tag: Arc<str>,
    /// The handler's arguments, a JSON array; shared by every subscriber's copy.
    pub(crate) payload: Arc<str>,
    /// Where the outcome goes; dropped with the item, which is how a report knows that
    /// every delivery has finished.
    pub(crate) reporter: Option<Reporter>,
}

impl Item {
    /// Reports how the delivery ended (and logs a failure: nobody may be listening).
    pub(crate) fn finish(self, addr: SocketAddr, status: DeliveryStatus) {
        match &status {
            DeliveryStatus::Delivered => {}
            DeliveryStatus::Failed(why) => {
                tracing::warn!(subscriber = %addr, tag = %self.tag, reason = %why, "event delivery failed")
            }
            DeliveryStatus::Pruned(why) => {
                tracing::debug!(subscriber = %addr, tag = %self.tag, reason = %why, "event delivery pruned")
            }
        }
        if let Some(reporter) = self.reporter {
            let _ = reporter.send(Delivery {
                subscriber: addr,
                tag: self.tag.to_string(),
                status,
            });
        }
    }
}

impl Table {
    pub(crate) fn new(thread_limit: usize) -> Table {
        Table {
            inner: Mutex::new(Inner::default()),
            limit: Arc::new(Semaphore::new(thread_limit.max(1))),
        }
    }

    /// Records a subscriber (`app_net`: one that registered in app-net's format); false
    /// when it was already recorded, `Err` past a cap (`subs.rs`).
    pub(crate) fn register(
        &self,
        event: &str,
        addr: SocketAddr,
        tag: &str,
        app_net: bool,
    ) -> Result<bool, String> {
        let mut inner = lock(&self.inner);
        let added = inner.subs.add(event, addr, tag)?;
        if app_net {
            inner.app_net.insert(addr);
        }
        Ok(added)
    }

    /// Forgets a subscriber; false when it was not recorded.
    pub(crate) fn unregister(&self, event: &str, addr: SocketAddr, tag: &str) -> bool {
        let mut inner = lock(&self.inner);
        let removed = inner.subs.remove(event, addr, tag);
        inner.forget_idle_lane(addr);
        removed
    }

    /// Removes every subscription of `addr` and fails what waits in its lane: the
    /// subscriber is gone.
    pub(crate) fn prune_addr(&self, addr: SocketAddr, reason: &str) {
        let (lane, subscribed) = {
            let mut inner = lock(&self.inner);
            let subscribed = inner.subs.remove_addr(addr, None);
            inner.app_net.remove(&addr);
            (inner.lanes.remove(&addr), subscribed)
        };
        if subscribed {
            tracing::info!(subscriber = %addr, reason, "pruned a subscriber");
        }
        if let Some(lane) = lane {
            let dropped: Vec<Item> = lock(&lane.state).queue.drain(..).collect();
            for item in dropped {
                item.finish(addr, DeliveryStatus::Pruned(reason.to_owned()));
            }
        }
    }

    /// Removes the subscriptions of `addr` with handler `tag`, which it no longer has.
    pub(crate) fn prune_tag(&self, addr: SocketAddr, tag: &str) {
        lock(&self.inner).subs.remove_addr(addr, Some(tag));
        tracing::info!(subscriber = %addr, tag, "pruned a subscription: the handler is gone");
    }

    /// The subscribers of `event`.
    pub(crate) fn subscribers(&self, event: &str) -> Vec<(SocketAddr, String)> {
        lock(&self.inner)
            .subs
            .of(event)
            .map(|subs| {
                subs.list()
                    .iter()
                    .map(|(a, t)| (*a, t.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every event with at least one subscriber, sorted.
    pub(crate) fn events(&self) -> Vec<String> {
        lock(&self.inner).subs.events()
    }

    /// Queues `payload` for every subscriber of `event` and starts the workers of idle
    /// lanes. Holding the table's lock throughout gives all subscribers one order of
    /// concurrent publications. Returns who it was queued for.
    pub(crate) fn enqueue(
        &self,
        peer: &Peer,
        event: &str,
        payload: Arc<str>,
        reporter: Option<Reporter>,
    ) -> Vec<(SocketAddr, Arc<str>)> {
        let mut inner = lock(&self.inner);
        let Some(subs) = inner.subs.of(event) else {
            return Vec::new();
        };
        let targets = subs.list().to_vec();
        for (addr, tag) in &targets {
            let mode = if inner.app_net.contains(addr) {
                Mode::AppNet
            } else {
                Mode::Batch
            };
            let lane = inner
                .lanes
                .entry(*addr)
                .or_insert_with(|| {
                    Arc::new(Lane {
                        addr: *addr,
                        state: Mutex::new(LaneState {
                            queue: VecDeque::new(),
                            running: false,
                            mode,
                        }),
                    })
                })
                .clone();
            let item = Item {
                tag: tag.clone(),
                payload: payload.clone(),
                reporter: reporter.clone(),
            };
            let start = {
                let mut state = lock(&lane.state);
                if state.queue.len() >= MAX_QUEUE {
                    drop(state);
                    item.finish(
                        *addr,
                        DeliveryStatus::Failed(format!(
                            "the subscriber is {MAX_QUEUE} events behind; this one was dropped"
                        )),
                    );
                    continue;
                }
                state.queue.push_back(item);
                !std::mem::replace(&mut state.running, true)
            };
            if start {
                let worker = drain(peer.clone(), lane);
                peer.tracker().spawn_on(worker, peer.runtime());
            }
        }
        targets
    }
}

impl Inner {
    /// Drops the lane of an address that has no subscription left and nothing queued.
    fn forget_idle_lane(&mut self, addr: SocketAddr) {
        if self.subs.has_addr(addr) {
            return;
        }
        let idle = self.lanes.get(&addr).is_some_and(|lane| {
            let state = lock(&lane.state);
            !state.running && state.queue.is_empty()
        });
        if idle {
            self.lanes.remove(&addr);
        }
    }
}

/// What a delivery attempt says to do with the lane.
pub(crate) enum Verdict {
    /// Carry on with the next batch.
    Continue,
    /// The subscriber lacks the batch built-in: put these back and go one by one.
    GoDirect(Vec<Item>),
    /// Put these back at the front (they were not run within the call's budget).
    Retry(Vec<Item>),
    /// The subscriber is gone (why) and was pruned, its lane emptied: stop.
    Pruned(String),
}

/// Drains one lane: takes what has queued up (one batch), delivers it holding a permit
/// of the peer's limit, and repeats until the queue is empty.
async fn drain(peer: Peer, lane: Arc<Lane>) {
    let table = &peer.events().table;
    loop {
        let permit = table.limit.clone().acquire_owned().await;
        let (batch, mode) = {
            let mut state = lock(&lane.state);
            if state.queue.is_empty() || peer.is_shut_down() {
                state.running = false;
                let left: Vec<Item> = state.queue.drain(..).collect();
                drop(state);
                for item in left {
                    item.finish(
                        lane.addr,
                        DeliveryStatus::Failed("the publishing peer shut down".into()),
                    );
                }
                break;
            }
            let limit = match state.mode {
                Mode::Batch => BATCH_LIMIT.load(Ordering::Relaxed),
                Mode::Direct | Mode::AppNet => 1,
            };
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some(item) = state.queue.front() {
                let size = item.payload.len() + item.tag.len();
                if batch.len() == limit || (!batch.is_empty() && bytes + size > MAX_BATCH_BYTES) {
                    break;
                }
                bytes += size;
                batch.extend(state.queue.pop_front());
            }
            (batch, state.mode)
        };
        let verdict = match mode {
            Mode::Batch => deliver::send_batch(&peer, lane.addr, batch).await,
            Mode::Direct => deliver::send_direct(&peer, lane.addr, batch).await,
            Mode::AppNet => deliver::send_app_net(&peer, lane.addr, batch).await,
        };
        drop(permit);
        match verdict {
            Verdict::Continue => {}
            Verdict::GoDirect(items) => {
                let mut state = lock(&lane.state);
                state.mode = Mode::Direct;
                for item in items.into_iter().rev() {
                    state.queue.push_front(item);
                }
            }
            Verdict::Retry(items) => {
                let mut state = lock(&lane.state);
                for item in items.into_iter().rev() {
                    state.queue.push_front(item);
                }
            }
            Verdict::Pruned(_) => {
                lock(&lane.state).running = false;
                return;
            }
        }
    }
    let mut inner = lock(&table.inner);
    inner.forget_idle_lane(lane.addr);
}
