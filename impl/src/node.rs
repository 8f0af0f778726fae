//! The async shell around a state machine: one tokio task per participant.
//!
//! A node takes [`Input`]s from its inbox one at a time, hands each to its machine with the
//! time of its own clock, then carries out the [`Effects`]: persist (all or nothing, before
//! anything is acknowledged), record events, send messages, and answer the caller. A store
//! failure stops the node (fail-stop): a region that cannot persist must not acknowledge.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::{Event, Refusal};
use crate::fhir::change::Change;
use crate::fhir::index::WriteRequest;
use drcheck_protocol::message::{Envelope, NodeId};
use crate::observe::Observer;
use drcheck_protocol::control::{ControlMachine, ControlSnapshot, ControlStep};
use drcheck_protocol::region::{Ack, RegionMachine, RegionSnapshot};
use drcheck_protocol::Effects;
use crate::service::rpc::{Failure, RegionSummary};
use crate::store::Store;
use crate::time::{Clock, Millis};
use crate::transport::Transport;

/// Something a node is asked to handle.
#[derive(Debug)]
pub enum Input {
    /// Time passed: look at the clock.
    Tick,
    Message(Envelope),
    /// A client write (region), or an operator's re-apply (`reapply_of`).
    Write {
        write: WriteId,
        payload: String,
        reapply_of: Option<WriteId>,
    },
    /// Region: mark a quarantined write as re-applied.
    MarkReapplied {
        write: WriteId,
    },
    /// Control plane: operator's manual data failback.
    Failback {
        target: u8,
    },
    /// Control plane: operator's forced failover.
    ForceFailover {
        target: u8,
    },
    Snapshot,
    /// Region running FHIR: a write, checked against the current versions, then appended.
    FhirWrite {
        write: WriteId,
        request: WriteRequest,
        unix_ms: u64,
        /// The quarantined write an operator re-applies with this one.
        reapply_of: Option<WriteId>,
    },
    /// Region running FHIR: the current version, one version, or the history of a resource.
    FhirRead {
        kind: String,
        id: String,
        version: Option<u64>,
        history: bool,
    },
    /// Region running FHIR: what the status API shows.
    Summary,
    /// Control plane in controlled mode: take this decision now, if enabled.
    ControlStep(ControlStep),
    /// Region: retransmit to this region now rather than at the next tick.
    ShipNow {
        to: u8,
    },
}

/// A node's answer.
#[derive(Debug)]
pub enum Output {
    Done,
    Write(Result<Ack, Refusal>),
    Operator(Result<(), String>),
    Marked(bool),
    Region(Box<RegionSnapshot>),
    Control(Box<ControlSnapshot>),
    /// A FHIR write: acknowledged (with the change it made), nothing to do (`None`), or failed.
    FhirWritten(FhirWriteResult),
    FhirRead(Result<Vec<Change>, Failure>),
    Summary(Box<RegionSummary>),
}

pub type FhirWriteResult = Result<Option<(Ack, Change)>, Failure>;

/// The answer of a machine that does not serve FHIR.
fn no_fhir() -> Failure {
    Failure {
        status: 501,
        code: "not-supported".to_string(),
        diagnostics: "this node does not serve FHIR".to_string(),
        retry_after: None,
    }
}

/// Answers inputs a machine does not take.
fn unsupported(input: &Input) -> Output {
    match input {
        Input::FhirWrite { .. } => Output::FhirWritten(Err(no_fhir())),
        Input::FhirRead { .. } => Output::FhirRead(Err(no_fhir())),
        Input::Write { .. } => Output::Write(Err(Refusal::NotPrimary)),
        Input::MarkReapplied { .. } => Output::Marked(false),
        Input::Failback { .. } | Input::ForceFailover { .. } | Input::ControlStep(_) => {
            Output::Operator(Err("this node takes no operator requests".into()))
        }
        _ => Output::Done,
    }
}

/// A protocol state machine a node can run.
pub trait Machine: Send + 'static {
    fn node(&self) -> NodeId;
    fn handle(&mut self, now: Millis, input: Input, fx: &mut Effects) -> Output;
}

impl Machine for RegionMachine {
    fn node(&self) -> NodeId {
        NodeId::Region(self.id())
    }

