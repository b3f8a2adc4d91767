//! The replicas one member holds: in memory by default (as py2p's), in a redb file when
//! NET_TABLE_DIR is set; with the bucket digests kept up to date beside them.

mod disk;

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::digest::BucketDigests;
use super::error::TableError;
use super::ids::Key;
use super::placement::{bucket_of, Bucket};
use super::record::Record;
use super::version::Version;

/// Where a record lives: its bucket (2 bytes, big-endian) then its key's bytes, so that
/// a bucket is one contiguous range in either backend.
type Slot = Vec<u8>;

fn slot(bucket: Bucket, key: &Key) -> Slot {
    let mut slot = Vec::with_capacity(2 + key.as_bytes().len());
    slot.extend_from_slice(&bucket.index().to_be_bytes());
    slot.extend_from_slice(key.as_bytes());
    slot
}

/// The key of a slot (whatever follows the bucket).
fn slot_key(slot: &[u8]) -> Key {
    Key::from(slot.get(2..).unwrap_or_default())
}

/// The slot range of one bucket.
fn bucket_range(bucket: Bucket) -> (Slot, Slot) {
    let from = bucket.index();
    // BUCKETS < u16::MAX, so the bound after the last bucket still fits.
    (
        from.to_be_bytes().to_vec(),
        (from + 1).to_be_bytes().to_vec(),
    )
}

/// The store's name in the meta table for the last time its member was alive.
const ALIVE_AT: &str = "alive_at";

/// The store's name in the meta table for its member's id (64 random bits).
const MEMBER_ID: &str = "member_id";

/// The store's name in the blobs table for the members its member last knew.
const VIEW: &str = "view";

enum Backend {
    Memory(BTreeMap<Slot, Record>),
    Disk(disk::Disk),
}

/// One member's replicas of one table.
pub struct Store {
    /// Where the records are.
    backend: Backend,
    /// Bucket digests of what is held, for anti-entropy without a scan; rebuilt from the
    /// records when a file is opened.
    digests: BucketDigests,
    /// Records that hold a value (not tombstones): `len` without a scan.
    live: usize,
    /// When the member was last alive, in memory for the memory backend.
    alive_at: Option<u64>,
}

impl Store {
    /// An empty store in memory.
    pub fn memory() -> Store {
        Store {
            backend: Backend::Memory(BTreeMap::new()),
            digests: BucketDigests::default(),
            live: 0,
            alive_at: None,
        }
    }

