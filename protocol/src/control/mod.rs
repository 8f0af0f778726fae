//! The control plane: health monitor, lease issuer and router behind the global endpoint.
//!
//! It hears heartbeats, grants the primary's lease, declares silent regions failed, moves
//! compute off them at once, and fails the data primary over once the old lease has surely
//! expired and the RPO guard allows; otherwise it waits the grace period and leaves the
//! decision to the operator. It rejoins recovered regions, moves compute home automatically
//! and runs the operator's data failback as a drained switchover.
//!
//! This module holds what the shell sees: the machine's state, its typed inputs and outputs,
//! the snapshot, construction and restart ([`ControlMachine::resume`], [`recover_routing`]),
//! and the dispatch of inputs and messages. The rest is split along the protocol's seams:
//!
//! - `health`: heartbeats, each region's health, declaring a silent region failed, lease
//!   grants, and the rejoin of recovered regions;
//! - `failover`: the failover of the data primary: candidate, lease wait, RPO guard,
//!   promotion;
//! - `compute`: the endpoint's compute routing, moved off failed regions and back home;
//! - `switchover`: the operator's data failback as a drained switchover: fence, drain,
//!   complete, abort;
//! - `operator`: the operator's requests (failback, forced failover) and their typed
//!   refusals;
//! - `steps`: each decision's enabling condition, stated once for both modes that take
//!   decisions: autonomous (`tick`, `decide`) and controlled (`step`).

mod compute;
mod failover;
mod health;
mod operator;
mod steps;
mod switchover;

use health::Health;

use drcheck_properties::Role;

use crate::effects::Effects;
use crate::entry::Epoch;
use crate::message::{Envelope, Heartbeat, Message, NodeId};
use crate::mutant::Mutants;
use crate::refusal::{OperatorRefusal, StepRefusal};
use crate::time::{Millis, Timing};

/// The control plane's routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routing {
    /// The current data epoch.
    pub epoch: Epoch,
    /// The data primary.
    pub primary: u8,
    /// The region the global endpoint sends requests to.
    pub compute: u8,
    /// The region compute fails back to.
    pub home: u8,
}

/// What the control plane is doing about the data primary.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// No failover or switchover under way.
    Normal,
    /// The primary was declared failed at `since`; waiting for the old lease to expire (and,
    /// if the RPO guard refused, for the grace period and then the operator).
    FailingOver {
        /// The primary declared failed.
        from: u8,
        /// When it was declared failed, in ms on the control plane's clock.
        since: Millis,
        /// Whether the RPO guard allowed the candidate when the failover started (the
        /// [`crate::event::Event::FailoverStarted`] verdict; promotion checks it again).
        guard_ok: bool,
    },
    /// Manual data failback: the primary was asked to fence at `started`.
    Switchover {
        /// The region the data moves to.
        target: u8,
        /// When the fence was issued, in ms on the control plane's clock.
        started: Millis,
        /// When the primary's fence was confirmed (its reply or a fenced heartbeat); `None`
        /// until then.
        fenced_at: Option<Millis>,
        /// An operator asked for it (false only for the `auto-data-failback` mutant).
        requested: bool,
        /// The fenced primary reported the target holds its whole log.
        drained: bool,
    },
}

/// One decision of the control plane, taken on request in controlled mode (to follow a
/// model path step by step); on its own otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlStep {
    /// Declare region `r` failed, once it has been silent for the detection time.
    Declare(u8),
    /// Automatic failover to region `r`, the candidate, once the old lease has surely
    /// expired and the RPO guard allows.
    Promote(u8),
    /// Tell the primary to stop counting region `r` in sync: it has not confirmed the
    /// primary's oldest unconfirmed write within the sync timeout.
    OutOfSync(u8),
    /// Tell region `r`, behind the current epoch or stale, to rejoin it.
    Rejoin(u8),
    /// Move compute back to the home region.
    ComputeFailback,
    /// Move compute to the data primary's region: the compute region reports no contact with
    /// it (a partition while compute and data are split).
    ComputeToPrimary,
    /// Promote the target of a fenced, drained switchover.
    CompleteSwitchover,
    /// Abort a fenced switchover whose drain timed out.
    AbortSwitchover,
    /// Only the `auto-data-failback` mutant takes this one.
    AutoFailback,
}

