//! Control-plane steps: heartbeats and leases, failure detection, automatic failover with the
//! lease wait and the RPO guard, rejoin, compute failback and the switchover of manual data
//! failback.
//!
//! The control plane decides only on what it was told: each region's last report (see
//! [`Report`]), the silence since it, and its own bookkeeping. Its commands reach a region
//! only if the region is up (a command to a region that crashed or was cut off since its
//! last report is lost, as in the implementation).

use std::cmp::Reverse;

use drcheck_properties::{FailoverKind, Role, Status};

use crate::config::Config;
use crate::protocol::region::common_prefix;
use crate::state::{DrState, Phase, Promotion, Report, MAX_REGIONS, UNKNOWN_PREFIX};
use drcheck_properties::Bug;

/// Does a command of the control plane reach region `r` now?
fn reaches(s: &DrState, r: u8) -> bool {
    s.region(r).status == Status::Up
}

/// Is `e` an epoch whose secondaries may be promoted: the current one, or, while the newest
/// primary has not taken office, the previous one (it may still have to be replaced)?
fn member(s: &DrState, e: u8) -> bool {
    let epoch = s.view.routing.epoch;
    e == epoch || (!s.control.confirmed && e + 1 == epoch)
}

/// Did region `r` last report as a secondary that may be promoted, and is it not declared
/// failed? (Under `--bug candidate-any-epoch`, a secondary of any epoch.)
fn healthy_secondary(cfg: &Config, s: &DrState, r: u8) -> bool {
    let any_epoch = cfg.has_bug(Bug::CandidateAnyEpoch);
    !s.control.is_failed(r)
        && s.control
            .report(r)
            .is_some_and(|h| h.role == Role::Secondary && (any_epoch || member(s, h.epoch)))
}

/// How many entries region `r` last reported.
fn reported_len(s: &DrState, r: u8) -> u8 {
    s.control.report(r).map_or(0, |h| h.len)
}

/// The healthy secondary the control plane would promote instead of `from`: the most
/// caught-up by its last report (by last entry's epoch, then length), lowest index on ties.
pub fn candidate(cfg: &Config, s: &DrState, from: u8) -> Option<u8> {
    (0..s.region_count())
        .filter(|&r| r != from && healthy_secondary(cfg, s, r))
        .max_by_key(|&r| {
            let h = s.control.report(r);
            (
                h.and_then(|h| h.last.map(|e| e.epoch)),
                reported_len(s, r),
                Reverse(r),
            )
        })
}

/// What the control plane sends back to a heartbeat.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Nothing,
    /// The promotion did not arrive at the primary of the current epoch: say it again.
    Promote,
    /// The region missed a failover: here is the new epoch.
    NewEpoch,
    /// A switchover was aborted while this primary was unreachable: lift its fence.
    Unfence,
    /// A lease for the primary.
    Grant,
}

/// The control plane takes the oldest heartbeat from `r`: the region's report, its health,
/// and what it answers.
fn hear(cfg: &Config, s: &DrState, r: u8) -> Option<(DrState, Answer)> {
    let at = s.oldest_heartbeat(r)?;
    let mut next = s.clone();
    let hb = next.heartbeats.remove(at);
    let bit = 1 << r;
    next.control.silence[usize::from(r)] = 0;
    next.control.failed &= !bit;
    next.control.rejoin_offered &= !bit;
    let mut report = hb.report;
    for age in report.unconfirmed.iter_mut().flatten() {
        *age = age.saturating_add(hb.age).min(cfg.timing.sync_timeout);
    }
    next.control.reports[usize::from(r)] = Some(report);
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
    if r == routing.primary && report.epoch < routing.epoch && report.role == Role::Secondary {
        next.control.grant_age = 0;
        return Some((next, Answer::Promote));
    }
    let previous_member = !next.control.confirmed
        && report.epoch + 1 == routing.epoch
        && report.role == Role::Secondary;
    if previous_member {
        // The new primary has not taken office: this secondary may still have to replace
        // it, so it is not told about the new epoch yet.
        return Some((next, Answer::Nothing));
    }
    if report.epoch < routing.epoch {
        return Some((next, Answer::NewEpoch));
    }
    if report.role == Role::Stale || r != routing.primary {
        return Some((next, Answer::Nothing));
    }
    if matches!(next.control.phase, Phase::FailingOver { from, .. } if from == r) {
        // The old primary answered before a promotion: no failover.
        next.control.phase = Phase::Normal;
    }
    let switching = matches!(next.control.phase, Phase::Switchover { .. });
    next.control.old_prefix = report.old_prefix;
    if report.ships() {
        next.control.confirmed = true;
    }
    if !switching && report.role == Role::Fenced {
        return Some((next, Answer::Unfence));
    }
    // No lease once the primary is fenced.
    let fenced = matches!(next.control.phase, Phase::Switchover { fenced: true, .. });
    if !fenced && report.role == Role::Primary {
        next.control.grant_age = 0;
        return Some((next, Answer::Grant));
    }
    Some((next, Answer::Nothing))
}

