//! The async shell around a state machine: one tokio task per participant.
//!
//! A node takes its machine's typed inputs from its inbox, hands each to its machine with the
//! time of its own clock, then carries out the [`Effects`]: persist (all or nothing, before
//! anything is acknowledged), record events, send messages, and answer the caller. The inputs
//! queued while a commit is in flight share the next one (group commit, see `run`). A store
//! failure stops the node (fail-stop): a region that cannot persist must not acknowledge.

use std::sync::Arc;

use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion};
use drcheck_protocol::control::{ControlInput, ControlMachine, ControlOutput};
use drcheck_protocol::durable::StoreOp;
use drcheck_protocol::event::Event;
use drcheck_protocol::message::{Envelope, NodeId};
use drcheck_protocol::{Effects, Inbound};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::observe::Observer;
use crate::store::worker::{Closed, Persist};
use crate::store::Store;
use crate::time::{Clock, Millis};
use crate::transport::Transport;

/// A protocol state machine a node can run: its own typed inputs and outputs.
pub trait Machine: Send + 'static {
    /// What it is asked (ticks and messages included, see [`Inbound`]).
    type Input: Inbound + std::fmt::Debug + Send + 'static;
    /// What it answers.
    type Output: std::fmt::Debug + Send + 'static;

    /// The participant it is (messages to it are addressed so).
    fn node(&self) -> NodeId;
    /// Handles one input at `now` (the node's own clock), filling `fx` with the effects to
    /// carry out.
    fn handle(&mut self, now: Millis, input: Self::Input, fx: &mut Effects) -> Self::Output;
    /// The answer to `input` when persisting its effects failed (the node stops).
    fn store_failed(input: &Self::Input) -> Self::Output;

    /// The messages of a group of inputs handled together, merged where the receivers learn
    /// the same from fewer (a region's consecutive appends and confirmations:
    /// [`drcheck_protocol::region::coalesce`]); as they are by default.
    fn coalesce(sends: Vec<Envelope>) -> Vec<Envelope> {
        sends
    }
}

impl Machine for ControlMachine {
    type Input = ControlInput;
    type Output = ControlOutput;

    fn node(&self) -> NodeId {
        NodeId::Control
    }

    fn handle(&mut self, now: Millis, input: ControlInput, fx: &mut Effects) -> ControlOutput {
        ControlMachine::handle(self, now, input, fx)
    }

    /// The control plane keeps no store: its effects never fail to persist.
    fn store_failed(_: &ControlInput) -> ControlOutput {
        ControlOutput::Done
    }
}

impl Machine for FhirRegion {
    type Input = FhirInput;
    type Output = FhirOutput;

    fn node(&self) -> NodeId {
        NodeId::Region(self.id())
    }

    fn handle(&mut self, now: Millis, input: FhirInput, fx: &mut Effects) -> FhirOutput {
        FhirRegion::handle(self, now, input, fx)
    }

    fn store_failed(input: &FhirInput) -> FhirOutput {
        FhirRegion::store_failed(input)
    }

    fn coalesce(sends: Vec<Envelope>) -> Vec<Envelope> {
        drcheck_protocol::region::coalesce(sends)
    }
}

#[derive(Debug)]
struct Job<M: Machine> {
    input: M::Input,
    reply: Option<oneshot::Sender<M::Output>>,
}

/// Everything a node's task needs besides its machine.
pub struct Wiring {
    /// Where it persists its effects (`None`: a machine with no durable state, the control
    /// plane).
    pub store: Option<Box<dyn Store>>,
    /// How its messages travel.
    pub transport: Arc<dyn Transport>,
    /// Protocol time, on the control plane's clock.
    pub clock: Arc<dyn Clock>,
    /// How far this node's clock lags the control plane's.
    pub lag: Millis,
    /// Where its events go.
    pub observer: Arc<Observer>,
}

/// Where a node's inputs go; cheap to clone.
pub struct Mailbox<M: Machine> {
    inbox: mpsc::UnboundedSender<Job<M>>,
}

