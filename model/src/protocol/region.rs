//! Region steps: acknowledging writes under a lease and the throttle, and replication.

use drcheck_properties::{Entry, Role, Status};

use crate::config::Config;
use crate::state::{DrState, Report, MAX_REGIONS};
use drcheck_properties::Bug;

/// Length of the common prefix of two logs.
pub fn common_prefix(a: &[Entry], b: &[Entry]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Is primary `p` refusing writes because its oldest write not confirmed by every in-sync
/// secondary is older than the throttle threshold?
pub fn throttled(cfg: &Config, s: &DrState, p: u8) -> bool {
    if cfg.has_bug(Bug::NoThrottle) {
        return false;
    }
    let log = &s.region(p).log;
    let in_sync = s.volatile[usize::from(p)].in_sync;
    let confirmed = (0..s.region_count())
        .filter(|&r| in_sync & (1 << r) != 0)
        .map(|r| common_prefix(log, &s.region(r).log))
        .min()
        .unwrap_or(log.len());
    log.get(confirmed)
        .and_then(|e| s.view.ledger.write(e.write))
        .is_some_and(|w| w.age > cfg.timing.throttle)
}

/// The age of the oldest entry of primary `p`'s log that region `r` has not confirmed, if any.
pub fn unconfirmed_age(s: &DrState, p: u8, r: u8) -> Option<u8> {
    let log = &s.region(p).log;
    log.get(common_prefix(log, &s.region(r).log))
        .and_then(|e| s.view.ledger.write(e.write))
        .map(|w| w.age)
}

/// Would region `r` acknowledge a write now (its own view: role, lease, throttle)?
pub fn accepts_writes(cfg: &Config, s: &DrState, r: u8) -> bool {
    let region = s.region(r);
    region.status != Status::Down
        && region.role == Role::Primary
        && region.lease > 0
        && !throttled(cfg, s, r)
}

/// `old_prefix_len`: how many leading entries were acknowledged long enough ago to count in
/// the RPO guard.
pub fn old_prefix(cfg: &Config, s: &DrState, r: u8) -> u8 {
    let threshold = cfg.old_prefix_age();
    let ledger = &s.view.ledger;
    let old = s
        .region(r)
        .log
        .iter()
        .take_while(|e| ledger.write(e.write).is_none_or(|w| w.age >= threshold))
        .count();
    u8::try_from(old).unwrap_or(u8::MAX)
}

/// What region `r` would report in a heartbeat now.
pub fn report(cfg: &Config, s: &DrState, r: u8) -> Report {
    let region = s.region(r);
    let ships = region.role.ships();
    let v = &s.volatile[usize::from(r)];
    let mut unconfirmed = [None; MAX_REGIONS];
    let in_sync = if ships { v.in_sync } else { 0 };
    for x in 0..s.region_count() {
        if in_sync & (1 << x) != 0 {
            unconfirmed[usize::from(x)] =
                unconfirmed_age(s, r, x).map(|age| age.min(cfg.timing.sync_timeout));
        }
    }
    Report {
        epoch: region.epoch,
        role: region.role,
        len: u8::try_from(region.log.len()).unwrap_or(u8::MAX),
        last: region.log.last().copied(),
        // Every region reports it: the control plane reads the primary's for the RPO guard,
        // and a newly promoted region's until it reports as primary.
        old_prefix: old_prefix(cfg, s, r),
        contact: ships || v.heard < cfg.contact_cap(),
        in_sync,
        unconfirmed,
    }
}

/// Appends a new write to region `r`'s log and records it in the ledger.
fn append_write(cfg: &Config, next: &mut DrState, r: u8, reapply_of: Option<u8>) {
    let id = u8::try_from(next.view.ledger.writes.len() + 1).unwrap_or(u8::MAX);
    let protected_by = next.volatile[usize::from(r)].in_sync;
    let region = next.region_mut(r);
    let unavailable = region.dark;
    let previous = region.log.last().map(|e| e.write);
    let entry = Entry {
        epoch: region.epoch,
        write: id,
    };
    region.log.push(entry);
    next.view.ledger.acknowledge(
        id,
        r,
        previous,
        reapply_of,
        unavailable,
        protected_by,
        cfg.age_cap,
    );
}

/// A client write reaches region `r`.
pub fn write(cfg: &Config, s: &DrState, r: u8) -> Option<DrState> {
    if s.budget.writes == 0 || !accepts_writes(cfg, s, r) {
        return None;
    }
    let mut next = s.clone();
    next.budget.writes -= 1;
    append_write(cfg, &mut next, r, None);
    Some(next)
}

/// The operator re-applies quarantined write `w` as a new write at the data primary.
pub fn reapply(cfg: &Config, s: &DrState, w: u8) -> Option<DrState> {
    let p = s.view.routing.primary;
    let quarantined = s.view.regions.iter().any(|r| r.quarantine.contains(&w));
    let done = s.view.ledger.write(w).is_none_or(|rec| rec.reapplied);
    if s.budget.reapplies == 0
        || !quarantined
        || done
        || s.region(p).status != Status::Up
        || !accepts_writes(cfg, s, p)
    {
        return None;
    }
    let mut next = s.clone();
    next.budget.reapplies -= 1;
    append_write(cfg, &mut next, p, Some(w));
    Some(next)
}

/// Can `from` ship to `to` now, and what would it change?
fn replication_gap(s: &DrState, from: u8, to: u8) -> Option<usize> {
    let (src, dst) = (s.region(from), s.region(to));
    let ships = src.role.ships();
    if from == to
        || !ships
        || dst.role != Role::Secondary
        || src.epoch != dst.epoch
        || !s.connected(from, to)
    {
        return None;
    }
    // Ship only an extension. A secondary whose log is not a prefix of the primary's holds a
    // divergent entry (only a rejoin that kept its suffix leaves one): appending after it
    // would build a log the primary never had. The implementation's Append carries the
    // previous entry, and such a secondary refuses it; here nothing is shipped.
    if !src.log.starts_with(&dst.log) {
        return None;
    }
    let joined = s.volatile[usize::from(from)].in_sync & (1 << to) != 0;
    if dst.log.len() < src.log.len() || (dst.log == src.log && !joined) {
        Some(dst.log.len())
    } else {
        None
    }
}

/// Must this replication happen before time passes (its oldest missing entry has waited the
/// maximum delay, or the secondary only has to confirm)?
pub fn replication_due(cfg: &Config, s: &DrState, from: u8, to: u8) -> bool {
    replication_gap(s, from, to).is_some_and(|have| {
        s.region(from)
            .log
            .get(have)
            .and_then(|e| s.view.ledger.write(e.write))
            .is_none_or(|w| w.age >= cfg.timing.delay)
    })
}

/// The primary ships its missing entries to a secondary, which appends and confirms them.
pub fn replicate(cfg: &Config, s: &DrState, from: u8, to: u8) -> Option<DrState> {
    let have = replication_gap(s, from, to)?;
    let mut next = s.clone();
    let missing: Vec<Entry> = next.region(from).log[have..].to_vec();
    next.region_mut(to).log.extend(missing);
    next.volatile[usize::from(to)].heard = 0;
    let joins = next.volatile[usize::from(from)].in_sync & (1 << to) == 0;
    if next.region(to).log == next.region(from).log && joins {
        next.volatile[usize::from(from)].in_sync |= 1 << to;
        // It tells the control plane, which counts `to` in sync from now on.
        let routing = &next.view.routing;
        let current = from == routing.primary && next.region(from).epoch == routing.epoch;
        if let Some(h) = next.control.reports[usize::from(from)]
            .as_mut()
            .filter(|_| current)
        {
            h.in_sync |= 1 << to;
            h.unconfirmed[usize::from(to)] = None;
        }
    }
    let regions = next.view.regions.clone();
    next.view.ledger.settle(&regions, cfg.age_cap);
    Some(next)
}
