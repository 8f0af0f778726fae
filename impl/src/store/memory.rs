//! A store in memory, for tests and simulations: it survives a region's "crash" (its task
//! dropped) as long as a clone of the store is kept, since clones share the data.

use std::sync::{Arc, Mutex, PoisonError};

use super::{Durable, Store, StoreError, StoreOp};

/// A [`Store`] in memory. Clones share the same state.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<Option<Durable>>>,
}

impl MemoryStore {
    /// A store that was never written.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

/// The state `ops` start from: `current`, or for a never-written store the region the
/// leading `SetRole` creates (a region always records its role first).
fn starting_state(
    current: Option<Durable>,
    ops: &[StoreOp],
    path: &str,
) -> Result<Durable, StoreError> {
    match (current, ops.first()) {
        (Some(durable), _) => Ok(durable),
        (None, Some(StoreOp::SetRole { epoch, role })) => Ok(Durable {
            epoch: *epoch,
            ..Durable::fresh(*role)
        }),
        (None, first) => Err(never_written(path, first)),
    }
}

/// The error for a first batch that does not begin with `SetRole`.
pub(super) fn never_written(path: &str, first: Option<&StoreOp>) -> StoreError {
    StoreError::Io {
        path: path.to_string(),
        reason: format!(
            "a never-written store's first batch must begin with SetRole, not {first:?}"
        ),
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Option<Durable>, StoreError> {
        Ok(self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // Work on a copy and swap it in at the end: all or nothing.
        let mut next = starting_state(state.clone(), ops, "memory")?;
        for op in ops {
            next.apply(op);
        }
        *state = Some(next);
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use drcheck_properties::Role;
    use proptest::prelude::*;

    use super::*;
    use drcheck_protocol::entry::LogEntry;

    pub fn entry(epoch: u32, write: u64) -> LogEntry {
        LogEntry {
            epoch,
            write,
            acked_at: write * 10,
            reapply_of: write.checked_sub(5),
            payload: format!("{{\"resourceType\":\"Patient\",\"id\":\"{write}\"}}"),
        }
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![
            Just(Role::Primary),
            Just(Role::Secondary),
            Just(Role::Fenced),
            Just(Role::Stale),
        ]
    }

    /// One op; write ids are small so that `MarkReapplied` sometimes hits a quarantined one.
    pub fn op() -> impl Strategy<Value = StoreOp> {
        prop_oneof![
            3 => prop::collection::vec((1u32..4, 0u64..20), 0..4)
                .prop_map(|es| StoreOp::Append(es.into_iter().map(|(e, w)| entry(e, w)).collect())),
            1 => (1u32..6, role()).prop_map(|(epoch, role)| StoreOp::SetRole { epoch, role }),
            1 => (0u64..12).prop_map(|keep| StoreOp::QuarantineSuffix { keep }),
            1 => (0u64..12).prop_map(|keep| StoreOp::Truncate { keep }),
            1 => (0u64..20).prop_map(|write| StoreOp::MarkReapplied { write }),
        ]
    }

    /// Batches whose first one begins with `SetRole`, as a region writes them.
    pub fn batches() -> impl Strategy<Value = Vec<Vec<StoreOp>>> {
        (
            1u32..6,
            role(),
            prop::collection::vec(op(), 0..4),
            prop::collection::vec(prop::collection::vec(op(), 0..5), 0..12),
        )
            .prop_map(|(epoch, role, first_rest, mut rest)| {
                let mut first = vec![StoreOp::SetRole { epoch, role }];
                first.extend(first_rest);
                rest.insert(0, first);
                rest
            })
    }

    /// What the batches mean, by [`Durable::apply`] alone.
    pub fn expected(batches: &[Vec<StoreOp>]) -> Durable {
        let mut durable = Durable::fresh(Role::Secondary);
        for op in batches.iter().flatten() {
            durable.apply(op);
        }
        durable
    }

    proptest! {
        #[test]
        fn memory_store_agrees_with_durable_apply(batches in batches()) {
            let mut store = MemoryStore::new();
            let observer = store.clone();
            for batch in &batches {
                store.apply(batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let loaded = observer.load().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(loaded, Some(expected(&batches)));
        }
    }

    #[test]
    fn a_never_written_store_loads_none_and_refuses_a_batch_without_set_role() {
        let mut store = MemoryStore::new();
        assert_eq!(store.load().ok(), Some(None));
        let refused = store.apply(&[
            StoreOp::Append(vec![entry(1, 1)]),
            StoreOp::SetRole {
                epoch: 1,
                role: Role::Primary,
            },
        ]);
        assert!(
            refused.is_err(),
            "a batch not starting with SetRole was accepted"
        );
        assert_eq!(
            store.load().ok(),
            Some(None),
            "a refused batch changed the store"
        );
    }

    #[test]
    fn the_first_set_role_sets_the_epoch() {
        let mut store = MemoryStore::new();
        let ops = [
            StoreOp::SetRole {
                epoch: 4,
                role: Role::Fenced,
            },
            StoreOp::Append(vec![entry(4, 7)]),
        ];
        assert!(store.apply(&ops).is_ok());
        let loaded = store.load().ok().flatten();
        assert_eq!(
            loaded.as_ref().map(|d| (d.epoch, d.role)),
            Some((4, Role::Fenced))
        );
        assert_eq!(loaded.map(|d| d.log), Some(vec![entry(4, 7)]));
    }

    #[test]
    fn a_poisoned_lock_does_not_lose_the_store() {
        let mut store = MemoryStore::new();
        let set = [StoreOp::SetRole {
            epoch: 1,
            role: Role::Primary,
        }];
        assert!(store.apply(&set).is_ok());
        let shared = store.clone();
        let _ = std::thread::spawn(move || {
            let _guard = shared.state.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(store.apply(&[StoreOp::Append(vec![entry(1, 1)])]).is_ok());
        assert_eq!(store.load().ok().flatten().map(|d| d.log.len()), Some(1));
    }
}
