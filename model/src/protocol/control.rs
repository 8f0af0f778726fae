//! Control-plane steps: heartbeats and leases, failure detection, automatic failover with the
//! lease wait and the RPO guard, rejoin, compute failback and the switchover of manual data
//! failback.

use drcheck_properties::{FailoverKind, Role, Status};

use crate::config::Config;
use crate::protocol::region::{common_prefix, old_prefix, unconfirmed_age};
use crate::state::{DrState, Phase};
use drcheck_properties::Bug;

/// The healthy secondary of the current epoch the control plane would promote instead of
/// `from`: the most caught-up one (by last entry, then length), lowest index on ties.
pub fn candidate(s: &DrState, from: u8) -> Option<u8> {
    let epoch = s.view.routing.epoch;
    (0..s.region_count())
        .filter(|&r| {
            let region = s.region(r);
            r != from
                && !s.control.is_failed(r)
                && region.status == Status::Up
                && region.role == Role::Secondary
                && region.epoch == epoch
        })
        .max_by_key(|&r| {
            let log = &s.region(r).log;
            (log.last().map(|e| e.epoch), log.len(), std::cmp::Reverse(r))
        })
}

/// The oldest heartbeat from `r` reaches the control plane.
pub fn deliver_heartbeat(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    let at = s.oldest_heartbeat(r)?;
    let mut next = s.clone();
    let hb = next.heartbeats.remove(at);
    next.control.silence[usize::from(r)] = 0;
    next.control.failed &= !(1 << r);
    let compute = next.view.routing.compute;
    if next.control.is_failed(compute) && !cfg.has_bug(Bug::NoComputeFailover) {
        // The endpoint had nowhere healthy to go: it goes to the first region heard again.
        next.view.routing.compute = r;
    }
    if next.region(r).dark {
        next.region_mut(r).dark = false;
        let view = &mut next.view;
        view.ledger.available(r);
    }
    let routing = next.view.routing.clone();
    if hb.epoch < routing.epoch {
        // The reply tells a region that missed a failover about the new epoch.
        let region = next.region_mut(r);
        if region.epoch < routing.epoch {
            region.role = Role::Stale;
            region.lease = 0;
        }
        return Some(next);
    }
    if r != routing.primary {
        return Some(next);
    }
    if let Phase::FailingOver { from, .. } = next.control.phase {
        if from == r {
            // The old primary answered before a promotion: no failover.
            next.control.phase = Phase::Normal;
            if next.region(r).role == Role::Fenced {
                next.region_mut(r).role = Role::Primary;
            }
        }
    }
    let fenced = matches!(next.control.phase, Phase::Switchover { fenced: true, .. });
    if !fenced && next.region(r).role == Role::Fenced {
        // A switchover was aborted while this primary was unreachable: unfence it now.
        next.region_mut(r).role = Role::Primary;
    }
    next.control.old_prefix = hb.old_prefix;
    if !fenced && next.region(r).role == Role::Primary && next.region(r).epoch == routing.epoch {
        next.region_mut(r).lease = cfg.lease_wait();
        next.control.grant_age = 0;
    }
    Some(next)
}

/// The oldest heartbeat from `r` reaches the control plane, whose answer is lost (one loss of
/// the budget): the control plane's own state moves as on any heartbeat (it believes it
/// granted the lease), the region's does not (no renewed lease, no news of a new epoch).
pub fn lose_answer(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if s.budget.losses == 0 {
        return None;
    }
    let mut next = deliver_heartbeat(cfg, s, r)?;
    next.budget.losses -= 1;
    let before = s.region(r);
    let region = next.region_mut(r);
    region.lease = before.lease;
    region.role = before.role;
    Some(next)
}

/// Would the control plane declare region `r` failed now?
pub fn may_declare(cfg: &Config, s: &DrState, r: u8) -> bool {
    !s.control.is_failed(r) && s.control.silence[usize::from(r)] >= cfg.detection_threshold()
}

