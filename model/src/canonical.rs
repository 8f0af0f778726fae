//! One representative per class of states that no step or property tells apart: fields that
//! nothing will read are set to a fixed value before a state is hashed. Each erasure below
//! says why nothing reads the field; `tests/it/canonical.rs` checks that a state with those
//! fields set otherwise has the same successors, step for step.

use drcheck_properties::{Bug, Role};

use crate::config::Config;
use crate::state::{DrState, Report};

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

/// Sets every field nothing will read to a fixed value.
pub fn canonicalize(cfg: &Config, s: &mut DrState) {
    let cap = cfg.contact_cap();
    for (r, v) in s.volatile.iter_mut().enumerate() {
        // Only a secondary's time since it heard its primary is ever reported (a primary
        // reports contact regardless); a region becomes a secondary only by a rejoin, which
        // sets it.
        if s.view.regions[r].role != Role::Secondary {
            v.heard = cap;
        }
    }
    for report in s.control.reports.iter_mut().flatten() {
        canonical_report(cfg, report);
    }
    for hb in &mut s.heartbeats {
        canonical_report(cfg, &mut hb.report);
    }
}
