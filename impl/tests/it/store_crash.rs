//! A real crash: a child process appends to a `RedbStore` one write at a time and prints
//! `ack {n}` after each `apply` returns; the parent SIGKILLs it mid-stream, reopens the store
//! and checks that every acknowledged write survived, in order, and nothing else appeared.
//!
//! The second crash goes through group commit: the child runs a region node (`NodeHandle`,
//! `FhirRegion`, a redb store) with eight writers creating at once, so commits are shared,
//! and prints `ack {write}` as each answer arrives; it is SIGKILLed three times at varying
//! moments, restarting on the same store, and every write acknowledged in any run must be in
//! the store after each kill. It prints the kills, the writes acknowledged, the missing ones
//! (none) and how many entries the commits held.
//!
//! The child is this very test binary, re-executed to run only its child test.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drcheck_impl::protocol::entry::LogEntry;
use drcheck_impl::store::{RedbStore, Store, StoreOp};
use drcheck_properties::Role;

/// Where the child writes; unset, the child test does nothing.
const STORE_ENV: &str = "DRCHECK_CRASH_STORE";
/// The parent gives up if the child acknowledges nothing for this long.
const SILENCE: Duration = Duration::from_secs(30);
/// The child stops by itself after this many writes, should nobody kill it.
const MAX_WRITES: u64 = 1_000_000;

fn entry(n: u64) -> LogEntry {
    LogEntry {
        epoch: 1,
        write: n,
        acked_at: n,
        reapply_of: None,
        payload: format!("{{\"resourceType\":\"Observation\",\"id\":\"{n}\"}}"),
    }
}

#[test]
#[ignore = "the crash tests' child process; does nothing unless they spawn it"]
fn child_writes_until_killed() {
    let Some(path) = std::env::var_os(STORE_ENV) else {
        return;
    };
    let mut store = RedbStore::open(Path::new(&path)).expect("the child opens the store");
    store
        .apply(&[StoreOp::SetRole {
            epoch: 1,
            role: Role::Primary,
        }])
        .expect("the child sets its role");
    let stdout = std::io::stdout();
    for n in 1..=MAX_WRITES {
        store
            .apply(&[StoreOp::Append(vec![entry(n)])])
            .expect("the child appends");
        // A write error (the parent is gone) ends the child.
        let mut out = stdout.lock();
        writeln!(out, "ack {n}").expect("the child acknowledges");
        out.flush().expect("the child flushes");
    }
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("drcheck-store-crash-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The child process, killed if the parent fails before killing it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parses an `ack {n}` line; libtest's own lines ("running 1 test") are not acks.
/// A thread that reads `stdout`'s lines into a channel, so that the parent can wait for
/// them with a timeout.
fn read_lines(
    stdout: std::process::ChildStdout,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (lines, reader)
}

fn ack(line: &str) -> Option<u64> {
    line.strip_prefix("ack ")?.trim().parse().ok()
}

/// Runs the child until it has acknowledged `kill_after` writes, SIGKILLs it, and checks the
/// store it leaves behind.
fn crash_after(kill_after: u64) {
    let dir = TempDir::new();
    let path = dir.0.join("region.redb");
    let started = Instant::now();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Child(
        Command::new(exe)
            .args([
                "--exact",
                "store_crash::child_writes_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env(STORE_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child"),
    );
    let stdout = child.0.stdout.take().expect("the child's stdout");

    // A thread reads the pipe, so that the parent can wait with a timeout.
    let (lines, reader) = read_lines(stdout);

    let mut acked = 0u64;
    fn record(line: &str, acked: &mut u64) {
        if let Some(n) = ack(line) {
            assert_eq!(n, *acked + 1, "the child acknowledged {n} after {acked}");
            *acked = n;
        }
    }
    while acked < kill_after {
        match lines.recv_timeout(SILENCE) {
            Ok(line) => record(&line, &mut acked),
            Err(RecvTimeoutError::Timeout) => {
                panic!("the child acknowledged nothing for {SILENCE:?} after {acked} acks")
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.0.wait();
                panic!("the child stopped after {acked} acks: {status:?}")
            }
        }
    }

    child.0.kill().expect("SIGKILL the child");
    let status = child.0.wait().expect("wait for the child");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was not killed: {status}"
        );
    }
    #[cfg(not(unix))]
    assert!(!status.success(), "the child was not killed: {status}");

    // Acks the child printed before it died are still in the pipe: they count too.
    loop {
        match lines.recv_timeout(SILENCE) {
            Ok(line) => record(&line, &mut acked),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the dead child's stdout never closed"),
        }
    }
    reader.join().expect("the reader thread");

    let store = RedbStore::open(&path).expect("reopen the store after the crash");
    let durable = store
        .load()
        .expect("load the store after the crash")
        .expect("the store was written");
    assert_eq!((durable.epoch, durable.role), (1, Role::Primary));
    assert!(
        durable.quarantine.is_empty(),
        "quarantine: {:?}",
        durable.quarantine
    );
    let k = durable.log.len() as u64;
    // The child writes one at a time and acknowledges a write before starting the next, so
    // at most one write is durable but unacknowledged.
    assert!(
        acked <= k && k <= acked + 1,
        "{acked} writes acknowledged, {k} in the log"
    );
    for (i, e) in durable.log.iter().enumerate() {
        assert_eq!(*e, entry(i as u64 + 1), "log index {i}");
    }
    eprintln!(
        "killed after {kill_after} acks: {acked} acknowledged, {k} durable, {:?}",
        started.elapsed()
    );
}

#[test]
fn sigkill_after_200_acks_loses_no_acknowledged_write() {
    crash_after(200);
}

#[test]
fn sigkill_at_a_varying_moment_loses_no_acknowledged_write() {
    // Varies from run to run; the printed line says which it was.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let kill_after = 1 + u64::from(nanos % 150);
    eprintln!("killing after {kill_after} acks");
    crash_after(kill_after);
}

// --- The same crash with group commit: a region node, eight writers at once. ---

/// Where the child's region node keeps its store; unset, the child test does nothing.
const NODE_ENV: &str = "DRCHECK_CRASH_NODE";
/// The first write id the child uses (each run of the child uses fresh ids).
const FIRST_ENV: &str = "DRCHECK_CRASH_FIRST";
/// Writers in the child, each with one create in flight: what a commit can group.
const WRITERS: usize = 8;

/// A redb store that prints `commit {n}` (the entries it appended) after each commit: the
/// parent sees the commits shared.
struct Counted(RedbStore);

impl Store for Counted {
    fn load(
        &self,
    ) -> Result<Option<drcheck_impl::store::Durable>, drcheck_impl::store::StoreError> {
        self.0.load()
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), drcheck_impl::store::StoreError> {
        self.0.apply(ops)?;
        let appended: usize = ops
            .iter()
            .map(|op| match op {
                StoreOp::Append(entries) => entries.len(),
                _ => 0,
            })
            .sum();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "commit {appended}");
        let _ = out.flush();
        Ok(())
    }
}

