//! Where events go: numbered, traced, optionally written as JSON lines, and kept for the
//! deployment's ghost bookkeeping.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::time::Millis;
use drcheck_protocol::event::{Event, Record};
use drcheck_protocol::message::NodeId;

#[derive(Debug, Default)]
struct State {
    seq: u64,
    log: Option<BufWriter<File>>,
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

    /// Writes every record from now on to `path` as JSON lines (the file is truncated).
    pub fn log_to(&self, path: &Path) -> std::io::Result<()> {
        let file = File::create(path)?;
        self.with(|s| s.log = Some(BufWriter::new(file)));
        Ok(())
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
                let line = serde_json::to_string(&record).unwrap_or_default();
                if let Err(e) = writeln!(log, "{line}") {
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

    /// Flushes the JSON-lines log; reports a write error that closed it.
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
        Event::HeartbeatSent { .. } | Event::HeartbeatReceived { .. } => tracing::debug!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
        _ => tracing::info!(
            target: "drcheck",
            seq = record.seq, at = record.at, node = %node, event = record.event.kind(), detail = %detail
        ),
    }
}
