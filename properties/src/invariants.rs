//! Every property of DESIGN.md as a plain function over a [`View`].
//!
//! An `always` property returns the violation it found; a `sometimes` property returns
//! whether the view shows the situation it looks for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ledger::FailoverKind;
use crate::region::{Role, Status};
use crate::view::{Bounds, View};

/// A broken invariant: which one, and what in the view breaks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The name of the broken property (as in [`crate::CATALOG`]).
    pub property: &'static str,
    /// What in the view breaks it, with the regions, writes and ticks involved.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.reason)
    }
}

impl std::error::Error for Violation {}

/// The result of an `always` property.
pub type Verdict = Result<(), Violation>;

fn violated(property: &'static str, reason: String) -> Verdict {
    Err(Violation { property, reason })
}

/// At no instant can two regions acknowledge writes.
pub fn single_writer(v: &View, _: &Bounds) -> Verdict {
    let writers: Vec<usize> = (0..v.regions.len())
        .filter(|&r| v.regions[r].can_acknowledge())
        .collect();
    if let [a, b, ..] = writers[..] {
        let (ra, rb) = (&v.regions[a], &v.regions[b]);
        return violated(
            "single_writer",
            format!(
                "regions {a} (epoch {}, lease {}) and {b} (epoch {}, lease {}) can both acknowledge writes",
                ra.epoch, ra.lease, rb.epoch, rb.lease
            ),
        );
    }
    Ok(())
}

/// Two regions never hold different entries at the same epoch and index; a secondary of the
/// current epoch holds a prefix of the primary's log.
pub fn log_matching(v: &View, _: &Bounds) -> Verdict {
    for (a, ra) in v.regions.iter().enumerate() {
        for (b, rb) in v.regions.iter().enumerate().skip(a + 1) {
            for (i, (ea, eb)) in ra.log.iter().zip(&rb.log).enumerate() {
                if ea.epoch == eb.epoch && ea.write != eb.write {
                    return violated(
                        "log_matching",
                        format!(
                            "regions {a} and {b} hold writes w{} and w{} at epoch {} index {i}",
                            ea.write, eb.write, ea.epoch
                        ),
                    );
                }
            }
        }
    }
    let primary = v.primary();
    for (r, region) in v.regions.iter().enumerate() {
        if region.role == Role::Secondary
            && region.is_member_of(v.routing.epoch)
            && !primary.log.starts_with(&region.log)
        {
            return violated(
                "log_matching",
                format!(
                    "secondary {r} of epoch {} holds {} which is not a prefix of primary {}'s {}",
                    v.routing.epoch,
                    crate::fmt_log(&region.log),
                    v.routing.primary,
                    crate::fmt_log(&primary.log)
                ),
            );
        }
    }
    Ok(())
}

/// Every write lost by an automatic failover was acknowledged less than RPO before the old
/// primary's unavailability began.
pub fn rpo_bound(v: &View, b: &Bounds) -> Verdict {
    for (n, f) in v.ledger.failovers.iter().enumerate() {
        if f.kind != FailoverKind::Automatic {
            continue;
        }
        if let Some(age) = f.oldest_loss.filter(|&age| age >= b.rpo) {
            return violated(
                "rpo_bound",
                format!(
                    "automatic failover #{n} ({} -> {}) lost a write acknowledged {age} ticks before the outage began (RPO {} ticks)",
                    f.from, f.to, b.rpo
                ),
            );
        }
    }
    Ok(())
}

/// No failover loses two writes acknowledged RPO or more apart while the region it promotes
/// was an in-sync secondary: the throttle bounds the loss window. (A primary with no in-sync
/// secondary writes unprotected, and a region out of sync was not protecting; the RPO guard
/// is what stands between those writes and a failover.)
pub fn loss_window(v: &View, b: &Bounds) -> Verdict {
    for (n, f) in v.ledger.failovers.iter().enumerate() {
        if f.lost >= 2 && f.spread >= b.rpo {
            return violated(
                "loss_window",
                format!(
                    "{:?} failover #{n} ({} -> {}) lost {} writes acknowledged {} ticks apart (RPO {} ticks)",
                    f.kind, f.from, f.to, f.lost, f.spread, b.rpo
                ),
            );
        }
    }
    Ok(())
}

/// A primary that is up and reachable is never declared failed (nor is any other region).
pub fn no_spurious_failover(v: &View, _: &Bounds) -> Verdict {
    match v.ledger.spurious {
        Some(r) => violated(
            "no_spurious_failover",
            format!("region {r} was declared failed while up and reachable"),
        ),
        None => Ok(()),
    }
}

/// Every acknowledged write is in the data primary's log, in the storage of a region that has
/// not yet rejoined, or in a quarantine.
pub fn no_silent_loss(v: &View, _: &Bounds) -> Verdict {
    let epoch = v.routing.epoch;
    for w in &v.ledger.writes {
        let kept = v.primary().holds(w.id)
            || w.reapplied
            || v.regions
                .iter()
                .any(|r| r.quarantine.contains(&w.id) || (!r.is_member_of(epoch) && r.holds(w.id)));
        if !kept {
            return violated(
                "no_silent_loss",
                format!(
                    "write w{} (acknowledged by region {}) is in no primary log, unrejoined region or quarantine",
                    w.id, w.by
                ),
            );
        }
    }
    Ok(())
}

