//! A region's durable state, which survives a crash, and the operations that change it.
//!
//! A region persists its epoch, role, log and quarantine; its lease and replication progress
//! are volatile on purpose (a restarted region holds no lease). [`Durable::apply`] is the one
//! definition of what each [`StoreOp`] means; every store must agree with it.

use drcheck_properties::{initial_role, Role, FIRST_EPOCH};
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, LogEntry, Quarantined, WriteId};

/// A region's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    /// The newest epoch the region took part in.
    pub epoch: Epoch,
    /// Its role in that epoch.
    pub role: Role,
    /// Its log of acknowledged writes, index 0 first.
    pub log: Vec<LogEntry>,
    /// Its lost-writes quarantine, in the order the writes were moved there.
    pub quarantine: Vec<Quarantined>,
}

impl Durable {
    /// An empty region of the first epoch with the given role.
    pub fn fresh(role: Role) -> Durable {
        Durable {
            epoch: Epoch::from(FIRST_EPOCH),
            role,
            log: Vec::new(),
            quarantine: Vec::new(),
        }
    }

    /// Applies one operation in memory.
    pub fn apply(&mut self, op: &StoreOp) {
        match op {
            StoreOp::Append(entries) => self.log.extend(entries.iter().cloned()),
            StoreOp::SetRole { epoch, role } => {
                self.epoch = *epoch;
                self.role = *role;
            }
            StoreOp::QuarantineSuffix { keep } => {
                let keep = usize::try_from(*keep)
                    .unwrap_or(usize::MAX)
                    .min(self.log.len());
                let suffix = self.log.split_off(keep);
                self.quarantine
                    .extend(suffix.into_iter().map(|entry| Quarantined {
                        entry,
                        reapplied: false,
                    }));
            }
            StoreOp::Truncate { keep } => {
                let keep = usize::try_from(*keep)
                    .unwrap_or(usize::MAX)
                    .min(self.log.len());
                self.log.truncate(keep);
            }
            StoreOp::MarkReapplied { write } => {
                for q in &mut self.quarantine {
                    if q.entry.write == *write {
                        q.reapplied = true;
                    }
                }
            }
        }
    }
}

/// One change to a region's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOp {
    /// Appends entries at the end of the log.
    Append(Vec<LogEntry>),
    /// Records a new epoch and role.
    SetRole {
        /// The epoch.
        epoch: Epoch,
        /// The role in it.
        role: Role,
    },
    /// Moves the log's entries from index `keep` on into the quarantine, in order.
    QuarantineSuffix {
        /// How many leading entries stay in the log.
        keep: u64,
    },
    /// Marks a quarantined write as re-applied by the operator.
    MarkReapplied {
        /// The id of the quarantined write.
        write: WriteId,
    },
    /// Drops the log's entries from index `keep` on. Only the `rejoin-no-quarantine` mutant
    /// does this: a correct region never drops an acknowledged write.
    Truncate {
        /// How many leading entries stay in the log.
        keep: u64,
    },
}

impl StoreOp {
    /// The payload bytes it appends (0 for anything but an append): what sizes a group of
    /// operations committed together.
    pub fn payload_bytes(&self) -> usize {
        match self {
            StoreOp::Append(entries) => entries.iter().map(|e| e.payload.len()).sum(),
            _ => 0,
        }
    }
}

/// The durable state region `region` of a new deployment starts with (the first primary is
/// primary, the others secondaries), and the operation that records it.
pub fn initial(region: u8) -> (Durable, StoreOp) {
    let fresh = Durable::fresh(initial_role(region));
    let op = StoreOp::SetRole {
        epoch: fresh.epoch,
        role: fresh.role,
    };
    (fresh, op)
}