impl<M: Machine> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox {
            inbox: self.inbox.clone(),
        }
    }
}

impl<M: Machine> Mailbox<M> {
    /// Hands `input` to the node without waiting; dropped if the node stopped.
    pub fn post(&self, input: M::Input) {
        let _ = self.inbox.send(Job { input, reply: None });
    }
}

/// What the transport and the ticker need of any node, whatever its machine.
pub trait Feed: Send + Sync {
    /// A protocol message arrived for the node.
    fn deliver(&self, envelope: Envelope);
    /// Time passed.
    fn tick(&self);
}

impl<M: Machine> Feed for Mailbox<M> {
    fn deliver(&self, envelope: Envelope) {
        self.post(M::Input::from(envelope));
    }

    fn tick(&self) {
        self.post(M::Input::tick());
    }
}

/// A running node.
pub struct NodeHandle<M: Machine> {
    inbox: mpsc::UnboundedSender<Job<M>>,
    task: JoinHandle<()>,
    /// Resolves once the node's store (if any) is closed.
    store_closed: Option<Closed>,
}

impl<M: Machine> std::fmt::Debug for NodeHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("running", &self.is_running())
            .finish()
    }
}

impl<M: Machine> NodeHandle<M> {
    /// Starts `machine` in a task of the current tokio runtime.
    pub fn spawn(machine: M, mut wiring: Wiring) -> NodeHandle<M> {
        let (inbox, jobs) = mpsc::unbounded_channel();
        let (store, store_closed) = match wiring.store.take().map(Persist::seat) {
            Some((persist, closed)) => (Some(persist), closed),
            None => (None, None),
        };
        let task = tokio::spawn(run(
            machine,
            wiring,
            store,
            jobs,
            #[cfg(test)]
            false,
        ));
        NodeHandle {
            inbox,
            task,
            store_closed,
        }
    }

    /// The mutant the group-commit test must catch: a node that answers, records and sends
    /// before the group's commit is durable.
    #[cfg(test)]
    fn spawn_acking_before_commit(machine: M, mut wiring: Wiring) -> NodeHandle<M> {
        let (inbox, jobs) = mpsc::unbounded_channel();
        let (store, store_closed) = match wiring.store.take().map(Persist::seat) {
            Some((persist, closed)) => (Some(persist), closed),
            None => (None, None),
        };
        let task = tokio::spawn(run(machine, wiring, store, jobs, true));
        NodeHandle {
            inbox,
            task,
            store_closed,
        }
    }

    /// Hands `input` to the node and waits until it is handled; `None` if the node stopped.
    pub async fn call(&self, input: M::Input) -> Option<M::Output> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Job {
                input,
                reply: Some(reply),
            })
            .ok()?;
        answer.await.ok()
    }

    /// A handle that sends the node inputs.
    pub fn mailbox(&self) -> Mailbox<M> {
        Mailbox {
            inbox: self.inbox.clone(),
        }
    }

    /// Stops the node at once, as a crash would, and waits until its task is gone and its
    /// store closed (a commit in hand completes or not, as on a real crash).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        if let Some(closed) = self.store_closed {
            let _ = closed.await;
        }
    }

    /// Stops the node without waiting (its store closes once the batch in hand is done).
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Is the node's task still running (not stopped, killed, or stopped by a store failure)?
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

/// Most jobs one commit takes (group commit): enough to share a commit among many
/// concurrent writers, few enough that a batch's last reply is not held long.
pub const MAX_GROUP: usize = 256;

/// Most payload bytes the jobs of one commit append (a job that takes it over the bound still
/// goes, and ends the group; the first job always goes): a group stays a modest transaction
/// whatever the resources' sizes.
pub const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

/// A job handled, its effects but the store's held until the group's commit is durable.
struct Handled<M: Machine> {
    reply: Option<oneshot::Sender<M::Output>>,
    output: M::Output,
    /// The answer should the commit fail.
    failed: M::Output,
    /// The node's clock when it was handled (its events' time).
    at: Millis,
    events: Vec<Event>,
    send: Vec<Envelope>,
}

