//! Observability: the JSON-lines event log reads back as the records of the run.

use std::collections::BTreeSet;

use crate::common::{eventful_run, EXPECTED_KINDS, TOKEN};
use drcheck_impl::deployment::{Deployment, DeploymentConfig};
use drcheck_impl::protocol::event::{Event, Record};

#[tokio::test]
async fn the_json_lines_log_reads_back_as_the_events_of_the_run() {
    let path = std::env::temp_dir().join(format!("drcheck-events-{}.jsonl", std::process::id()));
    let cfg = DeploymentConfig {
        operator_token: TOKEN.to_string(),
        event_log: Some(path.clone()),
        ..DeploymentConfig::default()
    };
    let mut d = Deployment::start(cfg).await.unwrap();
    eventful_run(&mut d).await;
    let view = d.abstract_view().await.unwrap();
    d.shutdown().await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(records
        .windows(2)
        .all(|w| w[0].seq + 1 == w[1].seq && w[0].at <= w[1].at));
    let kinds: BTreeSet<&str> = records.iter().map(|r| r.event.kind()).collect();
    for kind in EXPECTED_KINDS {
        assert!(kinds.contains(kind), "no {kind} event in {kinds:?}");
    }
    // The log tells the same story as the view: every acknowledged write, every promotion.
    let accepted = records
        .iter()
        .filter(|r| matches!(r.event, Event::WriteAccepted { .. }))
        .count();
    assert_eq!(accepted, view.ledger.writes.len());
    let promoted: Vec<u8> = records
        .iter()
        .filter_map(|r| match r.event {
            Event::Promoted { region, .. } => Some(region),
            _ => None,
        })
        .collect();
    let to: Vec<u8> = view.ledger.failovers.iter().map(|f| f.to).collect();
    assert_eq!(promoted, to);
    // The stable field names of one event, as written.
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("\"write_accepted\""))
        .unwrap();
    let fields: serde_json::Value = serde_json::from_str(line).unwrap();
    for name in [
        "seq", "at", "node", "event", "region", "write", "epoch", "index", "in_sync",
    ] {
        assert!(fields.get(name).is_some(), "{name} missing from {line}");
    }
    assert!(first.get("seq").is_some());
}
