//! Every `always` property against hand-built views: the baseline and the scenario views
//! are healthy, and each change to them breaks exactly the property under test, or none.

use drcheck_properties::{
    Entry, Expectation, FailoverKind, FailoverRecord, Role, SingleFault, Status, View,
};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// The baseline and the scenario views
// ---------------------------------------------------------------------------------------------

#[test]
fn baseline_satisfies_every_always_property() {
    assert_healthy(&baseline());
}

#[test]
fn baseline_shows_no_sometimes_situation() {
    let v = baseline();
    for name in names_of(Expectation::Sometimes) {
        assert!(!present(name, &v), "{name} is present in the baseline");
    }
}

#[test]
fn view_after_automatic_failover_is_healthy() {
    assert_healthy(&after_failover());
}

#[test]
fn view_after_rejoin_with_quarantine_is_healthy() {
    assert_healthy(&after_rejoin());
}

// ---------------------------------------------------------------------------------------------
// single_writer
// ---------------------------------------------------------------------------------------------

/// The baseline with region 1 promoted into epoch 2 while region 0 still holds its lease.
fn two_leased_primaries() -> View {
    let mut v = baseline();
    v.regions[1].role = Role::Primary;
    v.regions[1].epoch = 2;
    v.regions[1].lease = 6;
    v
}

#[test]
fn single_writer_fails_when_two_primaries_hold_leases() {
    let violation = only_violation(&two_leased_primaries(), "single_writer");
    assert_mentions(
        &violation,
        &["regions 0 (epoch 1, lease 6) and 1 (epoch 2, lease 6)"],
    );
}

#[test]
fn single_writer_counts_isolated_primary_holding_lease() {
    let mut v = two_leased_primaries();
    v.regions[0].status = Status::Isolated;
    v.regions[0].down_for = Some(1);
    only_violation(&v, "single_writer");
}

#[test]
fn single_writer_ignores_down_primary_holding_lease() {
    let mut v = two_leased_primaries();
    v.regions[0].status = Status::Down;
    v.regions[0].down_for = Some(1);
    assert_eq!(v.regions[0].lease, 6);
    assert_healthy(&v);
}

#[test]
fn single_writer_ignores_primary_with_expired_lease() {
    let mut v = two_leased_primaries();
    v.regions[0].lease = 0;
    assert_healthy(&v);
}

#[test]
fn single_writer_ignores_fenced_region_holding_lease() {
    let mut v = two_leased_primaries();
    v.regions[0].role = Role::Fenced;
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// log_matching
// ---------------------------------------------------------------------------------------------

#[test]
fn log_matching_fails_on_different_writes_at_same_epoch_and_index() {
    let mut v = baseline();
    // A stale region is exempt from the prefix clause, so only the first clause can fire.
    v.regions[1].role = Role::Stale;
    v.regions[1].log = log(&[(1, 1), (1, 4)]).into();
    let violation = only_violation(&v, "log_matching");
    assert_mentions(
        &violation,
        &["regions 0 and 1", "w2 and w4", "epoch 1 index 1"],
    );
}

#[test]
fn log_matching_allows_different_epochs_at_same_index() {
    let mut v = after_failover();
    // The new primary appends w4 at index 2, where the crashed old primary holds 1:w3.
    v.regions[1].log.push(Entry { epoch: 2, write: 4 });
    v.ledger.writes.push(write(4, 1, 0, CAP));
    assert_healthy(&v);
}

#[test]
fn log_matching_fails_when_current_secondary_is_not_prefix_of_primary() {
    let mut v = baseline();
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]).into();
    let violation = only_violation(&v, "log_matching");
    assert_mentions(
        &violation,
        &[
            "secondary 1 of epoch 1",
            "[1:w1 1:w2 1:w3 1:w4]",
            "primary 0's [1:w1 1:w2 1:w3]",
        ],
    );
}

#[test]
fn log_matching_exempts_unreachable_secondary_from_prefix_clause() {
    let mut v = baseline();
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]).into();
    v.regions[1].status = Status::Isolated;
    v.regions[1].down_for = Some(1);
    assert_healthy(&v);
}

#[test]
fn log_matching_exempts_secondary_of_older_epoch_from_prefix_clause() {
    let mut v = baseline();
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]).into();
    v.regions[1].epoch = 0;
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// rpo_bound
// ---------------------------------------------------------------------------------------------

#[test]
fn rpo_bound_holds_when_oldest_loss_is_just_under_rpo() {
    let v = with_failover(lossy_failover(
        FailoverKind::Automatic,
        1,
        BOUNDS.rpo - 1,
        0,
    ));
    assert_healthy(&v);
}

