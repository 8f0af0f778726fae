//! A real crash: a child process appends to a `RedbStore` one write at a time and prints
//! `ack {n}` after each `apply` returns; the parent SIGKILLs it mid-stream, reopens the store
//! and checks that every acknowledged write survived, in order, and nothing else appeared.
//!
//! The child is this very test binary, re-executed to run only `child_writes_until_killed`.

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
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

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
