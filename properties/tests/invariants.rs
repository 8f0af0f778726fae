//! Unit tests of the properties crate: every invariant against hand-built views, the ghost
//! ledger's bookkeeping, `describe_changes` and the catalog.
//!
//! Each invariant test starts from [`baseline`], a healthy two-region deployment, changes as
//! little as possible, and checks that exactly the property under test notices.

use std::collections::HashSet;

use drcheck_properties::{
    describe_changes, property, violations, Bounds, Check, Entry, Expectation, FailoverKind,
    FailoverRecord, Fate, Ledger, RegionView, Role, Routing, Status, View, Violation, WriteRecord,
    CATALOG,
};

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

const BOUNDS: Bounds = Bounds {
    rpo: 15,
    rto: 60,
    detection: 5,
};

/// The ages' saturation point (the model uses max(rpo, throttle); here the throttle is <= RPO).
const CAP: u8 = BOUNDS.rpo;

/// A log of `(epoch, write)` pairs.
fn log(entries: &[(u8, u8)]) -> Vec<Entry> {
    entries
        .iter()
        .map(|&(epoch, write)| Entry { epoch, write })
        .collect()
}

/// An up, reachable region with an empty quarantine.
fn region(role: Role, epoch: u8, lease: u8, entries: &[(u8, u8)]) -> RegionView {
    RegionView {
        status: Status::Up,
        role,
        epoch,
        log: log(entries),
        lease,
        quarantine: Vec::new(),
        down_for: None,
        dark: false,
    }
}

/// A live, protected write acknowledged by `by`.
fn write(id: u8, by: u8, age: u8, gap: u8) -> WriteRecord {
    WriteRecord {
        id,
        by,
        age,
        gap,
        fate: Fate::Live,
        reapply_of: None,
        quarantined: false,
        reapplied: false,
        protected_by: 0b10,
        ages_at_outage: [None; 3],
    }
}

/// A promotion of region 1 in place of region 0 into epoch 2 that lost nothing; tests set
/// the fields they care about.
fn failover(kind: FailoverKind) -> FailoverRecord {
    FailoverRecord {
        kind,
        from: 0,
        to: 1,
        epoch: 2,
        lost: 0,
        oldest_loss: None,
        spread: 0,
        from_healthy: false,
        requested: false,
    }
}

/// A failover record that lost `lost` writes, the oldest `oldest_loss` ticks before the outage.
fn lossy_failover(kind: FailoverKind, lost: u8, oldest_loss: u8, spread: u8) -> FailoverRecord {
    FailoverRecord {
        lost,
        oldest_loss: Some(oldest_loss),
        spread,
        ..failover(kind)
    }
}

/// The healthy baseline: region 0 is the primary of epoch 1 with a lease of 6 ticks and log
/// `[1:w1 1:w2 1:w3]`; region 1 is its in-sync secondary holding `[1:w1 1:w2]`. w1 and w2 are
/// held everywhere (settled: age = cap); w3 was acknowledged 2 ticks ago.
fn baseline() -> View {
    View {
        regions: vec![
            region(Role::Primary, 1, 6, &[(1, 1), (1, 2), (1, 3)]),
            region(Role::Secondary, 1, 0, &[(1, 1), (1, 2)]),
        ],
        routing: Routing {
            epoch: 1,
            primary: 0,
            compute: 0,
            home: 0,
        },
        partitioned: false,
        ledger: Ledger {
            writes: vec![
                write(1, 0, CAP, CAP),
                write(2, 0, CAP, 4),
                write(3, 0, 2, CAP),
            ],
            ..Ledger::default()
        },
    }
}

/// The baseline after region 0 crashed and region 1 was promoted automatically into epoch 2,
/// losing w3 (acknowledged 2 ticks before the outage). Region 0 has not rejoined yet.
fn after_failover() -> View {
    let mut v = baseline();
    crash(&mut v, 0, 8);
    v.regions[1].role = Role::Primary;
    v.regions[1].epoch = 2;
    v.regions[1].lease = 6;
    v.routing = Routing {
        epoch: 2,
        primary: 1,
        compute: 1,
        home: 0,
    };
    let w3 = write_mut(&mut v, 3);
    w3.fate = Fate::Lost { failover: 0 };
    w3.age = CAP;
    v.ledger
        .failovers
        .push(lossy_failover(FailoverKind::Automatic, 1, 2, 0));
    v
}

