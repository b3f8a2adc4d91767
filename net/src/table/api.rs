//! `net::Table`: the replicated table's public handle, its operations as [`TableOp`]s
//! (`.await` them, or `.wait()` from synchronous code), and [`TableMember`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ids::Key;
use super::record::Record;
use super::state::TableState;
use super::version::Version;
use super::{member, ops, route, scan, wire};
use crate::error::{Error, Result};
use crate::peer::{self, Peer};
use crate::sync::lock;

/// Writes of one `update` in flight at once.
const UPDATE_IN_FLIGHT: usize = 64;

/// A dict shared by the peers of a group that joined it (py2p's chord table): each key on
/// `NET_TABLE_REPLICAS` members (default 3), reads and writes decided by a majority of a
/// key's replicas, surviving members that leave, die or restart.
///
/// `Table::new(name)` is the table on the process-wide peer; [`Peer::table`] on a given
/// one. Values are any serde type (JSON on the wire and on disk); keys are text or bytes
/// ([`TableKey`](crate::TableKey)). Every operation returns a [`TableOp`]: `.await` it, or
/// `.wait()` from synchronous code. A peer that has not joined reads and writes all the
/// same: it routes to the key's owners.
///
/// ```
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let config = || net::Config::default().loopback(true).port(0);
/// let a = net::Peer::start(config()).await?;
/// let users = a.table::<String>("users");
/// users.join().await?;                              // a stores replicas
/// users.set("ada", "Ada Lovelace".to_owned()).await?;
///
/// // A peer that has not joined finds the members (here through a seed) and routes:
/// let b = net::Peer::start(config().seeds([a.addr().to_string()])).await?;
/// let seen = b.table::<String>("users");
/// assert_eq!(seen.get("ada").await?.as_deref(), Some("Ada Lovelace"));
/// assert_eq!(seen.pop("ada").await?.as_deref(), Some("Ada Lovelace"));
/// assert_eq!(users.get("ada").await?, None);        // gone, everywhere
/// assert_eq!(seen.owners("ada").await?[0].addr, a.addr());
/// # b.shutdown().await; a.shutdown().await;
/// # Ok(()) }
/// ```
///
/// Consistency: a write succeeds when a majority of the key's replicas acknowledge it, a
/// read returns the newest value among a majority of them (and repairs the stale ones),
/// so a read after a successful write sees it. Concurrent writers resolve alike on every
/// replica (hybrid logical clock, then writer id). With no majority reachable the
/// operation fails with [`Error::NoQuorum`], never a stale answer.
pub struct Table<V = serde_json::Value> {
    /// Whose table; `None`: the process-wide peer, started on first use.
    peer: Option<Peer>,
    /// The table's name.
    name: Arc<str>,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        Table {
            peer: self.peer.clone(),
            name: self.name.clone(),
            _value: PhantomData,
        }
    }
}

impl<V> fmt::Debug for Table<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table").field("name", &self.name).finish()
    }
}

/// A member of a table: its id in the table and where it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TableMember {
    /// Its id in the table (kept across restarts with NET_TABLE_DIR).
    pub id: String,
    /// Its address.
    pub addr: SocketAddr,
}

impl Peer {
    /// The table `name` on this peer; see [`Table`].
    pub fn table<V>(&self, name: impl Into<String>) -> Table<V> {
        Table {
            peer: Some(self.clone()),
            name: Arc::from(name.into()),
            _value: PhantomData,
        }
    }
}

