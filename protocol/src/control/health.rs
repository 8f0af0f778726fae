//! Health: what the control plane knows of each region from its heartbeats.
//!
//! A heartbeat refreshes the region's health and report, grants the primary its lease,
//! answers a region behind the epoch (a promotion to repeat, a new epoch to learn, a rejoin
//! to offer), and lifts a fence left from an aborted switchover. A region silent for the
//! detection time is declared failed: compute moves off it, and if it is the primary a
//! failover starts (see `failover`).

use drcheck_properties::Role;

use super::{ControlMachine, ControlStep, Phase};
use crate::effects::Effects;
use crate::event::AbortReason;
use crate::event::ComputeMove;
use crate::event::Event;
use crate::message::{Heartbeat, Message, NodeId};
use crate::mutant::Mutant;
use crate::time::Millis;

/// One region as the control plane knows it.
#[derive(Clone, Debug, Default)]
pub(super) struct Health {
    pub(super) last_heard: Millis,
    pub(super) failed: bool,
    pub(super) report: Option<Heartbeat>,
    /// A rejoin was offered since the last report: it is offered once per report that shows
    /// the region behind (an offer that could not be taken is repeated on the next one).
    pub(super) rejoin_offered: bool,
}

impl Health {
    /// Has `hb` been sent after the last report taken (messages may be reordered)?
    fn is_newer(&self, hb: &Heartbeat) -> bool {
        self.report.as_ref().is_none_or(|r| hb.sent_at > r.sent_at)
    }
}

impl ControlMachine {
    /// How long `r` has been silent at `now`.
    pub(super) fn silence(&self, now: Millis, r: u8) -> Millis {
        let health = &self.health[usize::from(r)];
        if self.restarted_without_grant
            && health.report.is_none()
            && self.mutants.has(Mutant::CpRestartHasty)
        {
            // The mutant takes "not heard since the restart" for "silent for ever".
            return Millis::MAX;
        }
        now.saturating_sub(health.last_heard)
    }

    /// Silence after which a region is declared failed.
    pub(super) fn detection(&self) -> Millis {
        if self.mutants.has(Mutant::HastyDetection) {
            self.timing.heartbeat
        } else {
            self.timing.detection
        }
    }

    /// Declares `r` failed after `silent_for` of silence: compute moves off it, and a
    /// failover starts if it is the primary; otherwise the primary stops counting it in sync
    /// and a switchover to it is aborted.
    pub(super) fn declare(&mut self, now: Millis, r: u8, silent_for: Millis, fx: &mut Effects) {
        self.health[usize::from(r)].failed = true;
        fx.event(Event::RegionDeclaredFailed {
            region: r,
            silent_for,
        });
        if self.routing.compute == r {
            let healthy = (0..self.regions()).find(|&x| !self.failed(x));
            if let Some(to) = self.candidate(r).or(healthy) {
                self.move_compute(to, ComputeMove::RegionDeclaredFailed, fx);
            }
        }
        if r == self.routing.primary {
            self.start_failover(now, r, fx);
        } else {
            let primary = NodeId::Region(self.routing.primary);
            let epoch = self.routing.epoch;
            fx.send(
                NodeId::Control,
                primary,
                Message::OutOfSync { epoch, region: r },
            );
            if matches!(self.phase, Phase::Switchover { target, .. } if target == r) {
                self.abort_switchover(AbortReason::TargetDeclaredFailed, fx);
            }
        }
    }

    /// A heartbeat from `r`: its health and report, the primary's lease, and the answer to
    /// a region behind the current epoch.
    pub(super) fn heartbeat(&mut self, now: Millis, r: u8, hb: Heartbeat, fx: &mut Effects) {
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
        health.rejoin_offered = false;
        if self.failed(self.routing.compute) {
            self.move_compute(r, ComputeMove::FirstHealthyHeard, fx);
        }
        if hb.epoch > self.routing.epoch && hb.role.ships() {
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
            // Autonomous mode offers the rejoin on the heartbeat that shows the region
            // behind (only then: not on a tick); controlled mode waits for the step.
            if !self.controlled {
                self.take_if_enabled(now, ControlStep::Rejoin(r), fx);
            }
            return;
        }
        if hb.role == Role::Stale {
            if !self.controlled {
                self.take_if_enabled(now, ControlStep::Rejoin(r), fx);
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
        if hb.role.ships() {
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
            self.restarted_without_grant = false;
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

    /// How long in-sync secondary `r` has left the primary's oldest unconfirmed write
    /// unconfirmed, by the primary's last report (`None`: it is not in sync, or lacks nothing).
    /// The write's acknowledgement time is on the primary's clock, which may lag this one by
    /// the skew: the secondary is then left out early, never late.
    pub(super) fn unconfirmed_for(&self, now: Millis, r: u8) -> Option<Millis> {
        let primary = self.routing.primary;
        // Only on a fresh report of a primary that is heard (one that went silent may be
        // down, and a crashed primary counts nobody in sync).
        let fresh = self.silence(now, primary) <= self.timing.contact_window();
        if r == primary || self.failed(primary) || !fresh {
            return None;
        }
        let report = self
            .report(primary)
            .filter(|h| h.epoch == self.routing.epoch && h.role.ships())?;
        if !report.in_sync.contains(&r) {
            return None;
        }
        let (_, since) = report.unconfirmed_since.iter().find(|(x, _)| *x == r)?;
        Some(now.saturating_sub(*since))
    }

    /// Tells the primary to stop counting `r` in sync (the `OutOfSync` step), and forgets it
    /// from the primary's report until the primary reports it in sync again.
    pub(super) fn leave_out_of_sync(&mut self, now: Millis, r: u8, fx: &mut Effects) {
        let waited = self.unconfirmed_for(now, r).unwrap_or(0);
        fx.event(Event::SyncTimedOut { region: r, waited });
        let primary = self.routing.primary;
        if let Some(report) = &mut self.health[usize::from(primary)].report {
            report.in_sync.retain(|&x| x != r);
        }
        let epoch = self.routing.epoch;
        fx.send(
            NodeId::Control,
            NodeId::Region(primary),
            Message::OutOfSync { epoch, region: r },
        );
    }

    /// Tells `r`, behind the current epoch, to rejoin it from the primary (the `Rejoin`
    /// step).
    pub(super) fn send_rejoin(&mut self, r: u8, fx: &mut Effects) {
        self.health[usize::from(r)].rejoin_offered = true;
        let (epoch, primary) = (self.routing.epoch, self.routing.primary);
        fx.send(
            NodeId::Control,
            NodeId::Region(r),
            Message::Rejoin { epoch, primary },
        );
    }
}