impl ControlStep {
    /// Every step of a deployment of `regions` regions, region by region first.
    pub fn all(regions: u8) -> impl Iterator<Item = ControlStep> {
        (0..regions)
            .flat_map(|r| {
                [
                    ControlStep::Declare(r),
                    ControlStep::Promote(r),
                    ControlStep::OutOfSync(r),
                    ControlStep::Rejoin(r),
                ]
            })
            .chain([
                ControlStep::ComputeFailback,
                ControlStep::ComputeToPrimary,
                ControlStep::CompleteSwitchover,
                ControlStep::AbortSwitchover,
                ControlStep::AutoFailback,
            ])
    }
}

/// What the control plane would do, in words: `the control plane would promote region 1`.
impl std::fmt::Display for ControlStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            ControlStep::Declare(r) => format!("declare region {r} failed"),
            ControlStep::Promote(r) => format!("promote region {r}"),
            ControlStep::OutOfSync(r) => format!("leave region {r} out of sync"),
            ControlStep::Rejoin(r) => format!("tell region {r} to rejoin"),
            ControlStep::ComputeFailback => "move compute home".to_string(),
            ControlStep::ComputeToPrimary => "move compute to the data primary".to_string(),
            ControlStep::CompleteSwitchover => "complete the switchover".to_string(),
            ControlStep::AbortSwitchover => "abort the switchover".to_string(),
            ControlStep::AutoFailback => "start a data failback home by itself".to_string(),
        };
        write!(f, "the control plane would {what}")
    }
}

/// What the control plane is asked to handle.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "input", content = "value", rename_all = "snake_case")]
pub enum ControlInput {
    /// Time passed: look at the clock.
    Tick,
    /// A protocol message arrived.
    Message(Envelope),
    /// The operator's manual data failback.
    Failback {
        /// The region to fail the data back to (the home region).
        target: u8,
    },
    /// The operator's forced failover.
    ForceFailover {
        /// The region to promote.
        target: u8,
    },
    /// Report the control plane's state ([`ControlOutput::Snapshot`]).
    Snapshot,
    /// Controlled mode: take this decision now, if enabled.
    Step(ControlStep),
    /// Controlled mode: which decisions are enabled now, and which of them are due
    /// ([`ControlOutput::Pending`]).
    Pending,
}

impl From<Envelope> for ControlInput {
    fn from(envelope: Envelope) -> Self {
        ControlInput::Message(envelope)
    }
}

impl crate::Inbound for ControlInput {
    fn tick() -> Self {
        ControlInput::Tick
    }
}

/// The control plane's answer, one kind per kind of input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "output", content = "value", rename_all = "snake_case")]
pub enum ControlOutput {
    /// To a tick or a message.
    Done,
    /// To a failback or forced-failover request.
    Operator(Result<(), OperatorRefusal>),
    /// To a controlled step: taken, or why it is not enabled.
    Stepped(Result<(), StepRefusal>),
    /// To a snapshot request.
    Snapshot(Box<ControlSnapshot>),
    /// To a pending-steps request.
    Pending {
        /// Every decision enabled now ([`ControlMachine::enabled_steps`]).
        enabled: Vec<ControlStep>,
        /// Those that may not wait for time to pass ([`ControlMachine::pending_steps`]).
        due: Vec<ControlStep>,
    },
}

/// The control plane as the status API and the abstract view see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlSnapshot {
    /// Epoch, data primary, compute and home region.
    pub routing: Routing,
    /// What it is doing about the data primary.
    pub phase: Phase,
    /// Per region: declared failed.
    pub failed: Vec<bool>,
    /// Per region: time since its last heartbeat arrived.
    pub silence: Vec<Millis>,
    /// Per region: the log length of its last heartbeat.
    pub reported_len: Vec<Option<u64>>,
    /// The secondaries the primary's last heartbeat counted in sync (and the control plane
    /// has not left out since).
    pub primary_in_sync: Vec<u8>,
    /// `old_prefix_len` of the primary's last heartbeat (unknown after a restart until the
    /// primary is heard: the RPO guard refuses meanwhile).
    pub old_prefix: Option<u64>,
    /// Time since the last lease grant to the primary.
    pub grant_age: Millis,
}

