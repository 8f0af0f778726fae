//! Ghost bookkeeping for the abstract view: the `properties` ledger of every acknowledged
//! write and every promotion, which regions have been unreachable, and the outage clock.
//!
//! None of it is protocol state: no node reads it. The deployment feeds it the events the
//! nodes emit and the faults it injects, and it keeps time in ticks of one protocol minute,
//! as the invariants (and the model) count.

use std::collections::HashMap;

use drcheck_properties::{Bounds, Entry, Ledger, View};

use crate::time::{Millis, Timing, MINUTE};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::{Event, FailoverKind, Record};

/// One tick of the abstract view.
pub const TICK: Millis = MINUTE;

/// `ms` in ticks, rounded up, saturating at `u8::MAX`.
pub fn ticks(ms: Millis) -> u8 {
    u8::try_from(ms.div_ceil(TICK)).unwrap_or(u8::MAX)
}

/// The timing bounds the invariants need, in ticks of the abstract view.
pub fn bounds(t: &Timing) -> Bounds {
    Bounds {
        rpo: ticks(t.rpo),
        rto: ticks(t.rto),
        detection: ticks(t.detection),
        drain_timeout: ticks(t.drain_timeout),
    }
}

#[derive(Clone, Debug)]
struct Decided {
    kind: FailoverKind,
    from: u8,
    from_healthy: bool,
    requested: bool,
    /// Each write's age when its region became unreachable, as it stood at the decision: the
    /// loss is judged against the outage that caused the failover, even if the old primary
    /// is heard again before the promotion reaches the new one.
    outage_ages: Vec<(u8, [Option<u8>; 3])>,
}

/// A deployment's ghost bookkeeping: the ledger, which regions have been unreachable and for
/// how long, and the promotions decided and not yet taken effect.
#[derive(Debug)]
pub struct Ghost {
    age_cap: u8,
    bounds: Bounds,
    ledger: Ledger,
    /// Implementation write id → the view's id (1, 2, … in order of acknowledgement).
    ids: HashMap<WriteId, u8>,
    /// The view's write id → the epoch its entry carries: a quarantined write is charged to
    /// the failover that superseded that epoch.
    epochs: HashMap<u8, u8>,
    dark: Vec<bool>,
    down_for: Vec<Option<u8>>,
    /// Promotions decided and not yet taken effect, by target.
    decided: HashMap<u8, Decided>,
}

impl Ghost {
    /// Empty bookkeeping for `regions` regions, its bounds in ticks from `timing`.
    pub fn new(regions: u8, timing: &Timing) -> Ghost {
        let n = usize::from(regions);
        Ghost {
            age_cap: drcheck_properties::age_cap(
                ticks(timing.rpo),
                ticks(timing.throttle),
                ticks(timing.sync_timeout),
            ),
            bounds: bounds(timing),
            ledger: Ledger::default(),
            ids: HashMap::new(),
            epochs: HashMap::new(),
            dark: vec![false; n],
            down_for: vec![None; n],
            decided: HashMap::new(),
        }
    }

    /// The view's id of an implementation write (0 for one never acknowledged).
    pub fn view_id(&self, write: WriteId) -> u8 {
        self.ids.get(&write).copied().unwrap_or(0)
    }

    /// The implementation's id of the view's write `id`.
    pub fn write_id(&self, id: u8) -> Option<WriteId> {
        self.ids.iter().find(|(_, &v)| v == id).map(|(&w, _)| w)
    }

    /// The ledger so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Fills in the ghost fields of a view built from the nodes' snapshots.
    pub fn fill(&self, view: &mut View) {
        for (r, region) in view.regions.iter_mut().enumerate() {
            region.dark = self.dark[r];
            region.down_for = self.down_for[r];
        }
        view.ledger = self.ledger.clone();
    }

    /// Assigns view ids to the writes acknowledged in `records` (before the regions' logs
    /// are mapped to the view) and records them.
    pub fn acknowledge(&mut self, records: &[Record]) {
        for record in records {
            if let Event::WriteAccepted {
                region,
                write,
                epoch,
                previous,
                reapply_of,
                in_sync,
                ..
            } = &record.event
            {
                let id = u8::try_from(self.ledger.writes.len() + 1).unwrap_or(u8::MAX);
                self.ids.insert(*write, id);
                self.epochs
                    .insert(id, u8::try_from(*epoch).unwrap_or(u8::MAX));
                let dark = self
                    .dark
                    .get(usize::from(*region))
                    .copied()
                    .unwrap_or(false);
                self.ledger.acknowledge(
                    id,
                    *region,
                    previous.map(|p| self.view_id(p)),
                    reapply_of.map(|o| self.view_id(o)),
                    dark,
                    in_sync.iter().fold(0u8, |bits, &r| bits | (1 << r)),
                    self.age_cap,
                );
            }
        }
    }