/// Region `r` (up: its heartbeat just arrived) takes the control plane's answer.
fn answered(cfg: &Config, next: &mut DrState, r: u8, answer: Answer) {
    let epoch = next.view.routing.epoch;
    match answer {
        Answer::Nothing => {}
        Answer::Promote => {
            take_office(cfg, next, r, epoch);
        }
        Answer::NewEpoch => learn_epoch(next, r, epoch),
        Answer::Unfence => {
            let region = next.region_mut(r);
            if region.role == Role::Fenced && region.epoch == epoch {
                region.role = Role::Primary;
            }
        }
        Answer::Grant => {
            let lease = cfg.lease_wait();
            let region = next.region_mut(r);
            if region.role == Role::Primary && region.epoch == epoch {
                region.lease = lease;
            }
        }
    }
}

/// Region `to`, if the promotion reaches it as a secondary of an older epoch, becomes primary
/// of `epoch` with a lease; it answers, and the ledger records the failover decided for it.
fn take_office(cfg: &Config, next: &mut DrState, to: u8, epoch: u8) {
    let region = next.region(to);
    if !reaches(next, to) || region.role != Role::Secondary || region.epoch >= epoch {
        return;
    }
    let region = next.region_mut(to);
    region.role = Role::Primary;
    region.epoch = epoch;
    region.lease = cfg.lease_wait();
    next.volatile[usize::from(to)].in_sync = 0;
    next.control.confirmed = true;
    let Some(at) = next.promotions.iter().position(|p| p.to == to) else {
        return;
    };
    let decided = next.promotions.remove(at);
    let view = &mut next.view;
    for (w, then) in view.ledger.writes.iter_mut().zip(&decided.outage_ages) {
        for (now, then) in w.ages_at_outage.iter_mut().zip(then) {
            *now = then.or(*now);
        }
    }
    view.ledger.record_failover(
        decided.kind,
        decided.from,
        to,
        epoch,
        &view.regions,
        decided.from_healthy,
        decided.requested,
        cfg.age_cap,
    );
}

/// Region `r`, if the news reaches it, learns of `epoch`: behind it, it stops acting in its
/// old role and waits to rejoin.
fn learn_epoch(next: &mut DrState, r: u8, epoch: u8) {
    let reached = reaches(next, r);
    let region = next.region_mut(r);
    if reached && region.epoch < epoch && region.role != Role::Stale {
        region.role = Role::Stale;
        region.lease = 0;
    }
}

/// The oldest heartbeat from `r` reaches the control plane, which answers.
pub fn deliver_heartbeat(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    let (mut next, answer) = hear(cfg, s, r)?;
    answered(cfg, &mut next, r, answer);
    Some(next)
}

/// The oldest heartbeat from `r` reaches the control plane, whose answer is lost (one loss of
/// the budget): the control plane's own state moves as on any heartbeat (it believes it
/// granted the lease), the region's does not (no renewed lease, no news of a new epoch).
pub fn lose_answer(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if s.budget.losses == 0 {
        return None;
    }
    let (mut next, _lost) = hear(cfg, s, r)?;
    next.budget.losses -= 1;
    Some(next)
}

/// Would the control plane declare region `r` failed now?
pub fn may_declare(cfg: &Config, s: &DrState, r: u8) -> bool {
    !s.control.is_failed(r) && s.control.silence[usize::from(r)] >= cfg.detection_threshold()
}