/// Group commit. The node takes the first job in its inbox and every job already queued
/// behind it (those that arrived while the previous commit was in flight; at most
/// [`MAX_GROUP`] jobs and [`MAX_GROUP_BYTES`] of appended payload), hands each to the machine
/// in order, persists their store operations as *one* atomic batch, and only once that is
/// durable records their events, sends their messages (merged where the receivers learn the
/// same from fewer: [`Machine::coalesce`]; a group of writes reaches a secondary as one batch)
/// and answers them, in order. A store failure answers every job of the group
/// [`Machine::store_failed`] and stops the node.
///
/// Why the machine need not see each job's operations durable before it handles the next:
/// the region machine (`drcheck_protocol::region`, and `FhirRegion` with its index) applies
/// its operations to its in-memory `Durable` as it emits them, and handles the next input
/// against that state. Its durability assumptions are all about what *leaves* the node (an
/// ack, a `Confirm` or a heartbeat counting a log length, `InSync`, `Fenced`, `Drained`, a
/// read or snapshot showing an entry, an `Append` a secondary may confirm): each must follow
/// the durability of every operation it reflects. Here nothing of a group leaves before the
/// group's commit, which holds the operations of the job itself and of every job before it
/// (the earlier groups committed first), so each output still follows the durability of all
/// it reflects. A crash (or a failed commit) mid-group persists none of it and sends nothing
/// of it: to everyone else, the node crashed before those jobs arrived, which the protocol
/// already survives (messages to a crashed node are lost, callers get no answer). The volatile
/// state a job changes (lease, confirmations, in-sync set, replication window) is lost on a
/// crash whatever the grouping. Each job is handled at its own clock reading, so an entry's
/// `acked_at` precedes its ack as before (the throttle counts an entry's age from it).
async fn run<M: Machine>(
    mut machine: M,
    wiring: Wiring,
    mut store: Option<Persist>,
    mut jobs: mpsc::UnboundedReceiver<Job<M>>,
    #[cfg(test)] ack_before_commit: bool,
) {
    let node = machine.node();
    let mut group: Vec<Handled<M>> = Vec::new();
    let mut ops: Vec<StoreOp> = Vec::new();
    while let Some(first) = jobs.recv().await {
        let mut next = Some(first);
        let mut bytes = 0usize;
        while let Some(job) = next.take() {
            let at = wiring.clock.now();
            let mut fx = Effects::default();
            let failed = M::store_failed(&job.input);
            let output = machine.handle(at.saturating_sub(wiring.lag), job.input, &mut fx);
            bytes = bytes.saturating_add(fx.store.iter().map(StoreOp::payload_bytes).sum());
            ops.append(&mut fx.store);
            group.push(Handled {
                reply: job.reply,
                output,
                failed,
                at,
                events: fx.events,
                send: fx.send,
            });
            if group.len() < MAX_GROUP && bytes <= MAX_GROUP_BYTES {
                next = jobs.try_recv().ok();
            }
        }
        #[cfg(test)]
        if ack_before_commit {
            release(node, &wiring, &mut group);
        }
        if !ops.is_empty() {
            if let Some(store) = &mut store {
                if let Err(e) = store.apply(std::mem::take(&mut ops)).await {
                    if let NodeId::Region(region) = node {
                        let event = Event::StoreFailed {
                            region,
                            error: e.to_string(),
                        };
                        wiring.observer.emit(wiring.clock.now(), node, event);
                    }
                    for handled in group {
                        if let Some(reply) = handled.reply {
                            let _ = reply.send(handled.failed);
                        }
                    }
                    return;
                }
            }
            ops.clear();
        }
        release(node, &wiring, &mut group);
    }
}

