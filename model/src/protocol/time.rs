//! The clock: one tick of time, which may only pass when nothing urgent is pending.

use drcheck_properties::{Role, Status};

use crate::config::Config;
use crate::protocol::{control, region};
use crate::state::{DrState, Heartbeat, Phase};

/// Is some step pending that may not be postponed past this instant? Time is urgent: it does
/// not advance while a heartbeat has waited the maximum delay, while the control plane could
/// declare, promote, rejoin, move compute or drive a switchover, or while a primary has
/// entries that have waited the maximum delay to be shipped.
pub fn urgent(cfg: &Config, s: &DrState) -> bool {
    let n = s.region_count();
    s.heartbeats.iter().any(|h| h.age >= cfg.timing.delay)
        || (0..n).any(|r| control::may_declare(cfg, s, r))
        || (0..n).any(|r| control::may_rejoin(s, r) || control::promote(cfg, s, r).is_some())
        || (0..n).any(|r| control::must_leave_out_of_sync(cfg, s, r))
        || control::may_fail_back_compute(cfg, s)
        || control::may_move_compute_to_primary(cfg, s)
        || control::fence(s).is_some()
        || control::complete_switchover(cfg, s).is_some()
        || control::abort_switchover(cfg, s).is_some()
        || control::auto_failback(cfg, s, s.view.routing.home).is_some()
        || (0..n).any(|a| (0..n).any(|b| region::replication_due(cfg, s, a, b)))
}

/// One tick passes.
pub fn tick(cfg: &Config, s: &DrState) -> Option<DrState> {
    let horizon_reached = matches!((s.elapsed, cfg.horizon), (Some(e), Some(h)) if e >= h);
    if horizon_reached || urgent(cfg, s) {
        return None;
    }
    let mut next = s.clone();
    if let Some(e) = &mut next.elapsed {
        *e += 1;
    }
    for h in &mut next.heartbeats {
        h.age += 1;
    }
    let detection_cap = cfg.timing.detection.max(cfg.detection_threshold());
    for (r, region) in next.view.regions.iter_mut().enumerate() {
        region.lease = region.lease.saturating_sub(1);
        region.down_for = region
            .down_for
            .map(|t| (t + 1).min(cfg.timing.detection + 1));
        let silence = &mut next.control.silence[r];
        *silence = (*silence + 1).min(detection_cap);
    }
    next.control.grant_age = (next.control.grant_age + 1).min(cfg.lease_wait());
    match &mut next.control.phase {
        Phase::FailingOver { waited, .. } => *waited = (*waited + 1).min(cfg.timing.grace),
        // Until the fence, the time since the switchover started; from the fence, the time
        // spent draining.
        Phase::Switchover { draining, .. } => {
            *draining = (*draining + 1).min(cfg.timing.drain_timeout);
        }
        _ => {}
    }
    next.view.ledger.tick(cfg.age_cap, &cfg.bounds());
    send_heartbeats(cfg, &mut next);
    Some(next)
}

/// Every running region whose heartbeat interval has passed sends one (an isolated region's
/// is lost), and a primary (fenced or not) sends a keep-alive with it to every region: each
/// secondary of its epoch it reaches hears it.
fn send_heartbeats(cfg: &Config, next: &mut DrState) {
    let cap = cfg.contact_cap();
    let n = usize::from(next.region_count());
    for v in &mut next.volatile[..n] {
        v.heard = (v.heard + 1).min(cap);
    }
    let mut senders = Vec::new();
    for r in 0..next.region_count() {
        let status = next.region(r).status;
        if status == Status::Down {
            continue;
        }
        let v = &mut next.volatile[usize::from(r)];
        v.since_heartbeat += 1;
        if v.since_heartbeat < cfg.timing.heartbeat {
            continue;
        }
        v.since_heartbeat = 0;
        senders.push(r);
        if status == Status::Isolated {
            continue;
        }
        let heartbeat = Heartbeat {
            from: r,
            age: 0,
            report: region::report(cfg, next, r),
        };
        next.heartbeats.push(heartbeat);
    }
    next.heartbeats.sort();
    for p in senders {
        let (epoch, role) = (next.region(p).epoch, next.region(p).role);
        if !role.ships() {
            continue;
        }
        for r in 0..next.region_count() {
            let region = next.region(r);
            if r != p
                && region.role == Role::Secondary
                && region.epoch == epoch
                && next.connected(p, r)
            {
                next.volatile[usize::from(r)].heard = 0;
            }
        }
    }
}
