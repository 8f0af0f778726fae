//! A store in a redb file: what a region keeps across a real crash.
//!
//! Each [`Store::apply`] is one redb write transaction, committed with redb's default
//! durability (the file is synced before `commit` returns), so a batch is all or nothing and
//! an acknowledged batch survives a kill. Values are serde_json bytes. Three tables:
//!
//! - `meta` holds one record, the region's epoch and role. Its absence means the store was
//!   never written: a region's first batch begins with `SetRole`, in the same transaction as
//!   whatever follows it.
//! - `log` holds the log keyed by index `0, 1, …`, so that an append or a cut suffix touches
//!   only the entries concerned, not the whole log re-serialized.
//! - `quarantine` holds quarantined writes keyed by a sequence number in the order they were
//!   quarantined; they live apart from the log so that the log's indexes stay contiguous.

use std::io::ErrorKind;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use drcheck_properties::Role;
use redb::{
    Database, DatabaseError, ReadableTable, ReadableTableMetadata, StorageError, Table,
    TableDefinition,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::memory::never_written;
use super::{Durable, Store, StoreError, StoreOp};
use drcheck_protocol::entry::{Epoch, LogEntry, Quarantined};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// The key of the one record in `meta`.
const ROLE: &str = "role";

#[derive(Serialize, Deserialize)]
struct Meta {
    epoch: Epoch,
    role: Role,
}

/// A [`Store`] in a redb file.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens the store at `path`, creating the file if it is missing or empty.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        no_panic(path, || RedbStore::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(|e| open_error(path, e))?;
        let store = RedbStore {
            db,
            path: path.to_path_buf(),
        };
        // Create the tables once, so that reading never meets a missing one.
        let txn = store.db.begin_write().at(path)?;
        {
            txn.open_table(META).at(path)?;
            txn.open_table(LOG).at(path)?;
            txn.open_table(QUARANTINE).at(path)?;
        }
        txn.commit().at(path)?;
        Ok(store)
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            reason,
        }
    }

    fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|e| self.corrupt(format!("undecodable {what}: {e}")))
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(value).map_err(|e| StoreError::Io {
            path: self.path.display().to_string(),
            reason: format!("cannot encode a record: {e}"),
        })
    }

    /// The key after the last one of `table`, or 0.
    fn next_key(&self, table: &Table<u64, &[u8]>, name: &str) -> Result<u64, StoreError> {
        match table.last().at(&self.path)? {
            None => Ok(0),
            Some((key, _)) => key
                .value()
                .checked_add(1)
                .ok_or_else(|| self.corrupt(format!("{name} key {} is the largest", key.value()))),
        }
    }

    fn apply_one(
        &self,
        meta: &mut Table<&str, &[u8]>,
        log: &mut Table<u64, &[u8]>,
        quarantine: &mut Table<u64, &[u8]>,
        op: &StoreOp,
    ) -> Result<(), StoreError> {
        let path = self.path.as_path();
        match op {
            StoreOp::Append(entries) => {
                for (index, entry) in (self.next_key(log, "log")?..).zip(entries) {
                    log.insert(index, self.encode(entry)?.as_slice()).at(path)?;
                }
            }
            StoreOp::SetRole { epoch, role } => {
                let record = self.encode(&Meta {
                    epoch: *epoch,
                    role: *role,
                })?;
                meta.insert(ROLE, record.as_slice()).at(path)?;
            }
            StoreOp::QuarantineSuffix { keep } => {
                let mut suffix = Vec::new();
                for item in log.range(*keep..).at(path)? {
                    let (index, bytes) = item.at(path)?;
                    suffix.push((index.value(), bytes.value().to_vec()));
                }
                let first_seq = self.next_key(quarantine, "quarantine")?;
                for (seq, (index, bytes)) in (first_seq..).zip(suffix) {
                    log.remove(index).at(path)?;
                    let entry: LogEntry = self.decode("log entry", &bytes)?;
                    let record = self.encode(&Quarantined {
                        entry,
                        reapplied: false,
                    })?;
                    quarantine.insert(seq, record.as_slice()).at(path)?;
                }
            }
            StoreOp::Truncate { keep } => {
                let mut doomed = Vec::new();
                for item in log.range(*keep..).at(path)? {
                    doomed.push(item.at(path)?.0.value());
                }
                for index in doomed {
                    log.remove(index).at(path)?;
                }
            }
            StoreOp::MarkReapplied { write } => {
                let mut marked = Vec::new();
                for item in quarantine.iter().at(path)? {
                    let (seq, bytes) = item.at(path)?;
                    let mut q: Quarantined = self.decode("quarantined write", bytes.value())?;
                    if q.entry.write == *write && !q.reapplied {
                        q.reapplied = true;
                        marked.push((seq.value(), self.encode(&q)?));
                    }
                }
                for (seq, record) in marked {
                    quarantine.insert(seq, record.as_slice()).at(path)?;
                }
            }
        }
        Ok(())
    }

    fn load_unguarded(&self) -> Result<Option<Durable>, StoreError> {
        let path = self.path.as_path();
        let txn = self.db.begin_read().at(path)?;
        let meta = txn.open_table(META).at(path)?;
        let log_table = txn.open_table(LOG).at(path)?;
        let quarantine_table = txn.open_table(QUARANTINE).at(path)?;

        let Some(record) = meta.get(ROLE).at(path)? else {
            if !log_table.is_empty().at(path)? || !quarantine_table.is_empty().at(path)? {
                return Err(self.corrupt("a log or quarantine but no role".to_string()));
            }
            return Ok(None);
        };
        let Meta { epoch, role } = self.decode("role record", record.value())?;

        let mut log = Vec::new();
        for item in log_table.iter().at(path)? {
            let (index, bytes) = item.at(path)?;
            if index.value() != log.len() as u64 {
                return Err(self.corrupt(format!(
                    "log index {} where index {} was expected (the log has a gap)",
                    index.value(),
                    log.len()
                )));
            }
            log.push(self.decode("log entry", bytes.value())?);
        }
        let mut quarantine = Vec::new();
        for item in quarantine_table.iter().at(path)? {
            let (_, bytes) = item.at(path)?;
            quarantine.push(self.decode("quarantined write", bytes.value())?);
        }
        Ok(Some(Durable {
            epoch,
            role,
            log,
            quarantine,
        }))
    }

    fn apply_unguarded(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let txn = self.db.begin_write().at(path)?;
        {
            let mut meta = txn.open_table(META).at(path)?;
            let mut log = txn.open_table(LOG).at(path)?;
            let mut quarantine = txn.open_table(QUARANTINE).at(path)?;
            let starts_with_role = matches!(ops.first(), Some(StoreOp::SetRole { .. }));
            if !starts_with_role && meta.get(ROLE).at(path)?.is_none() {
                // Dropping the uncommitted transaction aborts it.
                return Err(never_written(&path.display().to_string(), ops.first()));
            }
            for op in ops {
                self.apply_one(&mut meta, &mut log, &mut quarantine, op)?;
            }
        }
        txn.commit().at(path)
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Option<Durable>, StoreError> {
        no_panic(&self.path, || self.load_unguarded())
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        no_panic(&path, || self.apply_unguarded(ops))
    }
}

