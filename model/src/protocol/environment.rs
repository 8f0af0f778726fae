//! Environment steps: region outages (crash or isolation) and recovery, the inter-region
//! partition and its heal. Faults draw on the search's budget.

use drcheck_properties::{Status, View};

use crate::state::{DrState, Phase, Volatile};

/// Tells the ledger a fault begins at region `r` (or between the regions), judged on the
/// state `before` it: the availability clocks start for a single fault and are excused by a
/// second one.
fn start_fault(next: &mut DrState, before: &DrState, r: Option<u8>) {
    // While the RPO guard refuses a failover, availability waits by design.
    let refused = matches!(
        next.control.phase,
        Phase::FailingOver {
            guard_ok: false,
            ..
        }
    );
    let single = before.view.single_fault(r);
    next.view.ledger.fault_begins(single, refused);
}

/// Region `r` goes down (`Status::Down`) or is cut off (`Status::Isolated`).
pub fn outage(s: &DrState, r: u8, status: Status) -> Option<DrState> {
    if s.budget.outages == 0 || s.region(r).status != Status::Up {
        return None;
    }
    let mut next = s.clone();
    next.budget.outages -= 1;
    next.heartbeats.retain(|h| h.from != r);
    let region = next.region_mut(r);
    region.status = status;
    region.down_for = Some(0);
    let newly_dark = !region.dark;
    region.dark = true;
    if status == Status::Down {
        region.lease = 0;
        next.volatile[usize::from(r)] = Volatile {
            since_heartbeat: 0,
            in_sync: 0,
        };
    }
    if newly_dark {
        let View {
            regions, ledger, ..
        } = &mut next.view;
        ledger.unavailable(r, &regions[usize::from(r)]);
    }
    start_fault(&mut next, s, Some(r));
    Some(next)
}

/// Region `r` comes back: from `Down` it restarts from its durable state, from `Isolated`
/// it is reachable again.
pub fn restore(s: &DrState, r: u8, from: Status) -> Option<DrState> {
    if s.region(r).status != from {
        return None;
    }
    let mut next = s.clone();
    let region = next.region_mut(r);
    region.status = Status::Up;
    region.down_for = None;
    Some(next)
}

/// The inter-region link is cut (one partition of the budget; none while already cut).
pub fn partition(s: &DrState) -> Option<DrState> {
    if s.budget.partitions == 0 || s.view.partitioned {
        return None;
    }
    let mut next = s.clone();
    next.budget.partitions -= 1;
    next.view.partitioned = true;
    start_fault(&mut next, s, None);
    Some(next)
}

/// The inter-region link heals, if it is cut.
pub fn heal(s: &DrState) -> Option<DrState> {
    if !s.view.partitioned {
        return None;
    }
    let mut next = s.clone();
    next.view.partitioned = false;
    Some(next)
}
