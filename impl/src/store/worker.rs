//! A region's store on a blocking thread: a commit (an fsync, for redb) never stalls the
//! async worker threads that run the nodes, the endpoint and the transports.
//!
//! The node's task hands each batch of operations to the worker and waits for its answer, so
//! the protocol's rule is unchanged: nothing is acknowledged before it is durable. When the
//! node stops (or is killed, as a crash), the worker finishes the batch in hand, closes the
//! store and says so: [`StoreWorker::closed`] lets a restart wait until the file is free.

use std::sync::mpsc as std_mpsc;

use tokio::sync::oneshot;

use super::{Store, StoreError, StoreOp};

type Request = (Vec<StoreOp>, oneshot::Sender<Result<(), StoreError>>);

/// The node's side: where batches go.
#[derive(Debug)]
pub struct StoreWorker {
    batches: std_mpsc::Sender<Request>,
}

/// Resolves when the worker has closed its store.
pub type Closed = oneshot::Receiver<()>;

impl StoreWorker {
    /// Moves `store` onto a blocking thread of the current tokio runtime.
    pub fn spawn(mut store: Box<dyn Store>) -> (StoreWorker, Closed) {
        let (batches, requests) = std_mpsc::channel::<Request>();
        let (closed, on_closed) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            while let Ok((ops, answer)) = requests.recv() {
                let _ = answer.send(store.apply(&ops));
            }
            drop(store);
            let _ = closed.send(());
        });
        (StoreWorker { batches }, on_closed)
    }

    /// Applies `ops` all or nothing; `Ok` once they are durable.
    pub async fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        let (answer, result) = oneshot::channel();
        let gone = || StoreError::Io {
            path: "store worker".to_string(),
            reason: "the store's thread stopped".to_string(),
        };
        self.batches.send((ops, answer)).map_err(|_| gone())?;
        result.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Where a node persists: in place (a store that does not block), or through a worker.
pub enum Persist {
    /// A store that does not block, called on the node's task.
    InPlace(Box<dyn Store>),
    /// A blocking store, on its own thread.
    Worker(StoreWorker),
}

impl Persist {
    /// Seats `store` as it wants: blocking stores on a worker thread.
    pub fn seat(store: Box<dyn Store>) -> (Persist, Option<Closed>) {
        if store.blocks() {
            let (worker, closed) = StoreWorker::spawn(store);
            (Persist::Worker(worker), Some(closed))
        } else {
            (Persist::InPlace(store), None)
        }
    }

    /// Applies `ops` all or nothing; `Ok` once they are durable.
    pub async fn apply(&mut self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        match self {
            Persist::InPlace(store) => store.apply(&ops),
            Persist::Worker(worker) => worker.apply(ops).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durable, MemoryStore};
    use drcheck_properties::Role;

    #[tokio::test]
    async fn batches_are_applied_in_order_and_the_store_closes_when_the_node_goes() {
        let memory = MemoryStore::new();
        let (worker, closed) = StoreWorker::spawn(Box::new(memory.clone()));
        let role = |epoch, role| StoreOp::SetRole { epoch, role };
        worker
            .apply(vec![role(1, Role::Secondary)])
            .await
            .expect("first batch");
        worker
            .apply(vec![role(2, Role::Primary)])
            .await
            .expect("second batch");
        let mut expected = Durable::fresh(Role::Secondary);
        expected.apply(&role(2, Role::Primary));
        assert_eq!(memory.load().expect("load"), Some(expected));
        drop(worker);
        closed.await.expect("the worker says it closed the store");
    }

    #[tokio::test]
    async fn a_refused_batch_is_reported_not_dropped() {
        // A never-written store refuses a batch that does not start with its role.
        let (worker, _closed) = StoreWorker::spawn(Box::new(MemoryStore::new()));
        let refused = worker.apply(vec![StoreOp::Truncate { keep: 0 }]).await;
        assert!(refused.is_err(), "{refused:?}");
    }
}
