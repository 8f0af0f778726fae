//! The control plane's decisions: when each is enabled, and the two modes that take them.
//!
//! Each [`ControlStep`]'s enabling condition is stated once, in [`ControlMachine::enabled`],
//! and taken by [`ControlMachine::take`]. Both modes use them:
//!
//! - autonomous (`tick`, and after every message: `decide`): every enabled decision is
//!   taken, in a fixed order, several in one call if they are enabled one after the other;
//! - controlled (`step`): exactly one decision, on request, or a typed [`StepRefusal`]; this
//!   replays a model path step by step.
//!
//! Where the autonomous mode differs from the steps, it does on purpose (as it always did,
//! and commented where it happens): it times out a switchover more widely than the
//! `AbortSwitchover` step (`time_out_switchover`); under the `failback-no-drain` mutant it
//! promotes on the fence's confirmation (`fence_reported`), not by an undrained
//! `CompleteSwitchover`; and it offers a rejoin only on the heartbeat that shows a region
//! behind (`heartbeat`), not on a tick.

use drcheck_properties::Role;

use super::{ControlMachine, ControlStep, Phase};
use crate::effects::Effects;
use crate::event::AbortReason;
use crate::event::ComputeMove;
use crate::event::FailoverKind;
use crate::mutant::Mutant;
use crate::refusal::StepRefusal;
use crate::time::Millis;