    /// The file of `table` in `dir` (NET_TABLE_DIR): the table name with every byte but
    /// ASCII letters, digits, `-` and `_` escaped, so that any name is one safe file name.
    pub fn file_in(dir: &Path, table: &str) -> PathBuf {
        let mut name = String::with_capacity(table.len() + 5);
        for byte in table.bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => name.push(byte as char),
                other => name.push_str(&format!("%{other:02X}")),
            }
        }
        name.push_str(".redb");
        dir.join(name)
    }

    /// Opens (or creates) the store in the file `path`, creating its directory. What was
    /// committed before is there again.
    pub fn open(path: &Path) -> Result<Store, TableError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| TableError::Store {
                path: dir.display().to_string(),
                action: "create the directory",
                reason: e.to_string(),
                source: Some(std::sync::Arc::new(e)),
            })?;
        }
        let disk = disk::Disk::open(path)?;
        let mut store = Store {
            alive_at: disk.meta(ALIVE_AT)?,
            backend: Backend::Disk(disk),
            digests: BucketDigests::default(),
            live: 0,
        };
        for (key, record) in store.records()? {
            store.count_in(&key, &record);
        }
        Ok(store)
    }

    /// The file, or `memory`: for messages.
    pub fn location(&self) -> &str {
        match &self.backend {
            Backend::Memory(_) => "memory",
            Backend::Disk(disk) => disk.path(),
        }
    }

    /// The record held for `key`, tombstones included.
    pub fn get(&self, key: &Key) -> Result<Option<Record>, TableError> {
        let slot = slot(bucket_of(key), key);
        match &self.backend {
            Backend::Memory(map) => Ok(map.get(&slot).cloned()),
            Backend::Disk(disk) => disk.get(&slot),
        }
    }

    /// Keeps `record` for `key` if it is newer than what is held; returns whether it was.
    #[cfg_attr(not(test), allow(dead_code))] // the tests' own view of it
    pub fn apply(&mut self, key: &Key, record: Record) -> Result<bool, TableError> {
        Ok(self.apply_all(vec![(key.clone(), record)])? == 1)
    }

    /// Applies many records in one transaction (one disk commit); returns how many were
    /// newer than what was held. Within the batch, the newest record of a key wins.
    pub fn apply_all(&mut self, records: Vec<(Key, Record)>) -> Result<usize, TableError> {
        // What each touched slot holds now, before and during the batch.
        let mut held: BTreeMap<Slot, (Key, Option<Record>, Option<Record>)> = BTreeMap::new();
        for (key, record) in records {
            let (_, _, now) = match held.entry(slot(bucket_of(&key), &key)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let before = match &self.backend {
                        Backend::Memory(map) => map.get(entry.key()).cloned(),
                        Backend::Disk(disk) => disk.get(entry.key())?,
                    };
                    entry.insert((key, before.clone(), before))
                }
            };
            if record.supersedes(now.as_ref()) {
                *now = Some(record);
            }
        }
        let changed: Vec<(Key, Option<Record>, Record)> = held
            .into_values()
            .filter_map(|(key, before, now)| match now {
                Some(now) if Some(&now) != before.as_ref() => Some((key, before, now)),
                _ => None,
            })
            .collect();
        let writes: Vec<(Slot, Option<Record>)> = changed
            .iter()
            .map(|(key, _, now)| (slot(bucket_of(key), key), Some(now.clone())))
            .collect();
        self.write(writes)?;
        for (key, before, now) in &changed {
            if let Some(before) = before {
                self.count_out(key, before);
            }
            self.count_in(key, now);
        }
        Ok(changed.len())
    }

    /// The records of `bucket`, sorted by key.
    pub fn bucket(&self, bucket: Bucket) -> Result<Vec<(Key, Record)>, TableError> {
        let (from, to) = bucket_range(bucket);
        match &self.backend {
            Backend::Memory(map) => Ok(map
                .range(from..to)
                .map(|(slot, record)| (slot_key(slot), record.clone()))
                .collect()),
            Backend::Disk(disk) => disk.range(Some((from, to))),
        }
    }

    /// The (key, version) pairs of `bucket`, sorted by key: anti-entropy's step (3).
    pub fn versions(&self, bucket: Bucket) -> Result<Vec<(Key, Version)>, TableError> {
        Ok(self
            .bucket(bucket)?
            .into_iter()
            .map(|(key, record)| (key, record.version))
            .collect())
    }

    /// Every record, by bucket then key.
    pub fn records(&self) -> Result<Vec<(Key, Record)>, TableError> {
        match &self.backend {
            Backend::Memory(map) => Ok(map
                .iter()
                .map(|(slot, record)| (slot_key(slot), record.clone()))
                .collect()),
            Backend::Disk(disk) => disk.range(None),
        }
    }

    /// How many keys hold a value here (tombstones not counted).
    pub fn live_len(&self) -> usize {
        self.live
    }

    /// The bucket digests of what is held.
    pub fn digests(&self) -> &BucketDigests {
        &self.digests
    }

    /// Removes the tombstones older than `grace` at `now_millis` (see
    /// [`TOMBSTONE_GRACE`](super::record::TOMBSTONE_GRACE)); returns how many.
    pub fn collect_tombstones(
        &mut self,
        now_millis: u64,
        grace: Duration,
    ) -> Result<usize, TableError> {
        let expired: Vec<(Key, Record)> = self
            .records()?
            .into_iter()
            .filter(|(_, record)| record.is_expired_tombstone(now_millis, grace))
            .collect();
        self.remove(expired)
    }

    /// Removes every record of `bucket`: after its records were handed to the members
    /// that now hold it. Returns how many.
    pub fn drop_bucket(&mut self, bucket: Bucket) -> Result<usize, TableError> {
        let records = self.bucket(bucket)?;
        self.remove(records)
    }

    /// Removes every record: a member that was away longer than the tombstone grace
    /// rejoins empty (module docs).
    pub fn clear(&mut self) -> Result<usize, TableError> {
        let records = self.records()?;
        self.remove(records)
    }

    /// Records that the member is alive at `now_millis` (durably, on disk).
    pub fn mark_alive(&mut self, now_millis: u64) -> Result<(), TableError> {
        if let Backend::Disk(disk) = &self.backend {
            disk.set_meta(ALIVE_AT, now_millis)?;
        }
        self.alive_at = Some(now_millis);
        Ok(())
    }

    /// The id of the member whose replicas these are, if one was kept (on disk only: in
    /// memory every start is a new member).
    pub fn member_id(&self) -> Result<Option<u64>, TableError> {
        match &self.backend {
            Backend::Disk(disk) => disk.meta(MEMBER_ID),
            Backend::Memory(_) => Ok(None),
        }
    }

    /// Keeps the member's id (durably, on disk).
    pub fn set_member_id(&mut self, id: u64) -> Result<(), TableError> {
        match &self.backend {
            Backend::Disk(disk) => disk.set_meta(MEMBER_ID, id),
            Backend::Memory(_) => Ok(()),
        }
    }

    /// The members the member last knew, as saved by [`Store::save_view`].
    pub fn saved_view(&self) -> Result<Option<Vec<u8>>, TableError> {
        match &self.backend {
            Backend::Disk(disk) => disk.blob(VIEW),
            Backend::Memory(_) => Ok(None),
        }
    }

    /// Keeps the members the member knows (durably, on disk; nothing in memory).
    pub fn save_view(&mut self, view: &[u8]) -> Result<(), TableError> {
        match &self.backend {
            Backend::Disk(disk) => disk.set_blob(VIEW, view),
            Backend::Memory(_) => Ok(()),
        }
    }

    /// Whether the replicas are on disk (so store work belongs off the async workers).
    pub fn is_disk(&self) -> bool {
        matches!(self.backend, Backend::Disk(_))
    }

    /// How long before `now_millis` the member was last marked alive; `None` if never.
    pub fn away_for(&self, now_millis: u64) -> Option<Duration> {
        self.alive_at
            .map(|at| Duration::from_millis(now_millis.saturating_sub(at)))
    }

    fn remove(&mut self, records: Vec<(Key, Record)>) -> Result<usize, TableError> {
        let writes = records
            .iter()
            .map(|(key, _)| (slot(bucket_of(key), key), None))
            .collect();
        self.write(writes)?;
        for (key, record) in &records {
            self.count_out(key, record);
        }
        Ok(records.len())
    }

    fn write(&mut self, changes: Vec<(Slot, Option<Record>)>) -> Result<(), TableError> {
        if changes.is_empty() {
            return Ok(());
        }
        match &mut self.backend {
            Backend::Memory(map) => {
                for (slot, record) in changes {
                    match record {
                        Some(record) => map.insert(slot, record),
                        None => map.remove(&slot),
                    };
                }
                Ok(())
            }
            Backend::Disk(disk) => disk.write(&changes),
        }
    }

    fn count_in(&mut self, key: &Key, record: &Record) {
        self.digests.add(bucket_of(key), key, &record.version);
        self.live += usize::from(!record.is_tombstone());
    }

    fn count_out(&mut self, key: &Key, record: &Record) {
        self.digests.remove(bucket_of(key), key, &record.version);
        self.live -= usize::from(!record.is_tombstone());
    }
}

