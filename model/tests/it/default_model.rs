//! The default model: explored completely, every `always` property holds, every `sometimes`
//! property is found, and the worst cases respect the RPO and the RTO.

use drcheck_model::{check, CheckOptions, Params};
use drcheck_properties::{Expectation, Timing};

#[test]
fn default_model_is_explored_completely_and_every_property_holds() {
    let params = Params::default();
    let config = params.validate().expect("the defaults are consistent");
    let opts = CheckOptions {
        threads: 2,
        ..CheckOptions::default()
    };
    let report = check(config, &opts, |_| {});
    assert!(report.complete);
    assert!(report.unique_states > 100_000, "a real state space");
    for p in &report.properties {
        assert!(p.holds, "{} ({:?}) does not hold", p.name, p.expectation);
        match p.expectation {
            Expectation::Always => assert!(p.path.is_none(), "{}: no counterexample", p.name),
            Expectation::Sometimes => {
                assert!(p.path.is_some(), "{}: an example path", p.name)
            }
        }
    }
    assert_eq!(report.properties.len(), drcheck_properties::CATALOG.len());

    // Worst cases: a loss strictly within the RPO (the guard's margin is exact), and writes
    // back after max(detection, lease + skew) = 6 minutes at most.
    let worst = &report.worst;
    let loss = worst.data_loss_minutes.expect("some failover loses writes");
    assert!(
        loss < params.timing.rpo,
        "data loss {loss} min reaches the RPO"
    );
    let outage = worst.outage_to_writes_minutes.expect("outages happen");
    assert!(
        outage <= params.timing.rto,
        "outage {outage} min exceeds the RTO"
    );
    assert!(worst.data_loss.as_ref().is_some_and(|c| c.path.is_some()));
    assert!(worst
        .outage_to_writes
        .as_ref()
        .is_some_and(|c| c.path.is_some()));
}

/// Two outages: the cases a review found (a guard judged against a stale old prefix after a
/// promotion or during a fence, an outage clock restarted while the guard refused, compute
/// left on a dead region once a healthy one is heard again) stay fixed.
fn two_outages(writes: u32) -> Params {
    Params {
        outages: 2,
        writes,
        partitions: 1,
        failbacks: 1,
        forced: 0,
        isolation: false,
        timing: Timing {
            drain_timeout: 13,
            ..Timing::default()
        },
        ..Params::default()
    }
}

/// A control-plane crash and restart (not in the default budget: it multiplies the state space
/// by six), with an outage and a partition besides: the restart causes no failover, no second
/// writer and no spell without writes longer than the RTO.
fn control_plane_restart(writes: u32) -> Params {
    Params {
        cp_restarts: 1,
        writes,
        failbacks: 1,
        forced: 0,
        ..Params::default()
    }
}

/// Lost messages (a heartbeat, or the control plane's answer to one: a lease grant, the news
/// of a new epoch) break no `always` property: the timing rules leave room for one loss.
fn lost_messages(writes: u32) -> Params {
    Params {
        losses: 1,
        writes,
        failbacks: 1,
        forced: 0,
        isolation: false,
        ..Params::default()
    }
}

// Without writes in the test run (each well under a minute on two cores); with a write in the
// ignored tests (several minutes each: `cargo test --release -p drcheck-model -- --ignored`).

#[test]
fn with_two_outages_every_always_property_still_holds() {
    assert_every_always_property_holds(&two_outages(0), 10_000);
}

#[test]
#[ignore = "several minutes: run with --ignored"]
fn with_two_outages_and_a_write_every_always_property_still_holds() {
    assert_every_always_property_holds(&two_outages(1), 1_000_000);
}

#[test]
fn with_a_control_plane_restart_every_always_property_still_holds() {
    assert_every_always_property_holds(&control_plane_restart(0), 10_000);
}

#[test]
#[ignore = "several minutes: run with --ignored"]
fn with_a_control_plane_restart_and_a_write_every_always_property_still_holds() {
    assert_every_always_property_holds(&control_plane_restart(1), 100_000);
}

#[test]
fn with_lost_messages_every_always_property_still_holds() {
    assert_every_always_property_holds(&lost_messages(0), 10_000);
}

#[test]
#[ignore = "several minutes: run with --ignored"]
fn with_lost_messages_and_a_write_every_always_property_still_holds() {
    assert_every_always_property_holds(&lost_messages(1), 100_000);
}

/// Checks `params` completely (more than `min_states` unique states: a real state space) and
/// asserts that every `always` property holds.
fn assert_every_always_property_holds(params: &Params, min_states: usize) {
    let config = params.validate().expect("consistent");
    let opts = CheckOptions {
        threads: 2,
        ..CheckOptions::default()
    };
    let report = check(config, &opts, |_| {});
    assert!(report.complete);
    assert!(report.unique_states > min_states, "a real state space");
    for p in &report.properties {
        if p.expectation == Expectation::Always {
            assert!(p.holds, "{}: {:?}", p.name, p.violation);
        }
    }
}