/// [`after_failover`], then region 0 recovered and rejoined as a secondary of epoch 2, moving
/// its divergent w3 into its quarantine.
fn after_rejoin() -> View {
    let mut v = after_failover();
    let r0 = &mut v.regions[0];
    r0.status = Status::Up;
    r0.role = Role::Secondary;
    r0.epoch = 2;
    r0.log = log(&[(1, 1), (1, 2)]);
    r0.quarantine = vec![3];
    r0.down_for = None;
    r0.dark = false;
    write_mut(&mut v, 3).quarantined = true;
    v
}

/// Region `r` crashed `ticks` ago: its lease is gone, its durable log survives.
fn crash(v: &mut View, r: usize, ticks: u8) {
    let region = &mut v.regions[r];
    region.status = Status::Down;
    region.lease = 0;
    region.down_for = Some(ticks);
    region.dark = true;
}

fn write_mut(v: &mut View, id: u8) -> &mut WriteRecord {
    v.ledger
        .writes
        .iter_mut()
        .find(|w| w.id == id)
        .expect("no such write")
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

fn assert_healthy(v: &View) {
    let found = violations(v, &BOUNDS);
    assert!(found.is_empty(), "unexpected violations: {found:#?}");
}

/// Asserts that `name` is the only `always` property the view violates, and returns the
/// violation.
fn only_violation(v: &View, name: &str) -> Violation {
    let mut found = violations(v, &BOUNDS);
    assert_eq!(
        found.iter().map(|f| f.property).collect::<Vec<_>>(),
        vec![name],
        "violations: {found:#?}"
    );
    found.remove(0)
}

fn assert_mentions(violation: &Violation, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            violation.reason.contains(fragment),
            "reason {:?} does not mention {fragment:?}",
            violation.reason
        );
    }
}

/// Does the view show the situation the `sometimes` property `name` looks for?
fn present(name: &str, v: &View) -> bool {
    let spec = property(name).expect("unknown property");
    assert_eq!(spec.expectation(), Expectation::Sometimes);
    spec.holds_in(v, &BOUNDS)
}

fn names_of(expectation: Expectation) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|p| p.expectation() == expectation)
        .map(|p| p.name)
        .collect()
}

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
    v.regions[1].log = log(&[(1, 1), (1, 4)]);
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
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]);
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
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]);
    v.regions[1].status = Status::Isolated;
    v.regions[1].down_for = Some(1);
    assert_healthy(&v);
}

#[test]
fn log_matching_exempts_secondary_of_older_epoch_from_prefix_clause() {
    let mut v = baseline();
    v.regions[1].log = log(&[(1, 1), (1, 2), (1, 3), (1, 4)]);
    v.regions[1].epoch = 0;
    assert_healthy(&v);
}

// ---------------------------------------------------------------------------------------------
// rpo_bound
// ---------------------------------------------------------------------------------------------

fn with_failover(record: FailoverRecord) -> View {
    let mut v = baseline();
    v.ledger.failovers.push(record);
    v
}

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

// ---------------------------------------------------------------------------------------------
// Ledger::acknowledge
// ---------------------------------------------------------------------------------------------

const RTO: u8 = BOUNDS.rto;

fn ticks(ledger: &mut Ledger, n: usize) {
    for _ in 0..n {
        ledger.tick(CAP, RTO);
    }
}

/// `acknowledge(id, by, previous, reapply_of, unavailable, protected_by)` with the test cap.
fn ack(ledger: &mut Ledger, id: u8, previous: Option<u8>) {
    ledger.acknowledge(id, 0, previous, None, false, 0b10, CAP);
}

#[test]
fn acknowledge_records_a_live_write_of_age_zero() {
    let mut l = Ledger::default();
    l.acknowledge(1, 1, None, None, false, 0b01, CAP);
    let w = l.write(1).unwrap();
    assert_eq!((w.id, w.by, w.age), (1, 1, 0));
    assert_eq!(w.fate, Fate::Live);
    assert_eq!(w.protected_by, 0b01);
    assert!(!w.quarantined && !w.reapplied);
    assert_eq!(w.reapply_of, None);
    assert_eq!(w.ages_at_outage[0], None);
}

#[test]
fn acknowledge_gap_is_age_of_previous_write() {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    ticks(&mut l, 4);
    ack(&mut l, 2, Some(1));
    assert_eq!(l.write(2).unwrap().gap, 4);
}

#[test]
fn acknowledge_first_write_of_a_log_has_gap_cap() {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    assert_eq!(l.write(1).unwrap().gap, CAP);
}

#[test]
fn acknowledge_records_unprotected_write() {
    let mut l = Ledger::default();
    l.acknowledge(1, 0, None, None, false, 0, CAP);
    assert_eq!(l.write(1).unwrap().protected_by, 0);
}

