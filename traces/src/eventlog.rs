//! Event logs as `drcheck validate` reads them: one JSON-lines file (an in-process
//! deployment's, or one process's), or a `drcheck serve` data directory, whose per-process
//! logs (`events-*.jsonl`: each region's, the control plane's, and the faults `serve`
//! injected) are merged into the one run they record.
//!
//! Every process of a deployment stamps its records with protocol time on the same clock (the
//! deployment's start and minute, `cluster.json`), read as it handles each input, before it
//! sends anything; a message's effects are stamped no earlier than its cause. The merge orders
//! records by that time, keeps each file's order (its sequence numbers go up, across the
//! process's restarts too), and breaks ties between files by their names' order.

use std::path::{Path, PathBuf};

use drcheck_impl::protocol::event::Record;

/// The name every per-process event log of a `serve` data directory has:
/// `events-<process>.jsonl`.
const PREFIX: &str = "events-";
const SUFFIX: &str = ".jsonl";

/// Where a record was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Its file's index in [`EventLog::files`].
    pub file: usize,
    /// Its line, 1 first.
    pub line: usize,
}

/// A run's records in order, each with where it was read.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    /// The records, in the order they happened.
    pub records: Vec<Record>,
    /// Where each record was read (index for index).
    pub origins: Vec<Origin>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

impl EventLog {
    /// `file line N` for the record at `index`, or `event N` if there is no such record.
    pub fn describe(&self, index: usize) -> String {
        match self.origins.get(index) {
            Some(o) => {
                let name = self.files[o.file]
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                format!("{name} line {}", o.line)
            }
            None => format!("event {}", index + 1),
        }
    }
}

/// Why an event log cannot be read; each names the file (and the line).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or directory cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not an event record.
    #[error("{path}: line {line}: {reason}")]
    BadLine {
        /// The file.
        path: String,
        /// The line's number, 1 first.
        line: usize,
        /// The JSON error.
        reason: String,
    },
    /// A record's sequence number is not above the one before it in its file.
    #[error(
        "{path}: line {line}: sequence number {seq} after {previous} (a process's log numbers \
         its records upward, across its restarts too)"
    )]
    Order {
        /// The file.
        path: String,
        /// The line's number, 1 first.
        line: usize,
        /// Its sequence number.
        seq: u64,
        /// The sequence number of the record before it.
        previous: u64,
    },
    /// A directory that holds no event log.
    #[error("{path}: no event log (events-*.jsonl) in this directory")]
    NoLogs {
        /// The directory.
        path: String,
    },
}

/// Reads `path`: one JSON-lines file, or every `events-*.jsonl` file of a directory (a
/// `drcheck serve` data directory), merged.
pub fn load(path: &Path) -> Result<EventLog, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(PREFIX) && name.ends_with(SUFFIX) && entry.path().is_file() {
                files.push(entry.path());
            }
        }
        if files.is_empty() {
            return Err(LoadError::NoLogs {
                path: path.display().to_string(),
            });
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut logs = Vec::with_capacity(files.len());
    for file in &files {
        let bytes = std::fs::read(file).map_err(|source| LoadError::Read {
            path: file.display().to_string(),
            source,
        })?;
        logs.push(parse_file(&file.display().to_string(), &bytes)?);
    }
    let (records, origins) = merge(logs);
    Ok(EventLog {
        records,
        origins,
        files,
    })
}

/// The records of one process's log, each with its line, checking that their sequence
/// numbers go up (`path` names the file in errors).
pub fn parse_file(path: &str, bytes: &[u8]) -> Result<Vec<(usize, Record)>, LoadError> {
    let mut records: Vec<(usize, Record)> = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = serde_json::from_slice(line).map_err(|e| LoadError::BadLine {
            path: path.to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        if let Some((_, previous)) = records.last() {
            if record.seq <= previous.seq {
                return Err(LoadError::Order {
                    path: path.to_string(),
                    line: i + 1,
                    seq: record.seq,
                    previous: previous.seq,
                });
            }
        }
        records.push((i + 1, record));
    }
    Ok(records)
}

/// Merges per-process logs into one run: by time, each log's order kept, ties going to the
/// earlier log.
pub fn merge(logs: Vec<Vec<(usize, Record)>>) -> (Vec<Record>, Vec<Origin>) {
    let total = logs.iter().map(Vec::len).sum();
    let mut records = Vec::with_capacity(total);
    let mut origins = Vec::with_capacity(total);
    let mut heads: Vec<_> = logs
        .into_iter()
        .map(|log| log.into_iter().peekable())
        .collect();
    loop {
        let next = heads
            .iter_mut()
            .enumerate()
            .filter_map(|(file, head)| head.peek().map(|(_, r)| (r.at, file)))
            .min();
        let Some((_, file)) = next else {
            break;
        };
        if let Some((line, record)) = heads[file].next() {
            records.push(record);
            origins.push(Origin { file, line });
        }
    }
    (records, origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drcheck_impl::protocol::event::{Event, FaultKind};
    use drcheck_impl::protocol::message::NodeId;

    fn record(seq: u64, at: u64, region: u8) -> (usize, Record) {
        let event = Event::Fault {
            fault: FaultKind::Crash,
            region: Some(region),
        };
        let node = NodeId::Region(region);
        (
            seq as usize + 1,
            Record {
                seq,
                at,
                node,
                event,
            },
        )
    }

    #[test]
    fn logs_merge_by_time_keeping_each_log_s_order() {
        let a = vec![record(0, 10, 0), record(1, 30, 0), record(2, 30, 0)];
        let b = vec![record(0, 5, 1), record(1, 30, 1), record(2, 40, 1)];
        let (records, origins) = merge(vec![a, b]);
        let got: Vec<(u64, u8)> = records
            .iter()
            .map(|r| match r.node {
                NodeId::Region(x) => (r.at, x),
                NodeId::Control => (r.at, 9),
            })
            .collect();
        assert_eq!(got, [(5, 1), (10, 0), (30, 0), (30, 0), (30, 1), (40, 1)]);
        assert_eq!(origins[4], Origin { file: 1, line: 2 });
        // A log whose time goes back keeps its order: the validator sees time go back.
        let c = vec![record(0, 20, 0), record(1, 10, 0)];
        let (records, _) = merge(vec![c, vec![record(0, 15, 1)]]);
        let times: Vec<u64> = records.iter().map(|r| r.at).collect();
        assert_eq!(times, [15, 20, 10]);
    }

    #[test]
    fn a_log_whose_numbers_do_not_go_up_is_refused_with_its_line() {
        let line = |seq: u64| serde_json::to_string(&record(seq, 0, 0).1).unwrap();
        let text = format!("{}\n\n{}\n{}\n", line(3), line(4), line(4));
        let err = parse_file("x.jsonl", text.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("x.jsonl: line 4: sequence number 4 after 4"),
            "{err}"
        );
        let err = parse_file("x.jsonl", b"{}\n").unwrap_err();
        assert!(err.to_string().starts_with("x.jsonl: line 1: "), "{err}");
        let err = parse_file("x.jsonl", b"\xff\xfe\n").unwrap_err();
        assert!(err.to_string().starts_with("x.jsonl: line 1: "), "{err}");
    }
}
