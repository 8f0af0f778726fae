//! The async shell around a state machine: one tokio task per participant.
//!
//! A node takes its machine's typed inputs from its inbox one at a time, hands each to its machine with the
//! time of its own clock, then carries out the [`Effects`]: persist (all or nothing, before
//! anything is acknowledged), record events, send messages, and answer the caller. A store
//! failure stops the node (fail-stop): a region that cannot persist must not acknowledge.

use std::sync::Arc;

use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion};
use drcheck_protocol::control::{ControlInput, ControlMachine, ControlOutput};
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
        let task = tokio::spawn(run(machine, wiring, store, jobs));
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

async fn run<M: Machine>(
    mut machine: M,
    wiring: Wiring,
    mut store: Option<Persist>,
    mut jobs: mpsc::UnboundedReceiver<Job<M>>,
) {
    let node = machine.node();
    while let Some(job) = jobs.recv().await {
        let clock_now = wiring.clock.now();
        let now = clock_now.saturating_sub(wiring.lag);
        let mut fx = Effects::default();
        let failed = M::store_failed(&job.input);
        let output = machine.handle(now, job.input, &mut fx);
        if !fx.store.is_empty() {
            if let Some(store) = &mut store {
                if let Err(e) = store.apply(std::mem::take(&mut fx.store)).await {
                    if let NodeId::Region(region) = node {
                        let event = Event::StoreFailed {
                            region,
                            error: e.to_string(),
                        };
                        wiring.observer.emit(clock_now, node, event);
                    }
                    if let Some(reply) = job.reply {
                        let _ = reply.send(failed);
                    }
                    return;
                }
            }
        }
        for event in fx.events {
            wiring.observer.emit(clock_now, node, event);
        }
        for envelope in fx.send {
            wiring.transport.send(envelope);
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(output);
        }
    }
}
