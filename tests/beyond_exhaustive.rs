//! `drcheck simulate` and `drcheck check --depth`, run as a user would: for models too large
//! to exhaust, an answer that says plainly what it covered.

mod support;

use serde_json::Value;
use support::cli::{drcheck, Output};

/// Few walks, short ones, one thread, no progress line.
const FEW_WALKS: &[&str] = &["--walks", "300", "--depth", "150", "--threads", "1", "-q"];

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn simulate_says_it_is_not_exhaustive_and_exits_0_on_the_correct_model() {
    let out = drcheck(&[&["simulate"], FEW_WALKS].concat());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out
        .stdout
        .contains("NOT EXHAUSTIVE: 300 of 300 random walks"));
    assert!(!out.stdout.contains("VIOLATED"));
    let report = json(&drcheck(&[&["simulate", "--json"], FEW_WALKS].concat()));
    assert_eq!(report["exhaustive"], false);
    assert_eq!(report["walks_done"], 300);
    assert!(report["distinct_states"].as_u64().is_some_and(|n| n > 100));
}

#[test]
fn simulate_finds_a_bug_exits_1_and_writes_a_trace_that_replays_to_it() {
    let dir = std::env::temp_dir().join(format!("drcheck-simulate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_string_lossy().to_string();
    let args = [
        &[
            "simulate",
            "--bug",
            "no-lease-wait",
            "--trace-out",
            &dir_arg,
        ][..],
        FEW_WALKS,
    ]
    .concat();
    let out = drcheck(&args);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out
        .stdout
        .contains("single_writer              always    VIOLATED (walk "));
    assert!(out.stdout.contains("single_writer violated in walk"));
    let trace = dir.join(
        std::fs::read_dir(&dir)
            .expect("the trace directory")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .find(|n| n.to_string_lossy().contains("single_writer"))
            .expect("a single_writer trace"),
    );
    let shown = drcheck(&["show", &trace.to_string_lossy()]);
    assert_eq!(shown.code, 0, "{}{}", shown.stdout, shown.stderr);
    assert!(
        shown.stdout.contains("can both acknowledge writes"),
        "{}",
        shown.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_simulation_flags_are_refused_with_exit_2() {
    for bad in [
        &["simulate", "--walks", "0"][..],
        &["simulate", "--depth", "0"],
        &["simulate", "--walks", "many"],
        &["check", "--depth", "5", "--dfs"],
    ] {
        let out = drcheck(bad);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.stderr);
        assert!(
            out.stdout.is_empty() && out.stderr.starts_with("error:"),
            "{bad:?}"
        );
    }
}

#[test]
fn a_check_bounded_by_depth_says_so_and_passes_only_without_a_violation() {
    let small = [
        "--writes",
        "1",
        "--partitions",
        "0",
        "--failbacks",
        "0",
        "--forced",
        "0",
    ];
    let out = drcheck(
        &[
            &["check", "--depth", "8", "--threads", "1", "-q"][..],
            &small,
        ]
        .concat(),
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("INCOMPLETE exploration"));
    assert!(out
        .stdout
        .contains("bounded by --depth 8: \"holds\" means no counterexample within 8 steps"));
    let report = json(&drcheck(
        &[&["check", "--depth", "8", "--json", "-q"][..], &small].concat(),
    ));
    assert_eq!(report["complete"], false);
    assert_eq!(report["depth_bound"], 8);
    assert_eq!(report["max_depth"], 9, "levels: the start and 8 steps");
    let bug = drcheck(
        &[
            &["check", "--depth", "40", "--bug", "no-lease-wait", "-q"][..],
            &small,
        ]
        .concat(),
    );
    assert_eq!(bug.code, 1, "{}", bug.stdout);
    assert!(bug.stdout.contains("single_writer violated after"));
}

#[test]
fn a_search_past_its_memory_budget_stops_and_says_so() {
    // Three regions do not fit in 64 MiB: the search stops there, reports how far it got and
    // why, and does not pass.
    let out = drcheck(&["check", "--regions", "3", "--max-memory", "64", "-q"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stdout.contains("the memory budget ran out at"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--max-memory"), "{}", out.stdout);
    let json = drcheck(&[
        "check",
        "--regions",
        "3",
        "--max-memory",
        "64",
        "-q",
        "--json",
    ]);
    let report: Value = serde_json::from_str(&json.stdout).expect("JSON report");
    assert_eq!(report["complete"], false, "{report}");
    let stopped_at = report["memory_exceeded"].as_u64().expect("memory_exceeded");
    assert!(stopped_at >= 64 << 20, "{report}");
    // Well under the machine's memory: the watch stopped it, not the kernel.
    assert!(stopped_at < 1 << 30, "{report}");
    let bad = drcheck(&["check", "--max-memory", "lots"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
