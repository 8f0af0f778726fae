//! The checker finds exactly the timing boundaries DESIGN.md states, for random parameters.
//!
//! Lease semantics: the control plane grants a lease when a heartbeat arrives; the grant
//! reaches the region at once, and the region, whose clock may lag by the skew, writes while
//! fewer than lease + skew ticks have passed since the grant. Without the lease wait the
//! control plane promotes when the primary has been silent for the detection time, that is
//! detection ticks after the last grant. So `single_writer` fails under `--bug no-lease-wait`
//! exactly when `lease + skew > detection`.
//!
//! Heartbeats leave every `heartbeat` ticks and arrive within `delay` ticks, so the control
//! plane can wait up to heartbeat + delay between two of them: `no_spurious_failover` fails
//! exactly when `detection <= heartbeat + delay`.

use drcheck_model::{check, Bug, CheckOptions, Params, Report};
use drcheck_properties::{timing, Timing};
use proptest::prelude::*;

fn run(params: &Params, property: &'static str) -> Report {
    let config = params.to_ticks().expect("parameters in range");
    let opts = CheckOptions {
        threads: 1,
        property: Some(property),
        ..CheckOptions::default()
    };
    check(config, &opts, |_| {})
}

fn holds(report: &Report, property: &str) -> bool {
    report.property(property).is_some_and(|p| p.holds)
}

/// Only what the boundary needs: one outage that may be an isolation, no writes.
fn lease_scenario(heartbeat: u32, delay: u32, detection: u32, lease: u32, skew: u32) -> Params {
    Params {
        timing: Timing {
            heartbeat,
            delay,
            detection,
            lease,
            skew,
            throttle: 2 * delay + 1,
            rpo: 2 * delay + heartbeat + delay + 8,
            rto: 60,
            ..Timing::default()
        },
        writes: 0,
        outages: 1,
        partitions: 0,
        failbacks: 0,
        forced: 0,
        reapplies: 0,
        bug: Some(Bug::NoLeaseWait),
        ..Params::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn single_writer_without_lease_wait_fails_iff_lease_plus_skew_exceeds_detection(
        heartbeat in 1u32..=2,
        delay in 0u32..=1,
        detection_margin in 1u32..=4,
        lease in 1u32..=7,
        skew in 0u32..=2,
    ) {
        let detection = heartbeat + delay + detection_margin;
        let params = lease_scenario(heartbeat, delay, detection, lease, skew);
        // Only consistent parameter sets: the boundary is about detection vs lease + skew.
        prop_assume!(params.validate().is_ok());
        let report = run(&params, "single_writer");
        prop_assert!(report.complete);
        prop_assert_eq!(
            holds(&report, "single_writer"),
            lease + skew <= detection,
            "heartbeat {} delay {} detection {} lease {} skew {}",
            heartbeat, delay, detection, lease, skew
        );
    }

    #[test]
    fn no_spurious_failover_holds_iff_detection_exceeds_heartbeat_plus_delay(
        heartbeat in 1u32..=3,
        delay in 0u32..=3,
        detection in 1u32..=7,
    ) {
        // No faults at all: any declaration is spurious.
        let params = Params {
            timing: Timing {
                heartbeat,
                delay,
                detection,
                lease: 8,
                skew: 1,
                ..Timing::default()
            },
            writes: 1,
            outages: 0,
            partitions: 0,
            failbacks: 0,
            forced: 0,
            reapplies: 0,
            ..Params::default()
        };
        let report = run(&params, "no_spurious_failover");
        prop_assert!(report.complete);
        prop_assert_eq!(
            holds(&report, "no_spurious_failover"),
            timing::DETECTION.holds(&params.timing),
            "heartbeat {} delay {} detection {}",
            heartbeat, delay, detection
        );
    }
}

#[test]
fn with_the_lease_wait_single_writer_holds_even_when_lease_outlasts_detection() {
    let params = Params {
        bug: None,
        ..lease_scenario(1, 1, 3, 7, 2)
    };
    assert!(holds(&run(&params, "single_writer"), "single_writer"));
    let buggy = lease_scenario(1, 1, 3, 7, 2);
    assert!(!holds(&run(&buggy, "single_writer"), "single_writer"));
}

/// A write behind an inter-region partition (nothing else happens): the primary throttles
/// once the write is older than `throttle`, until the control plane leaves the secondary out
/// of sync at `sync_timeout`.
fn partition_scenario(throttle: u32, sync_timeout: u32, rto: u32) -> Params {
    Params {
        timing: Timing {
            heartbeat: 1,
            delay: 0,
            detection: 3,
            lease: 2,
            skew: 1,
            throttle,
            rpo: 20,
            rto,
            sync_timeout,
            ..Timing::default()
        },
        writes: 1,
        outages: 0,
        partitions: 1,
        failbacks: 0,
        forced: 0,
        reapplies: 0,
        ..Params::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The model's exact boundary for a partition: the spell without writes runs from the
    /// tick the write is older than the throttle to the sync timeout, so `write_availability`
    /// holds exactly when `sync_timeout - throttle - 1 <= rto`: the consistency rule
    /// `timing::PARTITION`. (No switchover here: its own rule does not apply.)
    #[test]
    fn write_availability_under_a_partition_holds_iff_the_sync_timeout_fits_the_rto(
        throttle in 1u32..=3,
        extra in 0u32..=8,
        rto in 3u32..=10,
    ) {
        let sync_timeout = throttle + extra;
        let params = partition_scenario(throttle, sync_timeout, rto);
        let report = run(&params, "write_availability");
        prop_assert!(report.complete);
        prop_assert_eq!(
            holds(&report, "write_availability"),
            timing::PARTITION.holds(&params.timing),
            "throttle {} sync timeout {} rto {}",
            throttle, sync_timeout, rto
        );
    }
}
