//! Environment steps: region outages (crash or isolation) and recovery, the inter-region
//! partition and its heal. Faults draw on the search's budget.

use drcheck_properties::{Status, View};

use drcheck_properties::Bug;

use crate::config::Config;
use crate::state::{ControlPlane, DrState, Phase, Volatile, MAX_REGIONS, UNKNOWN_PREFIX};

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
pub fn outage(cfg: &Config, s: &DrState, r: u8, status: Status) -> Option<DrState> {
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
            heard: cfg.contact_cap(),
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

/// The control plane crashes and restarts (one restart of the budget). It loses its volatile
/// state: it recovers the routing from the regions' durable state (the newest epoch's primary;
/// compute goes there too), has heard nobody (it declares nothing failed before a full
/// detection period of silence), treats the last grant as just issued (so it promotes nobody
/// before any lease it may have granted has surely expired), forgets the primary's
/// `old_prefix` (the RPO guard refuses until the primary reports), every report, and any
/// failover or switchover under way. Under `--bug cp-restart-hasty` it declares silent regions at once and
/// takes every lease as expired.
pub fn restart_control(cfg: &Config, s: &DrState) -> Option<DrState> {
    if s.budget.cp_restarts == 0 {
        return None;
    }
    let mut next = s.clone();
    next.budget.cp_restarts -= 1;
    let epoch = next.view.regions.iter().map(|r| r.epoch).max()?;
    let primary = (0..next.region_count()).find(|&r| {
        let region = next.region(r);
        region.epoch == epoch && region.role.ships()
    })?;
    next.view.routing.epoch = epoch;
    next.view.routing.primary = primary;
    next.view.routing.compute = primary;
    let hasty = cfg.has_bug(Bug::CpRestartHasty);
    let silence = if hasty { cfg.detection_threshold() } else { 0 };
    let n = usize::from(next.region_count());
    next.control = ControlPlane {
        silence: std::array::from_fn(|r| if r < n { silence } else { 0 }),
        failed: 0,
        grant_age: if hasty { cfg.lease_wait() } else { 0 },
        old_prefix: UNKNOWN_PREFIX,
        phase: Phase::Normal,
        reports: [None; MAX_REGIONS],
        confirmed: false,
        rejoin_offered: 0,
    };
    // A region that is down now is news to the restarted control plane: it can know no
    // sooner than a detection period from now (what `routing_healthy` measures from).
    for region in next.view.regions.iter_mut() {
        if region.down_for.is_some() {
            region.down_for = Some(0);
        }
    }
    let single = s.view.single_control_restart();
    next.view.ledger.fault_begins(single, false);
    Some(next)
}

/// The oldest heartbeat in flight from `r` is lost (one loss of the budget). As far as the
/// bounds on data loss go, the region was unreachable from the control plane at that instant.
pub fn lose_heartbeat(s: &DrState, r: u8) -> Option<DrState> {
    if s.budget.losses == 0 {
        return None;
    }
    let at = s.oldest_heartbeat(r)?;
    let mut next = s.clone();
    next.budget.losses -= 1;
    next.heartbeats.remove(at);
    if !next.region(r).dark {
        next.region_mut(r).dark = true;
        let View {
            regions, ledger, ..
        } = &mut next.view;
        ledger.unavailable(r, &regions[usize::from(r)]);
    }
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