/// The child's region sends its messages nowhere: it is alone (one region, nothing to ship).
struct Nowhere;

impl drcheck_impl::transport::Transport for Nowhere {
    fn send(&self, _: drcheck_impl::protocol::message::Envelope) {}
}

#[test]
#[ignore = "the group-commit crash test's child process; does nothing unless it spawns it"]
fn child_region_writes_concurrently_until_killed() {
    use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion};
    use drcheck_fhir::WriteRequest;
    use drcheck_impl::node::{NodeHandle, Wiring};
    use drcheck_impl::observe::Observer;
    use drcheck_impl::protocol::region::RegionMachine;
    use drcheck_impl::time::{default_timing, RealClock};
    use std::sync::Arc;

    let Some(path) = std::env::var_os(NODE_ENV) else {
        return;
    };
    let first: u64 = std::env::var(FIRST_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
        .expect("the first write id");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut store = RedbStore::open(Path::new(&path)).expect("the child opens the store");
        let (durable, _) =
            drcheck_impl::store::load_or_init(&mut store, 0).expect("the child loads its store");
        // One region: the primary under a lease that does not run out, with no secondary to
        // wait for (no throttle): only the disk bounds it.
        let machine =
            RegionMachine::new(0, 1, default_timing(), durable, 0).initial_primary(u64::MAX / 2);
        let node = Arc::new(NodeHandle::spawn(
            FhirRegion::new(machine, 60_000),
            Wiring {
                store: Some(Box::new(Counted(store))),
                transport: Arc::new(Nowhere),
                clock: Arc::new(RealClock::new(60_000)),
                lag: 0,
                observer: Arc::new(Observer::new(false)),
            },
        ));
        let next = Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (node, next) = (node.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if n >= MAX_WRITES {
                            return;
                        }
                        let write = first + n;
                        let resource = serde_json::json!({
                            "resourceType": "Observation",
                            "status": "final",
                            "code": { "text": format!("crash test {write}") },
                        });
                        let serde_json::Value::Object(resource) = resource else {
                            unreachable!("a JSON object")
                        };
                        let input = FhirInput::Write {
                            write,
                            request: WriteRequest::Create {
                                kind: "Observation".to_string(),
                                resource,
                            },
                            unix_ms: 0,
                            reapply_of: None,
                        };
                        match node.call(input).await {
                            Some(FhirOutput::Written(Ok(Some((ack, _))))) => {
                                assert_eq!(ack.write, write);
                                // A write error (the parent is gone) ends the child.
                                let mut out = std::io::stdout().lock();
                                writeln!(out, "ack {write}").expect("the child acknowledges");
                                out.flush().expect("the child flushes");
                            }
                            other => panic!("write {write} answered {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("a writer");
        }
    });
}