/// The control plane declares a silent region failed: compute moves off it, and a failover
/// starts if it is the primary; otherwise the primary stops counting it in sync and a
/// switchover to it is aborted. Its report is forgotten: no decision reads the report of a
/// region declared failed, and its next heartbeat brings a new one.
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
        let healthy = (0..next.region_count()).find(|&x| !next.control.is_failed(x));
        if let Some(to) = candidate(cfg, &next, r).or(healthy) {
            next.view.routing.compute = to;
        }
    }
    if r == routing.primary {
        let guard_ok = candidate(cfg, &next, r).is_some_and(|c| guard_allows(cfg, &next, c));
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
        leave_out(&mut next, r);
        if let Phase::Switchover { target, .. } = next.control.phase {
            if target == r {
                unfence(&mut next);
            }
        }
    }
    next.control.reports[usize::from(r)] = None;
    Some(next)
}

/// Tells the primary to stop counting `r` in sync (it obeys if the command reaches it).
fn leave_out(next: &mut DrState, r: u8) {
    let p = next.view.routing.primary;
    let epoch = next.view.routing.epoch;
    let primary = next.region(p);
    let ships = primary.role.ships();
    if reaches(next, p) && ships && primary.epoch == epoch {
        next.volatile[usize::from(p)].in_sync &= !(1 << r);
    }
}

/// Ends a switchover: the primary is told to lift its fence (and takes writes again once its
/// lease is renewed).
fn unfence(next: &mut DrState) {
    let p = next.view.routing.primary;
    let epoch = next.view.routing.epoch;
    let reached = reaches(next, p);
    let region = next.region_mut(p);
    if reached && region.role == Role::Fenced && region.epoch == epoch {
        region.role = Role::Primary;
    }
    next.control.phase = Phase::Normal;
}

/// Makes `to` the data primary of a new epoch and records the change in the ledger; `None`
/// when the epoch cannot grow (the checker's boundary stops far earlier, at
/// [`Config::max_epoch`], and says so). The promotion may not reach `to` (it went down or
/// was cut off since its last report): it is repeated when `to` reports again.
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
    let unfenced = matches!(next.control.phase, Phase::Switchover { fenced: false, .. });
    let epoch = next.view.routing.epoch.checked_add(1)?;
    next.view.routing.primary = to;
    next.view.routing.epoch = epoch;
    let compute = next.view.routing.compute;
    if next.control.is_failed(compute) && !cfg.has_bug(Bug::NoComputeFailover) {
        next.view.routing.compute = to;
    }
    next.control.grant_age = 0;
    // The RPO guard of the next failover starts from what the new primary holds.
    let holds = next.control.report(to).map_or(0, |h| h.old_prefix);
    let known = match next.control.old_prefix {
        UNKNOWN_PREFIX => 0,
        old => old,
    };
    next.control.old_prefix = known.max(holds);
    next.control.confirmed = false;
    next.control.phase = Phase::Normal;
    if let Some(h) = &mut next.control.reports[usize::from(to)] {
        // As the new primary reports until its first heartbeat: nobody in sync yet.
        h.epoch = epoch;
        h.role = Role::Primary;
        h.in_sync = 0;
        h.unconfirmed = [None; MAX_REGIONS];
    }
    let mut decided = Promotion {
        to,
        kind,
        from,
        from_healthy,
        requested,
        outage_ages: next
            .view
            .ledger
            .writes
            .iter()
            .map(|w| w.ages_at_outage)
            .collect(),
    };
    if let Some(at) = next.promotions.iter().position(|p| p.to == from) {
        // `from` never took office: this failover replaces that one, from the same old
        // primary and judged against the same outage. (A switchover the operator asked for
        // that ends elsewhere is still the operator's.)
        let earlier = next.promotions.remove(at);
        decided.from = earlier.from;
        decided.from_healthy = earlier.from_healthy;
        decided.requested |= earlier.requested;
        decided.outage_ages = earlier.outage_ages;
    }
    next.promotions.retain(|p| p.to != to);
    next.promotions.push(decided);
    take_office(cfg, &mut next, to, epoch);
    // The old primary of a switchover learns the new epoch and rejoins like any region.
    // (Unfenced, under `--bug failback-unfenced`, it is not told, and writes on until a
    // heartbeat's answer tells it.)
    let forgot = unfenced && cfg.has_bug(Bug::FailbackUnfenced);
    if kind == FailoverKind::Switchover && !forgot {
        learn_epoch(&mut next, from, epoch);
    }
    Some(next)
}

fn lease_expired(cfg: &Config, s: &DrState) -> bool {
    cfg.has_bug(Bug::NoLeaseWait) || s.control.grant_age >= cfg.lease_wait()
}

