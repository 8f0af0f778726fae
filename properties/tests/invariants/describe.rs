//! `describe_changes`: the changes a timeline shows, and the routine ones it leaves out.

use drcheck_properties::{describe_changes, Entry, FailoverKind, Role};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// describe_changes
// ---------------------------------------------------------------------------------------------

#[test]
fn describe_changes_reports_a_role_change() {
    let before = baseline();
    let mut after = before.clone();
    after.regions[1].role = Role::Primary;
    after.regions[1].epoch = 2;
    assert_eq!(
        describe_changes(&before, &after),
        vec!["region 1 Secondary@1 -> Primary@2"]
    );
}

#[test]
fn describe_changes_reports_a_log_change() {
    let before = baseline();
    let mut after = before.clone();
    after.regions[1].log.push(Entry { epoch: 1, write: 3 });
    assert_eq!(
        describe_changes(&before, &after),
        vec!["region 1 log [1:w1 1:w2 1:w3]"]
    );
}

#[test]
fn describe_changes_reports_a_new_failover_record() {
    let before = baseline();
    let mut after = before.clone();
    after
        .ledger
        .failovers
        .push(lossy_failover(FailoverKind::Automatic, 1, 2, 0));
    assert_eq!(
        describe_changes(&before, &after),
        vec![
            "Automatic #0: 0 -> 1 (epoch 2), lost 1 write(s), oldest acknowledged 2 ticks before the outage, spread 0 ticks"
        ]
    );
}

#[test]
fn describe_changes_ignores_a_one_tick_lease_decrement() {
    let before = baseline();
    let mut after = before.clone();
    after.regions[0].lease -= 1;
    assert!(describe_changes(&before, &after).is_empty());
}

#[test]
fn describe_changes_leaves_out_a_lease_renewal() {
    let mut before = baseline();
    before.regions[0].lease = 2;
    assert!(describe_changes(&before, &baseline()).is_empty());
}

#[test]
fn describe_changes_reports_a_lease_gained_and_lost() {
    let mut without = baseline();
    without.regions[0].lease = 0;
    assert_eq!(
        describe_changes(&without, &baseline()),
        vec!["region 0 holds a lease for 6 ticks"]
    );
    assert_eq!(
        describe_changes(&baseline(), &without),
        vec!["region 0 has no lease"]
    );
}

#[test]
fn describe_changes_of_identical_views_is_empty() {
    assert!(describe_changes(&baseline(), &baseline()).is_empty());
}