/// The routing a restarting control plane resumes with, from the regions' durable states
/// (`None` when no region has a store: a deployment that never ran): the newest epoch any
/// region holds, and the region that is primary (or fenced primary) of it.
pub fn recover_routing(stores: &[Option<(Epoch, Role)>]) -> Option<(Epoch, u8)> {
    let held: Vec<(u8, Epoch, Role)> = stores
        .iter()
        .enumerate()
        .filter_map(|(r, s)| s.map(|(e, role)| (r as u8, e, role)))
        .collect();
    let epoch = held.iter().map(|&(_, e, _)| e).max()?;
    let at_newest = |want: &dyn Fn(Role) -> bool| {
        held.iter()
            .find(|&&(_, e, role)| e == epoch && want(role))
            .map(|&(r, _, _)| r)
    };
    if let Some(primary) = at_newest(&|role: Role| role.ships()) {
        return Some((epoch, primary));
    }
    // Nobody took office in the newest epoch: its primary was told to stand down for a
    // promotion that never arrived. Promote a secondary of that epoch into the next one (it
    // is sent the promotion when it reports).
    if let Some(secondary) = at_newest(&|role| role == Role::Secondary) {
        return Some((epoch + 1, secondary));
    }
    at_newest(&|_| true).map(|r| (epoch, r))
}

/// The control plane's state machine: routing, each region's health, the primary's lease and
/// the failover or switchover under way.
#[derive(Debug)]
pub struct ControlMachine {
    timing: Timing,
    routing: Routing,
    health: Vec<Health>,
    last_grant: Millis,
    old_prefix: Option<u64>,
    /// Has the primary of the current epoch reported as primary yet? Until it has, the
    /// secondaries of the epoch before remain candidates (it may die before taking office).
    primary_confirmed: bool,
    /// When the current (or last) switchover's fence was issued.
    last_fence: Millis,
    /// The primary's epoch runs, from a heartbeat it sent as primary of the current epoch (its
    /// entries of older epochs are final then).
    primary_runs: Option<Vec<(Epoch, u64)>>,
    phase: Phase,
    mutants: Mutants,
    /// Decides nothing by itself: every decision waits for a [`ControlStep`].
    controlled: bool,
    /// Restarted ([`ControlMachine::resume`]) and has granted no lease since: what the
    /// `cp-restart-hasty` mutant forgets to be careful about.
    restarted_without_grant: bool,
}

impl ControlMachine {
    /// Region 0 is primary, compute region and home of epoch 1, with a lease granted at `now`.
    pub fn new(regions: u8, timing: Timing, now: Millis) -> Self {
        ControlMachine {
            timing,
            routing: Routing {
                epoch: 1,
                primary: 0,
                compute: 0,
                home: 0,
            },
            // A new deployment: the control plane knows how every region starts.
            health: (0..regions)
                .map(|r| Health {
                    last_heard: now,
                    failed: false,
                    report: Some(Heartbeat {
                        epoch: 1,
                        role: if r == 0 {
                            Role::Primary
                        } else {
                            Role::Secondary
                        },
                        log_len: 0,
                        last: None,
                        runs: Vec::new(),
                        old_prefix: 0,
                        primary_contact: true,
                        in_sync: Vec::new(),
                        unconfirmed_since: Vec::new(),
                        fence: None,
                        sent_at: 0,
                    }),
                    rejoin_offered: false,
                })
                .collect(),
            last_grant: now,
            old_prefix: Some(0),
            primary_confirmed: true,
            last_fence: 0,
            primary_runs: Some(Vec::new()),
            phase: Phase::Normal,
            mutants: Mutants::default(),
            controlled: false,
            restarted_without_grant: false,
        }
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Millis, input: ControlInput, fx: &mut Effects) -> ControlOutput {
        match input {
            ControlInput::Tick => self.tick(now, fx),
            ControlInput::Message(env) => self.receive(now, env.from, env.msg, fx),
            ControlInput::Failback { target } => {
                return ControlOutput::Operator(self.request_failback(now, target, fx))
            }
            ControlInput::ForceFailover { target } => {
                return ControlOutput::Operator(self.force_failover(now, target, fx))
            }
            ControlInput::Snapshot => return ControlOutput::Snapshot(Box::new(self.snapshot(now))),
            ControlInput::Step(step) => return ControlOutput::Stepped(self.step(now, step, fx)),
            ControlInput::Pending => {
                return ControlOutput::Pending {
                    enabled: self.enabled_steps(now),
                    due: self.pending_steps(now),
                }
            }
        }
        ControlOutput::Done
    }

