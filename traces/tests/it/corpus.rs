//! The counterexample corpus still replays, and still violates what it says it violates; bad
//! trace files are refused with the step and the reason.

use std::path::{Path, PathBuf};

use drcheck_model::{Action, Bug};
use drcheck_traces::{load, parse, Finding, TraceError, TraceFile};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("traces/corpus exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> TraceFile {
    let text = std::fs::read_to_string(path).expect("readable corpus file");
    serde_json::from_str(&text).expect("a corpus file parses")
}

#[test]
fn every_corpus_file_replays_and_violates_its_property() {
    let files = corpus_files();
    assert!(!files.is_empty(), "the corpus is empty");
    for path in &files {
        let trace = load(path).unwrap_or_else(|e| {
            let command = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str::<TraceFile>(&t).ok())
                .and_then(|f| f.command)
                .unwrap_or_else(|| "traces/corpus/regenerate.sh".to_string());
            panic!(
                "{e}\nThe model changed under this corpus file. Regenerate it with:\n  {command}\n\
                 (or all of them with traces/corpus/regenerate.sh), and check the new path."
            )
        });
        let Finding::Counterexample { property } = &trace.file.finding else {
            panic!("{}: the corpus holds counterexamples only", path.display());
        };
        let violation = trace
            .violation()
            .unwrap_or_else(|| panic!("{}: no longer violates {property}", path.display()));
        assert_eq!(violation.property, property.as_str());
    }
}

#[test]
fn every_bug_has_its_counterexample_in_the_corpus() {
    for bug in Bug::ALL {
        let path = corpus_dir().join(format!("{}.{}.json", bug.name(), bug.caught_by()));
        assert!(
            path.exists(),
            "no corpus file for --bug {bug}: run traces/corpus/regenerate.sh"
        );
        assert_eq!(read(&path).params.bug, Some(*bug));
    }
}

/// The first step of `file`'s path at which `replacement` is not enabled, with the edit made.
fn edit_to_a_disabled_step(mut file: TraceFile) -> (TraceFile, usize) {
    // Promoting the region that is already primary is never enabled.
    let replacement = Action::Promote { region: 0 };
    file.steps[0].action = replacement;
    (file, 1)
}

#[test]
fn a_corpus_file_edited_to_a_step_the_model_refuses_is_rejected_with_the_step() {
    let path = corpus_dir().join("no-lease-wait.single_writer.json");
    let (edited, step) = edit_to_a_disabled_step(read(&path));
    let text = serde_json::to_string(&edited).expect("serializes");
    match parse(&path, &text) {
        Err(TraceError::NotEnabled { step: s, .. }) => assert_eq!(s, step),
        other => panic!("expected a refusal at step {step}, got {other:?}"),
    }
}

#[test]
fn a_recorded_view_the_model_does_not_reproduce_is_rejected_with_a_diff() {
    let path = corpus_dir().join("no-lease-wait.single_writer.json");
    let mut file = read(&path);
    let last = file.steps.len() - 1;
    file.steps[last].view.routing.compute = 0;
    let text = serde_json::to_string(&file).expect("serializes");
    match parse(&path, &text) {
        Err(e @ TraceError::ViewMismatch { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&format!("step {}", last + 1)), "{message}");
            assert!(message.contains("endpoint routes to"), "{message}");
        }
        other => panic!("expected a view mismatch, got {other:?}"),
    }
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let path = corpus_dir().join("no-lease-wait.single_writer.json");
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let named = Path::new("bad.json");

    let not_json = parse(named, "{ not json").unwrap_err();
    assert!(matches!(not_json, TraceError::Parse { .. }), "{not_json}");

    let mut future = good.clone();
    future["drcheck_trace"] = 99.into();
    let e = parse(named, &future.to_string()).unwrap_err();
    assert!(e.to_string().contains("version 99"), "{e}");

    let mut unknown = good.clone();
    unknown["steps"][0]["action"] = serde_json::json!({"step": "teleport"});
    let e = parse(named, &unknown.to_string()).unwrap_err();
    assert!(e.to_string().contains("teleport"), "{e}");
    assert!(e.to_string().contains("field `steps[0].action"), "{e}");

    // A field of the wrong type is named, nested.
    let mut wrong_type = good.clone();
    wrong_type["params"]["writes"] = "two".into();
    let e = parse(named, &wrong_type.to_string()).unwrap_err();
    assert!(matches!(e, TraceError::Schema { .. }), "{e}");
    assert!(e.to_string().contains("field `params.writes`"), "{e}");

    let mut out_of_range = good.clone();
    out_of_range["params"]["regions"] = 9.into();
    let e = parse(named, &out_of_range.to_string()).unwrap_err();
    assert!(e.to_string().contains("--regions 9"), "{e}");

    let mut wrong_property = good.clone();
    wrong_property["finding"]["property"] = "rpo_bound".into();
    let e = parse(named, &wrong_property.to_string()).unwrap_err();
    assert!(e.to_string().contains("does not show"), "{e}");

    let mut region = good;
    region["steps"][0]["action"] = serde_json::json!({"step": "crash", "region": 7});
    let e = parse(named, &region.to_string()).unwrap_err();
    assert!(matches!(e, TraceError::NotEnabled { step: 1, .. }), "{e}");
}

#[test]
fn a_recorded_trace_round_trips_through_json() {
    let path = corpus_dir().join("no-lease-wait.single_writer.json");
    let trace = load(&path).expect("replays");
    let again = TraceFile::record(
        &trace.file.params,
        trace.file.allow_inconsistent,
        trace.file.finding.clone(),
        &trace.actions(),
        trace.file.command.clone(),
    )
    .expect("records");
    assert_eq!(again, trace.file);
}
