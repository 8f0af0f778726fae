//! The ghost ledger's bookkeeping: acknowledgements, ticks, settling, outages and failovers.

use drcheck_properties::{
    Entry, FailoverKind, FailoverRecord, Fate, Ledger, RegionView, Role, SingleFault,
};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Ledger::acknowledge
// ---------------------------------------------------------------------------------------------

const RTO: u8 = BOUNDS.rto;

fn ticks(ledger: &mut Ledger, n: usize) {
    for _ in 0..n {
        ledger.tick(CAP, &BOUNDS);
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
        writes: vec![write(1, 0, 5, CAP), write(2, 0, 3, 2), write(3, 0, 1, 2)].into(),
        ..Ledger::default()
    };
    l.writes[1].ages_at_outage[0] = Some(3);
    l.settle(&v.regions, CAP);
    assert_eq!(l.write(1).unwrap().age, CAP);
    assert_eq!(l.write(2).unwrap().age, CAP);
    assert_eq!(l.write(2).unwrap().ages_at_outage[0], None);
    // Its ack-time gap is forgotten too: nothing reads it once the write cannot be lost.
    assert_eq!(l.write(2).unwrap().gap, CAP);
}

#[test]
fn a_failover_does_not_read_the_gap_of_a_write_that_cannot_be_lost() {
    // w1 is held by both regions (settled or not, it is not lost): whatever its gap, the
    // failover's record and the lost writes' fates are the same. This is why `settle` may
    // forget it.
    let (regions, base) = failover_setup();
    let records: Vec<_> = [0, 3, CAP]
        .into_iter()
        .map(|gap| {
            let mut l = base.clone();
            l.writes[0].gap = gap;
            let f = automatic_failover(&regions, &mut l);
            let fates: Vec<_> = l.writes[1..].to_vec();
            (f, fates)
        })
        .collect();
    assert!(records.windows(2).all(|w| w[0] == w[1]), "{records:?}");
    // Nor the gap of a write already lost (by an earlier failover).
    let mut lost = base.clone();
    lost.writes[1].fate = Fate::Lost { failover: 0 };
    let mut other = lost.clone();
    other.writes[1].gap = 0;
    assert_eq!(
        automatic_failover(&regions, &mut lost),
        automatic_failover(&regions, &mut other)
    );
}