/// The RPO guard: did `to` report at least as many entries as the old primary's last
/// heartbeat reported acknowledged long enough ago? (Neither report changes while the
/// control plane waits, so neither does the verdict for a given candidate.)
fn guard_allows(cfg: &Config, s: &DrState, to: u8) -> bool {
    cfg.has_bug(Bug::NoRpoGuard) || reported_len(s, to) >= s.control.old_prefix
}

/// Automatic failover to `to`, the candidate, once the old lease has surely expired, if the
/// RPO guard allows.
pub fn promote(cfg: &Config, s: &DrState, to: u8) -> Option<DrState> {
    let Phase::FailingOver { from, .. } = s.control.phase else {
        return None;
    };
    if cfg.has_bug(Bug::NoAutoFailover)
        || !lease_expired(cfg, s)
        || candidate(cfg, s, from) != Some(to)
        || !guard_allows(cfg, s, to)
    {
        return None;
    }
    promote_region(cfg, s, FailoverKind::Automatic, to, false)
}

/// The operator forces a failover to `to` after the grace period, when the RPO guard refuses
/// the best candidate there is.
pub fn force_failover(cfg: &Config, s: &DrState, to: u8) -> Option<DrState> {
    let Phase::FailingOver { from, waited, .. } = s.control.phase else {
        return None;
    };
    let best = candidate(cfg, s, from)?;
    let guard_allows_best = guard_allows(cfg, s, best) && !cfg.has_bug(Bug::NoAutoFailover);
    // Only to the most caught-up secondary: any other would lose more than it must.
    if s.budget.forced == 0
        || guard_allows_best
        || waited < cfg.timing.grace
        || !lease_expired(cfg, s)
        || to == from
        || !healthy_secondary(cfg, s, to)
        || to != best
    {
        return None;
    }
    let mut next = promote_region(cfg, s, FailoverKind::Forced, to, true)?;
    next.budget.forced -= 1;
    Some(next)
}

/// Would the control plane offer region `r` a rejoin now: its last report shows it behind
/// the current epoch (or stale), it is not declared failed, the primary has taken office,
/// and no rejoin was offered since that report?
pub fn may_rejoin(s: &DrState, r: u8) -> bool {
    let routing = &s.view.routing;
    let behind = s
        .control
        .report(r)
        .is_some_and(|h| h.epoch < routing.epoch || h.role == Role::Stale);
    r != routing.primary
        && !s.control.is_failed(r)
        && behind
        && s.control.confirmed
        && s.control.rejoin_offered & (1 << r) == 0
}

/// Can region `r` rejoin the current primary now, if told to: up, behind the epoch, linked
/// to a primary that has taken office?
fn can_rejoin(s: &DrState, r: u8) -> bool {
    let routing = &s.view.routing;
    let p = routing.primary;
    let (region, primary) = (s.region(r), s.region(p));
    reaches(s, r)
        && region.epoch < routing.epoch
        && primary.role.ships()
        && primary.epoch == routing.epoch
        && s.connected(r, p)
}

