//! Helpers shared by the implementation's integration tests.
#![allow(dead_code)]

use drcheck_impl::deployment::{Deployment, DeploymentConfig};
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

/// A small FHIR-like payload.
pub fn patient(n: u32) -> String {
    format!(r#"{{"resourceType":"Patient","id":"p{n}"}}"#)
}
