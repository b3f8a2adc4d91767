//! What a peer holds for its tables: per name, the table's terms, clock and view, and
//! while it is a member, its replicas and the buckets it is still receiving.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::error::TableError;
use super::health::Health;
use super::ids::{random_bits, MemberId};
use super::placement::{Bucket, Placement};
use super::store::Store;
use super::terms::Terms;
use super::version::{system_millis, Clock};
use super::view::{Entry, View};
use crate::peer::{Peer, Service};
use crate::sync::lock;

/// How often the members' background work runs, and how long it waits: constants in a
/// struct so that tests can slow one part down to watch another.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The period of a member's background loop (heartbeats, pending syncs, handoff).
    pub tick: Duration,
    /// How long a member's calls must have failed before it is dropped from the view
    /// (and at least three calls in a row).
    pub dead_after: Duration,
    /// How often a member compares its replicas with one co-owner in turn.
    pub sync_every: Duration,
    /// The longest any of the table's own background calls may take.
    pub call_timeout: Duration,
    /// How long a heartbeat waits for its answer: a member on the LAN answers in a
    /// millisecond; one that does not within this is failing.
    pub heartbeat: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            tick: Duration::from_millis(250),
            dead_after: Duration::from_millis(1500),
            sync_every: Duration::from_secs(1),
            call_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_millis(750),
        }
    }
}

/// A peer's tables, by name.
pub struct Tables {
    /// The tables this peer has used (joined or not).
    by_name: Mutex<HashMap<String, Arc<TableState>>>,
    /// The background timing of tables joined from now on.
    pub timing: Mutex<Timing>,
}

impl Service for Tables {
    fn new(_peer: &Peer) -> Tables {
        Tables {
            by_name: Mutex::new(HashMap::new()),
            timing: Mutex::new(Timing::default()),
        }
    }
}

impl Peer {
    /// This peer's tables.
    pub(crate) fn tables(&self) -> Arc<Tables> {
        self.service::<Tables>()
    }
}

impl Tables {
    /// The table `name` if this peer has used it (calls from other peers never make one:
    /// a stranger cannot grow this map).
    pub fn get(&self, name: &str) -> Option<Arc<TableState>> {
        lock(&self.by_name).get(name).cloned()
    }

    /// The table `name`, made on first use.
    pub fn get_or_make(&self, peer: &Peer, name: &str) -> Arc<TableState> {
        lock(&self.by_name)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(TableState::new(peer, name)))
            .clone()
    }

    /// Every table this peer is a member of.
    pub fn joined(&self) -> Vec<Arc<TableState>> {
        lock(&self.by_name)
            .values()
            .filter(|t| t.member().is_some())
            .cloned()
            .collect()
    }
}

/// One table as one peer knows it.
pub struct TableState {
    /// Its name.
    pub name: String,
    /// Its terms (this peer's NET_TABLE_REPLICAS and this build's protocol).
    pub terms: Terms,
    /// Stamps this peer's writes (a random writer id: writers need not be members).
    pub clock: Clock,
    /// The members: this member's own view, or a non-member's copy of one.
    pub view: Mutex<View>,
    /// Set while this peer is a member.
    member: Mutex<Option<Arc<Member>>>,
    /// How calls to each member have been going.
    pub health: Health,
    /// Held by join and unjoin, so that they never overlap.
    pub joining: tokio::sync::Mutex<()>,
    /// A non-member's copy of the view wants refreshing (a call failed, a member answered
    /// with another view).
    pub stale: AtomicBool,
    /// When a non-member's copy was last refreshed: it is refreshed again when older than
    /// a couple of seconds, so a peer that never hears of a change still catches up.
    pub refreshed: Mutex<Option<std::time::Instant>>,
    /// The reads and writes on their way to each replica.
    pub lanes: super::lanes::Lanes,
    /// Reads so far, which rotate the majority a read under load asks (`ops.rs`).
    pub reads: std::sync::atomic::AtomicUsize,
}