/// Runs `f`, turning a panic inside redb into `Corrupt`: redb asserts on some damaged files
/// (a header or allocator state that does not add up) rather than returning an error. After
/// such a panic the store must be reopened.
fn no_panic<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Err(StoreError::Corrupt {
            path: path.display().to_string(),
            reason: format!("redb panicked on it: {message}"),
        })
    })
}

/// Why opening `path` failed. redb reports a file that does not start with its magic number
/// as `InvalidData`, one too short for its header as `UnexpectedEof`.
fn open_error(path: &Path, err: DatabaseError) -> StoreError {
    match err {
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::UnexpectedEof => {
            StoreError::Corrupt {
                path: path.display().to_string(),
                reason: format!("truncated: too short for redb's header ({e})"),
            }
        }
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::InvalidData => {
            StoreError::Corrupt {
                path: path.display().to_string(),
                reason: format!("not a redb database: its header lacks redb's magic number ({e})"),
            }
        }
        DatabaseError::DatabaseAlreadyOpen => StoreError::Io {
            path: path.display().to_string(),
            reason: "the database is already open (by another handle or process)".to_string(),
        },
        other => classify(path, other.into()),
    }
}

/// Damage to the file is `Corrupt`; anything else (the disk, the OS, misuse) is `Io`.
fn classify(path: &Path, err: redb::Error) -> StoreError {
    let path = path.display().to_string();
    let reason = err.to_string();
    match err {
        redb::Error::Corrupted(_)
        | redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableDoesNotExist(_) => StoreError::Corrupt { path, reason },
        _ => StoreError::Io { path, reason },
    }
}