#[test]
fn acknowledge_while_unavailable_starts_at_outage_age_zero() {
    let mut l = Ledger::default();
    l.acknowledge(1, 0, None, None, true, 0b10, CAP);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], Some(0));
}

#[test]
fn acknowledge_reapply_marks_the_original_reapplied() {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    l.acknowledge(2, 1, None, Some(1), false, 0b01, CAP);
    assert!(l.write(1).unwrap().reapplied);
    assert_eq!(l.write(2).unwrap().reapply_of, Some(1));
    assert!(!l.write(2).unwrap().reapplied);
}

// ---------------------------------------------------------------------------------------------
// Ledger::tick
// ---------------------------------------------------------------------------------------------

#[test]
fn tick_ages_every_write_by_one() {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    ticks(&mut l, 3);
    assert_eq!(l.write(1).unwrap().age, 3);
}

#[test]
fn tick_saturates_ages_at_cap() {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    ticks(&mut l, usize::from(CAP) + 10);
    assert_eq!(l.write(1).unwrap().age, CAP);
}

#[test]
fn tick_advances_outage_clock() {
    let mut l = Ledger {
        outage: Some(RTO - 1),
        ..Ledger::default()
    };
    ticks(&mut l, 1);
    assert_eq!(l.outage, Some(RTO));
}

#[test]
fn tick_saturates_outage_clock_at_rto_plus_one() {
    let mut l = Ledger {
        outage: Some(0),
        ..Ledger::default()
    };
    ticks(&mut l, 300);
    assert_eq!(l.outage, Some(RTO + 1));
}

#[test]
fn tick_does_not_start_outage_clock() {
    let mut l = Ledger::default();
    ticks(&mut l, 5);
    assert_eq!(l.outage, None);
}

// ---------------------------------------------------------------------------------------------
// Ledger::settle
// ---------------------------------------------------------------------------------------------

#[test]
fn settle_saturates_writes_every_region_holds() {
    let v = baseline();
    let mut l = Ledger {
        writes: vec![write(1, 0, 5, CAP), write(2, 0, 3, 2), write(3, 0, 1, 2)],
        ..Ledger::default()
    };
    l.writes[1].ages_at_outage[0] = Some(3);
    l.settle(&v.regions, CAP);
    assert_eq!(l.write(1).unwrap().age, CAP);
    assert_eq!(l.write(2).unwrap().age, CAP);
    assert_eq!(l.write(2).unwrap().ages_at_outage[0], None);
}

#[test]
fn settle_leaves_writes_some_region_lacks() {
    let v = baseline();
    let mut l = Ledger {
        writes: vec![write(3, 0, 1, 2)],
        ..Ledger::default()
    };
    l.writes[0].ages_at_outage[0] = Some(1);
    l.settle(&v.regions, CAP);
    assert_eq!(l.write(3).unwrap().age, 1);
    assert_eq!(l.write(3).unwrap().ages_at_outage[0], Some(1));
}

// ---------------------------------------------------------------------------------------------
// Ledger::unavailable / available
// ---------------------------------------------------------------------------------------------

/// w1 (age 5) and w2 (age 2) are in region 0's log; w9 (age 7) is not.
fn ledger_for_outage() -> (RegionView, Ledger) {
    let r0 = region(Role::Primary, 1, 6, &[(1, 1), (1, 2)]);
    let l = Ledger {
        writes: vec![write(1, 0, 5, CAP), write(2, 0, 2, 3), write(9, 1, 7, CAP)],
        ..Ledger::default()
    };
    (r0, l)
}

#[test]
fn unavailable_snapshots_ages_of_the_region_writes() {
    let (r0, mut l) = ledger_for_outage();
    l.unavailable(0, &r0);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], Some(5));
    assert_eq!(l.write(2).unwrap().ages_at_outage[0], Some(2));
    assert_eq!(l.write(9).unwrap().ages_at_outage[0], None);
}

#[test]
fn unavailable_keeps_the_first_snapshot() {
    let (r0, mut l) = ledger_for_outage();
    l.unavailable(0, &r0);
    ticks(&mut l, 3);
    l.unavailable(0, &r0);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], Some(5));
    assert_eq!(l.write(1).unwrap().age, 8);
}

#[test]
fn unavailable_skips_lost_writes() {
    let (r0, mut l) = ledger_for_outage();
    l.writes[0].fate = Fate::Lost { failover: 0 };
    l.unavailable(0, &r0);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], None);
}