    /// Everything else the events say, with `view` the state after them.
    pub fn observe(&mut self, records: &[Record], view: &View) {
        for record in records {
            match &record.event {
                Event::FailoverDecided {
                    kind,
                    from,
                    to,
                    from_healthy,
                    requested,
                    ..
                } => {
                    let mut decided = Decided {
                        kind: *kind,
                        from: *from,
                        from_healthy: *from_healthy,
                        requested: *requested,
                        outage_ages: self
                            .ledger
                            .writes
                            .iter()
                            .map(|w| (w.id, w.ages_at_outage))
                            .collect(),
                    };
                    if let Some(earlier) = self.decided.remove(from) {
                        // `from` never took office: this failover replaces that one, from the
                        // same old primary and judged against the same outage.
                        decided.from = earlier.from;
                        decided.from_healthy = earlier.from_healthy;
                        // A switchover the operator asked for that ends elsewhere (its
                        // target never took office) is still the operator's.
                        decided.requested |= earlier.requested;
                        decided.outage_ages = earlier.outage_ages;
                    }
                    self.decided.insert(*to, decided);
                }
                Event::Promoted { region, epoch } => {
                    if let Some(d) = self.decided.remove(region) {
                        for (id, ages) in &d.outage_ages {
                            let write = self.ledger.writes.iter_mut().find(|w| w.id == *id);
                            if let Some(w) = write {
                                for (now, then) in w.ages_at_outage.iter_mut().zip(ages) {
                                    *now = then.or(*now);
                                }
                            }
                        }
                        let kind = d.kind;
                        self.ledger.record_failover(
                            kind,
                            d.from,
                            *region,
                            u8::try_from(*epoch).unwrap_or(u8::MAX),
                            &view.regions,
                            d.from_healthy,
                            d.requested,
                            self.age_cap,
                        );
                    }
                }
                Event::Rejoined { quarantined, .. } => {
                    let entries: Vec<Entry> = quarantined
                        .iter()
                        .map(|&w| {
                            let write = self.view_id(w);
                            let epoch = self.epochs.get(&write).copied().unwrap_or(0);
                            Entry { epoch, write }
                        })
                        .collect();
                    self.ledger.quarantine(entries, self.age_cap);
                }
                Event::RegionDeclaredFailed { region, .. } => {
                    let dark = self.dark.get(usize::from(*region)).copied().unwrap_or(true);
                    if !dark && self.ledger.spurious.is_none() {
                        self.ledger.spurious = Some(*region);
                    }
                }
                Event::HeartbeatReceived { region, .. } => {
                    let r = usize::from(*region);
                    if self.dark.get(r) == Some(&true) {
                        self.dark[r] = false;
                        self.ledger.available(*region);
                    }
                }
                Event::FailoverStarted {
                    guard_ok: false, ..
                } => {
                    self.ledger.outage = None;
                    self.ledger.rto_waived = true;
                }
                _ => {}
            }
        }
    }

    /// Region `r` became unreachable from the control plane (an outage, or a heartbeat lost).
    pub fn unreachable(&mut self, r: u8, view: &View) {
        let i = usize::from(r);
        if !self.dark[i] {
            self.dark[i] = true;
            self.ledger.unavailable(r, &view.regions[i]);
        }
    }

    /// Region `r` crashed or was isolated; `view` is the state before; `guard_refused`: the
    /// control plane waits on a refused RPO guard.
    pub fn outage(&mut self, r: u8, view: &View, guard_refused: bool) {
        self.down_for[usize::from(r)] = Some(0);
        self.unreachable(r, view);
        self.ledger
            .fault_begins(view.single_fault(Some(r)), guard_refused);
    }

    /// The inter-region link was cut; `view` is the state before.
    pub fn partition(&mut self, view: &View, guard_refused: bool) {
        self.ledger
            .fault_begins(view.single_fault(None), guard_refused);
    }

    /// The control plane crashed and restarted; `view` is the state before.
    pub fn control_restarted(&mut self, view: &View) {
        // A region down now is news to the restarted control plane (as in the model).
        for d in self.down_for.iter_mut().flatten() {
            *d = 0;
        }
        self.ledger
            .fault_begins(view.single_control_restart(), false);
    }

    /// The operator asked for a data failback to `target`, which the ghost judged eligible
    /// (up, linked, an in-sync secondary of the current epoch): `accepted` or refused.
    pub fn failback_requested(&mut self, target: u8, accepted: bool) {
        self.ledger.failback_requested(target, accepted);
    }

    /// Region `r` is back (recovered or reconnected).
    pub fn restored(&mut self, r: u8) {
        self.down_for[usize::from(r)] = None;
    }

    /// One tick of protocol time passed.
    pub fn tick(&mut self) {
        self.ledger.tick(self.age_cap, &self.bounds);
        for d in self.down_for.iter_mut().flatten() {
            *d = (*d + 1).min(self.bounds.detection + 1);
        }
    }

    /// After every step: writes every region holds can no longer be lost; the availability
    /// clocks run while the endpoint cannot take writes; `switching`: a switchover is under
    /// way.
    pub fn settle(&mut self, view: &View, endpoint_writable: bool, switching: bool) {
        self.ledger.settle(&view.regions, self.age_cap);
        self.ledger
            .after_step(endpoint_writable, view.all_up(), switching);
    }
}
