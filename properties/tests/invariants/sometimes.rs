//! Every `sometimes` property: present in the views that show its situation, absent from
//! the others.

use drcheck_properties::{FailoverKind, FailoverRecord};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// sometimes properties
// ---------------------------------------------------------------------------------------------

#[test]
fn failover_reachable_present_after_automatic_failover() {
    assert!(!present("failover_reachable", &baseline()));
    assert!(present("failover_reachable", &after_failover()));
}

#[test]
fn failover_reachable_absent_after_forced_failover_only() {
    let v = with_failover(failover(FailoverKind::Forced));
    assert!(!present("failover_reachable", &v));
}

#[test]
fn forced_failover_reachable_present_after_forced_failover() {
    assert!(!present("forced_failover_reachable", &baseline()));
    let v = with_failover(failover(FailoverKind::Forced));
    assert!(present("forced_failover_reachable", &v));
}

#[test]
fn failback_reachable_present_after_requested_switchover() {
    assert!(!present("failback_reachable", &baseline()));
    let v = with_failover(FailoverRecord {
        from_healthy: true,
        requested: true,
        ..failover(FailoverKind::Switchover)
    });
    assert!(present("failback_reachable", &v));
}

#[test]
fn failback_reachable_absent_after_unrequested_switchover() {
    let v = with_failover(failover(FailoverKind::Switchover));
    assert!(!present("failback_reachable", &v));
}

#[test]
fn quarantine_reachable_present_when_a_region_quarantines_a_write() {
    assert!(!present("quarantine_reachable", &baseline()));
    assert!(present("quarantine_reachable", &after_rejoin()));
}

#[test]
fn loss_within_rpo_reachable_present_after_lossy_automatic_failover() {
    assert!(!present("loss_within_rpo_reachable", &baseline()));
    assert!(present("loss_within_rpo_reachable", &after_failover()));
}

#[test]
fn loss_within_rpo_reachable_absent_when_loss_reaches_rpo() {
    let at_bound = with_failover(lossy_failover(FailoverKind::Automatic, 1, BOUNDS.rpo, 0));
    let under = with_failover(lossy_failover(
        FailoverKind::Automatic,
        1,
        BOUNDS.rpo - 1,
        0,
    ));
    assert!(!present("loss_within_rpo_reachable", &at_bound));
    assert!(present("loss_within_rpo_reachable", &under));
}

#[test]
fn loss_within_rpo_reachable_absent_after_lossless_failover() {
    let v = with_failover(failover(FailoverKind::Automatic));
    assert!(!present("loss_within_rpo_reachable", &v));
}

#[test]
fn compute_split_reachable_present_when_compute_is_home_and_data_elsewhere() {
    assert!(!present("compute_split_reachable", &baseline()));
    let mut v = after_rejoin();
    v.routing.compute = v.routing.home;
    assert_healthy(&v);
    assert!(present("compute_split_reachable", &v));
}

#[test]
fn compute_split_reachable_absent_while_home_is_down() {
    let mut v = after_failover();
    v.routing.compute = v.routing.home;
    assert!(!present("compute_split_reachable", &v));
}