/// Carries out what a group's jobs asked once their operations are durable: record their
/// events, send their messages (merged where [`Machine::coalesce`] may), answer them; each in
/// the jobs' order, every answer after every message.
fn release<M: Machine>(node: NodeId, wiring: &Wiring, group: &mut Vec<Handled<M>>) {
    let mut sends = Vec::new();
    for handled in group.iter_mut() {
        for event in std::mem::take(&mut handled.events) {
            wiring.observer.emit(handled.at, node, event);
        }
        sends.append(&mut handled.send);
    }
    for envelope in M::coalesce(sends) {
        wiring.transport.send(envelope);
    }
    for handled in group.drain(..) {
        if let Some(reply) = handled.reply {
            let _ = reply.send(handled.output);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex, PoisonError};
    use std::time::Duration;

    use super::*;
    use crate::boot::RegionBoot;
    use crate::store::{Durable, MemoryStore, StoreError};
    use crate::time::{default_timing, VirtualClock};
    use drcheck_protocol::mutant::Mutants;
    use drcheck_protocol::region::{RegionInput, RegionOutput};

    /// A store that counts its commits and holds each until the test releases it.
    #[derive(Clone, Default)]
    struct Gate(Arc<(Mutex<GateState>, Condvar)>);

    #[derive(Default)]
    struct GateState {
        /// Every commit's operations, in order (the last one may still be held).
        commits: Vec<Vec<StoreOp>>,
        /// How many commits the test let complete.
        released: usize,
    }

    impl Gate {
        fn with<T>(&self, f: impl FnOnce(&mut GateState) -> T) -> T {
            let (state, changed) = &*self.0;
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut state);
            changed.notify_all();
            out
        }

        fn commits(&self) -> Vec<Vec<StoreOp>> {
            self.with(|s| s.commits.clone())
        }

        /// Lets the oldest held commit complete.
        fn release(&self) {
            self.with(|s| s.released += 1);
        }

        /// Lets every commit through, now and from now on.
        fn open(&self) {
            self.with(|s| s.released = usize::MAX);
        }

        /// Waits until the `n`th commit has begun.
        async fn begun(&self, n: usize) {
            for _ in 0..10_000 {
                if self.with(|s| s.commits.len()) >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("commit {n} never began");
        }
    }

    /// Opens the gate when dropped: a failing test unwinds instead of leaving the store's
    /// thread held (the runtime would wait for it forever).
    struct OpenOnDrop(Gate);

    impl Drop for OpenOnDrop {
        fn drop(&mut self) {
            self.0.open();
        }
    }

    impl Store for Gate {
        fn load(&self) -> Result<Option<Durable>, StoreError> {
            Ok(None)
        }

        fn apply(&mut self, ops: &[StoreOp]) -> Result<(), StoreError> {
            let (state, changed) = &*self.0;
            let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
            s.commits.push(ops.to_vec());
            changed.notify_all();
            let n = s.commits.len();
            while s.released < n {
                s = changed.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            Ok(())
        }
    }

    struct Nowhere;

    impl Transport for Nowhere {
        fn send(&self, _: Envelope) {}
    }

    fn write(n: u64) -> FhirInput {
        FhirInput::Protocol(RegionInput::Write {
            write: n,
            payload: format!("{{\"resourceType\":\"Patient\",\"id\":\"{n}\"}}"),
            reapply_of: None,
        })
    }

    /// Lets every task that is ready run (the test runs on one thread).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    /// Region 0 of two, the initial primary, from an empty store.
    fn primary() -> FhirRegion {
        RegionBoot {
            region: 0,
            regions: 2,
            timing: default_timing(),
            mutants: Mutants::default(),
            window: drcheck_protocol::region::Window::default(),
            now: 0,
            started: 0,
            lag: 0,
            minute_ms: 60_000,
        }
        .boot(&mut MemoryStore::new())
        .expect("boot")
    }

    /// A node's wiring with `gate` for its store, sending nowhere.
    fn wiring(gate: &Gate) -> Wiring {
        Wiring {
            store: Some(Box::new(gate.clone())),
            transport: Arc::new(Nowhere),
            clock: Arc::new(VirtualClock::new()),
            lag: 0,
            observer: Arc::new(Observer::new(false)),
        }
    }

    /// Write 1 arrives alone and its commit is held; writes 2–5 arrive meanwhile, then the
    /// commits are let through one at a time. What went against group commit, in words.
    async fn five_writes(ack_before_commit: bool) -> Vec<String> {
        let (region, gate) = (primary(), Gate::default());
        let _open = OpenOnDrop(gate.clone());
        let wiring = wiring(&gate);
        let node = Arc::new(if ack_before_commit {
            NodeHandle::spawn_acking_before_commit(region, wiring)
        } else {
            NodeHandle::spawn(region, wiring)
        });
        let call = |n: u64| {
            let node = node.clone();
            tokio::spawn(async move { node.call(write(n)).await })
        };
        let mut wrong = Vec::new();

        let first = call(1);
        gate.begun(1).await;
        let rest: Vec<_> = (2..=5).map(call).collect();
        settle().await;
        if first.is_finished() {
            wrong.push("write 1 was answered before its commit completed".to_string());
        }
        gate.release();
        gate.begun(2).await;
        settle().await;
        if !first.is_finished() {
            wrong.push("write 1 was not answered once its commit completed".to_string());
        }
        if let Some(w) = rest.iter().position(|w| w.is_finished()) {
            wrong.push(format!(
                "write {} was answered before its commit completed",
                w + 2
            ));
        }
        gate.open();

        let mut acked = Vec::new();
        for (n, w) in std::iter::once(first).chain(rest).enumerate() {
            match w.await.expect("the caller's task") {
                Some(FhirOutput::Protocol(RegionOutput::Written(Ok(ack)))) => {
                    acked.push((ack.write, ack.index))
                }
                other => wrong.push(format!("write {} was answered {other:?}", n + 1)),
            }
        }
        if acked != [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)] {
            wrong.push(format!("acknowledged (write, index): {acked:?}"));
        }
        let appended: Vec<usize> = gate
            .commits()
            .iter()
            .map(|ops| {
                ops.iter()
                    .filter(|op| matches!(op, StoreOp::Append(_)))
                    .count()
            })
            .collect();
        if appended != [1, 4] {
            wrong.push(format!("appends per commit: {appended:?}, not [1, 4]"));
        }
        wrong
    }

    #[tokio::test]
    async fn a_read_that_arrives_during_a_commit_is_answered_only_once_the_commit_is_durable() {
        let gate = Gate::default();
        let _open = OpenOnDrop(gate.clone());
        let node = Arc::new(NodeHandle::spawn(primary(), wiring(&gate)));
        let call = |input: FhirInput| {
            let node = node.clone();
            tokio::spawn(async move { node.call(input).await })
        };
        let write = call(write(1));
        gate.begun(1).await;
        // Handled after write 1, it shows the write: it may not be answered before the
        // write is durable (nor may a node that handles it during the commit answer it then).
        let read = call(FhirInput::Protocol(RegionInput::Snapshot));
        settle().await;
        assert!(
            !read.is_finished(),
            "a read answered before the commit it reflects"
        );
        gate.open();
        match read.await.expect("the reader's task") {
            Some(FhirOutput::Protocol(RegionOutput::Snapshot(s))) => assert_eq!(s.log.len(), 1),
            other => panic!("the read was answered {other:?}"),
        }
        assert!(write.await.expect("the writer's task").is_some());
        assert_eq!(gate.commits().len(), 1, "a read needs no commit of its own");
    }

    #[tokio::test]
    async fn writes_that_arrive_during_a_commit_share_the_next_and_wait_for_it() {
        let wrong = five_writes(false).await;
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[tokio::test]
    async fn a_node_that_answers_before_the_commit_is_caught() {
        let wrong = five_writes(true).await;
        assert!(
            wrong
                .iter()
                .any(|w| w.contains("answered before its commit")),
            "the mutant went unseen: {wrong:?}"
        );
    }
}
