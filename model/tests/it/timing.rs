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

/// A failback asked for just after an inter-region partition began, while compute has failed
/// back home and the data is still in the other region: the control plane's reports still show
/// the target linked, so it accepts, fences the primary, cannot drain the write it took just
/// before, and aborts after the drain timeout. The sync timeout is short, so that the drain
/// decides.
fn stale_failback_scenario(drain_timeout: u32, rto: u32) -> Params {
    Params {
        timing: Timing {
            drain_timeout,
            rto,
            throttle: 2,
            sync_timeout: 3,
            ..Timing::default()
        },
        writes: 1,
        outages: 1,
        partitions: 1,
        failbacks: 1,
        forced: 0,
        reapplies: 0,
        isolation: false,
        ..Params::default()
    }
}

/// The partition's other worst case, and the rule `timing::SWITCHOVER`
/// (`drain_timeout + 3*(heartbeat + delay) <= rto`) exactly: the compute region reports the
/// lost contact up to 2*(heartbeat + delay) after the partition began, the fenced primary
/// waits out the drain timeout, and its next lease comes up to heartbeat + delay after the
/// abort. (`model/tests/it/rules.rs` pins the rule for other heartbeats and delays.)
#[test]
fn write_availability_under_a_stale_failback_holds_iff_the_drain_fits_the_rto() {
    for drain_timeout in [3, 5] {
        let bound = 3 * (1 + 1) + drain_timeout;
        let at = run(
            &stale_failback_scenario(drain_timeout, bound),
            "write_availability",
        );
        assert!(
            at.complete && holds(&at, "write_availability"),
            "drain {drain_timeout}"
        );
        assert!(stale_failback_scenario(drain_timeout, bound)
            .timing
            .check()
            .is_ok());
        let past = run(
            &stale_failback_scenario(drain_timeout, bound - 1),
            "write_availability",
        );
        assert!(
            !holds(&past, "write_availability"),
            "drain {drain_timeout}: rto {} should be too short",
            bound - 1
        );
        let refused = stale_failback_scenario(drain_timeout, bound - 1)
            .timing
            .check();
        assert_eq!(refused.map_err(|e| e.rule), Err(timing::SWITCHOVER.name));
    }
}
