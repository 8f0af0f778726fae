//! Random schedules of writes, deliveries in any order, lost messages, outages, recoveries,
//! partitions, clock advances and operator requests, with every invariant checked on
//! `abstract_view()` after every step.
//!
//! Messages may be reordered and lost within a minute; before the clock moves every held
//! message is delivered, so no message is older than the assumed maximum delay (one
//! minute). A lost heartbeat counts as its region being unreachable at that instant.

use crate::common::{patient, TOKEN};
use drcheck_impl::deployment::{Deployment, DeploymentConfig, OperatorRequest};
use drcheck_impl::protocol::region::Window;
use drcheck_properties::Status;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Write,
    WriteAt(u8),
    Advance(u8),
    Hold,
    Deliver(usize),
    Drop(usize),
    Crash(u8),
    Recover(u8),
    Isolate(u8),
    Reconnect(u8),
    Partition,
    Heal,
    Failback(u8),
    Force(u8),
    Reapply,
    /// The control plane restarts and resumes from the regions' stores. Only while every
    /// region is up and connected: DESIGN.md assumes an always-available control plane, and
    /// one that just restarted cannot know which region has been down for how long.
    RestartControl,
    /// A partition stalls replication of a write long enough for the RPO guard to count it,
    /// then region `r` crashes: the path to a blocked failover and a forced one.
    Stall(u8),
}

fn step(regions: u8) -> impl Strategy<Value = Step> {
    let r = 0..regions;
    prop_oneof![
        6 => Just(Step::Write),
        1 => r.clone().prop_map(Step::WriteAt),
        8 => (1u8..10).prop_map(Step::Advance),
        2 => Just(Step::Hold),
        3 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Drop),
        2 => r.clone().prop_map(Step::Crash),
        1 => r.clone().prop_map(Step::Recover),
        2 => r.clone().prop_map(Step::Isolate),
        1 => r.clone().prop_map(Step::Reconnect),
        1 => Just(Step::Partition),
        1 => Just(Step::Heal),
        1 => r.clone().prop_map(Step::Failback),
        2 => r.clone().prop_map(Step::Force),
        1 => Just(Step::Reapply),
        1 => r.prop_map(Step::Stall),
        1 => Just(Step::RestartControl),
    ]
}

/// Most outages (crashes and isolations) in one schedule: enough for double faults without
/// a schedule that is nothing but outages.
const OUTAGES: u32 = 3;

async fn take(d: &mut Deployment, step: &Step, outages: &mut u32) {
    let status = |d: &Deployment, r: u8| d.status(r).expect("region exists");
    match *step {
        Step::Write => {
            let _refused_is_fine = d.write(patient(0)).await.expect("write");
        }
        Step::WriteAt(r) => {
            let _refused_is_fine = d.write_at(r, patient(1)).await.expect("write");
        }
        Step::Advance(minutes) => {
            // Nothing may be in flight for longer than the maximum delay.
            d.set_hold(false);
            d.settle().await.expect("settle");
            d.advance(u32::from(minutes)).await.expect("advance");
        }
        Step::Hold => d.set_hold(true),
        Step::Deliver(i) | Step::Drop(i) => {
            let in_flight = d.in_flight();
            if !in_flight.is_empty() {
                let seq = in_flight[i % in_flight.len()].seq;
                if matches!(step, Step::Deliver(_)) {
                    d.deliver(seq).await.expect("deliver");
                } else {
                    d.drop_message(seq).await.expect("drop");
                }
            }
        }
        Step::Crash(r) | Step::Isolate(r) => {
            if *outages < OUTAGES && status(d, r) == Status::Up {
                *outages += 1;
                if matches!(step, Step::Crash(_)) {
                    d.crash(r).await.expect("crash");
                } else {
                    d.isolate(r).await.expect("isolate");
                }
            }
        }
        Step::Recover(r) => {
            if status(d, r) == Status::Down {
                d.recover(r).await.expect("recover");
            }
        }
        Step::Reconnect(r) => {
            if status(d, r) == Status::Isolated {
                d.reconnect(r).await.expect("reconnect");
            }
        }
        Step::Partition => d.partition().await.expect("partition"),
        Step::Heal => d.heal().await.expect("heal"),
        Step::Failback(target) => {
            let request = OperatorRequest::DataFailback { target };
            let _ = d.operator(TOKEN, request).await.expect("operator");
        }
        Step::Force(target) => {
            let request = OperatorRequest::ForceFailover { target };
            let _ = d.operator(TOKEN, request).await.expect("operator");
        }
        Step::RestartControl => {
            let regions = d.config().regions;
            let healthy = (0..regions).all(|r| status(d, r) == Status::Up);
            if healthy && !d.is_partitioned() {
                d.restart_control().await.expect("restart");
            }
        }
        Step::Stall(r) => {
            d.set_hold(false);
            d.partition().await.expect("partition");
            let _refused_is_fine = d.write(patient(3)).await.expect("write");
            d.advance(14).await.expect("advance");
            if *outages < OUTAGES && status(d, r) == Status::Up {
                *outages += 1;
                d.crash(r).await.expect("crash");
            }
        }
        Step::Reapply => {
            let quarantine = d.quarantine().await.expect("quarantine");
            if let Some(q) = quarantine.iter().find(|q| !q.reapplied) {
                let request = OperatorRequest::Reapply { write: q.write };
                let _ = d.operator(TOKEN, request).await.expect("operator");
            }
        }
    }
}

