//! Failover: replacing a data primary declared failed.
//!
//! The most caught-up healthy secondary is promoted once the old primary's lease has surely
//! expired and the RPO guard allows (it holds at least what the old primary last reported as
//! acknowledged long enough ago). A refused guard waits the grace period and leaves the
//! decision to the operator's forced failover (see `operator`). Promotion itself, into a new
//! epoch, serves every kind: automatic, forced and switchover.

use std::cmp::Reverse;

use drcheck_properties::Role;

use super::{ControlMachine, Phase};
use crate::effects::Effects;
use crate::entry::Epoch;
use crate::event::ComputeMove;
use crate::event::{Event, FailoverKind};
use crate::message::{Message, NodeId};
use crate::mutant::Mutant;
use crate::time::Millis;

impl ControlMachine {
    /// Is `r` (by its last report) a secondary of the current epoch, not declared failed?
    /// (A silent region may be down without being declared yet: if it is promoted and never
    /// takes office, it is declared in turn and the secondaries of the epoch before remain
    /// candidates; see `primary_confirmed`.) The `candidate-any-epoch` mutant takes a
    /// secondary of any epoch.
    pub(super) fn healthy_secondary(&self, r: u8) -> bool {
        let h = &self.health[usize::from(r)];
        let epoch = self.routing.epoch;
        let any_epoch = self.mutants.has(Mutant::CandidateAnyEpoch);
        let member =
            |e: Epoch| any_epoch || e == epoch || (!self.primary_confirmed && e + 1 == epoch);
        !h.failed
            && self
                .report(r)
                .is_some_and(|h| h.role == Role::Secondary && member(h.epoch))
    }

    /// The secondary to promote instead of `from`: the most caught up (by last entry's epoch,
    /// then length), lowest index on ties. A stale region never qualifies.
    pub(super) fn candidate(&self, from: u8) -> Option<u8> {
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

    /// The secondary an automatic failover would promote now, if a failover is pending.
    pub(super) fn failover_candidate(&self) -> Option<u8> {
        let Phase::FailingOver { from, .. } = self.phase else {
            return None;
        };
        self.candidate(from)
    }

    /// The RPO guard: does `to` hold at least what the old primary reported acknowledged?
    pub(super) fn guard_allows(&self, to: u8) -> bool {
        self.mutants.has(Mutant::NoRpoGuard)
            || self
                .old_prefix
                .is_some_and(|old| self.reported_len(to) >= old)
    }

    /// Has the last lease granted to the primary surely expired?
    pub(super) fn lease_expired(&self, now: Millis) -> bool {
        let hasty = self.restarted_without_grant && self.mutants.has(Mutant::CpRestartHasty);
        self.mutants.has(Mutant::NoLeaseWait)
            || hasty
            || now.saturating_sub(self.last_grant) >= self.timing.lease_wait()
    }

    /// The primary `r` was declared failed: wait for its lease to expire, and say whether
    /// the RPO guard allows the automatic failover (and why not).
    pub(super) fn start_failover(&mut self, now: Millis, r: u8, fx: &mut Effects) {
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
    }

    /// Makes `to` the data primary of a new epoch.
    pub(super) fn promote(
        &mut self,
        now: Millis,
        kind: FailoverKind,
        to: u8,
        requested: bool,
        fx: &mut Effects,
    ) {
        let from = self.routing.primary;
        let from_healthy = !self.failed(from);
        let unfenced = matches!(
            self.phase,
            Phase::Switchover {
                fenced_at: None,
                ..
            }
        );
        let epoch = self.routing.epoch + 1;
        self.routing.epoch = epoch;
        self.routing.primary = to;
        if self.failed(self.routing.compute) {
            self.move_compute(to, ComputeMove::PrimaryPromoted, fx);
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
            // As the new primary reports until its first heartbeat: nobody in sync yet (what
            // an earlier report as primary said belongs to an older epoch).
            h.epoch = epoch;
            h.role = Role::Primary;
            h.in_sync.clear();
            h.unconfirmed_since.clear();
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
        // The mutant never heard the fence confirmed, and does not tell the old primary either.
        let forgot = unfenced && self.mutants.has(Mutant::FailbackUnfenced);
        if kind == FailoverKind::Switchover && !forgot {
            // The old primary rejoins like any region. (After a failover it learns of the
            // new epoch from the answer to its next heartbeat.)
            fx.send(
                NodeId::Control,
                NodeId::Region(from),
                Message::NewEpoch { epoch },
            );
        }
    }
}
