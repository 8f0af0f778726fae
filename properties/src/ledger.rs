//! The ghost ledger: every acknowledged write and every change of data primary, with the
//! timing facts the invariants need. It is bookkeeping of the checker, not of the protocol:
//! no region reads it to decide anything.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::region::{Entry, RegionView};
use crate::view::Bounds;

/// What became of an acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fate {
    /// Still expected in the data primary's log (unless quarantined: see
    /// [`WriteRecord::is_live`]).
    Live,
    /// Lost by failover number `failover` (index into [`Ledger::failovers`]): not in the new
    /// primary's log when it was promoted, or acknowledged by the old primary after that
    /// promotion and quarantined when it rejoined.
    Lost {
        /// Index into [`Ledger::failovers`] of the promotion that lost it.
        failover: u8,
    },
}

/// One acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteRecord {
    /// The write's id, as [`crate::Entry::write`] and quarantines name it.
    pub id: u8,
    /// The region that acknowledged it.
    pub by: u8,
    /// Ticks since it was acknowledged, saturating at the age cap. A write that every region
    /// holds can never be lost, so its age is saturated at once (it no longer matters).
    pub age: u8,
    /// Age of the previous entry of the same log when this one was acknowledged (the ack-time
    /// gap), saturating at the age cap; used to measure how far apart lost writes were.
    pub gap: u8,
    /// Whether it is still expected in the primary's log or was lost by a failover.
    pub fate: Fate,
    /// The quarantined write the operator re-applied as this new write.
    pub reapply_of: Option<u8>,
    /// Has this write ever been moved into a quarantine?
    pub quarantined: bool,
    /// Has the operator re-applied it (as a new write)?
    pub reapplied: bool,
    /// The secondaries (bit per region) the primary counted in sync when it acknowledged
    /// this write: the throttle bounds how far apart such writes a failover to one of them
    /// can lose.
    pub protected_by: u8,
    /// Per region (index = region): its age when that region, holding it, last became
    /// unreachable (0 if acknowledged while the region was unreachable), until the region is
    /// heard again: how long before that region's outage it was acknowledged. Per region, so
    /// that one region heard again does not erase the age another region's outage set.
    pub ages_at_outage: [Option<u8>; 3],
}

impl WriteRecord {
    /// Forgets when this write was acknowledged, relative to now and to the write before it:
    /// for a write that can no longer be lost (every region holds it) or that was lost
    /// already. Only a live write about to be lost has its age, its ages at outages or its
    /// gap read (`Ledger::record_failover`); a write acknowledged later took its own gap
    /// when it was acknowledged. So states that differ only in these fields are one.
    pub fn forget_timing(&mut self, age_cap: u8) {
        self.age = age_cap;
        self.gap = age_cap;
        self.ages_at_outage = [None; 3];
    }

    /// Is it still expected in the data primary's log: neither lost by a failover nor
    /// quarantined (a quarantined write is lost, whatever its fate says)?
    pub fn is_live(&self) -> bool {
        self.fate == Fate::Live && !self.quarantined
    }
}

/// How the data primary changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailoverKind {
    /// Automatic failover by the control plane after detecting an outage.
    Automatic,
    /// Operator-forced failover after the grace period, when the RPO guard refused.
    Forced,
    /// Planned switchover (manual data failback).
    Switchover,
}

/// One promotion of a new data primary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// Automatic, forced, or a planned switchover.
    pub kind: FailoverKind,
    /// The region that was data primary before.
    pub from: u8,
    /// The region promoted.
    pub to: u8,
    /// The epoch of the new primary.
    pub epoch: u8,
    /// Number of live acknowledged writes the new primary did not hold, plus the writes the
    /// old primary acknowledged after the promotion and quarantined when it rejoined.
    pub lost: u8,
    /// For the oldest lost write: ticks between its acknowledgement and the first instant the
    /// old primary was unreachable (0 if acknowledged after that instant; its age now if the
    /// old primary was not unreachable).
    pub oldest_loss: Option<u8>,
    /// Ticks between the acknowledgements of the oldest and the newest lost write that were
    /// acknowledged while the new primary was an in-sync secondary.
    pub spread: u8,
    /// Did the control plane consider the old primary healthy at the promotion?
    pub from_healthy: bool,
    /// Was an operator request pending for it?
    pub requested: bool,
}