/// The control plane declares a silent region failed.
pub fn declare(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if !may_declare(cfg, s, r) {
        return None;
    }
    let mut next = s.clone();
    next.control.failed |= 1 << r;
    if !next.region(r).dark && next.view.ledger.spurious.is_none() {
        next.view.ledger.spurious = Some(r);
    }
    let routing = next.view.routing.clone();
    if routing.compute == r && !cfg.has_bug(Bug::NoComputeFailover) {
        let healthy = (0..next.region_count())
            .find(|&x| !next.control.is_failed(x) && next.region(x).status == Status::Up);
        if let Some(to) = candidate(&next, r).or(healthy) {
            next.view.routing.compute = to;
        }
    }
    if r == routing.primary {
        let guard_ok = cfg.has_bug(Bug::NoRpoGuard)
            || candidate(&next, r)
                .is_some_and(|c| next.region(c).log.len() >= usize::from(next.control.old_prefix));
        next.control.phase = Phase::FailingOver {
            from: r,
            guard_ok,
            waited: 0,
        };
        if !guard_ok {
            next.view.ledger.outage = None;
            next.view.ledger.rto_waived = true;
        }
    } else {
        let p = usize::from(routing.primary);
        if next.view.regions[p].status == Status::Up {
            next.volatile[p].in_sync &= !(1 << r);
        }
        if let Phase::Switchover { target, .. } = next.control.phase {
            if target == r {
                unfence(&mut next);
            }
        }
    }
    Some(next)
}

/// Ends a switchover: the primary takes writes again once its lease is renewed.
fn unfence(next: &mut DrState) {
    let p = next.view.routing.primary;
    if next.region(p).role == Role::Fenced && next.region(p).status != Status::Down {
        next.region_mut(p).role = Role::Primary;
    }
    next.control.phase = Phase::Normal;
}

/// Makes `to` the data primary of a new epoch and records the change in the ledger; `None`
/// when the epoch cannot grow (the checker's boundary stops far earlier, at
/// [`Config::max_epoch`], and says so).
fn promote_region(
    cfg: &Config,
    s: &DrState,
    kind: FailoverKind,
    to: u8,
    requested: bool,
) -> Option<DrState> {
    let mut next = s.clone();
    let from = next.view.routing.primary;
    let from_healthy = !next.control.is_failed(from);
    let epoch = next.view.routing.epoch.checked_add(1)?;
    {
        let region = next.region_mut(to);
        region.role = Role::Primary;
        region.epoch = epoch;
        region.lease = cfg.lease_wait();
    }
    if kind == FailoverKind::Switchover && next.region(from).role == Role::Fenced {
        // The old primary rejoins like any region. (Unfenced, under `--bug failback-unfenced`,
        // it writes on until a heartbeat's answer tells it of the new epoch.)
        next.region_mut(from).role = Role::Stale;
    }
    next.volatile[usize::from(to)].in_sync = 0;
    next.control.grant_age = 0;
    // Until its first heartbeat, judge the new primary by what it holds already.
    next.control.old_prefix = old_prefix(cfg, &next, to);
    next.control.phase = Phase::Normal;
    next.view.routing.primary = to;
    next.view.routing.epoch = epoch;
    let compute = next.view.routing.compute;
    if next.control.is_failed(compute) && !cfg.has_bug(Bug::NoComputeFailover) {
        next.view.routing.compute = to;
    }
    let view = &mut next.view;
    view.ledger.record_failover(
        kind,
        from,
        to,
        epoch,
        &view.regions,
        from_healthy,
        requested,
        cfg.age_cap,
    );
    Some(next)
}

fn lease_expired(cfg: &Config, s: &DrState) -> bool {
    cfg.has_bug(Bug::NoLeaseWait) || s.control.grant_age >= cfg.lease_wait()
}

/// The RPO guard: does `to` hold the old primary's whole old prefix, as its last heartbeat
/// reported it? (That report does not change while the control plane waits, so neither does
/// the verdict for a given candidate.)
fn guard_allows(cfg: &Config, s: &DrState, to: u8) -> bool {
    cfg.has_bug(Bug::NoRpoGuard) || s.region(to).log.len() >= usize::from(s.control.old_prefix)
}