impl ControlMachine {
    /// Is `step` enabled at `now`, and if not, why not? Reads the state only.
    pub(super) fn enabled(&self, now: Millis, step: ControlStep) -> Result<(), StepRefusal> {
        match step {
            // A region silent for the detection time, not yet declared.
            ControlStep::Declare(r) => {
                let Some(h) = self.health.get(usize::from(r)) else {
                    return Err(StepRefusal::NoSuchRegion);
                };
                if h.failed {
                    return Err(StepRefusal::AlreadyFailed);
                }
                if self.silence(now, r) < self.detection() {
                    return Err(StepRefusal::HeardRecently);
                }
            }
            // The automatic failover to the candidate, once the old lease has surely expired
            // and the RPO guard allows.
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
            }
            // The primary last reported that in-sync secondary `r` has left a write unconfirmed
            // since the sync timeout ago.
            ControlStep::OutOfSync(r) => {
                if self
                    .unconfirmed_for(now, r)
                    .is_none_or(|t| t < self.timing.sync_timeout)
                    || self.mutants.has(Mutant::NoSyncTimeout)
                {
                    return Err(StepRefusal::StillInSync);
                }
            }
            // A healthy region behind the current epoch (or stale) rejoins, once the primary
            // has taken office (its log's older epochs are final then).
            ControlStep::Rejoin(r) => {
                if usize::from(r) >= self.health.len()
                    || r == self.routing.primary
                    || self.failed(r)
                {
                    return Err(StepRefusal::CannotRejoin);
                }
                let behind = self
                    .report(r)
                    .is_some_and(|h| h.epoch < self.routing.epoch || h.role == Role::Stale);
                let offered = self.health[usize::from(r)].rejoin_offered;
                if !behind || offered || self.primary_runs.is_none() {
                    return Err(StepRefusal::CannotRejoin);
                }
            }
            // Compute moves home as soon as the home region is a healthy member of the
            // current epoch that reaches the data primary.
            ControlStep::ComputeFailback => {
                let home = self.routing.home;
                if self.routing.compute == home || self.failed(home) {
                    return Err(StepRefusal::HomeCannotTakeCompute);
                }
                let ignores_data = self.mutants.has(Mutant::ComputeIgnoresData);
                let member = self.report(home).is_some_and(|h| {
                    h.epoch == self.routing.epoch
                        && h.role != Role::Stale
                        && (home == self.routing.primary || h.primary_contact || ignores_data)
                });
                if !member {
                    return Err(StepRefusal::HomeCannotTakeCompute);
                }
            }
            // The compute region, healthy and of the current epoch, reports that it no longer
            // hears the data primary, which is healthy: the endpoint could write nowhere.
            ControlStep::ComputeToPrimary => {
                let (c, p) = (self.routing.compute, self.routing.primary);
                let cut_off = self
                    .report(c)
                    .is_some_and(|h| h.epoch == self.routing.epoch && !h.primary_contact);
                let ignores_data = self.mutants.has(Mutant::ComputeIgnoresData);
                if c == p || self.failed(c) || self.failed(p) || !cut_off || ignores_data {
                    return Err(StepRefusal::ComputeReachesPrimary);
                }
            }
            // The fenced primary reported the target drained (the `failback-no-drain` mutant
            // does not wait for that, nor does `failback-stale-last-entry`), and the target is
            // healthy.
            ControlStep::CompleteSwitchover => {
                let Phase::Switchover {
                    target,
                    fenced_at,
                    drained,
                    ..
                } = self.phase
                else {
                    return Err(StepRefusal::NoFencedSwitchover);
                };
                // The `failback-unfenced` mutant: no fence confirmed, the target caught up by
                // the reports is enough.
                let unfenced = fenced_at.is_none()
                    && self.mutants.has(Mutant::FailbackUnfenced)
                    && self.reports_caught_up(target);
                if fenced_at.is_none() && !unfenced {
                    return Err(StepRefusal::NoFencedSwitchover);
                }
                // The `failback-stale-last-entry` mutant, fenced: the target's report of the
                // log end the primary last reported (which may predate the fence) will do.
                let stale_end = fenced_at.is_some()
                    && self.mutants.has(Mutant::FailbackStaleLastEntry)
                    && self.reports_caught_up(target);
                let drained =
                    drained || unfenced || stale_end || self.mutants.has(Mutant::FailbackNoDrain);
                if !drained || self.failed(target) {
                    return Err(StepRefusal::NotDrained);
                }
            }
            // The drain timeout passed since the fence was confirmed and the target has not
            // drained, or since the switchover started and the fence is unconfirmed.
            ControlStep::AbortSwitchover => {
                let Phase::Switchover { drained, .. } = self.phase else {
                    return Err(StepRefusal::NoFencedSwitchover);
                };
                // A fence never confirmed, or a drain not finished, within the drain timeout.
                match self.switchover_overdue(now) {
                    Some(AbortReason::FenceUnconfirmed) => {}
                    Some(AbortReason::DrainTimedOut) if !drained => {}
                    _ => return Err(StepRefusal::DrainNotTimedOut),
                }
            }
            // Only the `auto-data-failback` mutant: a switchover home once home has caught up.
            ControlStep::AutoFailback => {
                let home = self.routing.home;
                let ready = self
                    .check_switchover_possible(home)
                    .and_then(|(t, p)| Self::check_caught_up(home, t, p));
                if !self.mutants.has(Mutant::AutoDataFailback) || ready.is_err() {
                    return Err(StepRefusal::NotAutoFailback);
                }
            }
        }
        Ok(())
    }

    /// Takes `step`, which [`ControlMachine::enabled`] allows now.
    fn take(&mut self, now: Millis, step: ControlStep, fx: &mut Effects) {
        match step {
            ControlStep::Declare(r) => {
                let silent_for = self.silence(now, r);
                self.declare(now, r, silent_for, fx);
            }
            ControlStep::Promote(to) => self.promote(now, FailoverKind::Automatic, to, false, fx),
            ControlStep::OutOfSync(r) => self.leave_out_of_sync(now, r, fx),
            ControlStep::Rejoin(r) => self.send_rejoin(r, fx),
            ControlStep::ComputeFailback => {
                self.move_compute(self.routing.home, ComputeMove::Failback, fx);
            }
            ControlStep::ComputeToPrimary => {
                let primary = self.routing.primary;
                self.move_compute(primary, ComputeMove::PrimaryUnreachable, fx);
            }
            ControlStep::CompleteSwitchover => self.complete_switchover(now, fx),
            ControlStep::AbortSwitchover => {
                let why = self
                    .switchover_overdue(now)
                    .unwrap_or(AbortReason::DrainTimedOut);
                self.abort_switchover(why, fx);
            }
            ControlStep::AutoFailback => self.start_switchover(now, self.routing.home, false, fx),
        }
    }

    /// Takes `step` if it is enabled now: the autonomous mode's way.
    pub(super) fn take_if_enabled(&mut self, now: Millis, step: ControlStep, fx: &mut Effects) {
        if self.enabled(now, step).is_ok() {
            self.take(now, step, fx);
        }
    }

    /// Every decision enabled at `now`, in the order of [`ControlStep::all`].
    pub fn enabled_steps(&self, now: Millis) -> Vec<ControlStep> {
        ControlStep::all(self.regions())
            .filter(|&step| self.enabled(now, step).is_ok())
            .collect()
    }

    /// The decisions due at `now`: enabled, and not to be postponed past this instant. In
    /// controlled mode these wait for a request, and a replay may not let time pass over
    /// them (the autonomous mode takes each by its next tick at the latest).
    ///
    /// Every enabled decision is due but one: leaving a secondary out of sync is enabled
    /// once the primary's clock says its oldest unconfirmed write has waited the sync
    /// timeout, and that clock may lag this one by up to the skew. It is due only once the
    /// write has surely waited the timeout, whatever the lag: the model's urgency too, which
    /// lets time pass in between (a primary with no lag acts at the timeout).
    pub fn pending_steps(&self, now: Millis) -> Vec<ControlStep> {
        let overdue = self.timing.sync_timeout + self.timing.skew;
        self.enabled_steps(now)
            .into_iter()
            .filter(|&step| match step {
                ControlStep::OutOfSync(r) => {
                    self.unconfirmed_for(now, r).is_some_and(|t| t >= overdue)
                }
                _ => true,
            })
            .collect()
    }

    /// Takes one decision on request (controlled mode), or says why it is not enabled now.
    pub fn step(
        &mut self,
        now: Millis,
        step: ControlStep,
        fx: &mut Effects,
    ) -> Result<(), StepRefusal> {
        self.enabled(now, step)?;
        self.take(now, step, fx);
        Ok(())
    }

    /// Time passes: declare silent regions, promote, move compute home, time out a drain.
    pub fn tick(&mut self, now: Millis, fx: &mut Effects) {
        if self.controlled {
            return;
        }
        for r in 0..self.regions() {
            self.take_if_enabled(now, ControlStep::Declare(r), fx);
            self.take_if_enabled(now, ControlStep::OutOfSync(r), fx);
        }
        self.decide(now, fx);
    }

    /// The decisions that wait on a condition rather than on a message, each taken if it is
    /// enabled once the ones before were taken. (A rejoin is offered on the heartbeat that
    /// shows the region behind, not here: see `heartbeat`.)
    pub(super) fn decide(&mut self, now: Millis, fx: &mut Effects) {
        // The step names its target; the autonomous mode promotes the candidate.
        if let Some(to) = self.failover_candidate() {
            self.take_if_enabled(now, ControlStep::Promote(to), fx);
        }
        // Only a drained switchover, even under the `failback-no-drain` mutant, whose step
        // is enabled undrained: in this mode that mutant promotes on the fence's
        // confirmation instead (see `fence_reported`), and a switchover it did not promote
        // there (its fence confirmed by a heartbeat) still waits for the drain here. The
        // `failback-unfenced` and `failback-stale-last-entry` mutants complete on the last
        // reports instead (see `enabled`).
        let by_reports = self.mutants.has(Mutant::FailbackUnfenced)
            || self.mutants.has(Mutant::FailbackStaleLastEntry);
        if self.switchover_drained() || by_reports {
            self.take_if_enabled(now, ControlStep::CompleteSwitchover, fx);
        }
        self.take_if_enabled(now, ControlStep::ComputeFailback, fx);
        self.take_if_enabled(now, ControlStep::ComputeToPrimary, fx);
        self.time_out_switchover(now, fx);
        self.take_if_enabled(now, ControlStep::AutoFailback, fx);
    }
}