/// Ghost state: every acknowledged write, every promotion, and the clocks the time-bounded
/// invariants read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ledger {
    /// Every acknowledged write, in acknowledgement order.
    pub writes: SmallVec<[WriteRecord; 4]>,
    /// Every promotion of a new data primary, in order ([`Fate::Lost`] indexes it).
    pub failovers: Vec<FailoverRecord>,
    /// A region the control plane declared failed while it was up and reachable.
    pub spurious: Option<u8>,
    /// Ticks since a single-fault outage of the data primary made the endpoint unwritable;
    /// `None` while writable, or when the outage is excused (another fault, or the RPO guard
    /// refused an automatic failover).
    pub outage: Option<u8>,
    /// The RPO guard refused an automatic failover at least once (the RTO then waits for the
    /// old primary or the operator, by design).
    pub rto_waived: bool,
    /// The single fault in effect (nothing else was wrong when it began), which
    /// `write_availability` watches until another fault begins; `None` before any fault and
    /// once two overlap.
    pub single_fault: Option<SingleFault>,
    /// Ticks the endpoint has been unable to take writes, without a break, under the single
    /// fault; `None` while it takes writes (or no single fault is watched).
    pub unwritable: Option<u8>,
    /// Ticks since the operator's data failback request was accepted, while its switchover
    /// runs and no fault has interfered.
    pub failback: Option<u8>,
    /// A data failback request to an eligible target (up, linked, an in-sync secondary of the
    /// current epoch) was refused: the region it named.
    pub failback_refused: Option<u8>,
}

/// The age at which write ages saturate, in ticks: the largest bound any guard or property
/// compares an age with (the RPO and the RPO guard's threshold below it, the sync timeout with
/// `>=`, the throttle with `>`, so one more). The model and the implementation's ghost both use
/// it, so that their views agree.
pub fn age_cap(rpo: u8, throttle: u8, sync_timeout: u8) -> u8 {
    rpo.max(throttle.saturating_add(1)).max(sync_timeout)
}

/// The kind of a fault that began while nothing else was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SingleFault {
    /// The data primary crashed or was isolated.
    PrimaryOutage,
    /// A secondary crashed or was isolated.
    SecondaryOutage,
    /// The regions were cut off from each other (the control plane still hears all).
    Partition,
    /// The control plane crashed and was restarted, losing its volatile state.
    ControlRestart,
}

impl SingleFault {
    /// Every kind, in report order.
    pub const ALL: [SingleFault; 4] = [
        SingleFault::PrimaryOutage,
        SingleFault::SecondaryOutage,
        SingleFault::Partition,
        SingleFault::ControlRestart,
    ];

    /// The kind's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SingleFault::PrimaryOutage => "primary outage",
            SingleFault::SecondaryOutage => "secondary outage",
            SingleFault::Partition => "inter-region partition",
            SingleFault::ControlRestart => "control-plane restart",
        }
    }
}

impl Ledger {
    /// The record of write `id`.
    pub fn write(&self, id: u8) -> Option<&WriteRecord> {
        self.writes.iter().find(|w| w.id == id)
    }

    fn write_mut(&mut self, id: u8) -> Option<&mut WriteRecord> {
        self.writes.iter_mut().find(|w| w.id == id)
    }

    /// Records that region `by` acknowledged write `id`, appended after `previous` in its log;
    /// `unavailable`: the control plane cannot reach `by` (an isolated region);
    /// `protected_by`: the secondaries `by` counted in sync (bit per region).
    #[allow(clippy::too_many_arguments)]
    pub fn acknowledge(
        &mut self,
        id: u8,
        by: u8,
        previous: Option<u8>,
        reapply_of: Option<u8>,
        unavailable: bool,
        protected_by: u8,
        age_cap: u8,
    ) {
        let gap = previous
            .and_then(|p| self.write(p))
            .map_or(age_cap, |p| p.age);
        if let Some(original) = reapply_of.and_then(|o| self.write_mut(o)) {
            original.reapplied = true;
        }
        self.writes.push(WriteRecord {
            id,
            by,
            age: 0,
            gap,
            fate: Fate::Live,
            reapply_of,
            quarantined: false,
            reapplied: false,
            protected_by,
            ages_at_outage: {
                let mut ages = [None; 3];
                if let Some(a) = ages.get_mut(usize::from(by)) {
                    *a = unavailable.then_some(0);
                }
                ages
            },
        });
    }

