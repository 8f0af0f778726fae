//! The control plane's decisions and the two modes that take them.
//!
//! Autonomous (`tick`, and after every message): every enabled decision is taken.
//! Controlled (`step`): exactly one decision, on request, or a typed [`StepRefusal`]; this
//! replays a model path step by step.

use super::switchover::AbortReason;
use super::{ControlMachine, ControlStep, Phase};
use crate::effects::Effects;
use crate::event::FailoverKind;
use crate::mutant::Mutant;
use crate::refusal::StepRefusal;
use crate::time::Millis;

impl ControlMachine {
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
    pub(super) fn decide(&mut self, now: Millis, fx: &mut Effects) {
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
                self.abort_switchover(AbortReason::DrainTimedOut, fx);
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
}
