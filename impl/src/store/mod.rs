//! The `Store` seam: where a region's durable state (`drcheck_protocol::durable`) lives, on
//! disk or in memory. Every store must agree with [`Durable::apply`].

#[cfg(test)]
mod conformance;
mod memory;
mod redb_store;
pub mod worker;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

pub use drcheck_protocol::durable::{Durable, StoreOp};

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the store failed.
    #[error("store at {path}: {reason}")]
    Io {
        /// The store's file (or what stands for it).
        path: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The store holds something that is not a valid durable state.
    #[error("store at {path} is corrupt: {reason}")]
    Corrupt {
        /// The store's file.
        path: String,
        /// What is wrong, in words.
        reason: String,
    },
}

/// Region `region`'s durable state, or for a store never written the state a new
/// deployment starts it with (region 0 primary, the others secondaries), written first.
/// `true`: the store was new.
pub fn load_or_init(store: &mut dyn Store, region: u8) -> Result<(Durable, bool), StoreError> {
    if let Some(durable) = store.load()? {
        return Ok((durable, false));
    }
    let (fresh, op) = drcheck_protocol::durable::initial(region);
    store.apply(&[op])?;
    Ok((fresh, true))
}

/// A region's durable storage.
pub trait Store: Send + 'static {
    /// The state last persisted, or `None` for a store that was never written.
    fn load(&self) -> Result<Option<Durable>, StoreError>;

    /// Applies `ops` all or nothing; when it returns `Ok`, they survive a crash.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError>;

    /// Does `apply` block on I/O (an fsync)? Then the node runs it on a blocking thread
    /// ([`worker::StoreWorker`]); a store in memory is applied in place.
    fn blocks(&self) -> bool {
        true
    }
}
