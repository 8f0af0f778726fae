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

    fn blocks(&self) -> bool {
        false
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
mod tests {
    use drcheck_properties::Role;

    use super::*;
    use crate::store::conformance::{entry, Harness};

    /// A memory store and a clone of it that outlives it: reopening drops the open store, as
    /// a region's crash drops its task, and goes on with a new clone of the survivor.
    struct Memory {
        open: MemoryStore,
        kept: MemoryStore,
    }

    impl Harness for Memory {
        type Store = MemoryStore;

        fn new() -> Memory {
            let open = MemoryStore::new();
            let kept = open.clone();
            Memory { open, kept }
        }

        fn store(&mut self) -> &mut MemoryStore {
            &mut self.open
        }

        fn reopen(&mut self) -> Result<(), StoreError> {
            self.open = self.kept.clone();
            Ok(())
        }
    }

    crate::store::conformance::conformance_tests!(Memory, cases = 256);

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