/// A quarantined write never re-enters the logs of the current epoch except as a new write the
/// operator applies.
pub fn no_resurrection(v: &View, _: &Bounds) -> Verdict {
    let epoch = v.routing.epoch;
    for w in v.ledger.writes.iter().filter(|w| w.quarantined) {
        if let Some(r) = v
            .regions
            .iter()
            .position(|r| r.is_member_of(epoch) && r.holds(w.id))
        {
            return violated(
                "no_resurrection",
                format!(
                    "quarantined write w{} is back in region {r}'s log of epoch {epoch}",
                    w.id
                ),
            );
        }
    }
    Ok(())
}

/// After a single fault takes the primary region out, writes resume within RTO whenever the
/// RPO guard allows automatic failover.
pub fn rto_bound(v: &View, b: &Bounds) -> Verdict {
    match v.ledger.outage {
        Some(t) if t > b.rto => violated(
            "rto_bound",
            format!(
                "the endpoint has not accepted writes for {t} ticks after the primary's outage (RTO {} ticks)",
                b.rto
            ),
        ),
        _ => Ok(()),
    }
}

/// No promotion away from a primary the control plane considers healthy without a pending
/// operator request.
pub fn data_failback_manual(v: &View, _: &Bounds) -> Verdict {
    for (n, f) in v.ledger.failovers.iter().enumerate() {
        if f.from_healthy && !f.requested {
            return violated(
                "data_failback_manual",
                format!(
                    "{:?} #{n} moved data from healthy region {} to {} without an operator request",
                    f.kind, f.from, f.to
                ),
            );
        }
    }
    Ok(())
}

/// A manual data failback loses no acknowledged write.
pub fn failback_zero_loss(v: &View, _: &Bounds) -> Verdict {
    for (n, f) in v.ledger.failovers.iter().enumerate() {
        if f.kind == FailoverKind::Switchover && f.lost > 0 {
            return violated(
                "failback_zero_loss",
                format!(
                    "switchover #{n} ({} -> {}) lost {} acknowledged writes",
                    f.from, f.to, f.lost
                ),
            );
        }
    }
    Ok(())
}

/// The endpoint never routes to a region known to be down for longer than the detection time,
/// while the control plane knows a healthy region to route to (one up and heard from since
/// its last outage).
pub fn routing_healthy(v: &View, b: &Bounds) -> Verdict {
    let compute = &v.regions[usize::from(v.routing.compute)];
    let elsewhere = v.regions.iter().any(|r| r.status == Status::Up && !r.dark);
    match compute.down_for {
        Some(t) if t > b.detection && elsewhere => violated(
            "routing_healthy",
            format!(
                "the endpoint routes to region {}, {:?} for {t} ticks (detection {} ticks)",
                v.routing.compute, compute.status, b.detection
            ),
        ),
        _ => Ok(()),
    }
}

/// After a single fault of any kind (an outage of the primary or of a secondary, an
/// inter-region partition), writes resume within RTO and stay possible: no spell without writes
/// under that fault lasts longer than RTO, whenever the RPO guard allows (generalises
/// `rto_bound`, which watches only the first spell of a primary outage).
pub fn write_availability(v: &View, b: &Bounds) -> Verdict {
    match (v.ledger.unwritable, v.ledger.single_fault) {
        (Some(t), Some(fault)) if t > b.rto => violated(
            "write_availability",
            format!(
                "the endpoint has taken no write for {t} ticks under a single {} (RTO {} ticks)",
                fault.name(),
                b.rto
            ),
        ),
        _ => Ok(()),
    }
}

/// A data failback the operator asks for, to an up, linked, in-sync secondary of the current
/// epoch, is accepted, and its switchover completes or aborts within the drain timeout (also
/// while clients write: "caught up" is not required before fencing).
pub fn failback_completes(v: &View, b: &Bounds) -> Verdict {
    if let Some(target) = v.ledger.failback_refused {
        return violated(
            "failback_completes",
            format!("a data failback to region {target}, an up and linked in-sync secondary, was refused"),
        );
    }
    match v.ledger.failback {
        Some(t) if t > b.drain_timeout => violated(
            "failback_completes",
            format!(
                "a data failback has neither completed nor aborted {t} ticks after it was accepted (drain timeout {} ticks)",
                b.drain_timeout
            ),
        ),
        _ => Ok(()),
    }
}

/// An automatic failover happened.
pub fn failover_reachable(v: &View, _: &Bounds) -> bool {
    v.ledger
        .failovers
        .iter()
        .any(|f| f.kind == FailoverKind::Automatic)
}

/// An operator-forced failover happened.
pub fn forced_failover_reachable(v: &View, _: &Bounds) -> bool {
    v.ledger
        .failovers
        .iter()
        .any(|f| f.kind == FailoverKind::Forced)
}

/// A manual data failback the operator asked for completed.
pub fn failback_reachable(v: &View, _: &Bounds) -> bool {
    v.ledger
        .failovers
        .iter()
        .any(|f| f.kind == FailoverKind::Switchover && f.requested)
}

/// Some write sits in a lost-writes quarantine.
pub fn quarantine_reachable(v: &View, _: &Bounds) -> bool {
    v.regions.iter().any(|r| !r.quarantine.is_empty())
}

/// An automatic failover lost writes, all within the RPO.
pub fn loss_within_rpo_reachable(v: &View, b: &Bounds) -> bool {
    v.ledger.failovers.iter().any(|f| {
        f.kind == FailoverKind::Automatic && f.lost > 0 && f.oldest_loss.is_some_and(|a| a < b.rpo)
    })
}

/// Compute has failed back to the home region while data is still elsewhere.
pub fn compute_split_reachable(v: &View, _: &Bounds) -> bool {
    let r = &v.routing;
    r.compute == r.home
        && r.primary != r.home
        && v.regions[usize::from(r.home)].status == Status::Up
}
