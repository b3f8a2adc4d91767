//! The replicas of one member in a redb database file: one table of records keyed by
//! bucket and key, one of metadata.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use super::super::error::TableError;
use super::super::ids::Key;
use super::super::placement::bucket_of;
use super::super::record::Record;
use super::{slot_key, Slot};

/// Records by slot (bucket, big-endian, then the key's bytes): a bucket is one range.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");

/// Numbers about the file: its layout version, its member's id, and when its member was
/// last alive.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Larger things about the file: the members its member last knew (JSON), so that a
/// restarted member looks for them, and cannot make a table of its own while they are
/// unreachable.
const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");

/// The layout of this file (tables, slot and record forms). Refused when different.
const LAYOUT: u64 = 1;

/// One member's database file.
pub(super) struct Disk {
    /// The open database; redb holds an exclusive lock on the file while it is open.
    db: Database,
    /// The file's path, for error messages.
    path: String,
}

impl Disk {
    /// Opens (or creates) the database at `path`, checking its layout.
    pub(super) fn open(path: &Path) -> Result<Disk, TableError> {
        let shown = path.display().to_string();
        let db = Database::create(path).map_err(|e| store_err(&shown, "open", e))?;
        let disk = Disk { db, path: shown };
        let txn = disk.begin_write("open")?;
        {
            txn.open_table(RECORDS)
                .map_err(|e| disk.err("create the records table", e))?;
            txn.open_table(BLOBS)
                .map_err(|e| disk.err("create the blobs table", e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| disk.err("create the meta table", e))?;
            let layout = meta
                .get("layout")
                .map_err(|e| disk.err("read the layout", e))?
                .map(|v| v.value());
            match layout {
                None => {
                    meta.insert("layout", LAYOUT)
                        .map_err(|e| disk.err("write the layout", e))?;
                }
                Some(LAYOUT) => {}
                Some(other) => {
                    return Err(TableError::Store {
                        path: disk.path.clone(),
                        action: "open",
                        reason: format!(
                            "the file has layout {other}, this build reads layout {LAYOUT}"
                        ),
                        source: None,
                    })
                }
            }
        }
        txn.commit().map_err(|e| disk.err("commit", e))?;
        Ok(disk)
    }

    /// The file's path.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The record in `slot`.
    pub(super) fn get(&self, slot: &Slot) -> Result<Option<Record>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err("read", e))?;
        let found = table
            .get(slot.as_slice())
            .map_err(|e| self.err("read", e))?;
        found
            .map(|bytes| self.decode(slot, bytes.value()))
            .transpose()
    }

    /// The records whose slots lie in `from..to` (every record with `None`), in order.
    pub(super) fn range(
        &self,
        bounds: Option<(Slot, Slot)>,
    ) -> Result<Vec<(Key, Record)>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err("read", e))?;
        let rows = match &bounds {
            Some((from, to)) => table.range(from.as_slice()..to.as_slice()),
            None => table.range::<&[u8]>(..),
        }
        .map_err(|e| self.err("scan", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (slot, bytes) = row.map_err(|e| self.err("scan", e))?;
            let slot = slot.value().to_vec();
            let record = self.decode(&slot, bytes.value())?;
            out.push((slot_key(&slot), record));
        }
        Ok(out)
    }

    /// Writes (`Some`) or removes (`None`) records in one transaction, durable when this
    /// returns.
    pub(super) fn write(&self, changes: &[(Slot, Option<Record>)]) -> Result<(), TableError> {
        let txn = self.begin_write("write")?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| self.err("write", e))?;
            for (slot, record) in changes {
                match record {
                    Some(record) => table
                        .insert(slot.as_slice(), record.to_bytes().as_slice())
                        .map(drop),
                    None => table.remove(slot.as_slice()).map(drop),
                }
                .map_err(|e| self.err("write", e))?;
            }
        }
        txn.commit().map_err(|e| self.err("commit a write", e))
    }

    /// A number from the meta table.
    pub(super) fn meta(&self, name: &str) -> Result<Option<u64>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = txn.open_table(META).map_err(|e| self.err("read", e))?;
        let value = table.get(name).map_err(|e| self.err("read", e))?;
        Ok(value.map(|v| v.value()))
    }

    /// Sets a number in the meta table, durably.
    pub(super) fn set_meta(&self, name: &str, value: u64) -> Result<(), TableError> {
        let txn = self.begin_write("write")?;
        {
            let mut table = txn.open_table(META).map_err(|e| self.err("write", e))?;
            table
                .insert(name, value)
                .map_err(|e| self.err("write", e))?;
        }
        txn.commit().map_err(|e| self.err("commit", e))
    }

    /// A blob from the blobs table.
    pub(super) fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, TableError> {
        let txn = self.db.begin_read().map_err(|e| self.err("read", e))?;
        let table = txn.open_table(BLOBS).map_err(|e| self.err("read", e))?;
        let value = table.get(name).map_err(|e| self.err("read", e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Sets a blob in the blobs table, durably.
    pub(super) fn set_blob(&self, name: &str, value: &[u8]) -> Result<(), TableError> {
        let txn = self.begin_write("write")?;
        {
            let mut table = txn.open_table(BLOBS).map_err(|e| self.err("write", e))?;
            table
                .insert(name, value)
                .map_err(|e| self.err("write", e))?;
        }
        txn.commit().map_err(|e| self.err("commit", e))
    }

    fn begin_write(&self, action: &'static str) -> Result<redb::WriteTransaction, TableError> {
        self.db.begin_write().map_err(|e| self.err(action, e))
    }

    fn decode(&self, slot: &[u8], bytes: &[u8]) -> Result<Record, TableError> {
        let key = slot_key(slot);
        let corrupt = |reason| TableError::Corrupt {
            path: self.path.clone(),
            key: key.clone(),
            reason,
        };
        // A slot under the wrong bucket would hide the record from its bucket's scans
        // and digests: a file of another table protocol, or damage.
        let stored = slot.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let hashed = bucket_of(&key).index();
        if stored != Some(hashed) {
            return Err(corrupt(format!(
                "stored under bucket {stored:?}, but the key hashes to bucket {hashed}"
            )));
        }
        Record::from_bytes(bytes).map_err(corrupt)
    }

    fn err(&self, action: &'static str, e: impl Into<redb::Error>) -> TableError {
        store_err(&self.path, action, e)
    }
}

fn store_err(path: &str, action: &'static str, e: impl Into<redb::Error>) -> TableError {
    let error: redb::Error = e.into();
    let reason = match &error {
        redb::Error::DatabaseAlreadyOpen => {
            "another process has the file open: two members cannot share NET_TABLE_DIR; give \
             each its own"
                .to_owned()
        }
        other => other.to_string(),
    };
    TableError::Store {
        path: path.to_owned(),
        action,
        reason,
        source: Some(Arc::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdir::TempDir;
    use super::super::{slot, Store};
    use super::*;
    use crate::table::placement::Bucket;

    /// Writes raw rows into a closed store file, as damage or another build would.
    fn poke(path: &Path, slot: &[u8], bytes: &[u8], layout: Option<u64>) {
        let db = Database::create(path).expect("opens");
        let txn = db.begin_write().expect("writes");
        {
            let mut records = txn.open_table(RECORDS).expect("table");
            records.insert(slot, bytes).expect("inserts");
            if let Some(layout) = layout {
                let mut meta = txn.open_table(META).expect("table");
                meta.insert("layout", layout).expect("inserts");
            }
        }
        txn.commit().expect("commits");
    }

    #[test]
    fn a_damaged_record_is_refused_with_file_and_key() {
        let dir = TempDir::new("damaged");
        let path = Store::file_in(dir.path(), "t");
        drop(Store::open(&path).expect("creates"));
        let key = Key::from("victim");
        poke(&path, &slot(bucket_of(&key), &key), &[1, 0, 0], None);
        let err = Store::open(&path).err().expect("damaged");
        let text = err.to_string();
        assert!(
            text.contains("\"victim\"") && text.contains(&path.display().to_string()),
            "{text}"
        );
    }

    #[test]
    fn a_record_under_the_wrong_bucket_is_refused() {
        let dir = TempDir::new("misplaced");
        let path = Store::file_in(dir.path(), "t");
        drop(Store::open(&path).expect("creates"));
        let key = Key::from("k");
        let other = Bucket::new((bucket_of(&key).index() + 1) % 4096).expect("in range");
        let record = Record::tombstone(crate::table::version::Version {
            millis: 1,
            counter: 0,
            writer: "w".into(),
        });
        poke(&path, &slot(other, &key), &record.to_bytes(), None);
        let err = Store::open(&path).err().expect("misplaced");
        assert!(err.to_string().contains("hashes to bucket"), "{err}");
    }

    #[test]
    fn a_file_of_another_layout_is_refused() {
        let dir = TempDir::new("layout");
        let path = Store::file_in(dir.path(), "t");
        drop(Store::open(&path).expect("creates"));
        poke(&path, b"\0\0x", &[], Some(LAYOUT + 1));
        let err = Store::open(&path).err().expect("another layout");
        assert!(err.to_string().contains("layout 2"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = TempDir::new("garbage");
        std::fs::create_dir_all(dir.path()).expect("makes the directory");
        let path = Store::file_in(dir.path(), "t");
        std::fs::write(&path, vec![0x5a; 8192]).expect("writes");
        let err = Store::open(&path).err().expect("garbage");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}