impl TableState {
    fn new(peer: &Peer, name: &str) -> TableState {
        let terms = Terms::new(peer.config().table_replicas);
        TableState {
            name: name.to_owned(),
            terms,
            clock: Clock::new(MemberId::from_bits(random_bits())),
            view: Mutex::new(View::new(terms)),
            member: Mutex::new(None),
            health: Health::default(),
            joining: tokio::sync::Mutex::new(()),
            stale: AtomicBool::new(true),
            refreshed: Mutex::new(None),
            lanes: super::lanes::Lanes::default(),
            reads: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The member state, while this peer is one.
    pub fn member(&self) -> Option<Arc<Member>> {
        lock(&self.member).clone()
    }

    /// Becomes (`Some`) or stops being (`None`) a member.
    pub fn set_member(&self, member: Option<Arc<Member>>) {
        *lock(&self.member) = member;
    }

    /// Changes the view with `change` (which says whether it changed anything). When it
    /// did and this peer is a member, the buckets it gained wait for their old owners'
    /// data, and if the view says this member is gone (the others dropped it while it
    /// was cut off), it comes back under a new incarnation and waits for all of its
    /// buckets. Returns whether the view changed.
    pub fn update_view(&self, change: impl FnOnce(&mut View) -> bool) -> bool {
        let member = self.member();
        let mut view = lock(&self.view);
        let before = view.placement();
        if !change(&mut view) {
            return false;
        }
        if let Some(member) = member {
            let back = member.refute(&mut view);
            let old = if back {
                Arc::new(view.placement_without(&member.id))
            } else {
                before
            };
            member.follow(&view, &old);
            member.view_dirty.store(true, Ordering::Relaxed);
        }
        true
    }
}

/// A member's own state of one table.
pub struct Member {
    /// Its id in the table.
    pub id: MemberId,
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its current incarnation (raised when it comes back after being dropped).
    incarnation: AtomicU64,
    /// Its replicas.
    pub replicas: Replicas,
    /// Buckets it gained and is still receiving: from which old owners it has yet to
    /// take them. It holds such a bucket, but its answers do not count for reads.
    pub pending: Mutex<BTreeMap<Bucket, BTreeSet<MemberId>>>,
    /// Cancelled by unjoin or shutdown: ends the background loop.
    pub stop: CancellationToken,
    /// Set when the view changed, so the loop saves it (with NET_TABLE_DIR).
    pub view_dirty: AtomicBool,
    /// Set when the member must tell everyone about itself again (it came back).
    pub announce: AtomicBool,
    /// Set while it unjoins: it takes no buckets from others (`handlers::syncing`).
    pub leaving: AtomicBool,
}

impl Member {
    /// A member `id` at `addr`, joining now, over `store`.
    pub fn new(id: MemberId, addr: SocketAddr, store: Store, incarnation: u64) -> Member {
        Member {
            id,
            addr,
            incarnation: AtomicU64::new(incarnation),
            replicas: Replicas::new(store),
            pending: Mutex::new(BTreeMap::new()),
            stop: CancellationToken::new(),
            view_dirty: AtomicBool::new(true),
            announce: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
        }
    }

    /// Its current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation.load(Ordering::Relaxed)
    }

    /// Its own entry, alive.
    pub fn entry(&self) -> Entry {
        Entry {
            addr: self.addr,
            incarnation: self.incarnation(),
            alive: true,
        }
    }

    /// Whether it holds all of `bucket` (it is not still receiving it).
    pub fn ready(&self, bucket: Bucket) -> bool {
        !lock(&self.pending).contains_key(&bucket)
    }

    /// If `view` lists this member dead (or under an older life), comes back alive
    /// under a higher incarnation; returns whether it did.
    fn refute(&self, view: &mut View) -> bool {
        let mine = self.incarnation();
        match view.entry(&self.id) {
            Some(e) if e.alive && e.incarnation == mine && e.addr == self.addr => false,
            seen => {
                let past = seen.map_or(mine, |e| e.incarnation.max(mine));
                let incarnation = system_millis().max(past + 1);
                self.incarnation.store(incarnation, Ordering::Relaxed);
                view.merge(self.id.clone(), self.entry());
                self.announce.store(true, Ordering::Relaxed);
                tracing::info!(member = %self.id, incarnation, "back in the table's view");
                true
            }
        }
    }

    /// After a view change from placement `old`: the buckets it gained wait for their
    /// old owners that are still alive; the buckets it lost and members that left are
    /// forgotten by the pending set.
    pub fn follow(&self, view: &View, old: &Placement) {
        let new = view.placement();
        let mut pending = lock(&self.pending);
        for change in old.changes(&new).changes {
            if change.gained.contains(&self.id) {
                let from: BTreeSet<MemberId> = old
                    .bucket_owners(change.bucket)
                    .filter(|m| **m != self.id && view.is_alive(m))
                    .cloned()
                    .collect();
                pending.entry(change.bucket).or_default().extend(from);
            }
            if change.lost.contains(&self.id) {
                pending.remove(&change.bucket);
            }
        }
        pending.retain(|_, from| {
            from.retain(|m| view.is_alive(m));
            !from.is_empty()
        });
    }
}

/// A member's store, used from async code: in memory under a short lock, on disk on the
/// handler threads (a commit waits for the disk).
pub struct Replicas {
    /// The store; a std mutex, held only for one store operation.
    store: Arc<Mutex<Store>>,
    /// Whether the store is on disk.
    disk: bool,
    /// Where it is, for errors.
    location: String,
}

impl Replicas {
    fn new(store: Store) -> Replicas {
        Replicas {
            disk: store.is_disk(),
            location: store.location().to_owned(),
            store: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `work` on the store: at once in memory, on a handler thread on disk.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        if !self.disk {
            return work(&mut lock(&self.store));
        }
        let store = self.store.clone();
        let location = self.location.clone();
        crate::serve::blocking(move || work(&mut lock(&store)))
            .await
            .unwrap_or_else(|panic| {
                Err(TableError::Store {
                    path: location,
                    action: "run a store operation",
                    reason: panic,
                    source: None,
                })
            })
    }

    /// Reads what the store keeps in memory (digests, counts) without waiting for a disk.
    pub fn peek<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        read(&lock(&self.store))
    }
}
