//! The control plane: health monitor, lease issuer and router behind the global endpoint.
//!
//! It hears heartbeats, grants the primary's lease, declares silent regions failed, moves
//! compute off them at once, and fails the data primary over once the old lease has surely
//! expired and the RPO guard allows; otherwise it waits the grace period and leaves the
//! decision to the operator. It rejoins recovered regions, moves compute home automatically
//! and runs the operator's data failback as a drained switchover.

use std::cmp::Reverse;

use drcheck_properties::Role;

use crate::effects::Effects;
use crate::entry::Epoch;
use crate::event::{Event, FailoverKind};
use crate::message::{Envelope, Heartbeat, Message, NodeId};
use crate::mutant::{Mutant, Mutants};
use crate::refusal::{OperatorRefusal, StepRefusal};
use crate::time::{Millis, Timing};

/// The control plane's routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routing {
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
    Normal,
    /// The primary was declared failed at `since`; waiting for the old lease to expire (and,
    /// if the RPO guard refused, for the grace period and then the operator).
    FailingOver {
        from: u8,
        since: Millis,
        guard_ok: bool,
    },
    /// Manual data failback: the primary was asked to fence at `started`.
    Switchover {
        target: u8,
        started: Millis,
        fenced_at: Option<Millis>,
        requested: bool,
        /// The fenced primary reported the target holds its whole log.
        drained: bool,
    },
}

/// One decision of the control plane, taken on request in controlled mode (to follow a
/// model path step by step); on its own otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControlStep {
    Declare(u8),
    Promote(u8),
    Rejoin(u8),
    ComputeFailback,
    CompleteSwitchover,
    AbortSwitchover,
    /// Only the `auto-data-failback` mutant takes this one.
    AutoFailback,
}

/// What the control plane is asked to handle.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "input", content = "value", rename_all = "snake_case")]
pub enum ControlInput {
    /// Time passed: look at the clock.
    Tick,
    Message(Envelope),
    /// The operator's manual data failback.
    Failback {
        target: u8,
    },
    /// The operator's forced failover.
    ForceFailover {
        target: u8,
    },
    Snapshot,
    /// Controlled mode: take this decision now, if enabled.
    Step(ControlStep),
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
    Stepped(Result<(), StepRefusal>),
    Snapshot(Box<ControlSnapshot>),
}

#[derive(Clone, Debug, Default)]
struct Health {
    last_heard: Millis,
    failed: bool,
    report: Option<Heartbeat>,
}

impl Health {
    /// Has `hb` been sent after the last report taken (messages may be reordered)?
    fn is_newer(&self, hb: &Heartbeat) -> bool {
        self.report.as_ref().is_none_or(|r| hb.sent_at > r.sent_at)
    }
}