/// Automatic failover to `to`, once the old lease has surely expired, if the RPO guard allows.
pub fn promote(cfg: &Config, s: &DrState, to: u8) -> Option<DrState> {
    let Phase::FailingOver { from, .. } = s.control.phase else {
        return None;
    };
    if cfg.has_bug(Bug::NoAutoFailover)
        || !guard_allows(cfg, s, to)
        || !lease_expired(cfg, s)
        || candidate(s, from) != Some(to)
    {
        return None;
    }
    promote_region(cfg, s, FailoverKind::Automatic, to, false)
}

/// The operator forces a failover to `to` after the grace period.
pub fn force_failover(cfg: &Config, s: &DrState, to: u8) -> Option<DrState> {
    let Phase::FailingOver { from, waited, .. } = s.control.phase else {
        return None;
    };
    // The operator decides when the guard refuses the best candidate there is now.
    let refused = cfg.has_bug(Bug::NoAutoFailover)
        || candidate(s, from).is_some_and(|c| !guard_allows(cfg, s, c));
    // Only to the most caught-up secondary: any other would lose more than it must.
    let eligible = candidate(s, from).is_some_and(|c| {
        let region = s.region(to);
        c == to
            && to != from
            && !s.control.is_failed(to)
            && region.status == Status::Up
            && region.role == Role::Secondary
            && region.epoch == s.view.routing.epoch
    });
    if s.budget.forced == 0
        || !refused
        || waited < cfg.timing.grace
        || !lease_expired(cfg, s)
        || !eligible
    {
        return None;
    }
    let mut next = promote_region(cfg, s, FailoverKind::Forced, to, true)?;
    next.budget.forced -= 1;
    Some(next)
}

/// Is region `r` a recovered region that can rejoin the current primary now?
pub fn may_rejoin(s: &DrState, r: u8) -> bool {
    let routing = &s.view.routing;
    let p = routing.primary;
    let (region, primary) = (s.region(r), s.region(p));
    r != p
        && region.status == Status::Up
        && !s.control.is_failed(r)
        && (region.role == Role::Stale || region.epoch < routing.epoch)
        && matches!(primary.role, Role::Primary | Role::Fenced)
        && primary.epoch == routing.epoch
        && s.connected(r, p)
}

/// A recovered region rejoins as secondary: its divergent suffix goes to the quarantine.
pub fn rejoin(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if !may_rejoin(s, r) {
        return None;
    }
    let mut next = s.clone();
    let p = next.view.routing.primary;
    let epoch = next.view.routing.epoch;
    let keep = common_prefix(&next.region(r).log, &next.region(p).log);
    let suffix: Vec<drcheck_properties::Entry> = next.region(r).log[keep..].to_vec();
    let truncate = !cfg.has_bug(Bug::RejoinNoTruncate);
    let quarantine = truncate && !cfg.has_bug(Bug::RejoinNoQuarantine);
    {
        let region = next.region_mut(r);
        if truncate {
            region.log.truncate(keep);
        }
        if quarantine {
            region.quarantine.extend(suffix.iter().map(|e| e.write));
        }
        region.role = Role::Secondary;
        region.epoch = epoch;
        region.lease = 0;
    }
    if quarantine {
        next.view
            .ledger
            .quarantine(suffix.iter().copied(), cfg.age_cap);
    }
    if cfg.has_bug(Bug::RejoinMerge) {
        let merged = suffix.iter().map(|e| drcheck_properties::Entry {
            epoch,
            write: e.write,
        });
        next.region_mut(p).log.extend(merged);
    }
    let view = &mut next.view;
    view.ledger.settle(&view.regions, cfg.age_cap);
    Some(next)
}