#[test]
fn available_clears_the_snapshot() {
    let (r0, mut l) = ledger_for_outage();
    l.unavailable(0, &r0);
    l.available(0);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], None);
    assert_eq!(l.write(2).unwrap().ages_at_outage[0], None);
}

#[test]
fn available_then_unavailable_takes_a_fresh_snapshot() {
    let (r0, mut l) = ledger_for_outage();
    l.unavailable(0, &r0);
    l.available(0);
    ticks(&mut l, 3);
    l.unavailable(0, &r0);
    assert_eq!(l.write(1).unwrap().ages_at_outage[0], Some(8));
}

// ---------------------------------------------------------------------------------------------
// Ledger::record_failover
// ---------------------------------------------------------------------------------------------

/// Region 0 (old primary) holds w1..w4; region 1 (promoted) holds only w1. The outage began
/// one tick ago. Lost, in log order: w2 (unprotected, gap 7), w3 (protected, gap 3), w4
/// (protected, gap 4).
fn failover_setup() -> (Vec<RegionView>, Ledger) {
    let regions = vec![
        region(Role::Primary, 1, 0, &[(1, 1), (1, 2), (1, 3), (1, 4)]),
        region(Role::Secondary, 1, 0, &[(1, 1)]),
    ];
    let mut writes = vec![
        write(1, 0, CAP, CAP),
        write(2, 0, 9, 7),
        write(3, 0, 6, 3),
        write(4, 0, 2, 4),
    ];
    writes[1].protected_by = 0;
    for (w, at_outage) in writes[1..].iter_mut().zip([8, 5, 1]) {
        w.ages_at_outage[0] = Some(at_outage);
    }
    let ledger = Ledger {
        writes,
        ..Ledger::default()
    };
    (regions, ledger)
}

fn automatic_failover(regions: &[RegionView], ledger: &mut Ledger) -> FailoverRecord {
    ledger.record_failover(FailoverKind::Automatic, 0, 1, 2, regions, false, false, CAP);
    ledger.failovers.last().unwrap().clone()
}

#[test]
fn record_failover_marks_writes_the_new_primary_lacks_as_lost() {
    let (regions, mut l) = failover_setup();
    automatic_failover(&regions, &mut l);
    assert_eq!(l.write(1).unwrap().fate, Fate::Live);
    for id in 2..=4 {
        let w = l.write(id).unwrap();
        assert_eq!(w.fate, Fate::Lost { failover: 0 }, "w{id}");
        assert_eq!(w.age, CAP, "w{id}");
        assert_eq!(w.ages_at_outage[0], None, "w{id}");
    }
}

#[test]
fn record_failover_counts_lost_writes_and_records_the_promotion() {
    let (regions, mut l) = failover_setup();
    l.record_failover(FailoverKind::Forced, 0, 1, 2, &regions, true, true, CAP);
    let f = &l.failovers[0];
    assert_eq!(f.lost, 3);
    assert_eq!(f.kind, FailoverKind::Forced);
    assert_eq!((f.from, f.to, f.epoch), (0, 1, 2));
    assert!(f.from_healthy && f.requested);
}

#[test]
fn record_failover_also_loses_live_writes_outside_the_old_log() {
    let (regions, mut l) = failover_setup();
    l.writes.push(write(5, 1, 3, CAP));
    let f = automatic_failover(&regions, &mut l);
    assert_eq!(f.lost, 4);
    assert_eq!(l.write(5).unwrap().fate, Fate::Lost { failover: 0 });
}

#[test]
fn record_failover_oldest_loss_uses_the_old_primarys_outage_age() {
    let (regions, mut l) = failover_setup();
    let f = automatic_failover(&regions, &mut l);
    assert_eq!(f.oldest_loss, Some(8));
}

#[test]
fn record_failover_oldest_loss_falls_back_to_age() {
    let (regions, mut l) = failover_setup();
    l.writes[1].ages_at_outage[0] = None;
    let f = automatic_failover(&regions, &mut l);
    assert_eq!(f.oldest_loss, Some(9));
}

#[test]
fn record_failover_spread_covers_only_protected_lost_writes() {
    let (regions, mut l) = failover_setup();
    let f = automatic_failover(&regions, &mut l);
    // From w3 to w4 (w4's gap); w2 is unprotected so its distance to w3 does not count.
    assert_eq!(f.spread, 4);
}

#[test]
fn record_failover_spread_includes_unprotected_writes_between_protected_ones() {
    let (regions, mut l) = failover_setup();
    l.writes[1].protected_by = 0b10;
    l.writes[2].protected_by = 0;
    let f = automatic_failover(&regions, &mut l);
    // From w2 to w4: w3's gap plus w4's gap.
    assert_eq!(f.spread, 3 + 4);
}

