//! What changed between two views, in words: the "what changed" column of a timeline and the
//! difference printed when two views that should agree do not.

use crate::fmt_log;
use crate::ledger::Fate;
use crate::region::RegionView;
use crate::view::View;

/// Human-readable changes from `before` to `after`. The steady passing of time (ages growing,
/// leases running down or being renewed) is left out.
pub fn describe_changes(before: &View, after: &View) -> Vec<String> {
    let mut out = Vec::new();
    for (r, (a, b)) in before.regions.iter().zip(&after.regions).enumerate() {
        region_changes(r, a, b, &mut out);
    }
    let (ra, rb) = (&before.routing, &after.routing);
    if ra.epoch != rb.epoch || ra.primary != rb.primary {
        out.push(format!(
            "data primary {} (epoch {}) -> {} (epoch {})",
            ra.primary, ra.epoch, rb.primary, rb.epoch
        ));
    }
    if ra.compute != rb.compute {
        out.push(format!(
            "endpoint routes to {} -> {}",
            ra.compute, rb.compute
        ));
    }
    if before.partitioned != after.partitioned {
        out.push(if after.partitioned {
            "inter-region link cut".to_string()
        } else {
            "inter-region link healed".to_string()
        });
    }
    ledger_changes(before, after, &mut out);
    out
}

fn region_changes(r: usize, a: &RegionView, b: &RegionView, out: &mut Vec<String>) {
    if a.status != b.status {
        out.push(format!("region {r} {:?} -> {:?}", a.status, b.status));
    }
    if a.role != b.role || a.epoch != b.epoch {
        out.push(format!(
            "region {r} {:?}@{} -> {:?}@{}",
            a.role, a.epoch, b.role, b.epoch
        ));
    }
    if a.log != b.log {
        out.push(format!("region {r} log {}", fmt_log(&b.log)));
    }
    // Renewals are routine: only a lease gained or lost is news.
    if (a.lease == 0) != (b.lease == 0) {
        out.push(if b.lease == 0 {
            format!("region {r} has no lease")
        } else {
            format!("region {r} holds a lease for {} ticks", b.lease)
        });
    }
    if a.quarantine != b.quarantine {
        let ids: Vec<String> = b.quarantine.iter().map(|w| format!("w{w}")).collect();
        out.push(format!("region {r} quarantine [{}]", ids.join(" ")));
    }
}

fn ledger_changes(before: &View, after: &View, out: &mut Vec<String>) {
    let (la, lb) = (&before.ledger, &after.ledger);
    for w in lb.writes.iter().skip(la.writes.len()) {
        match w.reapply_of {
            Some(o) => out.push(format!(
                "w{} acknowledged by region {} (re-applies w{o})",
                w.id, w.by
            )),
            None => out.push(format!("w{} acknowledged by region {}", w.id, w.by)),
        }
    }
    for (n, f) in lb.failovers.iter().enumerate().skip(la.failovers.len()) {
        let loss = match f.oldest_loss {
            Some(_) if f.kind == crate::FailoverKind::Switchover => {
                format!("lost {} write(s)", f.lost)
            }
            Some(age) => format!(
                "lost {} write(s), oldest acknowledged {age} ticks before the outage, spread {} ticks",
                f.lost, f.spread
            ),
            None => "lost nothing".to_string(),
        };
        out.push(format!(
            "{:?} #{n}: {} -> {} (epoch {}), {loss}",
            f.kind, f.from, f.to, f.epoch
        ));
    }
    for (wa, wb) in la.writes.iter().zip(&lb.writes) {
        if wa.fate == Fate::Live {
            if let Fate::Lost { failover } = wb.fate {
                out.push(format!("w{} lost by failover #{failover}", wb.id));
            }
        }
    }
    if la.spurious.is_none() {
        if let Some(r) = lb.spurious {
            out.push(format!("region {r} declared failed while up and reachable"));
        }
    }
    if la.outage.is_none() && lb.outage.is_some() {
        out.push("outage clock starts: the endpoint cannot take writes".to_string());
    }
    if la.outage.is_some() && lb.outage.is_none() {
        out.push(format!(
            "outage clock stops after {} ticks",
            la.outage.unwrap_or(0)
        ));
    }
    if !la.rto_waived && lb.rto_waived {
        out.push("RPO guard refused automatic failover: RTO waived".to_string());
    }
}