impl<V: Serialize + DeserializeOwned + Send + 'static> Table<V> {
    /// The table `name` on the process-wide peer (started from the `NET_*` variables on
    /// first use).
    pub fn new(name: impl Into<String>) -> Table<V> {
        Table {
            peer: None,
            name: Arc::from(name.into()),
            _value: PhantomData,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Becomes a member: stores replicas (in NET_TABLE_DIR when set, else in memory),
    /// receives the keys it now owns, and serves them. A member of the group with other
    /// terms (NET_TABLE_REPLICAS) refuses it, and this is an
    /// [`Error::TableIncompatible`] naming both.
    pub fn join(&self) -> TableOp<()> {
        self.op(|peer, state| async move { member::join(&peer, &state).await })
    }

    /// Stops being a member: hands every key it holds to the members that own it without
    /// it, then leaves. If a new owner cannot be reached, returns the error and stays a
    /// member (nothing is lost). Peer shutdown does this by itself.
    pub fn unjoin(&self) -> TableOp<()> {
        self.op(|peer, state| async move { member::unjoin(&peer, &state).await })
    }

    /// Whether this peer is a member (false for the process-wide peer before it runs).
    pub fn is_member(&self) -> bool {
        let peer = self.peer.clone().or_else(peer::running_default);
        peer.and_then(|p| p.tables().get(&self.name))
            .is_some_and(|state| state.member().is_some())
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: impl Into<Key>) -> TableOp<Option<V>> {
        let key = key.into();
        self.op(|peer, state| async move {
            check_key(&state, &key)?;
            let record = ops::read(&peer, &state, &key).await?;
            decode(&state, &key, record)
        })
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: impl Into<Key>, value: V) -> TableOp<()> {
        let key = key.into();
        let encoded = encode(&self.name, &key, &value);
        self.op(|peer, state| async move {
            check_key(&state, &key)?;
            set_encoded(&peer, &state, &key, encoded?).await
        })
    }

    /// Sets every pair (up to 64 writes in flight); the first error is returned after
    /// every write was tried.
    pub fn update<K: Into<Key>>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> TableOp<()> {
        let pairs: Result<Vec<(Key, Arc<[u8]>)>> = pairs
            .into_iter()
            .map(|(k, v)| {
                let key = k.into();
                encode(&self.name, &key, &v).map(|bytes| (key, bytes))
            })
            .collect();
        self.op(|peer, state| async move {
            let pairs = pairs?;
            for (key, _) in &pairs {
                check_key(&state, key)?;
            }
            let results: Vec<Result<()>> = stream::iter(pairs)
                .map(|(key, bytes)| {
                    let (peer, state) = (&peer, &state);
                    async move { set_encoded(peer, state, &key, bytes).await }
                })
                .buffer_unordered(UPDATE_IN_FLIGHT)
                .collect()
                .await;
            results.into_iter().collect()
        })
    }

    /// Removes `key` and returns the value it had. It leaves a tombstone, so a member
    /// that missed the pop cannot bring the value back.
    pub fn pop(&self, key: impl Into<Key>) -> TableOp<Option<V>> {
        let key = key.into();
        self.op(|peer, state| async move {
            check_key(&state, &key)?;
            let held = pop(&peer, &state, &key).await?;
            decode(&state, &key, held)
        })
    }

    /// Removes some key and returns it with its value; `None` when the table is empty.
    pub fn popitem(&self) -> TableOp<Option<(Key, V)>> {
        self.op(|peer, state| async move {
            // Another peer may pop the key first: then try the next one.
            for _ in 0..8 {
                let Some(key) = scan::scan(&peer, &state).await?.into_keys().next() else {
                    return Ok(None);
                };
                if let Some(value) = decode::<V>(&state, &key, pop(&peer, &state, &key).await?)? {
                    return Ok(Some((key, value)));
                }
            }
            Ok(None)
        })
    }

    /// Every key, in order.
    pub fn keys(&self) -> TableOp<Vec<Key>> {
        self.op(
            |peer, state| async move { Ok(scan::scan(&peer, &state).await?.into_keys().collect()) },
        )
    }

    /// Every value, in the order of their keys.
    pub fn values(&self) -> TableOp<Vec<V>> {
        self.op(|peer, state| async move {
            let all = scan::scan(&peer, &state).await?;
            all.into_iter()
                .filter_map(|(key, record)| decode(&state, &key, Some(record)).transpose())
                .collect()
        })
    }

    /// Every (key, value) pair, in key order.
    pub fn items(&self) -> TableOp<Vec<(Key, V)>> {
        self.op(|peer, state| async move {
            let all = scan::scan(&peer, &state).await?;
            let mut pairs = Vec::with_capacity(all.len());
            for (key, record) in all {
                if let Some(value) = decode(&state, &key, Some(record))? {
                    pairs.push((key, value));
                }
            }
            Ok(pairs)
        })
    }

    /// How many keys have a value.
    pub fn len(&self) -> TableOp<usize> {
        self.op(|peer, state| async move { Ok(scan::scan(&peer, &state).await?.len()) })
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> TableOp<bool> {
        self.op(|peer, state| async move { Ok(scan::scan(&peer, &state).await?.is_empty()) })
    }

    /// The whole table as a map.
    pub fn copy(&self) -> TableOp<BTreeMap<Key, V>> {
        let items = self.items();
        TableOp {
            home: items.home.clone(),
            work: Box::pin(async move { Ok(items.await?.into_iter().collect()) }),
        }
    }

    /// The members holding `key`, primary first (py2p's `find`). A peer that has not
    /// joined asks a member first.
    pub fn owners(&self, key: impl Into<Key>) -> TableOp<Vec<TableMember>> {
        let key = key.into();
        self.op(|peer, state| async move {
            route::ask_members(&peer, &state).await?;
            let view = lock(&state.view);
            Ok(view.owners(&key).into_iter().map(member_of).collect())
        })
    }

    /// The alive members, as this peer's view has them (a peer that has not joined asks
    /// a member first).
    pub fn members(&self) -> TableOp<Vec<TableMember>> {
        self.op(|peer, state| async move {
            route::ask_members(&peer, &state).await?;
            let view = lock(&state.view);
            Ok(view.alive().into_iter().map(member_of).collect())
        })
    }

    fn op<T, F, Fut>(&self, work: F) -> TableOp<T>
    where
        F: FnOnce(Peer, Arc<TableState>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (home, name) = (self.peer.clone(), self.name.clone());
        TableOp {
            home: home.clone(),
            work: Box::pin(async move {
                let peer = match home {
                    Some(peer) => peer,
                    None => peer::local_peer()?,
                };
                if peer.is_shut_down() {
                    return Err(Error::Shutdown);
                }
                wire::check_name(&name)
                    .map_err(|why| Error::Usage(format!("table {name:?}: {why}")))?;
                let state = peer.tables().get_or_make(&peer, &name);
                work(peer, state).await
            }),
        }
    }
}

fn member_of((id, addr): (super::ids::MemberId, SocketAddr)) -> TableMember {
    TableMember {
        id: id.to_string(),
        addr,
    }
}

fn check_key(state: &TableState, key: &Key) -> Result<()> {
    wire::check_key(key).map_err(|_| {
        Error::Usage(format!(
            "key {key} of table {:?} has {} bytes; a key has at most {}",
            state.name,
            key.len(),
            wire::MAX_KEY
        ))
    })
}

fn encode<V: Serialize>(table: &str, key: &Key, value: &V) -> Result<Arc<[u8]>> {
    serde_json::to_vec(value)
        .map(Arc::from)
        .map_err(|e| Error::TableValue {
            table: table.to_owned(),
            key: key.clone(),
            reason: format!("cannot be encoded as JSON: {e}"),
        })
}

fn decode<V: DeserializeOwned>(
    state: &TableState,
    key: &Key,
    record: Option<Record>,
) -> Result<Option<V>> {
    match record {
        Some(record) => record.decode(key).map_err(|e| e.into_error(&state.name)),
        None => Ok(None),
    }
}

/// A version above `seen`: the clock's next reading, moved past `seen` first (and
/// stepped over it by hand if `seen` was too far ahead for the clock to adopt).
fn above(state: &TableState, seen: &Version) -> Version {
    let _ = state.clock.observe(seen);
    let mut next = state.clock.tick();
    if next <= *seen {
        next.millis = seen.millis;
        next.counter = seen.counter.saturating_add(1);
        if next <= *seen {
            next.millis = seen.millis.saturating_add(1);
            next.counter = 0;
        }
    }
    next
}

async fn set_encoded(
    peer: &Peer,
    state: &Arc<TableState>,
    key: &Key,
    bytes: Arc<[u8]>,
) -> Result<()> {
    let mut record = Record {
        version: state.clock.tick(),
        value: Some(bytes),
    };
    let written = ops::write(peer, state, key, &record).await?;
    // A replica held a version stamped after ours by a clock running ahead: the set
    // would be lost to a write that happened before it, so it is made once more above.
    if let Some(newer) = written.superseded_by {
        record.version = above(state, &newer);
        ops::write(peer, state, key, &record).await?;
    }
    Ok(())
}

/// Pops `key`: reads it, then writes a tombstone above what was read; returns the record
/// read (with a value) or `None`.
async fn pop(peer: &Peer, state: &Arc<TableState>, key: &Key) -> Result<Option<Record>> {
    let held = ops::read(peer, state, key).await?;
    let Some(held) = held.filter(|r| !r.is_tombstone()) else {
        return Ok(None);
    };
    let tombstone = Record::tombstone(above(state, &held.version));
    ops::write(peer, state, key, &tombstone).await?;
    Ok(Some(held))
}

/// A table operation: `.await` it, or `.wait()` to block on it from synchronous code.
#[must_use = "a table operation does nothing until awaited or waited on"]
pub struct TableOp<T> {
    /// The peer whose runtime runs it when waited on (`None`: the process-wide one).
    home: Option<Peer>,
    work: Pin<Box<dyn Future<Output = Result<T>> + Send>>,
}

impl<T: Send + 'static> TableOp<T> {
    /// Runs the operation and blocks this thread until it ends: for plain synchronous
    /// code. Inside async code use `.await`; on a current-thread runtime this returns
    /// [`Error::Usage`] instead of blocking the thread the operation needs.
    ///
    /// ```
    /// let peer = net::start(net::Config::default().loopback(true).port(0))?;
    /// let scores = net::Table::<u32>::new("scores");
    /// scores.join().wait()?;
    /// scores.update([("ada", 3), ("alan", 5)]).wait()?;
    /// assert_eq!(scores.len().wait()?, 2);
    /// assert_eq!(scores.copy().wait()?.get(&net::TableKey::from("alan")), Some(&5));
    /// # drop(peer);
    /// # Ok::<(), net::Error>(())
    /// ```
    pub fn wait(self) -> Result<T> {
        let home = self.home;
        crate::call::block_on(move || home.map_or_else(peer::local_peer, Ok), self.work)?
    }
}

impl<T> IntoFuture for TableOp<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        self.work
    }
}

impl<T> fmt::Debug for TableOp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableOp").finish_non_exhaustive()
    }
}
