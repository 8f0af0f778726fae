//! Teeth: every `--bug` switches one guard off, and the property `--list-bugs` names must
//! catch it, with a short counterexample. The same small scenario without the bug satisfies
//! that property, so it is the guard that makes the difference.

use drcheck_model::{check, Bug, CheckOptions, Params, Report};
use drcheck_properties::Timing;

/// The smallest scenario that exercises the guard each bug switches off (small enough to
/// keep `cargo test` fast, large enough to reach the violation).
fn scenario(bug: Bug) -> Params {
    let base = Params {
        writes: 0,
        outages: 1,
        partitions: 0,
        failbacks: 0,
        forced: 0,
        reapplies: 0,
        ..Params::default()
    };
    // A tighter RTO (and sync timeout, to keep the rules) shortens a counterexample that
    // waits for the RTO to pass.
    let tight_rto = Timing {
        rto: 12,
        sync_timeout: 8,
        ..Timing::default()
    };
    match bug {
        // Writes pile up unconfirmed behind a partition, then the primary fails and the
        // operator forces a failover (at once: no grace period, for a short path).
        Bug::NoThrottle => Params {
            writes: 2,
            partitions: 1,
            forced: 1,
            timing: Timing {
                grace: 0,
                ..Timing::default()
            },
            isolation: false,
            ..base
        },
        // An isolated primary keeps its lease while the control plane promotes.
        Bug::NoLeaseWait => base,
        // A write ages behind a partition, then the primary crashes.
        Bug::NoRpoGuard | Bug::RpoGuardNoMargin => Params {
            writes: 1,
            partitions: 1,
            isolation: false,
            ..base
        },
        // A write acknowledged but not replicated when the primary fails, then it rejoins.
        Bug::RejoinNoTruncate | Bug::RejoinNoQuarantine | Bug::RejoinMerge => Params {
            writes: 1,
            isolation: false,
            ..base
        },
        // Failover, then a write races the operator's failback request.
        Bug::FailbackNoDrain | Bug::FailbackStaleLastEntry => Params {
            writes: 1,
            failbacks: 1,
            isolation: false,
            ..base
        },
        Bug::AutoDataFailback => Params {
            isolation: false,
            ..base
        },
        Bug::HastyDetection => Params { outages: 0, ..base },
        Bug::NoComputeFailover => Params {
            isolation: false,
            ..base
        },
        // A write behind a partition: the primary throttles until the partition heals. (A
        // tighter RTO shortens the counterexample; the sync timeout still fits within it.)
        Bug::NoSyncTimeout => Params {
            writes: 1,
            outages: 0,
            partitions: 1,
            timing: Timing {
                rto: 19,
                ..Timing::default()
            },
            isolation: false,
            ..base
        },
        // Failover, the home region rejoins in sync, then a write the home region has not yet
        // received when the operator asks for the failback.
        Bug::FailbackNeedsCaughtUp => Params {
            writes: 1,
            failbacks: 1,
            isolation: false,
            ..base
        },
        // Failover, the home region rejoins, and the operator asks for the failback.
        Bug::FailbackUnfenced => Params {
            failbacks: 1,
            isolation: false,
            ..base
        },
        // Failover, compute back home, then a partition cuts it off from the data (a tighter
        // RTO shortens the counterexample).
        Bug::ComputeIgnoresData => Params {
            partitions: 1,
            timing: Timing {
                rto: 19,
                ..Timing::default()
            },
            isolation: false,
            ..base
        },
        // The control plane restarts while everything is healthy.
        Bug::CpRestartHasty => Params {
            outages: 0,
            cp_restarts: 1,
            ..base
        },
        // Three regions: the primary fails, the new one crashes as soon as it has taken
        // office, before the third region has heard of its epoch (a tighter RTO shortens
        // the counterexample, as for no-auto-failover).
        Bug::CandidateAnyEpoch => Params {
            regions: 3,
            outages: 2,
            timing: tight_rto,
            isolation: false,
            ..base
        },
        // The operator may wait for ever: the RTO is what says that is not good enough.
        Bug::NoAutoFailover => Params {
            timing: tight_rto,
            isolation: false,
            ..base
        },
    }
}

fn run(params: Params, property: &'static str) -> Report {
    let config = params
        .validate()
        .expect("scenario parameters are consistent");
    let opts = CheckOptions {
        threads: 2,
        property: Some(property),
        ..CheckOptions::default()
    };
    check(config, &opts, |_| {})
}

fn assert_caught(bug: Bug, max_steps: usize) {
    let property = bug.caught_by();
    let buggy = run(
        Params {
            bug: Some(bug),
            ..scenario(bug)
        },
        property,
    );
    assert!(buggy.complete);
    let verdict = buggy.property(property).expect("property is reported");
    assert!(!verdict.holds, "--bug {bug} is not caught by {property}");
    let path = verdict.path.as_ref().expect("a counterexample path");
    assert!(
        path.len() <= max_steps,
        "--bug {bug}: counterexample of {} steps, expected at most {max_steps}",
        path.len()
    );
    let reason = verdict.violation.as_deref().unwrap_or_default();
    assert!(
        !reason.is_empty(),
        "--bug {bug}: the violation is explained"
    );

    let correct = run(scenario(bug), property);
    assert!(
        correct.property(property).is_some_and(|p| p.holds),
        "without --bug {bug}, {property} must hold in the same scenario"
    );
}

#[test]
fn no_throttle_breaks_the_loss_window() {
    assert_caught(Bug::NoThrottle, 60);
}