/// The control plane as the status API and the abstract view see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControlSnapshot {
    pub routing: Routing,
    pub phase: Phase,
    /// Per region: declared failed.
    pub failed: Vec<bool>,
    /// Per region: time since its last heartbeat arrived.
    pub silence: Vec<Millis>,
    /// Per region: the log length of its last heartbeat.
    pub reported_len: Vec<Option<u64>>,
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
    if let Some(primary) = at_newest(&|role| matches!(role, Role::Primary | Role::Fenced)) {
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
                        fence: None,
                        sent_at: 0,
                    }),
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

    pub fn routing(&self) -> Routing {
        self.routing
    }

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

    /// Is `r` (by its last report) a secondary of the current epoch, not declared failed?
    /// (A silent region may be down without being declared yet: if it is promoted and never
    /// takes office, it is declared in turn and the secondaries of the epoch before remain
    /// candidates; see `primary_confirmed`.)
    fn healthy_secondary(&self, r: u8) -> bool {
        let h = &self.health[usize::from(r)];
        let epoch = self.routing.epoch;
        let member = |e: Epoch| e == epoch || (!self.primary_confirmed && e + 1 == epoch);
        !h.failed
            && self
                .report(r)
                .is_some_and(|h| h.role == Role::Secondary && member(h.epoch))
    }

    /// The secondary to promote instead of `from`: the most caught up (by last entry's epoch,
    /// then length), lowest index on ties. A stale region never qualifies.
    fn candidate(&self, from: u8) -> Option<u8> {
        (0..self.regions())
            .filter(|&r| r != from && self.healthy_secondary(r))
            .max_by_key(|&r| {
                let h = self.report(r);
                (
                    h.and_then(|h| h.last.map(|(e, _)| e)),
                    self.reported_len(r),
                    Reverse(r),
                )
            })
    }

    fn guard_allows(&self, to: u8) -> bool {
        self.mutants.has(Mutant::NoRpoGuard)
            || self
                .old_prefix
                .is_some_and(|old| self.reported_len(to) >= old)
    }

    fn lease_expired(&self, now: Millis) -> bool {
        self.mutants.has(Mutant::NoLeaseWait)
            || now.saturating_sub(self.last_grant) >= self.timing.lease_wait()
    }

    /// Silence after which a region is declared failed.
    fn detection(&self) -> Millis {
        if self.mutants.has(Mutant::HastyDetection) {
            self.timing.heartbeat
        } else {
            self.timing.detection
        }
    }

    fn move_compute(&mut self, to: u8, reason: &str, fx: &mut Effects) {
        if self.mutants.has(Mutant::NoComputeFailover) && reason != "compute failback" {
            return;
        }
        let from = self.routing.compute;
        if from != to {
            self.routing.compute = to;
            fx.event(Event::ComputeMoved {
                from,
                to,
                reason: reason.to_string(),
            });
        }
    }

    /// Time passes: declare silent regions, promote, move compute home, time out a drain.
    pub fn tick(&mut self, now: Millis, fx: &mut Effects) {
        if self.controlled {
            return;
        }
        for r in 0..self.regions() {
            let h = &self.health[usize::from(r)];
            let silent_for = now.saturating_sub(h.last_heard);
            if !h.failed && silent_for >= self.detection() {
                self.declare(now, r, silent_for, fx);
            }
        }
        self.decide(now, fx);
    }

    /// The decisions that wait on a condition rather than on a message.
    fn decide(&mut self, now: Millis, fx: &mut Effects) {
        if let Phase::FailingOver { from, .. } = self.phase {
            if self.lease_expired(now) && !self.mutants.has(Mutant::NoAutoFailover) {
                if let Some(to) = self.candidate(from).filter(|&c| self.guard_allows(c)) {
                    self.promote(now, FailoverKind::Automatic, to, false, fx);
                }
            }
        }
        if let Phase::Switchover {
            target,
            fenced_at: Some(_),
            drained: true,
            requested,
            ..
        } = self.phase
        {
            if !self.failed(target) {
                self.promote(now, FailoverKind::Switchover, target, requested, fx);
            }
        }
        self.fail_back_compute(fx);
        self.time_out_switchover(now, fx);
        if self.mutants.has(Mutant::AutoDataFailback)
            && self.check_failback(self.routing.home).is_ok()
        {
            self.start_switchover(now, self.routing.home, false, fx);
        }
    }

    fn declare(&mut self, now: Millis, r: u8, silent_for: Millis, fx: &mut Effects) {
        self.health[usize::from(r)].failed = true;
        fx.event(Event::RegionDeclaredFailed {
            region: r,
            silent_for,
        });
        if self.routing.compute == r {
            let healthy = (0..self.regions()).find(|&x| !self.failed(x));
            if let Some(to) = self.candidate(r).or(healthy) {
                self.move_compute(to, "compute region declared failed", fx);
            }
        }
        if r == self.routing.primary {
            let candidate = self.candidate(r);
            let guard_ok = candidate.is_some_and(|c| self.guard_allows(c));
            self.phase = Phase::FailingOver {
                from: r,
                since: now,
                guard_ok,
            };
            fx.event(Event::FailoverStarted {
                from: r,
                guard_ok,
                old_prefix: self.old_prefix.unwrap_or(u64::MAX),
            });
            if !guard_ok {
                let reason = match candidate {
                    None => format!("no secondary of epoch {} is available", self.routing.epoch),
                    Some(c) => match self.old_prefix {
                        Some(old) => format!(
                            "RPO guard: region {c} holds {} entries, the old primary's last \
                             heartbeat reported {old} acknowledged more than RPO - heartbeat - \
                             delay ago",
                            self.reported_len(c),
                        ),
                        None => "RPO guard: the primary was not heard since the control plane \
                                 restarted, so what it acknowledged is unknown"
                            .to_string(),
                    },
                };
                fx.event(Event::FailoverBlocked {
                    from: r,
                    candidate,
                    reason,
                });
            }
        } else {
            let primary = NodeId::Region(self.routing.primary);
            let epoch = self.routing.epoch;
            fx.send(
                NodeId::Control,
                primary,
                Message::OutOfSync { epoch, region: r },
            );
            if matches!(self.phase, Phase::Switchover { target, .. } if target == r) {
                self.abort_switchover("the target was declared failed", fx);
            }
        }
    }

    /// Makes `to` the data primary of a new epoch.
    fn promote(
        &mut self,
        now: Millis,
        kind: FailoverKind,
        to: u8,
        requested: bool,
        fx: &mut Effects,
    ) {
        let from = self.routing.primary;
        let from_healthy = !self.failed(from);
        let epoch = self.routing.epoch + 1;
        self.routing.epoch = epoch;
        self.routing.primary = to;
        if self.failed(self.routing.compute) {
            self.move_compute(to, "data primary promoted", fx);
        }
        self.last_grant = now;
        // Until its first heartbeat as primary, judge the new primary by what it holds, and
        // keep the old primary's count: if the new one dies before taking office, a failover
        // from it is really one from the old primary.
        let holds = self.report(to).map_or(0, |h| h.old_prefix);
        self.old_prefix = Some(self.old_prefix.unwrap_or(0).max(holds));
        self.primary_runs = None;
        self.primary_confirmed = false;
        self.phase = Phase::Normal;
        if let Some(h) = &mut self.health[usize::from(to)].report {
            h.epoch = epoch;
            h.role = Role::Primary;
        }
        fx.event(Event::FailoverDecided {
            kind,
            from,
            to,
            epoch,
            from_healthy,
            requested,
        });
        let expiry = now + self.timing.lease;
        fx.send(
            NodeId::Control,
            NodeId::Region(to),
            Message::Promote { epoch, expiry },
        );
        if kind == FailoverKind::Switchover {
            // The old primary rejoins like any region. (After a failover it learns of the
            // new epoch from the answer to its next heartbeat.)
            fx.send(
                NodeId::Control,
                NodeId::Region(from),
                Message::NewEpoch { epoch },
            );
        }
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
            Message::Fenced { epoch, fence, .. } => {
                let this_fence = fence == self.last_fence;
                if let Phase::Switchover { fenced_at, .. } = &mut self.phase {
                    if this_fence && epoch == self.routing.epoch && r == self.routing.primary {
                        *fenced_at = Some(now);
                    }
                }
                if let Phase::Switchover {
                    target, requested, ..
                } = self.phase
                {
                    if self.mutants.has(Mutant::FailbackNoDrain) && !self.controlled {
                        self.promote(now, FailoverKind::Switchover, target, requested, fx);
                    }
                }
            }
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
                    h.epoch = epoch;
                    h.role = Role::Secondary;
                    h.log_len = log_len;
                    h.last = last;
                }
            }
            Message::Drained {
                epoch,
                target,
                fence,
            } => {
                let current = epoch == self.routing.epoch
                    && r == self.routing.primary
                    && fence == self.last_fence;
                if let Phase::Switchover {
                    target: t,
                    drained,
                    fenced_at: Some(_),
                    ..
                } = &mut self.phase
                {
                    if current && *t == target {
                        *drained = true;
                    }
                }
            }
            _ => {}
        }
        if !self.controlled {
            self.decide(now, fx);
        }
    }

    fn heartbeat(&mut self, now: Millis, r: u8, hb: Heartbeat, fx: &mut Effects) {
        fx.event(Event::HeartbeatReceived {
            region: r,
            epoch: hb.epoch,
        });
        let health = &mut self.health[usize::from(r)];
        if !health.is_newer(&hb) {
            return;
        }
        health.last_heard = now;
        health.failed = false;
        health.report = Some(hb.clone());
        if self.failed(self.routing.compute) {
            self.move_compute(r, "first healthy region heard", fx);
        }
        if hb.epoch > self.routing.epoch && matches!(hb.role, Role::Primary | Role::Fenced) {
            // The stores it recovered from were behind (a promotion it did not see): the
            // region that acts as primary of a newer epoch is the primary.
            self.routing.epoch = hb.epoch;
            self.routing.primary = r;
            self.primary_runs = None;
            self.primary_confirmed = false;
        }
        let epoch = self.routing.epoch;
        if r == self.routing.primary && hb.epoch < epoch && hb.role == Role::Secondary {
            // The promotion did not arrive: say it again.
            self.last_grant = now;
            let expiry = now + self.timing.lease;
            fx.send(
                NodeId::Control,
                NodeId::Region(r),
                Message::Promote { epoch, expiry },
            );
            return;
        }
        let previous_member =
            !self.primary_confirmed && hb.epoch + 1 == epoch && hb.role == Role::Secondary;
        if previous_member {
            // The new primary has not taken office: this secondary may still have to replace
            // it, so it is not told about the new epoch yet.
            return;
        }
        if hb.epoch < epoch {
            fx.send(
                NodeId::Control,
                NodeId::Region(r),
                Message::NewEpoch { epoch },
            );
            if !self.controlled {
                self.offer_rejoin(r, fx);
            }
            return;
        }
        if hb.role == Role::Stale {
            if !self.controlled {
                self.offer_rejoin(r, fx);
            }
            return;
        }
        if r != self.routing.primary {
            return;
        }
        if matches!(self.phase, Phase::FailingOver { from, .. } if from == r) {
            self.phase = Phase::Normal;
            fx.event(Event::FailoverCancelled { from: r });
        }
        let switching = matches!(self.phase, Phase::Switchover { .. });
        if !switching && hb.role == Role::Fenced {
            // A switchover was aborted while this primary was unreachable (or before this
            // control plane restarted): lift the fence it reports.
            let fence = hb.fence.unwrap_or(self.last_fence);
            fx.send(
                NodeId::Control,
                NodeId::Region(r),
                Message::Unfence { epoch, fence },
            );
        }
        self.old_prefix = Some(hb.old_prefix);
        if matches!(hb.role, Role::Primary | Role::Fenced) {
            self.primary_runs = Some(hb.runs.clone());
            self.primary_confirmed = true;
        }
        if let Phase::Switchover { fenced_at, .. } = &mut self.phase {
            // A fenced heartbeat confirms the fence if its reply was lost.
            if hb.role == Role::Fenced && hb.fence == Some(self.last_fence) && fenced_at.is_none() {
                *fenced_at = Some(now);
            }
        }
        // No lease once the primary confirmed a fence (a grant that crosses the fence on the
        // way is ignored by the fenced primary).
        let fenced = matches!(
            self.phase,
            Phase::Switchover {
                fenced_at: Some(_),
                ..
            }
        );
        if !fenced && hb.role == Role::Primary {
            self.last_grant = now;
            let expiry = now + self.timing.lease;
            fx.send(
                NodeId::Control,
                NodeId::Region(r),
                Message::Grant {
                    epoch,
                    expiry,
                    issued: now,
                },
            );
        }
    }

    /// A region that missed a promotion rejoins once the primary's log is known.
    fn offer_rejoin(&self, r: u8, fx: &mut Effects) -> bool {
        let primary = self.routing.primary;
        if r == primary || self.failed(r) {
            return false;
        }
        let behind = self
            .report(r)
            .is_some_and(|h| h.epoch < self.routing.epoch || h.role == Role::Stale);
        if !behind {
            return false;
        }
        // Only once the primary has taken office (its log's older epochs are final then).
        if self.primary_runs.is_some() {
            let epoch = self.routing.epoch;
            fx.send(
                NodeId::Control,
                NodeId::Region(r),
                Message::Rejoin { epoch, primary },
            );
            return true;
        }
        false
    }

    /// Compute moves home as soon as the home region is a healthy member of the current
    /// epoch that reaches the data primary.
    fn fail_back_compute(&mut self, fx: &mut Effects) -> bool {
        let home = self.routing.home;
        if self.routing.compute == home || self.failed(home) {
            return false;
        }
        let member = self.report(home).is_some_and(|h| {
            h.epoch == self.routing.epoch
                && h.role != Role::Stale
                && (home == self.routing.primary || h.primary_contact)
        });
        if member {
            self.move_compute(home, "compute failback", fx);
        }
        member
    }

    fn time_out_switchover(&mut self, now: Millis, fx: &mut Effects) {
        if let Phase::Switchover {
            started, fenced_at, ..
        } = self.phase
        {
            let limit = self.timing.drain_timeout;
            match fenced_at {
                Some(t) if now.saturating_sub(t) >= limit => {
                    self.abort_switchover("the drain timed out", fx);
                }
                None if now.saturating_sub(started) >= limit => {
                    self.abort_switchover("the primary did not confirm the fence", fx);
                }
                _ => {}
            }
        }
    }

    fn abort_switchover(&mut self, reason: &str, fx: &mut Effects) {
        if let Phase::Switchover { target, .. } = self.phase {
            self.phase = Phase::Normal;
            let epoch = self.routing.epoch;
            fx.send(
                NodeId::Control,
                NodeId::Region(self.routing.primary),
                Message::Unfence {
                    epoch,
                    fence: self.last_fence,
                },
            );
            fx.event(Event::SwitchoverAborted {
                target,
                reason: reason.to_string(),
            });
        }
    }

    /// Takes one decision on request (controlled mode), or says why it is not enabled now.
    pub fn step(
        &mut self,
        now: Millis,
        step: ControlStep,
        fx: &mut Effects,
    ) -> Result<(), StepRefusal> {
        match step {
            ControlStep::Declare(r) => {
                let Some(h) = self.health.get(usize::from(r)) else {
                    return Err(StepRefusal::NoSuchRegion);
                };
                let silent_for = now.saturating_sub(h.last_heard);
                if h.failed {
                    return Err(StepRefusal::AlreadyFailed);
                }
                if silent_for < self.detection() {
                    return Err(StepRefusal::HeardRecently);
                }
                self.declare(now, r, silent_for, fx);
            }
            ControlStep::Promote(to) => {
                let Phase::FailingOver { from, .. } = self.phase else {
                    return Err(StepRefusal::NoFailoverPending);
                };
                if self.mutants.has(Mutant::NoAutoFailover) {
                    return Err(StepRefusal::AutoFailoverOff);
                }
                if !self.lease_expired(now) {
                    return Err(StepRefusal::LeaseMayBeValid);
                }
                if self.candidate(from) != Some(to) {
                    return Err(StepRefusal::NotTheCandidate);
                }
                if !self.guard_allows(to) {
                    return Err(StepRefusal::GuardRefuses);
                }
                self.promote(now, FailoverKind::Automatic, to, false, fx);
            }
            ControlStep::Rejoin(r) => {
                if usize::from(r) >= self.health.len() || !self.offer_rejoin(r, fx) {
                    return Err(StepRefusal::CannotRejoin);
                }
            }
            ControlStep::ComputeFailback => {
                if !self.fail_back_compute(fx) {
                    return Err(StepRefusal::HomeCannotTakeCompute);
                }
            }
            ControlStep::CompleteSwitchover => {
                let Phase::Switchover {
                    target,
                    fenced_at: Some(_),
                    drained,
                    requested,
                    ..
                } = self.phase
                else {
                    return Err(StepRefusal::NoFencedSwitchover);
                };
                if !(drained || self.mutants.has(Mutant::FailbackNoDrain)) || self.failed(target) {
                    return Err(StepRefusal::NotDrained);
                }
                self.promote(now, FailoverKind::Switchover, target, requested, fx);
            }
            ControlStep::AbortSwitchover => {
                let Phase::Switchover {
                    fenced_at: Some(t),
                    drained,
                    ..
                } = self.phase
                else {
                    return Err(StepRefusal::NoFencedSwitchover);
                };
                if drained || now.saturating_sub(t) < self.timing.drain_timeout {
                    return Err(StepRefusal::DrainNotTimedOut);
                }
                self.abort_switchover("the drain timed out", fx);
            }
            ControlStep::AutoFailback => {
                let home = self.routing.home;
                if !self.mutants.has(Mutant::AutoDataFailback) || self.check_failback(home).is_err()
                {
                    return Err(StepRefusal::NotAutoFailback);
                }
                self.start_switchover(now, home, false, fx);
            }
        }
        Ok(())
    }

    /// Operator: fail the data back to `target` (the home region) as a drained switchover.
    pub fn request_failback(
        &mut self,
        now: Millis,
        target: u8,
        fx: &mut Effects,
    ) -> Result<(), OperatorRefusal> {
        let result = self.check_failback(target);
        match result {
            Ok(()) => {
                self.start_switchover(now, target, true, fx);
                Ok(())
            }
            Err(reason) => {
                fx.event(Event::OperatorRefused {
                    request: format!("data failback to region {target}"),
                    reason: reason.to_string(),
                });
                Err(reason)
            }
        }
    }

    fn start_switchover(&mut self, now: Millis, target: u8, requested: bool, fx: &mut Effects) {
        self.phase = Phase::Switchover {
            target,
            started: now,
            fenced_at: None,
            requested,
            drained: false,
        };
        fx.event(Event::SwitchoverStarted { target, requested });
        let epoch = self.routing.epoch;
        self.last_fence = now;
        fx.send(
            NodeId::Control,
            NodeId::Region(self.routing.primary),
            Message::Fence {
                epoch,
                target,
                issued: now,
            },
        );
    }

    fn check_failback(&self, target: u8) -> Result<(), OperatorRefusal> {
        let (home, primary, epoch) = (self.routing.home, self.routing.primary, self.routing.epoch);
        if usize::from(target) >= self.health.len() {
            return Err(OperatorRefusal::NoSuchRegion { region: target });
        }
        if target != home {
            return Err(OperatorRefusal::NotHome { home });
        }
        if target == primary {
            return Err(OperatorRefusal::AlreadyPrimary { region: target });
        }
        if self.phase != Phase::Normal {
            return Err(OperatorRefusal::InProgress);
        }
        if self.failed(target) {
            return Err(OperatorRefusal::DeclaredFailed { region: target });
        }
        let (Some(t), Some(p)) = (self.report(target), self.report(primary)) else {
            return Err(OperatorRefusal::NoReport);
        };
        if t.role != Role::Secondary || t.epoch != epoch {
            return Err(OperatorRefusal::NotSecondaryOfEpoch {
                region: target,
                epoch,
                role: t.role,
                reported_epoch: t.epoch,
            });
        }
        if p.role != Role::Primary || self.failed(primary) {
            return Err(OperatorRefusal::PrimaryUnhealthy { primary });
        }
        if t.log_len != p.log_len || t.last != p.last {
            return Err(OperatorRefusal::NotCaughtUp {
                region: target,
                holds: t.log_len,
                primary_holds: p.log_len,
            });
        }
        Ok(())
    }

    /// Operator: force a failover to `target` after the grace period, when the RPO guard
    /// refused the automatic one. The data loss it causes is recorded.
    pub fn force_failover(
        &mut self,
        now: Millis,
        target: u8,
        fx: &mut Effects,
    ) -> Result<(), OperatorRefusal> {
        match self.check_forced(now, target) {
            Ok(()) => {
                self.promote(now, FailoverKind::Forced, target, true, fx);
                Ok(())
            }
            Err(reason) => {
                fx.event(Event::OperatorRefused {
                    request: format!("forced failover to region {target}"),
                    reason: reason.to_string(),
                });
                Err(reason)
            }
        }
    }

    fn check_forced(&self, now: Millis, target: u8) -> Result<(), OperatorRefusal> {
        if usize::from(target) >= self.health.len() {
            return Err(OperatorRefusal::NoSuchRegion { region: target });
        }
        let Phase::FailingOver { from, since, .. } = self.phase else {
            return Err(OperatorRefusal::NoFailoverPending);
        };
        let epoch = self.routing.epoch;
        let Some(best) = self.candidate(from) else {
            return Err(OperatorRefusal::NoCandidate { epoch });
        };
        if self.guard_allows(best) && !self.mutants.has(Mutant::NoAutoFailover) {
            return Err(OperatorRefusal::GuardAllows);
        }
        let waited = now.saturating_sub(since);
        if waited < self.timing.grace {
            return Err(OperatorRefusal::GraceNotPassed {
                waited,
                grace: self.timing.grace,
            });
        }
        if !self.lease_expired(now) {
            return Err(OperatorRefusal::LeaseMayBeValid);
        }
        if target == from || !self.healthy_secondary(target) {
            return Err(OperatorRefusal::NotHealthySecondary {
                region: target,
                epoch,
            });
        }
        if target != best {
            // Any other target would lose more than the failover must.
            return Err(OperatorRefusal::NotTheBest {
                best,
                region: target,
            });
        }
        Ok(())
    }
}
