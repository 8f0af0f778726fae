//! Switchover: the operator's data failback (or the `auto-data-failback` mutant's), run as
//! a drained switchover so that no acknowledged write is lost.
//!
//! The primary is asked to fence (it stops accepting writes); once it confirms the fence and
//! reports that the target holds its whole log, the target is promoted. A switchover whose
//! fence is not confirmed, or whose drain does not finish, in the drain timeout is aborted
//! and the primary unfenced; so is one whose target is declared failed.

use super::{ControlMachine, Phase};
use crate::effects::Effects;
use crate::entry::Epoch;
use crate::event::{AbortReason, Event, FailoverKind};
use crate::message::{Message, NodeId};
use crate::mutant::Mutant;
use crate::time::Millis;

impl ControlMachine {
    /// Starts a switchover to `target`: the primary is asked to fence.
    pub(super) fn start_switchover(
        &mut self,
        now: Millis,
        target: u8,
        requested: bool,
        fx: &mut Effects,
    ) {
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

    /// The primary `r` confirms the fence issued at `fence` (or an older one).
    pub(super) fn fence_reported(
        &mut self,
        now: Millis,
        r: u8,
        epoch: Epoch,
        fence: Millis,
        fx: &mut Effects,
    ) {
        let this_fence = fence == self.last_fence;
        if let Phase::Switchover { fenced_at, .. } = &mut self.phase {
            if this_fence && epoch == self.routing.epoch && r == self.routing.primary {
                *fenced_at = Some(now);
            }
        }
        // The `failback-no-drain` mutant, autonomous: the target is promoted on the fenced
        // reply itself, whichever fence it answers and whatever the target's health. In
        // controlled mode the mutant acts through the `CompleteSwitchover` step instead,
        // enabled undrained as the model's bug is (see `enabled`).
        if self.mutants.has(Mutant::FailbackNoDrain) && !self.controlled {
            self.complete_switchover(now, fx);
        }
    }

    /// The primary `r`, fenced at `fence`, reports that `target` holds its whole log.
    pub(super) fn drain_reported(&mut self, r: u8, epoch: Epoch, target: u8, fence: Millis) {
        let current =
            epoch == self.routing.epoch && r == self.routing.primary && fence == self.last_fence;
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

    /// Which time limit of the switchover has passed at `now`, if any: the fence's
    /// confirmation or, once it is confirmed, the drain's.
    pub(super) fn switchover_overdue(&self, now: Millis) -> Option<AbortReason> {
        let Phase::Switchover {
            started, fenced_at, ..
        } = self.phase
        else {
            return None;
        };
        let limit = self.timing.drain_timeout;
        match fenced_at {
            Some(t) if now.saturating_sub(t) >= limit => Some(AbortReason::DrainTimedOut),
            None if now.saturating_sub(started) >= limit => Some(AbortReason::FenceUnconfirmed),
            _ => None,
        }
    }

    /// The autonomous mode's switchover timeout: aborts a switchover whose fence or drain
    /// took longer than the drain timeout. It is wider than the `AbortSwitchover` step on
    /// purpose: it also aborts one that drained but was not completed (`decide` completes a
    /// drained switchover just before, unless its target is declared failed), which the step
    /// refuses as drained.
    pub(super) fn time_out_switchover(&mut self, now: Millis, fx: &mut Effects) {
        if let Some(why) = self.switchover_overdue(now) {
            self.abort_switchover(why, fx);
        }
    }

    /// Promotes the switchover's target (the `CompleteSwitchover` step).
    pub(super) fn complete_switchover(&mut self, now: Millis, fx: &mut Effects) {
        if let Phase::Switchover {
            target, requested, ..
        } = self.phase
        {
            self.promote(now, FailoverKind::Switchover, target, requested, fx);
        }
    }

    /// Has the fenced primary reported the switchover's target drained?
    pub(super) fn switchover_drained(&self) -> bool {
        matches!(self.phase, Phase::Switchover { drained: true, .. })
    }

    /// Ends a switchover unfinished: the primary is unfenced.
    pub(super) fn abort_switchover(&mut self, why: AbortReason, fx: &mut Effects) {
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
                reason: why,
            });
        }
    }
}
