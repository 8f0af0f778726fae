//! One representative per class of states that no step or property tells apart: fields that
//! nothing will read are set to a fixed value before a state is hashed. Each erasure below
//! says why nothing reads the field; `tests/it/canonical.rs` checks that a state with those
//! fields set otherwise has the same successors, step for step.

use drcheck_properties::{Bug, Role};

use crate::config::Config;
use crate::state::{DrState, Report, MAX_REGIONS};

/// Does any switched-on bug compare the primary's reported log end with a secondary's (the
/// only readers of a primary's reported length and last entry)?
fn reads_primary_log_end(cfg: &Config) -> bool {
    [
        Bug::FailbackNeedsCaughtUp,
        Bug::AutoDataFailback,
        Bug::FailbackUnfenced,
        Bug::FailbackStaleLastEntry,
    ]
    .iter()
    .any(|&b| cfg.has_bug(b))
}

/// What a report of a primary (fenced or not) keeps: the control plane reads its role,
/// epoch, in-sync set, lags and `old_prefix` (which a rejoin keeps, and a later promotion
/// reads); its contact is always true; its length and last entry only the bugs of
/// [`reads_primary_log_end`] read (a rejoin replaces both).
fn canonical_report(cfg: &Config, report: &mut Report) {
    if report.ships() && !reads_primary_log_end(cfg) {
        report.len = 0;
        report.last = None;
    }
}

/// Will the control plane never again read the length and last entry of `report` (stored
/// for a region, or in flight to become its stored report)? Only a candidate's are read
/// (`candidate`, the RPO guard), and a candidate reported as a secondary of the current epoch,
/// or of the previous one while the new primary has not taken office. A stale report, or a
/// secondary's of an older epoch, stays out for good: the routing epoch only grows, and the
/// control plane forgets having confirmed the primary only when it takes a new epoch, or when
/// it restarts (which drops the stored reports, not those in flight, hence `in_flight`). A
/// rejoin, which turns such a report into a candidate's, replaces both fields.
fn log_end_unread(cfg: &Config, s: &DrState, report: &Report, in_flight: bool) -> bool {
    let epoch = s.view.routing.epoch;
    let restarts = in_flight && s.budget.cp_restarts > 0;
    match report.role {
        Role::Stale => true,
        // (Under `--bug candidate-any-epoch`, a secondary of any epoch is a candidate.)
        Role::Secondary if cfg.has_bug(Bug::CandidateAnyEpoch) => false,
        Role::Secondary => {
            report.epoch + 1 < epoch
                || (report.epoch + 1 == epoch && s.control.confirmed && !restarts)
        }
        Role::Primary | Role::Fenced => false,
    }
}

/// Which of the lags in the stored report of region `r` will the control plane never read?
/// Only the sync timeout reads them (`control::lagging_for`): those of the current primary's
/// report, for a secondary it counts in sync, while the report is fresh. A report that went
/// stale stays so until the next one replaces it; a promotion clears the lags of the region
/// it promotes, and a restart drops every report.
fn lags_unread(cfg: &Config, s: &DrState, r: usize, report: &Report) -> [bool; MAX_REGIONS] {
    let routing = &s.view.routing;
    let fresh = s.control.silence[r] <= cfg.timing.contact_window();
    let read = !cfg.has_bug(Bug::NoSyncTimeout)
        && r == usize::from(routing.primary)
        && fresh
        && report.epoch == routing.epoch
        && report.ships();
    std::array::from_fn(|x| !read || report.in_sync & (1 << x) == 0)
}

/// Sets every field nothing will read to a fixed value.
pub fn canonicalize(cfg: &Config, s: &mut DrState) {
    if !cfg.reduce {
        return;
    }
    // (The time since a region heard its primary is not erased for a primary: a primary
    // that learns of a newer epoch reports it, as a stale region, in its contact, which a
    // rejoin keeps.)
    let n = usize::from(s.region_count());
    for (r, v) in s.volatile[..n].iter_mut().enumerate() {
        let role = s.view.regions[r].role;
        // Only a region acting as its epoch's primary counts secondaries in sync (in its
        // reports, its throttle, its writes' protection, its shipping); a region that does not
        // becomes one only by taking office, which clears the set, or by an unfence, which
        // only a fenced region (acting as primary) takes.
        if !role.ships() {
            v.in_sync = 0;
        }
    }
    for r in 0..n {
        let Some(mut report) = s.control.reports[r] else {
            continue;
        };
        canonical_report(cfg, &mut report);
        if log_end_unread(cfg, s, &report, false) {
            report.len = 0;
            report.last = None;
        }
        let unread = lags_unread(cfg, s, r, &report);
        for (lag, unread) in report.unconfirmed.iter_mut().zip(unread) {
            if unread {
                *lag = None;
            }
        }
        s.control.reports[r] = Some(report);
    }
    for i in 0..s.heartbeats.len() {
        let mut report = s.heartbeats[i].report;
        canonical_report(cfg, &mut report);
        if log_end_unread(cfg, s, &report, true) {
            report.len = 0;
            report.last = None;
        }
        s.heartbeats[i].report = report;
    }
}