/// A replication window of two entries and 1 KiB (a few Patients): schedules meet a full
/// window, shipping held back until a confirmation makes room, and batches of several entries.
const SMALL_WINDOW: Window = Window {
    entries: 2,
    bytes: 1024,
};

fn check_schedule(regions: u8, window: Window, steps: &[Step]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let cfg = DeploymentConfig {
            regions,
            operator_token: TOKEN.to_string(),
            window,
            ..DeploymentConfig::default()
        };
        let mut d = Deployment::start(cfg).await.expect("deployment starts");
        let mut outages = 0;
        for (i, step) in steps.iter().enumerate() {
            take(&mut d, step, &mut outages).await;
            let view = d.abstract_view().await.expect("view");
            let violations = drcheck_properties::violations(&view, &d.bounds());
            prop_assert!(
                violations.is_empty(),
                "after step {i} ({step:?}): {violations:#?}\nview: {view:#?}"
            );
        }
        // Then a long quiet spell with every fault repaired: the deployment settles into a
        // healthy state and the invariants still hold.
        d.set_hold(false);
        d.heal().await.expect("heal");
        for r in 0..regions {
            match d.status(r) {
                Some(Status::Down) => d.recover(r).await.expect("recover"),
                Some(Status::Isolated) => d.reconnect(r).await.expect("reconnect"),
                _ => {}
            }
        }
        for minute in 0..90 {
            d.advance(1).await.expect("advance");
            let view = d.abstract_view().await.expect("view");
            let violations = drcheck_properties::violations(&view, &d.bounds());
            prop_assert!(
                violations.is_empty(),
                "{minute} minutes after repair: {violations:#?}\nview: {view:#?}"
            );
        }
        // Data fails back home when the operator asks, and loses nothing.
        if d.control_state().await.expect("control").routing.primary != 0 {
            let request = OperatorRequest::DataFailback { target: 0 };
            let answer = d.operator(TOKEN, request).await.expect("operator");
            prop_assert!(answer.is_ok(), "data failback after repair: {answer:?}");
            d.advance(10).await.expect("advance");
            let view = d.abstract_view().await.expect("view");
            prop_assert_eq!(view.routing.primary, 0, "data failed back: {:#?}", view);
            let violations = drcheck_properties::violations(&view, &d.bounds());
            prop_assert!(violations.is_empty(), "after failback: {violations:#?}");
        }
        let written = d.write(patient(2)).await.expect("write");
        prop_assert!(
            written.is_ok(),
            "a repaired deployment takes writes: {written:?}"
        );
        Ok(())
    })
}

proptest! {
    // A fixed seed keeps CI deterministic; change it, or raise PROPTEST_CASES, to explore
    // further (2 x 2000 cases pass with it).
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(20261126),
        ..ProptestConfig::default()
    })]

    #[test]
    fn two_regions_keep_every_invariant(steps in proptest::collection::vec(step(2), 10..120)) {
        check_schedule(2, Window::default(), &steps)?;
    }

    /// With a small replication window (the two-region runs have the default one).
    #[test]
    fn three_regions_keep_every_invariant(steps in proptest::collection::vec(step(3), 10..120)) {
        check_schedule(3, SMALL_WINDOW, &steps)?;
    }
}
