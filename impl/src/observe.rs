//! Where events go: numbered, traced, optionally written as JSON lines, and kept for the
//! deployment's ghost bookkeeping.
//!
//! Each record is written with one `write` call on an unbuffered file: a process killed with
//! SIGKILL loses no record it emitted, and leaves no half line behind (short of a full disk).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::time::Millis;
use drcheck_protocol::event::{Event, Record};
use drcheck_protocol::message::NodeId;

#[derive(Debug, Default)]
struct State {
    seq: u64,
    log: Option<File>,
    log_error: Option<String>,
    pending: Vec<Record>,
    keep: bool,
}

/// Shared by every node of a deployment.
#[derive(Debug, Default)]
pub struct Observer {
    state: Mutex<State>,
}

impl Observer {
    /// `keep`: hold records until [`Observer::drain`] takes them (the ghost needs them).
    pub fn new(keep: bool) -> Observer {
        Observer {
            state: Mutex::new(State {
                keep,
                ..State::default()
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes every record from now on to `path` as JSON lines (the file is truncated: an
    /// in-process deployment's log is of one run).
    pub fn log_to(&self, path: &Path) -> std::io::Result<()> {
        let file = File::create(path)?;
        self.with(|s| s.log = Some(file));
        Ok(())
    }

    /// Appends every record from now on to `path` as JSON lines, after what the file holds
    /// (a process's log across its restarts), numbering on from the last record in it. A
    /// last line cut short (a write the disk could not finish) is cut off first, so that
    /// the next record starts a line of its own. Created readable by its owner only.
    pub fn append_to(&self, path: &Path) -> Result<Reopened, ReopenError> {
        let failed = |what: &'static str| {
            move |source| ReopenError {
                path: path.display().to_string(),
                what,
                source,
            }
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(failed("opening"))?;
        let tail = Tail::read(&mut file).map_err(failed("reading"))?;
        if tail.torn > 0 {
            let len = file.metadata().map_err(failed("reading"))?.len();
            file.set_len(len - tail.torn)
                .map_err(failed("cutting the torn last line of"))?;
        }
        let next = tail.last_seq.map_or(0, |seq| seq.saturating_add(1));
        self.with(|s| {
            s.seq = s.seq.max(next);
            s.log = Some(file);
        });
        Ok(Reopened {
            next_seq: next,
            torn_bytes: tail.torn,
            unreadable_tail: tail.unreadable,
        })
    }

    /// Records one event of `node` at protocol time `at`.
    pub fn emit(&self, at: Millis, node: NodeId, event: Event) {
        self.with(|s| {
            let record = Record {
                seq: s.seq,
                at,
                node,
                event,
            };
            s.seq += 1;
            trace(&record);
            if let Some(log) = &mut s.log {
                let mut line = serde_json::to_string(&record).unwrap_or_default();
                line.push('\n');
                if let Err(e) = log.write_all(line.as_bytes()) {
                    s.log_error = Some(e.to_string());
                    s.log = None;
                }
            }
            if s.keep {
                s.pending.push(record);
            }
        });
    }

    /// Takes the records emitted since the last call.
    pub fn drain(&self) -> Vec<Record> {
        self.with(|s| std::mem::take(&mut s.pending))
    }

    /// Flushes the JSON-lines log (each record is written as it is emitted: this only
    /// reports a write error that closed it).
    pub fn flush(&self) -> Result<(), String> {
        self.with(|s| {
            if let Some(e) = &s.log_error {
                return Err(e.clone());
            }
            match &mut s.log {
                Some(log) => log.flush().map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }
}

/// What [`Observer::append_to`] found in the file it reopened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reopened {
    /// The sequence number the next record gets (0 for a new file).
    pub next_seq: u64,
    /// The bytes of a last line cut short, cut off.
    pub torn_bytes: u64,
    /// The file holds lines, but its last complete one is no record: numbering starts over.
    pub unreadable_tail: bool,
}

impl Reopened {
    /// Says in the process's log what was repaired, if anything.
    pub fn log(&self, node: NodeId, path: &Path) {
        let path = path.display();
        if self.torn_bytes > 0 {
            tracing::warn!(
                %node, %path, bytes = self.torn_bytes,
                "event log: cut the last line, left unfinished by an earlier run"
            );
        }
        if self.unreadable_tail {
            tracing::warn!(
                %node, %path,
                "event log: its last line is no event record; numbering starts over at 0"
            );
        }
    }
}

/// Why an event log could not be reopened for appending.
#[derive(Debug, thiserror::Error)]
#[error("{what} the event log {path}: {source}")]
pub struct ReopenError {
    path: String,
    what: &'static str,
    source: std::io::Error,
}

/// The end of an event log: its last record's sequence number and a torn last line.
struct Tail {
    last_seq: Option<u64>,
    torn: u64,
    unreadable: bool,
}

impl Tail {
    /// How much of the file's end is read first: far more than one record.
    const WINDOW: u64 = 64 * 1024;

    /// Reads as much of the file's end as its last complete line needs (all of it, at
    /// worst: only at a start).
    fn read(file: &mut File) -> std::io::Result<Tail> {
        let len = file.metadata()?.len();
        let mut window = Self::WINDOW;
        loop {
            let from = len.saturating_sub(window);
            file.seek(SeekFrom::Start(from))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            if let Some(tail) = Tail::of(&bytes, from == 0) {
                return Ok(tail);
            }
            window = window.saturating_mul(2);
        }
    }

    /// The tail of `bytes`, the end of a file (`whole`: all of it); `None` if the last
    /// complete line may start before `bytes` do.
    fn of(bytes: &[u8], whole: bool) -> Option<Tail> {
        let is_blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..end],
            None if whole => {
                return Some(Tail {
                    last_seq: None,
                    torn: bytes.len() as u64,
                    unreadable: false,
                })
            }
            None => return None,
        };
        let torn = (bytes.len() - complete.len() - 1) as u64;
        // The last line that is not blank, and whether it surely starts where it seems to.
        let mut lines = complete.split(|&b| b == b'\n').rev().peekable();
        let last = loop {
            match lines.next() {
                None if whole => break None,
                None => return None,
                Some(line) if is_blank(line) => continue,
                Some(line) => {
                    if lines.peek().is_none() && !whole {
                        return None;
                    }
                    break Some(line);
                }
            }
        };
        let last_seq = last
            .and_then(|line| serde_json::from_slice::<Record>(line).ok())
            .map(|r| r.seq);
        Some(Tail {
            last_seq,
            torn,
            unreadable: last.is_some() && last_seq.is_none(),
        })
    }
}

/// Emits the record as a `tracing` event. Fields: `seq`, `at`, `node`, `event` (the
/// kind) and `detail` (the event's serde form as JSON, with the same field names as the
/// JSON-lines log).
fn trace(record: &Record) {
    let detail = serde_json::to_string(&record.event).unwrap_or_default();
    let node = record.node.to_string();
    match &record.event {
        Event::WriteRefused { .. }
        | Event::FailoverBlocked { .. }
        | Event::OperatorRefused { .. }
        | Event::SwitchoverAborted { .. } => tracing::warn!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
        Event::StoreFailed { .. } => tracing::error!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
        // Routine, every heartbeat interval: not in an `info` log.
        Event::HeartbeatSent { .. }
        | Event::HeartbeatReceived { .. }
        | Event::LeaseGranted { .. } => tracing::debug!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
        _ => tracing::info!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drcheck_protocol::event::FaultKind;

    fn log_file(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "drcheck-observe-{name}-{}.jsonl",
            std::process::id()
        ))
    }

    fn records(path: &Path) -> Vec<Record> {
        std::fs::read_to_string(path)
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a record per line"))
            .collect()
    }

    fn crash(region: u8) -> Event {
        Event::Fault {
            fault: FaultKind::Crash,
            region: Some(region),
        }
    }

    /// A process that starts again appends to its log: the records of its earlier lives
    /// stay, and numbering goes on (`File::create`, as before, kept only the last life).
    #[test]
    fn a_reopened_log_keeps_what_it_held_and_numbers_on() {
        let path = log_file("reopen");
        let _ = std::fs::remove_file(&path);
        for life in 0..3u8 {
            let observer = Observer::new(false);
            let reopened = observer.append_to(&path).expect("append");
            assert_eq!(reopened.next_seq, u64::from(life) * 2);
            assert_eq!(reopened.torn_bytes, 0);
            observer.emit(10 * u64::from(life), NodeId::Region(0), crash(life));
            observer.emit(10 * u64::from(life) + 1, NodeId::Region(0), crash(life));
            observer.flush().expect("flush");
        }
        let held = records(&path);
        let _ = std::fs::remove_file(&path);
        let seqs: Vec<u64> = held.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
        assert_eq!(held[0].event, crash(0));
        assert_eq!(held[5].event, crash(2));
    }

    /// Every record is in the file as soon as it is emitted: a SIGKILL loses none.
    #[test]
    fn a_record_is_written_when_it_is_emitted() {
        let path = log_file("unbuffered");
        let _ = std::fs::remove_file(&path);
        let observer = Observer::new(false);
        observer.append_to(&path).expect("append");
        observer.emit(7, NodeId::Control, crash(1));
        let held = records(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].at, 7);
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let path = log_file("torn");
        let first = Record {
            seq: 41,
            at: 5,
            node: NodeId::Region(1),
            event: crash(1),
        };
        let torn = "{\"seq\":42,\"at\":6,\"no";
        let text = format!("{}\n{torn}", serde_json::to_string(&first).expect("JSON"));
        std::fs::write(&path, &text).expect("write");
        let observer = Observer::new(false);
        let reopened = observer.append_to(&path).expect("append");
        observer.emit(9, NodeId::Region(1), crash(1));
        let held = records(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(reopened.torn_bytes, torn.len() as u64);
        assert_eq!(reopened.next_seq, 42);
        assert_eq!(held.iter().map(|r| r.seq).collect::<Vec<_>>(), [41, 42]);
    }

    #[test]
    fn the_tail_is_found_past_any_window() {
        let record = Record {
            seq: 7,
            at: 0,
            node: NodeId::Control,
            event: Event::OperatorRefused {
                request: "x".repeat(200),
                reason: String::new(),
            },
        };
        let line = format!("{}\n", serde_json::to_string(&record).expect("JSON"));
        // A window that starts inside the last line cannot tell its start: read more.
        assert!(Tail::of(&line.as_bytes()[10..], false).is_none());
        let tail = Tail::of(line.as_bytes(), true).expect("whole");
        assert_eq!(
            (tail.last_seq, tail.torn, tail.unreadable),
            (Some(7), 0, false)
        );
        // Two lines in the window: the last one starts after the first newline.
        let two = format!("garbage\n{line}");
        let tail = Tail::of(two.as_bytes(), false).expect("found");
        assert_eq!(tail.last_seq, Some(7));
        // A whole file of one torn line: all of it is cut.
        let tail = Tail::of(b"{\"seq\":1", true).expect("whole");
        assert_eq!((tail.last_seq, tail.torn), (None, 8));
        // A complete line that is no record: numbering cannot go on.
        let tail = Tail::of(b"not json\n", true).expect("whole");
        assert!(tail.unreadable);
        assert_eq!(Tail::of(b"", true).map(|t| t.last_seq), Some(None));
    }
}