    /// A control plane that takes decisions only when asked ([`ControlMachine::step`]).
    pub fn controlled(mut self) -> Self {
        self.controlled = true;
        self
    }

    /// A control plane restarting at `now` with the routing recovered from the regions'
    /// stores (see [`recover_routing`]). It has heard nothing yet: it treats the last grant as
    /// just issued (so it promotes nobody before any earlier lease has surely expired), and
    /// its RPO guard refuses until the primary reports again.
    pub fn resume(regions: u8, timing: Timing, now: Millis, epoch: Epoch, primary: u8) -> Self {
        let mut machine = ControlMachine::new(regions, timing, now);
        machine.routing.epoch = epoch;
        machine.routing.primary = primary;
        machine.routing.compute = primary;
        machine.old_prefix = None;
        machine.primary_runs = None;
        machine.primary_confirmed = false;
        machine.restarted_without_grant = true;
        for h in &mut machine.health {
            h.report = None;
        }
        machine
    }

    /// Switches on implementation mutants (a no-op without the `mutants` feature).
    pub fn with_mutants(mut self, mutants: Mutants) -> Self {
        self.mutants = mutants;
        self
    }

    /// The current routing.
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// The control plane's state at `now`.
    pub fn snapshot(&self, now: Millis) -> ControlSnapshot {
        ControlSnapshot {
            routing: self.routing,
            phase: self.phase.clone(),
            failed: self.health.iter().map(|h| h.failed).collect(),
            silence: self
                .health
                .iter()
                .map(|h| now.saturating_sub(h.last_heard))
                .collect(),
            reported_len: self
                .health
                .iter()
                .map(|h| h.report.as_ref().map(|r| r.log_len))
                .collect(),
            primary_in_sync: self
                .report(self.routing.primary)
                .map(|h| h.in_sync.clone())
                .unwrap_or_default(),
            old_prefix: self.old_prefix,
            grant_age: now.saturating_sub(self.last_grant),
        }
    }

    fn regions(&self) -> u8 {
        self.health.len() as u8
    }

    fn failed(&self, r: u8) -> bool {
        self.health[usize::from(r)].failed
    }

    fn report(&self, r: u8) -> Option<&Heartbeat> {
        self.health.get(usize::from(r))?.report.as_ref()
    }

    fn reported_len(&self, r: u8) -> u64 {
        self.report(r).map_or(0, |h| h.log_len)
    }

    /// A protocol message arrives.
    pub fn receive(&mut self, now: Millis, from: NodeId, msg: Message, fx: &mut Effects) {
        let NodeId::Region(r) = from else {
            return;
        };
        if usize::from(r) >= self.health.len() {
            return;
        }
        match msg {
            Message::Heartbeat(hb) => self.heartbeat(now, r, hb, fx),
            Message::Fenced { epoch, fence, .. } => self.fence_reported(now, r, epoch, fence, fx),
            Message::Promoted { epoch, runs }
                if epoch == self.routing.epoch && r == self.routing.primary =>
            {
                self.primary_runs = Some(runs);
                self.primary_confirmed = true;
            }
            Message::Rejoined {
                epoch,
                log_len,
                last,
            } if epoch == self.routing.epoch => {
                if let Some(h) = &mut self.health[usize::from(r)].report {
                    // A secondary counts nobody in sync (an earlier report as primary said
                    // what it counted in an older epoch).
                    h.epoch = epoch;
                    h.role = Role::Secondary;
                    h.log_len = log_len;
                    h.last = last;
                    h.in_sync.clear();
                    h.unconfirmed_since.clear();
                }
            }
            Message::Drained {
                epoch,
                target,
                fence,
            } => self.drain_reported(r, epoch, target, fence),
            Message::InSync { epoch, region }
                if epoch == self.routing.epoch && r == self.routing.primary =>
            {
                if let Some(report) = &mut self.health[usize::from(r)].report {
                    if !report.in_sync.contains(&region) {
                        report.in_sync.push(region);
                    }
                    report.unconfirmed_since.retain(|&(x, _)| x != region);
                }
            }
            _ => {}
        }
        if !self.controlled {
            self.decide(now, fx);
        }
    }
}
