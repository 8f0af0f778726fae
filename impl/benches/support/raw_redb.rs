//! redb alone, the limit every durable write is measured against: entries of
//! [`ENTRY_BYTES`] appended to a `u64 → bytes` table, `per_commit` of them in each write
//! transaction, committed with redb's default durability (`Durability::Immediate`: the file is
//! synced before `commit` returns), one process, one thread, in a file in `dir` (the same
//! disk as the store being benchmarked). Shared by the endpoint and throughput benches.

use std::path::Path;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// The size of one entry: about a FHIR create's log entry.
pub const ENTRY_BYTES: usize = 600;

/// What redb alone did.
pub struct Raw {
    /// Entries per commit.
    pub per_commit: usize,
    /// Commits made.
    pub commits: usize,
    /// Entries made durable per second.
    pub entries_per_s: f64,
    /// Median and 99th percentile of one commit (begin, inserts, commit), in µs.
    pub p50_us: u128,
    pub p99_us: u128,
}

/// Commits `per_commit` entries at a time for about `time` (at least 20 commits).
pub fn measure(dir: &Path, per_commit: usize, time: Duration) -> Result<Raw, Box<redb::Error>> {
    std::fs::create_dir_all(dir).map_err(|e| redb::Error::from(redb::StorageError::from(e)))?;
    let path = dir.join(format!("raw-{per_commit}.redb"));
    let _ = std::fs::remove_file(&path);
    let db = Database::create(&path).map_err(redb::Error::from)?;
    let value = vec![b'x'; ENTRY_BYTES];
    let mut key = 0u64;
    let mut latencies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < time || latencies.len() < 20 {
        let t = Instant::now();
        let txn = db.begin_write().map_err(redb::Error::from)?;
        {
            let mut log = txn.open_table(LOG).map_err(redb::Error::from)?;
            for _ in 0..per_commit {
                log.insert(key, value.as_slice())
                    .map_err(redb::Error::from)?;
                key += 1;
            }
        }
        txn.commit().map_err(redb::Error::from)?;
        latencies.push(t.elapsed().as_micros());
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_file(&path);
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    Ok(Raw {
        per_commit,
        commits: latencies.len(),
        entries_per_s: key as f64 / seconds,
        p50_us: pct(50),
        p99_us: pct(99),
    })
}

/// Measures 1, 8 and 64 entries per commit, `time` each, and prints them.
pub fn baseline(dir: &Path, time: Duration) -> Vec<Raw> {
    let raws: Vec<Raw> = [1, 8, 64]
        .into_iter()
        .map(|n| measure(dir, n, time).expect("redb alone"))
        .collect();
    println!(
        "{:<22} {:>9} {:>12} {:>9} {:>9}",
        "redb alone", "commits", "entries/s", "p50 µs", "p99 µs"
    );
    for r in &raws {
        println!(
            "{:<22} {:>9} {:>12.0} {:>9} {:>9}",
            format!("{} per commit", r.per_commit),
            r.commits,
            r.entries_per_s,
            r.p50_us,
            r.p99_us
        );
    }
    println!();
    raws
}
