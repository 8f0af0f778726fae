//! What a region's log holds: acknowledged writes.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// A data epoch: every promotion of a data primary starts a new one.
pub type Epoch = u32;

/// The id a client (the endpoint) gives a write; unique in a deployment.
pub type WriteId = u64;

/// One acknowledged write. Its index is its position in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The epoch of the primary that acknowledged it.
    pub epoch: Epoch,
    /// The write's id.
    pub write: WriteId,
    /// When the primary acknowledged it, on the primary's clock.
    pub acked_at: Millis,
    /// The quarantined write an operator re-applied as this one.
    pub reapply_of: Option<WriteId>,
    /// The client's payload (a FHIR resource as JSON text, say); opaque to the protocol.
    pub payload: String,
}

impl LogEntry {
    /// Two entries at the same index are the same write if epoch and id agree.
    pub fn same_as(&self, other: &LogEntry) -> bool {
        self.epoch == other.epoch && self.write == other.write
    }
}

/// A write moved out of a region's log on rejoin: acknowledged, then superseded by a newer
/// epoch. Kept durably until an operator re-applies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// The entry as it stood in the log (its original epoch, id and payload).
    pub entry: LogEntry,
    /// An operator re-applied it (as a new write).
    pub reapplied: bool,
}

/// The epoch boundaries of a log, as `(epoch, end)` pairs: entries `[previous end, end)`
/// belong to `epoch`. Two logs agree wherever they hold the same epoch at the same index,
/// because one epoch has one primary.
pub fn epoch_runs(log: &[LogEntry]) -> Vec<(Epoch, u64)> {
    let mut runs: Vec<(Epoch, u64)> = Vec::new();
    for (i, e) in log.iter().enumerate() {
        let end = i as u64 + 1;
        match runs.last_mut() {
            Some((epoch, last)) if *epoch == e.epoch => *last = end,
            _ => runs.push((e.epoch, end)),
        }
    }
    runs
}

/// How many leading entries of `log` agree with a log whose epoch runs are `runs`.
pub fn common_prefix(log: &[LogEntry], runs: &[(Epoch, u64)]) -> u64 {
    let mut start = 0u64;
    let mut run = runs.iter();
    let mut current = run.next();
    for (i, e) in log.iter().enumerate() {
        let i = i as u64;
        while let Some(&(_, end)) = current {
            if i < end {
                break;
            }
            start = end;
            current = run.next();
        }
        match current {
            Some(&(epoch, _)) if epoch == e.epoch && i >= start => {}
            _ => return i,
        }
    }
    log.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(epochs: &[Epoch]) -> Vec<LogEntry> {
        epochs
            .iter()
            .enumerate()
            .map(|(i, &epoch)| LogEntry {
                epoch,
                write: i as u64 + 1,
                acked_at: 0,
                reapply_of: None,
                payload: String::new(),
            })
            .collect()
    }

    #[test]
    fn runs_split_a_log_at_every_change_of_epoch() {
        assert_eq!(
            epoch_runs(&log(&[1, 1, 2, 4, 4])),
            vec![(1, 2), (2, 3), (4, 5)]
        );
        assert!(epoch_runs(&[]).is_empty());
    }

    #[test]
    fn common_prefix_stops_where_the_epochs_part() {
        // The new primary (epoch 2) kept two entries of epoch 1; the old primary wrote three.
        let primary = epoch_runs(&log(&[1, 1, 2, 2]));
        assert_eq!(common_prefix(&log(&[1, 1, 1]), &primary), 2);
        assert_eq!(common_prefix(&log(&[1, 1]), &primary), 2);
        assert_eq!(common_prefix(&log(&[1]), &primary), 1);
        assert_eq!(common_prefix(&log(&[1, 1, 2, 2, 2]), &primary), 4);
        assert_eq!(common_prefix(&log(&[3]), &primary), 0);
        assert_eq!(common_prefix(&log(&[1, 1]), &[]), 0);
    }
}