    fn handle(&mut self, now: Millis, input: Input, fx: &mut Effects) -> Output {
        match input {
            Input::Tick => self.tick(now, fx),
            Input::Message(env) => self.receive(now, env.from, env.msg, fx),
            Input::Write {
                write,
                payload,
                reapply_of,
            } => return Output::Write(self.write(now, write, payload, reapply_of, fx)),
            Input::MarkReapplied { write } => {
                return Output::Marked(self.mark_reapplied(write, fx))
            }
            Input::Snapshot => return Output::Region(Box::new(self.snapshot(now))),
            Input::ShipNow { to } => self.ship_now(to, fx),
            other => return unsupported(&other),
        }
        Output::Done
    }
}

impl Machine for ControlMachine {
    fn node(&self) -> NodeId {
        NodeId::Control
    }

    fn handle(&mut self, now: Millis, input: Input, fx: &mut Effects) -> Output {
        match input {
            Input::Tick => self.tick(now, fx),
            Input::Message(env) => self.receive(now, env.from, env.msg, fx),
            Input::Failback { target } => {
                return Output::Operator(self.request_failback(now, target, fx))
            }
            Input::ForceFailover { target } => {
                return Output::Operator(self.force_failover(now, target, fx))
            }
            Input::Snapshot => return Output::Control(Box::new(self.snapshot(now))),
            Input::ControlStep(step) => return Output::Operator(self.step(now, step, fx)),
            other => return unsupported(&other),
        }
        Output::Done
    }
}

/// The answer to `input` when the store fails while handling it.
fn store_failed(input: &Input) -> Output {
    match input {
        Input::FhirWrite { .. } => Output::FhirWritten(Err(Failure {
            status: 503,
            code: "transient".to_string(),
            diagnostics: "the region's store failed; it stopped".to_string(),
            retry_after: Some(1),
        })),
        Input::MarkReapplied { .. } => Output::Marked(false),
        _ => Output::Write(Err(Refusal::StoreFailed)),
    }
}

#[derive(Debug)]
struct Job {
    input: Input,
    reply: Option<oneshot::Sender<Output>>,
}

/// Everything a node's task needs besides its machine.
pub struct Wiring {
    pub store: Option<Box<dyn Store>>,
    pub transport: Arc<dyn Transport>,
    pub clock: Arc<dyn Clock>,
    /// How far this node's clock lags the control plane's.
    pub lag: Millis,
    pub observer: Arc<Observer>,
}

/// Where a node's inputs go; cheap to clone.
#[derive(Clone, Debug)]
pub struct Mailbox {
    inbox: mpsc::UnboundedSender<Job>,
}

impl Mailbox {
    /// Hands `input` to the node without waiting; dropped if the node stopped.
    pub fn post(&self, input: Input) {
        let _ = self.inbox.send(Job { input, reply: None });
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    inbox: mpsc::UnboundedSender<Job>,
    task: JoinHandle<()>,
}

impl NodeHandle {
    /// Starts `machine` in a task of the current tokio runtime.
    pub fn spawn(machine: impl Machine, wiring: Wiring) -> NodeHandle {
        let (inbox, jobs) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(machine, wiring, jobs));
        NodeHandle { inbox, task }
    }

    /// Hands `input` to the node and waits until it is handled; `None` if the node stopped.
    pub async fn call(&self, input: Input) -> Option<Output> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Job {
                input,
                reply: Some(reply),
            })
            .ok()?;
        answer.await.ok()
    }

    pub fn mailbox(&self) -> Mailbox {
        Mailbox {
            inbox: self.inbox.clone(),
        }
    }

    /// Stops the node at once, as a crash would, and waits until its task is gone (and with
    /// it the store it held open).
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

async fn run(
    mut machine: impl Machine,
    mut wiring: Wiring,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let node = machine.node();
    while let Some(job) = jobs.recv().await {
        let clock_now = wiring.clock.now();
        let now = clock_now.saturating_sub(wiring.lag);
        let mut fx = Effects::default();
        let failed = store_failed(&job.input);
        let output = machine.handle(now, job.input, &mut fx);
        if !fx.store.is_empty() {
            if let Some(store) = &mut wiring.store {
                if let Err(e) = store.apply(&fx.store) {
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