#[test]
fn record_failover_spread_is_zero_with_one_protected_lost_write() {
    let (regions, mut l) = failover_setup();
    l.writes[3].protected_by = 0;
    let f = automatic_failover(&regions, &mut l);
    assert_eq!(f.spread, 0);
}

#[test]
fn record_failover_spread_saturates_at_cap() {
    let (regions, mut l) = failover_setup();
    l.writes[2].gap = CAP - 1;
    l.writes[3].gap = CAP - 1;
    l.writes[1].protected_by = 0b10;
    let f = automatic_failover(&regions, &mut l);
    assert_eq!(f.spread, CAP);
}

#[test]
fn record_failover_that_loses_nothing() {
    let (mut regions, mut l) = failover_setup();
    regions[1].log = regions[0].log.clone();
    let f = automatic_failover(&regions, &mut l);
    assert_eq!((f.lost, f.oldest_loss, f.spread), (0, None, 0));
    assert!(l.writes.iter().all(|w| w.fate == Fate::Live));
}

#[test]
fn record_failover_numbers_successive_failovers() {
    let (regions, mut l) = failover_setup();
    automatic_failover(&regions, &mut l);
    l.writes.push(write(5, 1, 0, CAP));
    let back = [regions[1].clone(), regions[0].clone()];
    l.record_failover(FailoverKind::Automatic, 0, 1, 3, &back, false, false, CAP);
    assert_eq!(l.write(5).unwrap().fate, Fate::Lost { failover: 1 });
    assert_eq!(l.write(2).unwrap().fate, Fate::Lost { failover: 0 });
    assert_eq!(l.failovers[1].lost, 1);
}

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

// ---------------------------------------------------------------------------------------------
// CATALOG
// ---------------------------------------------------------------------------------------------

#[test]
fn catalog_names_are_unique() {
    let names: HashSet<&str> = CATALOG.iter().map(|p| p.name).collect();
    assert_eq!(names.len(), CATALOG.len());
}

#[test]
fn property_finds_every_catalog_entry() {
    for spec in CATALOG {
        let found = property(spec.name).unwrap_or_else(|| panic!("{} not found", spec.name));
        assert_eq!(found.name, spec.name);
        assert_eq!(found.summary, spec.summary);
    }
}

#[test]
fn property_of_unknown_name_is_none() {
    assert!(property("no_such_property").is_none());
}

/// Every property has tests in this file: a new one must be added here and tested.
#[test]
fn catalog_lists_exactly_the_tested_properties() {
    assert_eq!(
        names_of(Expectation::Always),
        [
            "single_writer",
            "log_matching",
            "rpo_bound",
            "loss_window",
            "no_spurious_failover",
            "no_silent_loss",
            "no_resurrection",
            "rto_bound",
            "data_failback_manual",
            "failback_zero_loss",
            "routing_healthy",
        ]
    );
    assert_eq!(
        names_of(Expectation::Sometimes),
        [
            "failover_reachable",
            "forced_failover_reachable",
            "failback_reachable",
            "quarantine_reachable",
            "loss_within_rpo_reachable",
            "compute_split_reachable",
        ]
    );
}

#[test]
fn expectation_matches_the_kind_of_check() {
    for spec in CATALOG {
        let expected = match spec.check {
            Check::Always(_) => Expectation::Always,
            Check::Sometimes(_) => Expectation::Sometimes,
        };
        assert_eq!(spec.expectation(), expected, "{}", spec.name);
    }
}

#[test]
fn one_region_heard_again_keeps_the_outage_age_another_set() {
    // w1 is held by regions 0 and 1; region 1 goes dark first, then region 0 (the primary);
    // region 1 is heard again: the age at region 0's outage still counts for a failover
    // from region 0.
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    ticks(&mut l, 2);
    let holds = region(Role::Secondary, 1, 0, &[(1, 1)]);
    l.unavailable(1, &holds);
    ticks(&mut l, 4);
    l.unavailable(0, &holds);
    l.available(1);
    assert_eq!(l.write(1).unwrap().ages_at_outage, [Some(6), None, None]);
    ticks(&mut l, 10);
    let regions = vec![holds.clone(), region(Role::Secondary, 1, 0, &[])];
    l.record_failover(
        FailoverKind::Automatic,
        0,
        1,
        2,
        &regions,
        false,
        false,
        CAP,
    );
    assert_eq!(l.failovers[0].oldest_loss, Some(6));
}
