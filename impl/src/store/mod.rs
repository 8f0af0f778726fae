//! The `Store` seam: a region's durable state, which survives a crash.
//!
//! A region persists its epoch, role, log and quarantine; its lease and replication progress
//! are volatile on purpose (a restarted region holds no lease). [`Durable::apply`] is the one
//! definition of what each [`StoreOp`] means; every store must agree with it.

mod memory;
mod redb_store;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use drcheck_properties::Role;
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, LogEntry, Quarantined, WriteId};

/// A region's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    pub epoch: Epoch,
    pub role: Role,
    pub log: Vec<LogEntry>,
    pub quarantine: Vec<Quarantined>,
}

impl Durable {
    /// An empty region of epoch 1 with the given role.
    pub fn fresh(role: Role) -> Durable {
        Durable {
            epoch: 1,
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
    SetRole { epoch: Epoch, role: Role },
    /// Moves the log's entries from index `keep` on into the quarantine, in order.
    QuarantineSuffix { keep: u64 },
    /// Marks a quarantined write as re-applied by the operator.
    MarkReapplied { write: WriteId },
    /// Drops the log's entries from index `keep` on. Only the `rejoin-no-quarantine` mutant
    /// does this: a correct region never drops an acknowledged write.
    Truncate { keep: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("store at {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
}

/// Region `region`'s durable state, or for a store never written the state a new
/// deployment starts it with (region 0 primary, the others secondaries), written first.
/// `true`: the store was new.
pub fn load_or_init(store: &mut dyn Store, region: u8) -> Result<(Durable, bool), StoreError> {
    if let Some(durable) = store.load()? {
        return Ok((durable, false));
    }
    let role = if region == 0 {
        Role::Primary
    } else {
        Role::Secondary
    };
    let fresh = Durable::fresh(role);
    store.apply(&[StoreOp::SetRole {
        epoch: fresh.epoch,
        role,
    }])?;
    Ok((fresh, true))
}

/// A region's durable storage.
pub trait Store: Send + 'static {
    /// The state last persisted, or `None` for a store that was never written.
    fn load(&self) -> Result<Option<Durable>, StoreError>;

    /// Applies `ops` all or nothing; when it returns `Ok`, they survive a crash.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;
}