/// Directories for tests that open stores, removed when dropped.
#[cfg(test)]
pub(super) mod testdir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temporary directory.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("net-table-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TempDir;
    use super::*;
    use crate::table::ids::MemberId;
    use crate::table::version::Clock;
    use std::sync::Arc;

    fn v(millis: u64, writer: &str) -> Version {
        Version {
            millis,
            counter: 0,
            writer: MemberId::from(writer),
        }
    }

    fn value(millis: u64, x: i64) -> Record {
        Record::encode(&Key::from("-"), v(millis, "w"), &x).expect("a number encodes")
    }

    fn number(store: &Store, key: &str) -> Option<i64> {
        let key = Key::from(key);
        store
            .get(&key)
            .expect("reads")
            .and_then(|r| r.decode(&key).expect("a number"))
    }

    /// Both backends, for tests that must hold for each.
    fn both(name: &str) -> Vec<(Store, Option<TempDir>)> {
        let dir = TempDir::new(name);
        let disk = Store::open(&Store::file_in(dir.path(), name)).expect("opens");
        vec![(Store::memory(), None), (disk, Some(dir))]
    }

    #[test]
    fn only_newer_records_are_applied() {
        for (mut store, _dir) in both("newer") {
            let key = Key::from("k");
            assert!(store.apply(&key, value(5, 1)).expect("applies"));
            assert!(
                !store.apply(&key, value(4, 2)).expect("older"),
                "{}",
                store.location()
            );
            assert!(
                !store.apply(&key, value(5, 1)).expect("same"),
                "the same write twice"
            );
            assert_eq!(number(&store, "k"), Some(1));
            assert!(store.apply(&key, value(6, 3)).expect("newer"));
            assert_eq!(number(&store, "k"), Some(3));
            assert_eq!(store.live_len(), 1);
        }
    }

    #[test]
    fn a_tombstone_keeps_an_older_value_from_coming_back() {
        for (mut store, _dir) in both("tombstone") {
            let key = Key::from("k");
            store.apply(&key, value(5, 1)).expect("applies");
            assert!(store
                .apply(&key, Record::tombstone(v(6, "p")))
                .expect("pops"));
            assert_eq!(store.live_len(), 0);
            // A replica that missed the pop offers its old value again:
            assert!(!store.apply(&key, value(5, 1)).expect("refused"));
            assert_eq!(number(&store, "k"), None);
            assert!(store
                .get(&key)
                .expect("reads")
                .is_some_and(|r| r.is_tombstone()));
        }
    }

    #[test]
    fn a_batch_keeps_the_newest_of_each_key_and_counts_changes() {
        for (mut store, _dir) in both("batch") {
            store.apply(&Key::from("a"), value(10, 0)).expect("applies");
            let changed = store
                .apply_all(vec![
                    (Key::from("a"), value(9, 1)),
                    (Key::from("b"), value(3, 2)),
                    (Key::from("b"), value(7, 3)),
                    (Key::from("b"), value(5, 4)),
                    (Key::from("c"), Record::tombstone(v(1, "w"))),
                ])
                .expect("applies");
            assert_eq!(changed, 2, "b and c");
            assert_eq!(number(&store, "a"), Some(0));
            assert_eq!(number(&store, "b"), Some(3));
            assert_eq!(store.live_len(), 2);
        }
    }

    #[test]
    fn buckets_list_their_records_and_digests_follow_every_change() {
        for (mut store, _dir) in both("buckets") {
            let keys: Vec<Key> = (0..300).map(|i| Key::from(format!("key-{i}"))).collect();
            let batch = keys.iter().map(|k| (k.clone(), value(1, 1))).collect();
            store.apply_all(batch).expect("applies");
            let mut listed = 0;
            for bucket in Bucket::all() {
                let records = store.bucket(bucket).expect("lists");
                assert!(records.iter().all(|(k, _)| bucket_of(k) == bucket));
                assert!(records.windows(2).all(|w| w[0].0 < w[1].0), "sorted by key");
                assert_eq!(store.digests().get(bucket).count as usize, records.len());
                listed += records.len();
            }
            assert_eq!(listed, 300);

            // The same content reached by another path has the same digests.
            let mut other = Store::memory();
            for key in keys.iter().rev() {
                other.apply(key, value(0, 9)).expect("applies");
                other.apply(key, value(1, 1)).expect("applies");
            }
            assert_eq!(other.digests(), store.digests());
            store.apply(&keys[0], value(2, 2)).expect("applies");
            assert_ne!(other.digests(), store.digests());
        }
    }

    #[test]
    fn old_tombstones_are_collected_and_buckets_dropped() {
        for (mut store, _dir) in both("gc") {
            let grace = Duration::from_secs(60);
            store
                .apply(&Key::from("old"), Record::tombstone(v(1_000, "w")))
                .expect("applies");
            store
                .apply(&Key::from("new"), Record::tombstone(v(100_000, "w")))
                .expect("applies");
            store
                .apply(&Key::from("live"), value(1_000, 1))
                .expect("applies");
            assert_eq!(
                store.collect_tombstones(100_500, grace).expect("collects"),
                1
            );
            assert!(store.get(&Key::from("old")).expect("reads").is_none());
            assert!(store.get(&Key::from("new")).expect("reads").is_some());
            assert_eq!(number(&store, "live"), Some(1));

            let bucket = bucket_of(&Key::from("live"));
            assert_eq!(store.drop_bucket(bucket).expect("drops"), 1);
            assert!(store.digests().get(bucket).is_empty());
            assert_eq!(store.live_len(), 0);
            assert_eq!(store.clear().expect("clears"), 1);
            assert!(store.records().expect("lists").is_empty());
        }
    }

    #[test]
    fn a_reopened_file_has_what_was_committed() {
        let dir = TempDir::new("reopen");
        let path = Store::file_in(dir.path(), "users");
        let digests = {
            let mut store = Store::open(&path).expect("creates");
            for i in 0..50 {
                store
                    .apply(&Key::from(format!("k{i}")), value(1, i))
                    .expect("applies");
            }
            store
                .apply(&Key::from("k7"), Record::tombstone(v(2, "p")))
                .expect("pops");
            store.mark_alive(123_456).expect("marks");
            store.digests().clone()
        }; // dropped: the file is closed
        let store = Store::open(&path).expect("reopens");
        assert_eq!(store.live_len(), 49);
        assert_eq!(number(&store, "k3"), Some(3));
        assert_eq!(number(&store, "k7"), None);
        assert_eq!(store.digests(), &digests, "digests rebuilt from the file");
        assert_eq!(store.away_for(123_556), Some(Duration::from_millis(100)));
    }

    #[test]
    fn the_member_id_and_view_survive_a_reopen_on_disk_only() {
        let dir = TempDir::new("identity");
        let path = Store::file_in(dir.path(), "t");
        {
            let mut store = Store::open(&path).expect("creates");
            assert_eq!(store.member_id().expect("reads"), None);
            store.set_member_id(42).expect("writes");
            store.save_view(b"[1,2]").expect("writes");
        }
        let store = Store::open(&path).expect("reopens");
        assert_eq!(store.member_id().expect("reads"), Some(42));
        assert_eq!(
            store.saved_view().expect("reads").as_deref(),
            Some(&b"[1,2]"[..])
        );
        let mut memory = Store::memory();
        memory.set_member_id(7).expect("no-op");
        assert_eq!(memory.member_id().expect("reads"), None);
    }

    #[test]
    fn two_stores_cannot_share_a_file() {
        let dir = TempDir::new("locked");
        let path = Store::file_in(dir.path(), "t");
        let _first = Store::open(&path).expect("opens");
        let err = Store::open(&path).err().expect("the file is in use");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("NET_TABLE_DIR"),
            "{text}"
        );
    }

    #[test]
    fn an_unusable_directory_is_named() {
        let dir = TempDir::new("notadir");
        std::fs::create_dir_all(dir.path()).expect("makes the directory");
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").expect("writes");
        let err = Store::open(&file.join("t.redb"))
            .err()
            .expect("a file is not a directory");
        assert!(err.to_string().contains("plain-file"), "{err}");
    }

    #[test]
    fn table_names_become_safe_file_names() {
        let dir = Path::new("/data");
        assert_eq!(
            Store::file_in(dir, "users_v2-x"),
            Path::new("/data/users_v2-x.redb")
        );
        assert_eq!(
            Store::file_in(dir, "../etc/x"),
            Path::new("/data/%2E%2E%2Fetc%2Fx.redb")
        );
        assert_eq!(Store::file_in(dir, "é"), Path::new("/data/%C3%A9.redb"));
    }

    /// Writers racing on one key, each on its own clock (skewed, some frozen), and three
    /// replicas receiving every write in a different order: all replicas end alike, on
    /// the greatest version.
    #[test]
    fn racing_writers_resolve_alike_on_every_replica() {
        let writers = 6;
        let clocks: Vec<Arc<Clock>> = (0..writers)
            .map(|w| {
                let skew = w as u64 * 3;
                let id = MemberId::from(format!("writer-{w}"));
                Arc::new(if w % 2 == 0 {
                    Clock::with_wall(id, move || 1_000 + skew)
                } else {
                    Clock::new(id)
                })
            })
            .collect();
        let key = Key::from("contested");
        let threads: Vec<_> = clocks
            .iter()
            .enumerate()
            .map(|(w, clock)| {
                let (clock, key) = (clock.clone(), key.clone());
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| Record::encode(&key, clock.tick(), &(w, i)).expect("encodes"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut writes: Vec<Record> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("writers do not panic"))
            .collect();
        let newest = writes
            .iter()
            .map(|r| r.version.clone())
            .max()
            .expect("writes");

        let mut replicas = [Store::memory(), Store::memory(), Store::memory()];
        for (n, replica) in replicas.iter_mut().enumerate() {
            // A different, deterministic order per replica.
            writes.rotate_left(97 * (n + 1));
            if n == 1 {
                writes.reverse();
            }
            for record in &writes {
                replica.apply(&key, record.clone()).expect("applies");
            }
        }
        let held: Vec<Record> = replicas
            .iter()
            .map(|r| r.get(&key).expect("reads").expect("held"))
            .collect();
        assert!(held.iter().all(|r| r.version == newest), "{held:?}");
        assert!(held.windows(2).all(|w| w[0] == w[1]));
    }
}
