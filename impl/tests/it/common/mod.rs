//! Helpers shared by the implementation's integration tests.
#![allow(dead_code)]

use drcheck_impl::deployment::{Deployment, DeploymentConfig, OperatorRequest};
use drcheck_properties::View;

pub const TOKEN: &str = "s3cret-operator-token";

/// A deployment with the default timing, in-memory stores, virtual clock.
pub async fn start(regions: u8) -> Deployment {
    let cfg = DeploymentConfig {
        regions,
        operator_token: TOKEN.to_string(),
        ..DeploymentConfig::default()
    };
    Deployment::start(cfg).await.expect("deployment starts")
}

/// Fails the test with every violated invariant, if any.
pub async fn assert_invariants(d: &mut Deployment) -> View {
    let view = d.abstract_view().await.expect("view");
    let violations = drcheck_properties::violations(&view, &d.bounds());
    assert!(
        violations.is_empty(),
        "invariants violated: {violations:#?}\nview: {view:#?}"
    );
    view
}

/// Advances `minutes`, checking every invariant after each.
pub async fn run(d: &mut Deployment, minutes: u32) {
    for _ in 0..minutes {
        d.advance(1).await.expect("advance");
        assert_invariants(d).await;
    }
}

/// Advances minute by minute (checking invariants) until `done` holds; returns the minutes
/// taken, or fails after `limit`.
pub async fn run_until(
    d: &mut Deployment,
    limit: u32,
    what: &str,
    mut done: impl FnMut(&View) -> bool,
) -> u32 {
    for minute in 0..=limit {
        let view = assert_invariants(d).await;
        if done(&view) {
            return minute;
        }
        d.advance(1).await.expect("advance");
    }
    panic!("{what}: not within {limit} minutes");
}

/// A small Patient to create, told apart by its family name `p{n}`.
pub fn patient(n: u32) -> String {
    format!(r#"{{"resourceType":"Patient","name":[{{"family":"p{n}"}}]}}"#)
}

/// The family name of the Patient a log entry's payload (a FHIR change) holds.
pub fn family(payload: &str) -> Option<String> {
    let change = drcheck_fhir::Change::from_payload(payload).ok()?;
    let family = change.resource?.get("name")?.get(0)?.get("family")?.clone();
    family.as_str().map(str::to_string)
}

/// Isolates the primary (its lease runs out), fails over, rejoins the old primary, fails data back: most kinds of step happen.
pub async fn eventful_run(d: &mut Deployment) {
    d.write(patient(0)).await.unwrap().expect("acknowledged");
    d.advance(1).await.unwrap();
    d.set_hold(true);
    d.write(patient(1)).await.unwrap().expect("acknowledged");
    d.isolate(0).await.unwrap();
    d.set_hold(false);
    d.advance(10).await.unwrap();
    d.write(patient(2))
        .await
        .unwrap()
        .expect("region 1 took over");
    d.reconnect(0).await.unwrap();
    d.advance(5).await.unwrap();
    let answer = d
        .operator(TOKEN, OperatorRequest::DataFailback { target: 0 })
        .await
        .unwrap();
    assert!(answer.is_ok(), "{answer:?}");
    d.advance(5).await.unwrap();
    let refused = d
        .operator("wrong", OperatorRequest::ListQuarantine)
        .await
        .unwrap();
    assert!(refused.is_err());
}

/// The kinds of event [`eventful_run`] must produce.
pub const EXPECTED_KINDS: &[&str] = &[
    "write_accepted",
    "replicated",
    "in_sync",
    "heartbeat_sent",
    "heartbeat_received",
    "lease_granted",
    "lease_expired",
    "region_declared_failed",
    "failover_started",
    "failover_decided",
    "promoted",
    "stale",
    "rejoined",
    "compute_moved",
    "switchover_started",
    "fenced",
    "operator_refused",
];