#[test]
fn no_lease_wait_breaks_single_writer() {
    assert_caught(Bug::NoLeaseWait, 12);
}

#[test]
fn no_rpo_guard_breaks_the_rpo_bound() {
    assert_caught(Bug::NoRpoGuard, 60);
}

#[test]
fn rpo_guard_without_margin_breaks_the_rpo_bound() {
    assert_caught(Bug::RpoGuardNoMargin, 60);
}

#[test]
fn rejoin_without_truncation_breaks_log_matching() {
    assert_caught(Bug::RejoinNoTruncate, 20);
}

#[test]
fn rejoin_without_quarantine_loses_writes_silently() {
    assert_caught(Bug::RejoinNoQuarantine, 20);
}

#[test]
fn rejoin_merge_resurrects_quarantined_writes() {
    assert_caught(Bug::RejoinMerge, 20);
}

#[test]
fn failback_without_drain_loses_writes() {
    assert_caught(Bug::FailbackNoDrain, 25);
}

#[test]
fn automatic_data_failback_is_caught() {
    assert_caught(Bug::AutoDataFailback, 25);
}

#[test]
fn hasty_detection_fails_over_a_healthy_primary() {
    assert_caught(Bug::HastyDetection, 4);
}

#[test]
fn no_compute_failover_routes_to_a_dead_region() {
    assert_caught(Bug::NoComputeFailover, 15);
}

#[test]
fn no_automatic_failover_breaks_the_rto() {
    assert_caught(Bug::NoAutoFailover, 30);
}

#[test]
fn no_sync_timeout_stops_writes_for_the_whole_partition() {
    // Every tick of the partition is a step, with a heartbeat from each region.
    assert_caught(Bug::NoSyncTimeout, 80);
}

#[test]
fn failback_needing_caught_up_is_refused_under_writes() {
    assert_caught(Bug::FailbackNeedsCaughtUp, 30);
}

#[test]
fn an_unfenced_failback_has_two_writers() {
    assert_caught(Bug::FailbackUnfenced, 25);
}

#[test]
fn compute_that_ignores_where_the_data_is_stops_writes_under_a_partition() {
    // Every tick of the partition is a step, with a heartbeat from each region.
    assert_caught(Bug::ComputeIgnoresData, 90);
}

#[test]
fn a_hasty_control_plane_restart_declares_healthy_regions_failed() {
    assert_caught(Bug::CpRestartHasty, 4);
}

#[test]
fn a_candidate_of_an_older_epoch_promises_a_failover_nobody_can_take() {
    // 71 steps: every tick of the RTO is a step, with the rejoins offered on each heartbeat.
    assert_caught(Bug::CandidateAnyEpoch, 75);
}

#[test]
fn a_drain_judged_on_the_last_reports_loses_a_write_taken_before_the_fence() {
    assert_caught(Bug::FailbackStaleLastEntry, 25);
}

#[test]
fn every_bug_has_a_test_and_names_a_known_property() {
    // The list above covers Bug::ALL: adding a bug without a test fails here.
    assert_eq!(Bug::ALL.len(), 19);
    for bug in Bug::ALL {
        assert!(
            drcheck_properties::property(bug.caught_by()).is_some(),
            "{bug} names an unknown property"
        );
        assert_eq!(bug.name().parse::<Bug>(), Ok(*bug));
    }
}

#[test]
fn every_always_property_is_broken_by_some_bug() {
    for spec in drcheck_properties::CATALOG {
        if spec.expectation() == drcheck_properties::Expectation::Always {
            assert!(
                Bug::ALL.iter().any(|b| b.caught_by() == spec.name),
                "no --bug shows that {} can fail",
                spec.name
            );
        }
    }
}

#[test]
fn no_lease_wait_does_not_charge_its_split_brain_writes_to_a_later_failback() {
    // Under --bug no-lease-wait the isolated old primary keeps acknowledging after the
    // promotion; those writes are quarantined when it rejoins. They were lost by the
    // failover that superseded their epoch, not by the drained switchover that later moves
    // data home: failback_zero_loss must hold (single_writer is what catches the bug).
    let params = Params {
        bug: Some(Bug::NoLeaseWait),
        writes: 1,
        failbacks: 1,
        ..scenario(Bug::NoLeaseWait)
    };
    let report = run(params.clone(), "failback_zero_loss");
    assert!(report.complete);
    let verdict = report
        .property("failback_zero_loss")
        .expect("property is reported");
    assert!(
        verdict.holds,
        "--bug no-lease-wait charged a write to a switchover: {:?}",
        verdict.violation
    );
    let caught = run(params, "single_writer");
    assert!(caught.property("single_writer").is_some_and(|p| !p.holds));
}

#[test]
fn checking_one_property_explores_the_same_states_as_checking_all() {
    // stateright does not expand a state that violates every property it checks: with one
    // property, the states beyond a counterexample would go unexplored while the report
    // still said complete. The exploration must not depend on --property.
    let params = Params {
        bug: Some(Bug::NoLeaseWait),
        ..scenario(Bug::NoLeaseWait)
    };
    let config = params.validate().expect("consistent");
    let all = check(
        config,
        &CheckOptions {
            threads: 2,
            ..CheckOptions::default()
        },
        |_| {},
    );
    for property in ["single_writer", "failover_reachable"] {
        let one = run(params.clone(), property);
        assert!(one.complete);
        assert_eq!(
            (one.unique_states, one.total_states),
            (all.unique_states, all.total_states),
            "--property {property} explored a different state space"
        );
    }
}
