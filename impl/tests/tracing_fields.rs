//! Every protocol-significant step is a `tracing` event (target `drcheck`) with stable
//! fields. Alone in its test binary: tracing caches per call site whether anyone listens, so
//! a test running beside it without a subscriber would hide the events from this one.

// A test binary of its own: it installs the process-wide tracing subscriber.
#[path = "it/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::{eventful_run, EXPECTED_KINDS, TOKEN};
use drcheck_impl::deployment::{Deployment, DeploymentConfig};

/// An event's fields: name and value, in order.
type FieldList = Vec<(String, String)>;

/// Collects the events of target `drcheck` with their fields.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<FieldList>>>,
}

struct Fields(FieldList);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name().to_string(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_string(), value.to_string()));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "drcheck"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.events.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn every_step_is_a_tracing_event_with_stable_fields() {
    let capture = Capture::default();
    let guard = tracing::subscriber::set_default(capture.clone());
    let cfg = DeploymentConfig {
        operator_token: TOKEN.to_string(),
        ..DeploymentConfig::default()
    };
    let mut d = Deployment::start(cfg).await.unwrap();
    eventful_run(&mut d).await;
    drop(guard);
    let events = capture.events.lock().unwrap().clone();
    let mut kinds = BTreeSet::new();
    for fields in &events {
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["seq", "at", "node", "event", "detail"],
            "{fields:?}"
        );
        kinds.insert(fields[3].1.clone());
        // `detail` is the event's JSON form, with the same `event` kind.
        let detail: serde_json::Value = serde_json::from_str(&fields[4].1).unwrap();
        assert_eq!(detail["event"].as_str(), Some(fields[3].1.as_str()));
    }
    for kind in EXPECTED_KINDS {
        assert!(
            kinds.contains(*kind),
            "no {kind} tracing event in {kinds:?}"
        );
    }
}