/// What one kill of the group-commit child left.
#[derive(Debug, Default)]
struct Killed {
    acknowledged: usize,
    missing: usize,
    /// Durable but never answered: written by the commit the kill interrupted the answers of.
    unanswered: usize,
    commits: usize,
    committed_entries: usize,
}

/// Runs the group-commit child on the store at `path` (which may hold earlier runs' writes)
/// with write ids from `first`, SIGKILLs it once it has acknowledged `kill_after` writes, and
/// checks that every write it acknowledged, in this run and before (`before`), is in the
/// store, which held `held_before` writes when the child started.
fn crash_region_after(
    path: &Path,
    first: u64,
    kill_after: usize,
    (before, held_before): (&[u64], usize),
) -> (Killed, Vec<u64>, usize) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Child(
        Command::new(exe)
            .args([
                "--exact",
                "store_crash::child_region_writes_concurrently_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env(NODE_ENV, path)
            .env(FIRST_ENV, first.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child"),
    );
    let stdout = child.0.stdout.take().expect("the child's stdout");
    let (lines, reader) = read_lines(stdout);
    let mut acked = Vec::new();
    let mut killed = Killed::default();
    let mut record = |line: &str, acked: &mut Vec<u64>| {
        if let Some(n) = ack(line) {
            acked.push(n);
        } else if let Some(n) = line
            .strip_prefix("commit ")
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            killed.commits += 1;
            killed.committed_entries += n;
        }
    };
    while acked.len() < kill_after {
        match lines.recv_timeout(SILENCE) {
            Ok(line) => record(&line, &mut acked),
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "the child acknowledged nothing for {SILENCE:?} after {} acks",
                    acked.len()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.0.wait();
                panic!("the child stopped after {} acks: {status:?}", acked.len())
            }
        }
    }
    child.0.kill().expect("SIGKILL the child");
    let status = child.0.wait().expect("wait for the child");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was not killed: {status}"
        );
    }
    loop {
        match lines.recv_timeout(SILENCE) {
            Ok(line) => record(&line, &mut acked),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the dead child's stdout never closed"),
        }
    }
    reader.join().expect("the reader thread");

    let store = RedbStore::open(path).expect("reopen the store after the crash");
    let durable = store
        .load()
        .expect("load the store after the crash")
        .expect("the store was written");
    let held: std::collections::BTreeSet<u64> = durable.log.iter().map(|e| e.write).collect();
    assert_eq!(held.len(), durable.log.len(), "a write is in the log twice");
    let all_acked: Vec<u64> = before.iter().chain(&acked).copied().collect();
    killed.acknowledged = acked.len();
    killed.missing = all_acked.iter().filter(|w| !held.contains(w)).count();
    killed.unanswered =
        held.len() - held_before - acked.iter().filter(|w| held.contains(w)).count();
    (killed, all_acked, held.len())
}

#[test]
fn sigkill_mid_burst_with_group_commit_loses_no_acknowledged_write() {
    let dir = TempDir::new();
    let path = dir.0.join("region-0.redb");
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut acked = Vec::new();
    let mut held = 0;
    let mut total = Killed::default();
    let kills = 3;
    for round in 0..kills {
        // Varies from run to run; the printed line says where each kill fell.
        let kill_after = 100 + ((nanos as usize) >> (round * 8)) % 400;
        let first = 1 + round as u64 * MAX_WRITES;
        let (killed, all, now_held) = crash_region_after(&path, first, kill_after, (&acked, held));
        eprintln!("kill {}: after {kill_after} acks: {killed:?}", round + 1);
        (acked, held) = (all, now_held);
        total.acknowledged += killed.acknowledged;
        total.missing += killed.missing;
        total.unanswered += killed.unanswered;
        total.commits += killed.commits;
        total.committed_entries += killed.committed_entries;
        assert_eq!(killed.missing, 0, "acknowledged writes lost: {killed:?}");
    }
    eprintln!(
        "group commit, {WRITERS} writers: {kills} kills, {} acknowledged, {} missing after \
         restart, {} durable but unanswered; {} commits held {} entries ({:.1} per commit)",
        total.acknowledged,
        total.missing,
        total.unanswered,
        total.commits,
        total.committed_entries,
        total.committed_entries as f64 / total.commits.max(1) as f64
    );
    assert!(
        total.committed_entries > total.commits,
        "no commit was shared: {total:?}"
    );
}
