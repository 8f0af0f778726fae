//! Operator requests: the manual data failback and the forced failover.
//!
//! Each is checked against the control plane's state and either carried out or refused with
//! a typed [`OperatorRefusal`] (recorded as an `operator_refused` event), so that the endpoint
//! words the reason once and callers match on it.

use drcheck_properties::Role;

use super::{ControlMachine, Phase};
use crate::effects::Effects;
use crate::event::{Event, FailoverKind};
use crate::message::Heartbeat;
use crate::mutant::Mutant;
use crate::refusal::OperatorRefusal;
use crate::time::Millis;

impl ControlMachine {
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

    /// May the data fail back to `target` now: could a switchover start, and is the target in
    /// sync and linked to the primary, by their last reports?
    pub(super) fn check_failback(&self, target: u8) -> Result<(), OperatorRefusal> {
        let (t, p) = self.check_switchover_possible(target)?;
        if !p.in_sync.contains(&target) {
            return Err(OperatorRefusal::NotInSync { region: target });
        }
        if !t.primary_contact {
            return Err(OperatorRefusal::NotLinked { region: target });
        }
        // An in-sync target need not hold the whole log: the switchover drains it after the
        // fence. Requiring it before never holds while clients write (the mutant does).
        if self.mutants.has(Mutant::FailbackNeedsCaughtUp) {
            Self::check_caught_up(target, t, p)?;
        }
        Ok(())
    }

    /// Does `target` report the primary's whole log (`t`, `p`: their last reports)?
    pub(super) fn check_caught_up(
        target: u8,
        t: &Heartbeat,
        p: &Heartbeat,
    ) -> Result<(), OperatorRefusal> {
        if t.log_len != p.log_len || t.last != p.last {
            return Err(OperatorRefusal::NotCaughtUp {
                region: target,
                holds: t.log_len,
                primary_holds: p.log_len,
            });
        }
        Ok(())
    }

    /// During a switchover: does `target` report the primary's whole log (by their last
    /// reports)? What the `failback-unfenced` and `failback-stale-last-entry` mutants take
    /// for drained.
    pub(super) fn reports_caught_up(&self, target: u8) -> bool {
        let reports = self.report(target).zip(self.report(self.routing.primary));
        reports.is_some_and(|(t, p)| Self::check_caught_up(target, t, p).is_ok())
    }

    /// Could a switchover to `target` start at all (and their last reports, target's first)?
    pub(super) fn check_switchover_possible(
        &self,
        target: u8,
    ) -> Result<(&Heartbeat, &Heartbeat), OperatorRefusal> {
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
        Ok((t, p))
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

    /// May the operator force the failover to `target` now?
    pub(super) fn check_forced(&self, now: Millis, target: u8) -> Result<(), OperatorRefusal> {
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