/// Attaches the store's path to a redb error.
trait At<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> At<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| classify(path, e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::store::conformance::{entry, Harness};

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("drcheck-redb-store-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create a temp dir");
            TempDir(dir)
        }

        fn file(&self) -> PathBuf {
            self.0.join("region.redb")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A redb store in a file of its own: reopening closes the database and opens the file
    /// again, as a region restarted after a crash does.
    struct Redb {
        // Declared first so that the database closes before its directory is removed.
        store: Option<RedbStore>,
        dir: TempDir,
    }

    impl Harness for Redb {
        type Store = RedbStore;

        fn new() -> Redb {
            let dir = TempDir::new();
            let store = RedbStore::open(&dir.file()).expect("open a new store");
            Redb {
                store: Some(store),
                dir,
            }
        }

        fn store(&mut self) -> &mut RedbStore {
            self.store.as_mut().expect("an open store")
        }

        fn reopen(&mut self) -> Result<(), StoreError> {
            // redb refuses a second handle on an open database: close it first.
            self.store = None;
            self.store = Some(RedbStore::open(&self.dir.file())?);
            Ok(())
        }
    }

    // Each batch is a synced redb transaction: fewer cases than for the memory store.
    crate::store::conformance::conformance_tests!(Redb, cases = 64);

    #[test]
    fn a_batch_that_fails_midway_changes_nothing() {
        let dir = TempDir::new();
        let mut store = RedbStore::open(&dir.file()).expect("open");
        let first = [
            StoreOp::SetRole {
                epoch: 1,
                role: Role::Primary,
            },
            StoreOp::Append(vec![entry(1, 1)]),
        ];
        assert!(store.apply(&first).is_ok());
        // Damage a log entry: quarantining it must decode it, which fails after the batch
        // has already appended and changed the role.
        {
            let txn = store.db.begin_write().expect("begin");
            {
                let mut log = txn.open_table(LOG).expect("log");
                log.insert(0, b"not json".as_slice()).expect("insert");
            }
            txn.commit().expect("commit");
        }
        let damaged = store.load();
        assert!(
            matches!(damaged, Err(StoreError::Corrupt { .. })),
            "an undecodable entry loaded as {damaged:?}"
        );
        let batch = [
            StoreOp::Append(vec![entry(1, 2)]),
            StoreOp::SetRole {
                epoch: 3,
                role: Role::Fenced,
            },
            StoreOp::QuarantineSuffix { keep: 0 },
        ];
        assert!(matches!(
            store.apply(&batch),
            Err(StoreError::Corrupt { .. })
        ));
        let txn = store.db.begin_read().expect("read");
        let log = txn.open_table(LOG).expect("log");
        assert_eq!(
            log.len().ok(),
            Some(1),
            "the failed batch's append was kept"
        );
        let meta = txn.open_table(META).expect("meta");
        let role = meta.get(ROLE).ok().flatten().map(|r| r.value().to_vec());
        let role: Option<Meta> = role.and_then(|r| serde_json::from_slice(&r).ok());
        assert_eq!(role.map(|m| (m.epoch, m.role)), Some((1, Role::Primary)));
    }

    #[test]
    fn a_gap_in_the_log_is_corrupt() {
        let dir = TempDir::new();
        let mut store = RedbStore::open(&dir.file()).expect("open");
        let first = [
            StoreOp::SetRole {
                epoch: 1,
                role: Role::Primary,
            },
            StoreOp::Append(vec![entry(1, 1), entry(1, 2), entry(1, 3)]),
        ];
        assert!(store.apply(&first).is_ok());
        {
            let txn = store.db.begin_write().expect("begin");
            {
                let mut log = txn.open_table(LOG).expect("log");
                log.remove(1).expect("remove");
            }
            txn.commit().expect("commit");
        }
        match store.load() {
            Err(StoreError::Corrupt { reason, .. }) => {
                assert!(reason.contains("log index 2"), "reason: {reason}")
            }
            other => panic!("a log with a gap loaded as {other:?}"),
        }
    }

    #[test]
    fn a_garbage_file_is_corrupt() {
        let dir = TempDir::new();
        for garbage in [
            b"x".to_vec(),
            b"this is not a redb database at all".to_vec(),
            (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ] {
            std::fs::write(dir.file(), &garbage).expect("write garbage");
            match RedbStore::open(&dir.file()) {
                Err(StoreError::Corrupt { path, reason }) => {
                    assert!(path.contains("region.redb"), "path: {path}");
                    assert!(reason.contains("not a redb database"), "reason: {reason}");
                }
                Err(other) => panic!("garbage opened as {other}"),
                Ok(_) => panic!("garbage opened as a database"),
            }
        }
    }

    #[test]
    fn a_damaged_database_is_corrupt() {
        let dir = TempDir::new();
        {
            let mut store = RedbStore::open(&dir.file()).expect("open");
            let first = [
                StoreOp::SetRole {
                    epoch: 1,
                    role: Role::Primary,
                },
                StoreOp::Append(vec![entry(1, 1)]),
            ];
            assert!(store.apply(&first).is_ok());
        }
        let good = std::fs::read(dir.file()).expect("read the database");
        assert!(good.len() > 4096, "a database of {} bytes", good.len());
        let scrambled = |from: usize| {
            let mut bytes = good.clone();
            for (i, b) in bytes[from..].iter_mut().enumerate() {
                *b = (i * 31 % 251) as u8;
            }
            bytes
        };
        // redb panics on some of these (the first two); the same file is reused throughout,
        // so a lock left behind by a caught panic would show as an `Io` error here.
        let damaged = [
            ("scrambled after the header", scrambled(512)),
            ("truncated to 600 bytes", good[..600].to_vec()),
            ("truncated to 100 bytes", good[..100].to_vec()),
            ("scrambled after the magic number", scrambled(9)),
        ];
        for (how, bytes) in damaged {
            std::fs::write(dir.file(), &bytes).expect("write the damaged database");
            let opened = RedbStore::open(&dir.file()).and_then(|store| store.load());
            assert!(
                matches!(opened, Err(StoreError::Corrupt { .. })),
                "a database {how} gave {opened:?}"
            );
        }
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = TempDir::new();
        let path = dir.0.join("no-such-dir").join("region.redb");
        assert!(matches!(RedbStore::open(&path), Err(StoreError::Io { .. })));
    }

    #[test]
    fn a_second_handle_on_an_open_store_is_refused() {
        let dir = TempDir::new();
        let _first = RedbStore::open(&dir.file()).expect("open");
        assert!(matches!(
            RedbStore::open(&dir.file()),
            Err(StoreError::Io { .. })
        ));
    }
}