    /// Marks writes as quarantined: `entries` are the divergent suffix a rejoining region
    /// moved to its quarantine, each with the epoch it was written in.
    ///
    /// A quarantined write is lost. One still live was acknowledged after the promotion that
    /// superseded its epoch (an old primary writing on after a failover), so that promotion's
    /// new primary did not hold it: it is charged to that failover, the first recorded into an
    /// epoch above the entry's, never to whichever failover comes next. That failover's
    /// `lost` counts it; its `oldest_loss` and `spread` describe the writes lost at the
    /// promotion itself and stay as they were (a write acknowledged after the promotion was
    /// acknowledged after the outage it answered).
    pub fn quarantine(&mut self, entries: impl IntoIterator<Item = Entry>, age_cap: u8) {
        for e in entries {
            let by = self
                .failovers
                .iter()
                .position(|f| f.epoch > e.epoch)
                .and_then(|i| u8::try_from(i).ok());
            let Some(w) = self.write_mut(e.write) else {
                continue;
            };
            w.quarantined = true;
            if w.fate != Fate::Live {
                continue;
            }
            // A region only rejoins an epoch some failover started, so `by` is found
            // whenever the entry's epoch is older than the current one. Should it not be,
            // the write stays live and quarantined, and `record_failover` passes it over.
            if let Some(failover) = by {
                w.fate = Fate::Lost { failover };
                w.forget_timing(age_cap);
                if let Some(f) = self.failovers.get_mut(usize::from(failover)) {
                    f.lost = f.lost.saturating_add(1);
                }
            }
        }
    }

    /// Region `r` became unreachable: remember how old each of its writes was at that instant.
    pub fn unavailable(&mut self, r: u8, region: &RegionView) {
        let r = usize::from(r);
        for e in &region.log {
            if let Some(w) = self.write_mut(e.write) {
                if w.fate == Fate::Live {
                    if let Some(a) = w.ages_at_outage.get_mut(r) {
                        *a = a.or(Some(w.age));
                    }
                }
            }
        }
    }

    /// The control plane heard from region `r` again: the outage ages it set no longer apply.
    pub fn available(&mut self, r: u8) {
        let r = usize::from(r);
        for w in &mut self.writes {
            if w.fate == Fate::Live {
                if let Some(a) = w.ages_at_outage.get_mut(r) {
                    *a = None;
                }
            }
        }
    }

    /// One tick of time passes. Clocks saturate just past the bound a property compares them
    /// with.
    pub fn tick(&mut self, age_cap: u8, bounds: &Bounds) {
        for w in &mut self.writes {
            w.age = w.age.saturating_add(1).min(age_cap);
        }
        let past = |t: &mut u8, bound: u8| *t = t.saturating_add(1).min(bound.saturating_add(1));
        if let Some(t) = &mut self.outage {
            past(t, bounds.rto);
        }
        if let Some(t) = &mut self.unwritable {
            past(t, bounds.rto);
        }
        if let Some(t) = &mut self.failback {
            past(t, bounds.drain_timeout);
        }
    }

    /// A fault begins: `single` is its kind when nothing else was wrong, `None` when it
    /// overlaps another; `guard_refused`: the control plane is waiting on a refused RPO guard.
    /// A second fault excuses the clocks (the RTO is promised for single faults), a fault
    /// during a switchover excuses its deadline.
    pub fn fault_begins(&mut self, single: Option<SingleFault>, guard_refused: bool) {
        if self.outage.is_some() {
            self.outage = None;
        } else if single == Some(SingleFault::PrimaryOutage) && !guard_refused {
            self.outage = Some(0);
        }
        self.single_fault = single;
        self.unwritable = None;
        self.failback = None;
    }