/// The control plane offers `r` a rejoin; if it can take it, the region rejoins as
/// secondary and its divergent suffix goes to the quarantine. (An offer that cannot be taken
/// changes only the control plane's memory of having made it.)
pub fn rejoin(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if !may_rejoin(s, r) {
        return None;
    }
    let mut next = s.clone();
    next.control.rejoin_offered |= 1 << r;
    if !can_rejoin(s, r) {
        return Some(next);
    }
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
    next.volatile[usize::from(r)].heard = 0;
    // It tells the control plane where its log now ends.
    let (len, last) = (next.region(r).log.len(), next.region(r).log.last().copied());
    if let Some(h) = &mut next.control.reports[usize::from(r)] {
        h.epoch = epoch;
        h.role = Role::Secondary;
        h.len = u8::try_from(len).unwrap_or(u8::MAX);
        h.last = last;
        h.in_sync = 0;
        h.unconfirmed = [None; MAX_REGIONS];
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

/// Can compute move back to the home region: not declared failed, and its last report shows
/// it a member of the current epoch in contact with the data primary (or the primary itself)?
pub fn may_fail_back_compute(cfg: &Config, s: &DrState) -> bool {
    let routing = &s.view.routing;
    let home = routing.home;
    let ignores_data = cfg.has_bug(Bug::ComputeIgnoresData);
    let member = s.control.report(home).is_some_and(|h| {
        h.epoch == routing.epoch
            && h.role != Role::Stale
            && (home == routing.primary || h.contact || ignores_data)
    });
    routing.compute != home && !s.control.is_failed(home) && member
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

/// Must compute move to the data primary's region: the compute region's last report says it
/// has lost contact with the primary (an inter-region partition while compute and data are
/// split), so that the endpoint could take no write there?
pub fn may_move_compute_to_primary(cfg: &Config, s: &DrState) -> bool {
    let routing = &s.view.routing;
    let (c, p) = (routing.compute, routing.primary);
    let cut_off = s
        .control
        .report(c)
        .is_some_and(|h| h.epoch == routing.epoch && !h.contact);
    !cfg.has_bug(Bug::ComputeIgnoresData)
        && c != p
        && !s.control.is_failed(c)
        && !s.control.is_failed(p)
        && cut_off
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

/// The last reports of `target` and of the primary, if a switchover to `target` could start
/// at all: nothing under way, `target` the home region, reported as a secondary of the
/// current epoch, the primary reported as primary, neither declared failed.
fn switchover_reports(s: &DrState, target: u8) -> Option<(&Report, &Report)> {
    let routing = &s.view.routing;
    let p = routing.primary;
    let (t, primary) = (s.control.report(target)?, s.control.report(p)?);
    let possible = target == routing.home
        && target != p
        && s.control.phase == Phase::Normal
        && !s.control.is_failed(target)
        && !s.control.is_failed(p)
        && t.role == Role::Secondary
        && t.epoch == routing.epoch
        && primary.role == Role::Primary;
    possible.then_some((t, primary))
}

/// Is `target` an in-sync secondary the data could fail back to, by the last reports: the
/// primary counts it in sync and it is in contact with the primary? (It need not hold the
/// whole log: the switchover drains it after the fence, so that it succeeds while clients
/// write.)
pub fn failback_target_ok(s: &DrState, target: u8) -> bool {
    switchover_reports(s, target).is_some_and(|(t, p)| p.in_sync & (1 << target) != 0 && t.contact)
}

/// Did `target` report the same log end as the primary? (What `--bug
/// failback-needs-caught-up` wants before it starts a switchover, and what `--bug
/// failback-unfenced` and `--bug failback-stale-last-entry` take for drained.)
fn reports_caught_up(s: &DrState, target: u8) -> bool {
    let p = s.view.routing.primary;
    let reports = s.control.report(target).zip(s.control.report(p));
    reports.is_some_and(|(t, p)| t.len == p.len && t.last == p.last)
}

/// Would the control plane leave in-sync secondary `r` out of sync now: by the primary's last
/// report, the primary's oldest write `r` has not confirmed has waited the sync timeout? The
/// control plane reads that write's acknowledgement time off the primary's clock, which may
/// lag its own by the skew: it may act up to the skew early, and must by the timeout (see
/// [`must_leave_out_of_sync`]).
pub fn may_leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> bool {
    let early = cfg.timing.sync_timeout.saturating_sub(cfg.timing.skew);
    lagging_for(cfg, s, r).is_some_and(|age| age >= early)
}

/// Must the control plane leave `r` out of sync before time passes (the timeout is reached)?
pub fn must_leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> bool {
    lagging_for(cfg, s, r).is_some_and(|age| age >= cfg.timing.sync_timeout)
}

/// How long in-sync secondary `r` has left the primary's oldest write unconfirmed, by the
/// primary's last report: only a fresh report of a primary not declared failed counts (one
/// that went silent may be down, and a crashed primary counts nobody in sync).
fn lagging_for(cfg: &Config, s: &DrState, r: u8) -> Option<u8> {
    let p = s.view.routing.primary;
    let silence = s.control.silence[usize::from(p)];
    let fresh = silence <= cfg.timing.contact_window();
    if cfg.has_bug(Bug::NoSyncTimeout) || r == p || s.control.is_failed(p) || !fresh {
        return None;
    }
    let report = s
        .control
        .report(p)
        .filter(|h| h.epoch == s.view.routing.epoch && h.ships())?;
    if report.in_sync & (1 << r) == 0 {
        return None;
    }
    let age = report.unconfirmed.get(usize::from(r)).copied().flatten()?;
    Some(age.saturating_add(silence))
}

/// The control plane leaves a lagging secondary out of the primary's in-sync set: the
/// primary stops throttling for it and writes unprotected until it catches up again.
pub fn leave_out_of_sync(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if !may_leave_out_of_sync(cfg, s, r) {
        return None;
    }
    let mut next = s.clone();
    let p = usize::from(next.view.routing.primary);
    if let Some(h) = &mut next.control.reports[p] {
        h.in_sync &= !(1 << r);
    }
    leave_out(&mut next, r);
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
/// secondary by the last reports: the switchover starts (under `--bug
/// failback-needs-caught-up`, it is refused unless the reports show the target holds the
/// whole log, and the ledger records the refusal).
pub fn request_failback(cfg: &Config, s: &DrState, target: u8) -> Option<DrState> {
    if s.budget.failbacks == 0 || !failback_target_ok(s, target) {
        return None;
    }
    let accepted = !cfg.has_bug(Bug::FailbackNeedsCaughtUp) || reports_caught_up(s, target);
    let mut next = if accepted {
        start_switchover(s, target, true)
    } else {
        s.clone()
    };
    next.budget.failbacks -= 1;
    if failback_watched(s, target) {
        next.view.ledger.failback_requested(target, accepted);
    }
    Some(next)
}

/// Does `failback_completes` watch a failback to `target` asked for now: the target and the
/// primary up and linked, the target an in-sync secondary of the current epoch in fact and by
/// the primary's last report? (One asked for on reports that a fault has since made stale
/// waits for the fault, as one asked for during it does.)
fn failback_watched(s: &DrState, target: u8) -> bool {
    let routing = &s.view.routing;
    let p = routing.primary;
    let (t, primary) = (s.region(target), s.region(p));
    reaches(s, target)
        && reaches(s, p)
        && !s.view.partitioned
        && t.role == Role::Secondary
        && t.epoch == routing.epoch
        && primary.role == Role::Primary
        && s.volatile[usize::from(p)].in_sync & (1 << target) != 0
        && s.control
            .report(p)
            .is_some_and(|h| h.in_sync & (1 << target) != 0)
}

/// Under `--bug auto-data-failback`: the control plane starts the switchover home by itself,
/// once the reports show home caught up.
pub fn auto_failback(cfg: &Config, s: &DrState, target: u8) -> Option<DrState> {
    let ready = switchover_reports(s, target).is_some() && reports_caught_up(s, target);
    if !cfg.has_bug(Bug::AutoDataFailback) || !ready {
        return None;
    }
    Some(start_switchover(s, target, false))
}

/// Switchover: the fence reaches the primary, which stops writing and gives up its lease.
pub fn fence(s: &DrState) -> Option<DrState> {
    let Phase::Switchover { fenced: false, .. } = s.control.phase else {
        return None;
    };
    let p = s.view.routing.primary;
    if !reaches(s, p) || s.region(p).role != Role::Primary {
        return None;
    }
    let mut next = s.clone();
    let region = next.region_mut(p);
    region.role = Role::Fenced;
    region.lease = 0;
    if let Phase::Switchover {
        fenced, draining, ..
    } = &mut next.control.phase
    {
        // The drain timeout runs from the fence's confirmation.
        *fenced = true;
        *draining = 0;
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
    // Under `--bug failback-unfenced`, the reports showing the target caught up will do.
    let unfenced = !fenced && cfg.has_bug(Bug::FailbackUnfenced) && reports_caught_up(s, target);
    if !fenced && !unfenced {
        return None;
    }
    // Under `--bug failback-stale-last-entry`, fenced, the target's report of the log end the
    // primary last reported will do: that report may predate the fence.
    let stale_end =
        fenced && cfg.has_bug(Bug::FailbackStaleLastEntry) && reports_caught_up(s, target);
    let ready = drained(s, target) || unfenced || stale_end || cfg.has_bug(Bug::FailbackNoDrain);
    if !ready || s.control.is_failed(target) {
        return None;
    }
    promote_region(cfg, s, FailoverKind::Switchover, target, requested)
}

/// Switchover: the fence was not confirmed, or the drain did not finish, within the drain
/// timeout; unfence and abort. (A fence that cannot reach the primary, which went down or was
/// cut off since its last report, is never confirmed.)
pub fn abort_switchover(cfg: &Config, s: &DrState) -> Option<DrState> {
    let Phase::Switchover {
        target,
        fenced,
        draining,
        ..
    } = s.control.phase
    else {
        return None;
    };
    if draining < cfg.timing.drain_timeout || (fenced && drained(s, target)) {
        return None;
    }
    let mut next = s.clone();
    unfence(&mut next);
    Some(next)
}