/// Can compute move back to the home region: healthy, rejoined, and reaching the data primary?
pub fn may_fail_back_compute(cfg: &Config, s: &DrState) -> bool {
    let routing = &s.view.routing;
    let home = routing.home;
    routing.compute != home
        && !s.control.is_failed(home)
        && s.region(home).is_member_of(routing.epoch)
        && (s.connected(home, routing.primary) || cfg.has_bug(Bug::ComputeIgnoresData))
}

/// Compute moves back to the home region, if [`may_fail_back_compute`] allows.
pub fn compute_failback(cfg: &Config, s: &DrState) -> Option<DrState> {
    if !may_fail_back_compute(cfg, s) {
        return None;
    }
    let mut next = s.clone();
    next.view.routing.compute = next.view.routing.home;
    Some(next)
}

/// Must compute move to the data primary's region: the compute region is up and heard, but
/// cut off from the primary (an inter-region partition while compute and data are split),
/// so that the endpoint could take no write there?
pub fn may_move_compute_to_primary(cfg: &Config, s: &DrState) -> bool {
    let routing = &s.view.routing;
    let (c, p) = (routing.compute, routing.primary);
    !cfg.has_bug(Bug::ComputeIgnoresData)
        && c != p
        && !s.control.is_failed(c)
        && !s.control.is_failed(p)
        && s.region(c).status == Status::Up
        && s.region(p).status == Status::Up
        && !s.connected(c, p)
}

/// Compute moves to the data primary's region, if [`may_move_compute_to_primary`] allows.
pub fn compute_to_primary(cfg: &Config, s: &DrState) -> Option<DrState> {
    if !may_move_compute_to_primary(cfg, s) {
        return None;
    }
    let mut next = s.clone();
    next.view.routing.compute = next.view.routing.primary;
    Some(next)
}

/// Is `target` an in-sync secondary the data could fail back to: up, linked to the primary,
/// of the current epoch and counted in sync by the primary? (It need not hold the whole log:
/// the switchover drains it after the fence, so that it succeeds while clients write.)
pub fn failback_target_ok(s: &DrState, target: u8) -> bool {
    let p = s.view.routing.primary;
    switchover_possible(s, target)
        && s.volatile[usize::from(p)].in_sync & (1 << target) != 0
        && s.connected(target, p)
}

/// Could a switchover to `target` start at all: nothing under way, the target an up secondary
/// of the current epoch, the primary up and acting as primary, neither declared failed?
fn switchover_possible(s: &DrState, target: u8) -> bool {
    let routing = &s.view.routing;
    let p = routing.primary;
    let (region, primary) = (s.region(target), s.region(p));
    target != p
        && s.control.phase == Phase::Normal
        && !s.control.is_failed(target)
        && !s.control.is_failed(p)
        && region.status == Status::Up
        && region.role == Role::Secondary
        && region.epoch == routing.epoch
        && primary.status == Status::Up
        && primary.role == Role::Primary
}

/// Does `target` hold the primary's whole log? (What `--bug failback-needs-caught-up` wants
/// before it starts a switchover.)
fn caught_up(s: &DrState, target: u8) -> bool {
    s.region(target).log == s.region(s.view.routing.primary).log
}

/// Would the control plane leave in-sync secondary `r` out of sync now: the primary's oldest
/// write `r` has not confirmed has waited the sync timeout? The control plane reads that
/// write's acknowledgement time off the primary's clock, which may lag its own by the skew:
/// it may act up to the skew early, and must by the timeout (see [`must_leave_out_of_sync`]).
pub fn may_leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> bool {
    let early = cfg.timing.sync_timeout.saturating_sub(cfg.timing.skew);
    lagging_for(cfg, s, r).is_some_and(|age| age >= early)
}

/// Must the control plane leave `r` out of sync before time passes (the timeout is reached)?
pub fn must_leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> bool {
    lagging_for(cfg, s, r).is_some_and(|age| age >= cfg.timing.sync_timeout)
}