#[test]
fn settle_leaves_writes_some_region_lacks() {
    let v = baseline();
    let mut l = Ledger {
        writes: vec![write(3, 0, 1, 2)].into(),
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
        writes: vec![write(1, 0, 5, CAP), write(2, 0, 2, 3), write(9, 1, 7, CAP)].into(),
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
        writes: writes.into(),
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
        assert_eq!(w.gap, CAP, "w{id}");
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

// ---------------------------------------------------------------------------------------------
// Ledger::quarantine: a write quarantined on rejoin is lost, charged to the failover that lost it
// ---------------------------------------------------------------------------------------------

/// Region 0, primary of epoch 1, holds w1, which region 1 holds too. Region 1 is promoted
/// automatically into epoch 2 (failover #0) while region 0, isolated, still holds its lease
/// (a split brain, as under `--bug no-lease-wait`) and acknowledges w2 in epoch 1 after the
/// promotion. So failover #0 lost nothing when it was recorded.
fn split_brain() -> Ledger {
    let mut l = Ledger::default();
    ack(&mut l, 1, None);
    let regions = vec![
        region(Role::Primary, 1, 6, &[(1, 1)]),
        region(Role::Secondary, 1, 0, &[(1, 1)]),
    ];
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
    l.acknowledge(2, 0, Some(1), None, true, 0b10, CAP);
    assert_eq!(l.failovers[0].lost, 0);
    l
}

fn entry(epoch: u8, write: u8) -> Entry {
    Entry { epoch, write }
}

#[test]
fn quarantine_charges_a_live_write_to_the_failover_that_superseded_its_epoch() {
    let mut l = split_brain();
    // Region 0 rejoins epoch 2: w2 (of epoch 1) goes to its quarantine.
    l.quarantine([entry(1, 2)], CAP);
    let w2 = l.write(2).unwrap();
    assert!(w2.quarantined);
    assert_eq!(w2.fate, Fate::Lost { failover: 0 });
    assert_eq!(w2.age, CAP, "a lost write's age no longer matters");
    assert_eq!(l.failovers[0].lost, 1, "failover #0 is charged with w2");
}

#[test]
fn a_quarantined_write_is_never_charged_to_a_later_switchover() {
    let mut l = split_brain();
    l.quarantine([entry(1, 2)], CAP);
    // Data fails back to region 0 (rejoined, holding w1 only) as a drained switchover.
    let regions = vec![
        region(Role::Secondary, 2, 0, &[(1, 1)]),
        region(Role::Fenced, 2, 0, &[(1, 1)]),
    ];
    l.record_failover(FailoverKind::Switchover, 1, 0, 3, &regions, true, true, CAP);
    assert_eq!(l.failovers[1].lost, 0, "the switchover lost nothing");
    assert_eq!(l.write(2).unwrap().fate, Fate::Lost { failover: 0 });
}

#[test]
fn quarantine_charges_each_write_to_the_promotion_that_ended_its_epoch() {
    // Three regions: failover #0 (0 -> 1) into epoch 2, then #1 (1 -> 2) into epoch 3, each
    // losing nothing. w2 was written in epoch 1 after #0, w3 in epoch 2 after #1; both are
    // quarantined only now, when their regions rejoin epoch 3.
    let mut l = split_brain();
    l.failovers.push(FailoverRecord {
        epoch: 3,
        from: 1,
        to: 2,
        ..l.failovers[0].clone()
    });
    l.acknowledge(3, 1, Some(1), None, true, 0, CAP);
    l.quarantine([entry(1, 2)], CAP);
    l.quarantine([entry(2, 3)], CAP);
    assert_eq!(l.write(2).unwrap().fate, Fate::Lost { failover: 0 });
    assert_eq!(l.write(3).unwrap().fate, Fate::Lost { failover: 1 });
    assert_eq!((l.failovers[0].lost, l.failovers[1].lost), (1, 1));
}

#[test]
fn quarantine_leaves_a_write_already_lost_to_its_failover() {
    // w3 was lost by failover #0 at the promotion; the old primary's rejoin quarantines it:
    // it is not charged twice.
    let (regions, mut l) = failover_setup();
    automatic_failover(&regions, &mut l);
    l.quarantine([entry(1, 2), entry(1, 3), entry(1, 4)], CAP);
    assert_eq!(l.failovers[0].lost, 3);
    for id in 2..=4 {
        let w = l.write(id).unwrap();
        assert!(w.quarantined);
        assert_eq!(w.fate, Fate::Lost { failover: 0 }, "w{id}");
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger::fault_begins, after_step, failback_requested: the availability clocks
// ---------------------------------------------------------------------------------------------

#[test]
fn a_single_fault_arms_the_watch_and_an_unwritable_spell_is_counted() {
    let mut l = Ledger::default();
    l.fault_begins(Some(SingleFault::Partition), false);
    assert_eq!(
        (l.single_fault, l.outage),
        (Some(SingleFault::Partition), None)
    );
    l.after_step(false, false, false);
    ticks(&mut l, 3);
    assert_eq!(l.unwritable, Some(3));
    // Writable again: the spell ends, but the fault is still watched until it is repaired.
    l.after_step(true, false, false);
    assert_eq!(l.unwritable, None);
    l.after_step(false, false, false);
    assert_eq!(
        l.unwritable,
        Some(0),
        "a second spell under the same fault counts anew"
    );
    l.after_step(true, true, false);
    assert_eq!(
        l.single_fault, None,
        "repaired and writable: no longer watched"
    );
}

#[test]
fn a_primary_outage_also_starts_rto_bounds_clock_unless_the_guard_refused() {
    let mut l = Ledger::default();
    l.fault_begins(Some(SingleFault::PrimaryOutage), false);
    assert_eq!(l.outage, Some(0));
    let mut refused = Ledger::default();
    refused.fault_begins(Some(SingleFault::PrimaryOutage), true);
    assert_eq!(refused.outage, None);
}

#[test]
fn a_second_fault_excuses_every_clock() {
    let mut l = Ledger::default();
    l.fault_begins(Some(SingleFault::PrimaryOutage), false);
    l.after_step(false, false, true);
    l.failback_requested(1, true);
    l.fault_begins(None, false);
    assert_eq!(
        (l.outage, l.single_fault, l.unwritable, l.failback),
        (None, None, None, None)
    );
}

#[test]
fn a_waived_rto_stops_the_availability_clock() {
    let mut l = Ledger {
        rto_waived: true,
        ..Ledger::default()
    };
    l.fault_begins(Some(SingleFault::PrimaryOutage), true);
    l.after_step(false, false, false);
    assert_eq!(l.unwritable, None);
}

#[test]
fn the_failback_deadline_runs_only_during_the_switchover() {
    let mut l = Ledger::default();
    l.failback_requested(0, true);
    l.after_step(true, true, true);
    ticks(&mut l, 2);
    assert_eq!(l.failback, Some(2));
    ticks(&mut l, 100);
    assert_eq!(
        l.failback,
        Some(BOUNDS.drain_timeout + 1),
        "saturates just past the bound"
    );
    l.after_step(true, true, false);
    assert_eq!(l.failback, None);
    l.failback_requested(1, false);
    l.failback_requested(0, false);
    assert_eq!(l.failback_refused, Some(1), "the first refusal is kept");
}