    /// After every step: the availability clocks run while the endpoint cannot take writes
    /// and stop when it can; `repaired`: every region is up and linked again (the single
    /// fault is over once writes are possible too, and is no longer watched: states after a
    /// repaired fault are then the same whatever the fault was); `switching`: a switchover is
    /// under way (its deadline runs).
    pub fn after_step(&mut self, endpoint_writable: bool, repaired: bool, switching: bool) {
        if endpoint_writable {
            self.outage = None;
            if repaired {
                self.single_fault = None;
            }
        }
        let watched = self.single_fault.is_some() && !self.rto_waived;
        self.unwritable = (watched && !endpoint_writable).then(|| self.unwritable.unwrap_or(0));
        if !switching {
            self.failback = None;
        }
    }

    /// The operator asked for a data failback to an eligible target: `accepted`, its
    /// switchover started; otherwise it was refused.
    pub fn failback_requested(&mut self, target: u8, accepted: bool) {
        if accepted {
            self.failback = Some(0);
        } else if self.failback_refused.is_none() {
            self.failback_refused = Some(target);
        }
    }

    /// Saturates the age of every write that every region holds: it can no longer be lost,
    /// so nothing reads its age or its ack-time gap again (see [`WriteRecord::forget_timing`]).
    pub fn settle(&mut self, regions: &[RegionView], age_cap: u8) {
        for w in &mut self.writes {
            if w.age < age_cap && regions.iter().all(|r| r.holds(w.id)) {
                w.forget_timing(age_cap);
            }
        }
    }

    /// Records the promotion of region `to` in place of region `from` and marks as lost every
    /// live write `to` does not hold. A quarantined write was lost already (see
    /// [`Ledger::quarantine`]): it is never charged to this promotion.
    #[allow(clippy::too_many_arguments)]
    pub fn record_failover(
        &mut self,
        kind: FailoverKind,
        from: u8,
        to: u8,
        epoch: u8,
        regions: &[RegionView],
        from_healthy: bool,
        requested: bool,
        age_cap: u8,
    ) {
        let old = &regions[usize::from(from)];
        let new = &regions[usize::from(to)];
        // Lost writes in the order the old primary acknowledged them; any others after.
        let mut lost: Vec<u8> = old
            .log
            .iter()
            .map(|e| e.write)
            .filter(|&id| self.is_live(id) && !new.holds(id))
            .collect();
        for w in &self.writes {
            if w.is_live() && !new.holds(w.id) && !lost.contains(&w.id) {
                lost.push(w.id);
            }
        }
        let oldest_loss = lost
            .iter()
            .filter_map(|&id| self.write(id))
            .map(|w| {
                w.ages_at_outage
                    .get(usize::from(from))
                    .copied()
                    .flatten()
                    .unwrap_or(w.age)
            })
            .max();
        // Spread of the protected lost writes: the ack-time gaps from the first to the last.
        let records: Vec<&WriteRecord> = lost.iter().filter_map(|&id| self.write(id)).collect();
        let protected = |w: &&WriteRecord| w.protected_by & (1 << to) != 0;
        let first = records.iter().position(protected);
        let last = records.iter().rposition(protected);
        let spread = match (first, last) {
            (Some(a), Some(b)) => records[a + 1..=b]
                .iter()
                .fold(0u8, |acc, w| acc.saturating_add(w.gap).min(age_cap)),
            _ => 0,
        };
        let index = u8::try_from(self.failovers.len()).unwrap_or(u8::MAX);
        for &id in &lost {
            if let Some(w) = self.write_mut(id) {
                w.fate = Fate::Lost { failover: index };
                w.forget_timing(age_cap);
            }
        }
        self.failovers.push(FailoverRecord {
            kind,
            from,
            to,
            epoch,
            lost: u8::try_from(lost.len()).unwrap_or(u8::MAX),
            oldest_loss,
            spread,
            from_healthy,
            requested,
        });
    }

    fn is_live(&self, id: u8) -> bool {
        self.write(id).is_some_and(WriteRecord::is_live)
    }
}