/// How long in-sync secondary `r` has left the up primary's oldest write unconfirmed.
fn lagging_for(cfg: &Config, s: &DrState, r: u8) -> Option<u8> {
    let p = s.view.routing.primary;
    let counted = s.volatile[usize::from(p)].in_sync & (1 << r) != 0;
    if cfg.has_bug(Bug::NoSyncTimeout) || r == p || s.region(p).status != Status::Up || !counted {
        return None;
    }
    unconfirmed_age(s, p, r)
}

/// The control plane leaves a lagging secondary out of the primary's in-sync set: the
/// primary stops throttling for it and writes unprotected until it catches up again.
pub fn leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if !may_leave_out_of_sync(cfg, s, r) {
        return None;
    }
    let mut next = s.clone();
    let p = usize::from(next.view.routing.primary);
    next.volatile[p].in_sync &= !(1 << r);
    Some(next)
}

fn start_switchover(s: &DrState, target: u8, requested: bool) -> DrState {
    let mut next = s.clone();
    next.control.phase = Phase::Switchover {
        target,
        fenced: false,
        draining: 0,
        requested,
    };
    next
}

/// The operator asks for manual data failback to `target`, the home region, an in-sync
/// secondary: the switchover starts (under `--bug failback-needs-caught-up`, it is refused
/// unless the target holds the whole log, and the ledger records the refusal).
pub fn request_failback(cfg: &Config, s: &DrState, target: u8) -> Option<DrState> {
    if s.budget.failbacks == 0 || target != s.view.routing.home || !failback_target_ok(s, target) {
        return None;
    }
    let accepted = !cfg.has_bug(Bug::FailbackNeedsCaughtUp) || caught_up(s, target);
    let mut next = if accepted {
        start_switchover(s, target, true)
    } else {
        s.clone()
    };
    next.budget.failbacks -= 1;
    next.view.ledger.failback_requested(target, accepted);
    Some(next)
}

/// Under `--bug auto-data-failback`: the control plane starts the switchover home by itself,
/// once home has caught up.
pub fn auto_failback(cfg: &Config, s: &DrState, target: u8) -> Option<DrState> {
    let home = s.view.routing.home;
    let ready = switchover_possible(s, target) && caught_up(s, target);
    if !cfg.has_bug(Bug::AutoDataFailback) || target != home || !ready {
        return None;
    }
    Some(start_switchover(s, target, false))
}

/// Switchover: fence the primary synchronously.
pub fn fence(s: &DrState) -> Option<DrState> {
    let Phase::Switchover { fenced: false, .. } = s.control.phase else {
        return None;
    };
    let p = s.view.routing.primary;
    if s.region(p).status != Status::Up || s.region(p).role != Role::Primary {
        return None;
    }
    let mut next = s.clone();
    let region = next.region_mut(p);
    region.role = Role::Fenced;
    region.lease = 0;
    if let Phase::Switchover { fenced, .. } = &mut next.control.phase {
        *fenced = true;
    }
    Some(next)
}

fn drained(s: &DrState, target: u8) -> bool {
    s.region(target).log == s.region(s.view.routing.primary).log
}

/// Switchover: promote the drained target under a new epoch.
pub fn complete_switchover(cfg: &Config, s: &DrState) -> Option<DrState> {
    let Phase::Switchover {
        target,
        fenced,
        requested,
        ..
    } = s.control.phase
    else {
        return None;
    };
    if !fenced && !cfg.has_bug(Bug::FailbackUnfenced) {
        return None;
    }
    let ready = drained(s, target) || cfg.has_bug(Bug::FailbackNoDrain);
    if !ready || s.region(target).status != Status::Up {
        return None;
    }
    promote_region(cfg, s, FailoverKind::Switchover, target, requested)
}

/// Switchover: the drain timed out; unfence and abort.
pub fn abort_switchover(cfg: &Config, s: &DrState) -> Option<DrState> {
    let Phase::Switchover {
        target,
        fenced: true,
        draining,
        ..
    } = s.control.phase
    else {
        return None;
    };
    if draining < cfg.timing.drain_timeout || drained(s, target) {
        return None;
    }
    let mut next = s.clone();
    unfence(&mut next);
    Some(next)
}