#[test]
fn rpo_bound_fails_when_oldest_loss_reaches_rpo() {
    let v = with_failover(lossy_failover(FailoverKind::Automatic, 1, BOUNDS.rpo, 0));
    let violation = only_violation(&v, "rpo_bound");
    assert_mentions(
        &violation,
        &["failover #0 (0 -> 1)", "15 ticks before the outage"],
    );
}

#[test]
fn rpo_bound_ignores_forced_failover() {
    let v = with_failover(lossy_failover(FailoverKind::Forced, 1, CAP, 0));
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// loss_window
// ---------------------------------------------------------------------------------------------

#[test]
fn loss_window_holds_when_spread_is_just_under_rpo() {
    let v = with_failover(lossy_failover(
        FailoverKind::Automatic,
        2,
        1,
        BOUNDS.rpo - 1,
    ));
    assert_healthy(&v);
}

#[test]
fn loss_window_fails_when_spread_reaches_rpo() {
    let v = with_failover(lossy_failover(FailoverKind::Automatic, 2, 1, BOUNDS.rpo));
    let violation = only_violation(&v, "loss_window");
    assert_mentions(
        &violation,
        &["failover #0 (0 -> 1)", "lost 2 writes", "15 ticks apart"],
    );
}

#[test]
fn loss_window_applies_to_forced_failover() {
    let v = with_failover(lossy_failover(FailoverKind::Forced, 2, CAP, BOUNDS.rpo));
    let violation = only_violation(&v, "loss_window");
    assert_mentions(&violation, &["Forced failover #0"]);
}

#[test]
fn loss_window_ignores_single_lost_write() {
    let v = with_failover(lossy_failover(FailoverKind::Automatic, 1, 1, BOUNDS.rpo));
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// no_spurious_failover
// ---------------------------------------------------------------------------------------------

#[test]
fn no_spurious_failover_fails_when_a_healthy_region_is_declared_failed() {
    let mut v = baseline();
    v.ledger.spurious = Some(0);
    let violation = only_violation(&v, "no_spurious_failover");
    assert_mentions(&violation, &["region 0 was declared failed"]);
}

// ---------------------------------------------------------------------------------------------
// no_silent_loss
// ---------------------------------------------------------------------------------------------

#[test]
fn no_silent_loss_fails_when_a_write_is_nowhere() {
    let mut v = baseline();
    v.regions[0].log.pop();
    let violation = only_violation(&v, "no_silent_loss");
    assert_mentions(&violation, &["write w3", "acknowledged by region 0"]);
}

#[test]
fn no_silent_loss_keeps_write_held_by_unrejoined_region() {
    let v = after_failover();
    assert!(!v.primary().holds(3));
    assert_healthy(&v);
}

#[test]
fn no_silent_loss_keeps_write_in_quarantine() {
    let v = after_rejoin();
    assert!(!v.regions.iter().any(|r| r.holds(3)));
    assert_healthy(&v);
}

#[test]
fn no_silent_loss_fails_when_rejoin_drops_write_without_quarantine() {
    let mut v = after_rejoin();
    v.regions[0].quarantine.clear();
    let violation = only_violation(&v, "no_silent_loss");
    assert_mentions(&violation, &["write w3"]);
}

#[test]
fn no_silent_loss_keeps_write_the_operator_reapplied() {
    let mut v = after_rejoin();
    v.regions[0].quarantine.clear();
    write_mut(&mut v, 3).reapplied = true;
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// no_resurrection
// ---------------------------------------------------------------------------------------------

#[test]
fn no_resurrection_fails_when_quarantined_write_is_in_current_epoch_log() {
    let mut v = baseline();
    write_mut(&mut v, 2).quarantined = true;
    let violation = only_violation(&v, "no_resurrection");
    assert_mentions(
        &violation,
        &["quarantined write w2", "region 0's log of epoch 1"],
    );
}

#[test]
fn no_resurrection_ignores_quarantined_write_in_unrejoined_region() {
    let mut v = after_failover();
    write_mut(&mut v, 3).quarantined = true;
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// rto_bound
// ---------------------------------------------------------------------------------------------

#[test]
fn rto_bound_holds_when_outage_lasts_exactly_rto() {
    let mut v = baseline();
    v.ledger.outage = Some(BOUNDS.rto);
    assert_healthy(&v);
}

#[test]
fn rto_bound_fails_when_outage_exceeds_rto() {
    let mut v = baseline();
    v.ledger.outage = Some(BOUNDS.rto + 1);
    let violation = only_violation(&v, "rto_bound");
    assert_mentions(&violation, &["for 61 ticks", "RTO 60 ticks"]);
}

// ---------------------------------------------------------------------------------------------
// data_failback_manual
// ---------------------------------------------------------------------------------------------

#[test]
fn data_failback_manual_fails_on_unrequested_move_from_healthy_primary() {
    let v = with_failover(FailoverRecord {
        from_healthy: true,
        ..failover(FailoverKind::Switchover)
    });
    let violation = only_violation(&v, "data_failback_manual");
    assert_mentions(
        &violation,
        &[
            "Switchover #0",
            "healthy region 0 to 1",
            "without an operator request",
        ],
    );
}

#[test]
fn data_failback_manual_allows_requested_move_from_healthy_primary() {
    let v = with_failover(FailoverRecord {
        from_healthy: true,
        requested: true,
        ..failover(FailoverKind::Switchover)
    });
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// failback_zero_loss
// ---------------------------------------------------------------------------------------------

#[test]
fn failback_zero_loss_fails_when_switchover_loses_a_write() {
    let v = with_failover(FailoverRecord {
        from_healthy: true,
        requested: true,
        ..lossy_failover(FailoverKind::Switchover, 1, 0, 0)
    });
    let violation = only_violation(&v, "failback_zero_loss");
    assert_mentions(&violation, &["switchover #0 (0 -> 1)", "lost 1"]);
}

// ---------------------------------------------------------------------------------------------
// routing_healthy
// ---------------------------------------------------------------------------------------------

#[test]
fn routing_healthy_holds_when_compute_down_for_exactly_detection() {
    let mut v = baseline();
    crash(&mut v, 0, BOUNDS.detection);
    assert_healthy(&v);
}

#[test]
fn routing_healthy_fails_when_compute_down_longer_than_detection() {
    let mut v = baseline();
    crash(&mut v, 0, BOUNDS.detection + 1);
    let violation = only_violation(&v, "routing_healthy");
    assert_mentions(
        &violation,
        &[
            "routes to region 0",
            "Down for 6 ticks",
            "detection 5 ticks",
        ],
    );
}

#[test]
fn routing_healthy_counts_isolated_compute_region() {
    let mut v = baseline();
    v.regions[0].status = Status::Isolated;
    v.regions[0].down_for = Some(BOUNDS.detection + 1);
    let violation = only_violation(&v, "routing_healthy");
    assert_mentions(&violation, &["Isolated for 6 ticks"]);
}

#[test]
fn routing_healthy_ignores_down_region_the_endpoint_does_not_route_to() {
    let mut v = baseline();
    crash(&mut v, 1, CAP);
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// write_availability
// ---------------------------------------------------------------------------------------------

#[test]
fn write_availability_holds_for_a_spell_of_exactly_rto() {
    let mut v = baseline();
    v.ledger.single_fault = Some(SingleFault::Partition);
    v.ledger.unwritable = Some(BOUNDS.rto);
    assert_healthy(&v);
}

#[test]
fn write_availability_fails_for_a_longer_spell_and_names_the_fault() {
    let mut v = baseline();
    v.ledger.single_fault = Some(SingleFault::Partition);
    v.ledger.unwritable = Some(BOUNDS.rto + 1);
    let violation = only_violation(&v, "write_availability");
    assert_mentions(
        &violation,
        &["for 61 ticks", "inter-region partition", "RTO 60 ticks"],
    );
}

// ---------------------------------------------------------------------------------------------
// failback_completes
// ---------------------------------------------------------------------------------------------

#[test]
fn failback_completes_holds_while_the_drain_is_within_its_timeout() {
    let mut v = baseline();
    v.ledger.failback = Some(BOUNDS.drain_timeout);
    assert_healthy(&v);
}

#[test]
fn failback_completes_fails_past_the_drain_timeout() {
    let mut v = baseline();
    v.ledger.failback = Some(BOUNDS.drain_timeout + 1);
    let violation = only_violation(&v, "failback_completes");
    assert_mentions(
        &violation,
        &["6 ticks after it was accepted", "drain timeout 5"],
    );
}

#[test]
fn failback_completes_fails_when_an_eligible_request_was_refused() {
    let mut v = baseline();
    v.ledger.failback_refused = Some(1);
    let violation = only_violation(&v, "failback_completes");
    assert_mentions(&violation, &["region 1", "was refused"]);
}
