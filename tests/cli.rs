//! Integration tests of the `drcheck` CLI: the real binary, run as a user would run it.
//!
//! Every model run is kept small (a few thousand states) so that the whole file takes a few
//! seconds in release mode.

mod support;

use drcheck_model::Bug;
use drcheck_properties::timing::RULES;
use drcheck_properties::{Expectation, Timing, CATALOG};
use serde_json::Value;
use support::cli::{check, drcheck, Output, ALL_REACHABLE, SMALL, SMALL_NOISY};

/// The consistency rules, as `drcheck_properties::timing` names them.
fn rule(i: usize) -> &'static str {
    RULES[i].name
}

fn catalog_names() -> Vec<&'static str> {
    CATALOG.iter().map(|p| p.name).collect()
}

/// One row of the text report's verdict table.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    name: String,
    kind: String,
    verdict: String,
}

/// The verdict table: the block of lines between the first and the second blank line of the
/// text report. Every line in it must be a well-formed row.
fn verdict_table(report: &str) -> Vec<Row> {
    let table: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.is_empty())
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(!table.is_empty(), "no verdict table in:\n{report}");
    table
        .iter()
        .map(|line| {
            assert!(line.starts_with("  "), "table row not indented: {line:?}");
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(words.len() >= 3, "short table row: {line:?}");
            let row = Row {
                name: words[0].to_string(),
                kind: words[1].to_string(),
                verdict: words[2..].join(" "),
            };
            let ok = match row.kind.as_str() {
                "always" => row.verdict == "holds" || row.verdict == "VIOLATED",
                "sometimes" => row.verdict == "found" || row.verdict == "NOT FOUND",
                _ => false,
            };
            assert!(ok, "malformed table row: {line:?}");
            row
        })
        .collect()
}

/// The row's verdict as a `holds` boolean.
fn row_holds(row: &Row) -> bool {
    row.verdict == "holds" || row.verdict == "found"
}

fn kind_name(e: Expectation) -> &'static str {
    match e {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
    }
}

fn parse_json(out: &Output) -> Value {
    let value: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON value ({e}):\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        )
    });
    assert!(value.is_object(), "stdout is JSON but not an object");
    value
}

fn properties(report: &Value) -> &Vec<Value> {
    report["properties"]
        .as_array()
        .expect("`properties` is an array")
}

fn property<'a>(report: &'a Value, name: &str) -> &'a Value {
    properties(report)
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no property {name} in the JSON report"))
}

/// Checks one step of a path: `minute`, `actor`, `action`, `changes`.
fn assert_step(step: &Value) {
    assert!(step["minute"].is_u64(), "step minute: {step}");
    // `actor` is a name ("clock", "control-plane", ...) or `{"region": N}`.
    let actor = &step["actor"];
    assert!(
        actor.as_str().is_some_and(|a| !a.is_empty()) || actor["region"].is_u64(),
        "step actor: {step}"
    );
    assert!(
        step.get("action").is_some_and(|a| !a.is_null()),
        "step action: {step}"
    );
    let changes = step["changes"]
        .as_array()
        .expect("step changes is an array");
    assert!(
        changes.iter().all(Value::is_string),
        "step changes are strings: {step}"
    );
}

/// Checks the whole documented shape of a JSON report and returns it.
fn assert_report_shape(out: &Output) -> Value {
    let r = parse_json(out);
    assert_eq!(r["complete"], Value::Bool(true), "complete");
    let unique = r["unique_states"].as_u64().expect("unique_states: integer");
    let total = r["total_states"].as_u64().expect("total_states: integer");
    assert!(unique >= 1, "at least the initial state");
    assert!(
        unique <= total,
        "unique_states {unique} > total_states {total}"
    );
    assert!(r["max_depth"].is_u64(), "max_depth: integer");
    let seconds = r["seconds"].as_f64().expect("seconds: number");
    assert!(seconds >= 0.0);
    let rate = r["states_per_sec"]
        .as_f64()
        .expect("states_per_sec: number");
    assert!(rate >= 0.0);

    let props = properties(&r);
    for p in props {
        let name = p["name"].as_str().expect("property name: string");
        let expectation = p["expectation"].as_str().expect("expectation: string");
        assert!(
            expectation == "always" || expectation == "sometimes",
            "{name}: expectation {expectation}"
        );
        let spec = drcheck_properties::property(name).expect("a CATALOG name");
        assert_eq!(expectation, kind_name(spec.expectation()), "{name}");
        let holds = p["holds"].as_bool().expect("holds: bool");
        match &p["path"] {
            Value::Null => {}
            Value::Array(steps) => steps.iter().for_each(assert_step),
            other => panic!("{name}: path is neither null nor an array: {other}"),
        }
        // A held `always` property has no counterexample, a violated one has; a found
        // `sometimes` property has an example, one not found has none.
        let has_path = p["path"].is_array();
        match expectation {
            "always" => assert_eq!(has_path, !holds, "{name}: path vs holds"),
            _ => assert_eq!(has_path, holds, "{name}: path vs holds"),
        }
    }

    let worst = r["worst"].as_object().expect("worst: object");
    for key in ["data_loss_minutes", "outage_to_writes_minutes"] {
        let v = worst
            .get(key)
            .unwrap_or_else(|| panic!("worst.{key} missing"));
        assert!(v.is_null() || v.is_u64(), "worst.{key}: {v}");
    }

    // The exit code follows the verdicts.
    let all_hold = props.iter().all(|p| p["holds"] == Value::Bool(true));
    assert_eq!(
        out.code,
        if all_hold { 0 } else { 1 },
        "exit code vs verdicts"
    );
    r
}

fn assert_one_line_error(out: &Output, what: &str) {
    assert_eq!(out.code, 2, "{what}: exit code; stderr: {}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout not empty: {}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with("error: "),
        "{what}: stderr: {}",
        out.stderr
    );
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "{what}: stderr is not one line: {}",
        out.stderr
    );
}

fn assert_clap_error(out: &Output, what: &str) {
    assert_eq!(out.code, 2, "{what}: exit code; stderr: {}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout not empty: {}",
        out.stdout
    );
    assert!(
        out.stderr.starts_with("error:"),
        "{what}: stderr: {}",
        out.stderr
    );
}

// 1. Exit codes and the text report.

#[test]
fn correct_model_exits_0_and_every_property_holds_or_is_found() {
    let out = check(ALL_REACHABLE, &[]);
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stderr.is_empty(), "-q still wrote: {}", out.stderr);
    assert!(out.stdout.starts_with("drcheck: 2 regions, 1 writes"));
    assert!(out.stdout.contains("complete exploration"));
    let rows = verdict_table(&out.stdout);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, catalog_names());
    for (row, spec) in rows.iter().zip(CATALOG) {
        let expected = match spec.expectation() {
            Expectation::Always => "holds",
            Expectation::Sometimes => "found",
        };
        assert_eq!(row.kind, kind_name(spec.expectation()), "{row:?}");
        assert_eq!(row.verdict, expected, "{row:?}");
    }
    assert!(!out.stdout.contains("violated after"));
}

#[test]
fn bug_exits_1_with_violation_and_timeline() {
    let out = check(SMALL, &["--bug", "no-compute-failover", "--outages", "1"]);
    assert_eq!(
        out.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("--bug no-compute-failover"));
    let rows = verdict_table(&out.stdout);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, catalog_names());
    let row = rows.iter().find(|r| r.name == "routing_healthy").unwrap();
    assert_eq!(row.kind, "always");
    assert_eq!(row.verdict, "VIOLATED");

    // The counterexample: a heading, then the timeline's header row, then at least one step.
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("routing_healthy violated after "))
        .unwrap_or_else(|| panic!("no routing_healthy counterexample in:\n{}", out.stdout));
    let steps: usize = lines[at]
        .trim_start_matches("routing_healthy violated after ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a step count");
    assert!(steps > 0);
    let header: Vec<&str> = lines[at + 1].split_whitespace().collect();
    assert_eq!(
        header[..3],
        ["min", "actor", "action"],
        "timeline header: {:?}",
        lines[at + 1]
    );
    let first = lines.get(at + 2).copied().unwrap_or("");
    assert!(
        first
            .split_whitespace()
            .next()
            .is_some_and(|m| m.parse::<u32>().is_ok()),
        "first timeline row starts with a minute: {first:?}"
    );
}

// 2. `--json`.

#[test]
fn json_report_has_the_documented_shape() {
    let out = check(SMALL, &["--json"]);
    let r = assert_report_shape(&out);
    assert!(out.stderr.is_empty(), "-q still wrote: {}", out.stderr);
    let names: Vec<&str> = properties(&r)
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, catalog_names());
    for p in properties(&r)
        .iter()
        .filter(|p| p["expectation"] == "always")
    {
        assert_eq!(p["holds"], Value::Bool(true), "{p}");
    }
    // The parameters the flags set are those the report was computed for.
    assert_eq!(r["params"]["writes"], 0);
    assert_eq!(r["params"]["partitions"], 0);
    assert_eq!(r["params"]["isolation"], false);
    assert_eq!(r["bug"], Value::Null);
}

#[test]
fn no_reduce_hashes_more_states_to_the_same_verdicts() {
    let reduced = parse_json(&check(ALL_REACHABLE, &["--json"]));
    let full = parse_json(&check(ALL_REACHABLE, &["--json", "--no-reduce"]));
    assert_eq!(reduced["reduced"], Value::Bool(true));
    assert_eq!(full["reduced"], Value::Bool(false));
    let states = |r: &Value| r["unique_states"].as_u64().unwrap();
    assert!(
        states(&full) > states(&reduced),
        "{} states without reduction, {} with",
        states(&full),
        states(&reduced)
    );
    let verdicts = |r: &Value| {
        properties(r)
            .iter()
            .map(|p| (p["name"].clone(), p["holds"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&full), verdicts(&reduced));
    assert_eq!(
        full["worst"]["data_loss_minutes"],
        reduced["worst"]["data_loss_minutes"]
    );
    assert_eq!(
        full["worst"]["outage_to_writes_minutes"],
        reduced["worst"]["outage_to_writes_minutes"]
    );
}

#[test]
fn json_report_under_bug_has_a_counterexample_path() {
    let out = check(SMALL, &["--json", "--bug", "no-compute-failover"]);
    let r = assert_report_shape(&out);
    assert_eq!(out.code, 1);
    assert_eq!(r["bug"], "no-compute-failover");
    let names: Vec<&str> = properties(&r)
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, catalog_names());
    let p = property(&r, "routing_healthy");
    assert_eq!(p["expectation"], "always");
    assert_eq!(p["holds"], Value::Bool(false));
    let path = p["path"].as_array().expect("a counterexample path");
    assert!(!path.is_empty());
    assert!(p["violation"].as_str().is_some_and(|v| !v.is_empty()));
    // Minutes never run backwards along a path.
    let minutes: Vec<u64> = path.iter().map(|s| s["minute"].as_u64().unwrap()).collect();
    assert!(minutes.windows(2).all(|w| w[0] <= w[1]), "{minutes:?}");
}

#[test]
fn json_and_text_reports_agree() {
    let args = ["--bug", "no-compute-failover"];
    let text = check(SMALL, &args);
    let json = check(SMALL, &[&args[..], &["--json"]].concat());
    assert_eq!(text.code, json.code);
    let r = assert_report_shape(&json);
    let rows = verdict_table(&text.stdout);
    assert_eq!(rows.len(), properties(&r).len());
    for (row, p) in rows.iter().zip(properties(&r)) {
        assert_eq!(row.name, p["name"].as_str().unwrap());
        assert_eq!(row.kind, p["expectation"].as_str().unwrap());
        assert_eq!(row_holds(row), p["holds"].as_bool().unwrap(), "{row:?}");
    }
}

// 3. `--property`.

#[test]
fn property_flag_checks_only_that_property() {
    let out = check(SMALL, &["--property", "routing_healthy"]);
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(
        verdict_table(&out.stdout),
        [Row {
            name: "routing_healthy".into(),
            kind: "always".into(),
            verdict: "holds".into(),
        }]
    );

    let out = check(
        SMALL,
        &[
            "--property",
            "routing_healthy",
            "--json",
            "--bug",
            "no-compute-failover",
        ],
    );
    let r = assert_report_shape(&out);
    assert_eq!(out.code, 1);
    let props = properties(&r);
    assert_eq!(props.len(), 1, "{props:?}");
    assert_eq!(props[0]["name"], "routing_healthy");
    assert_eq!(props[0]["holds"], Value::Bool(false));

    // The exit code only judges the selected property: this bug does not break it.
    let out = check(
        SMALL,
        &[
            "--property",
            "single_writer",
            "--bug",
            "no-compute-failover",
        ],
    );
    assert_eq!(out.code, 0, "stdout:\n{}", out.stdout);
    let rows = verdict_table(&out.stdout);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].name, "single_writer");
}

#[test]
fn unknown_property_is_a_usage_error() {
    let out = check(SMALL, &["--property", "nonsense"]);
    assert_one_line_error(&out, "--property nonsense");
    assert!(out.stderr.contains("nonsense"), "{}", out.stderr);
    for name in catalog_names() {
        assert!(
            out.stderr.contains(name),
            "{name} not listed: {}",
            out.stderr
        );
    }
}

// 4. `--list-bugs`.

#[test]
fn list_bugs_names_each_bug_and_the_property_that_catches_it() {
    let out = drcheck(&["check", "--list-bugs"]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 19, "{}", out.stdout);
    assert_eq!(lines.len(), Bug::ALL.len());
    for (line, bug) in lines.iter().zip(Bug::ALL) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.len() > 4, "short line: {line:?}");
        assert_eq!(words[0], bug.name(), "{line:?}");
        assert_eq!(words[1..3], ["caught", "by"], "{line:?}");
        assert!(
            drcheck_properties::property(words[3]).is_some(),
            "{line:?} names no property of the CATALOG"
        );
        assert_eq!(words[3], bug.caught_by(), "{line:?}");
    }
    let mut names: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Bug::ALL.len(), "duplicate bug names");
}

// 5. Bad input.

#[test]
fn clap_usage_errors_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        ("unknown flag", &["check", "--frobnicate"]),
        ("unknown subcommand", &["frobnicate"]),
        ("--bug nonsense", &["check", "--bug", "nonsense"]),
        ("--threads 0", &["check", "--threads", "0"]),
        ("--dfs --bfs", &["check", "--dfs", "--bfs"]),
        ("--writes -1", &["check", "--writes", "-1"]),
        ("--regions two", &["check", "--regions", "two"]),
    ];
    for &(what, args) in cases {
        let out = drcheck(args);
        assert_clap_error(&out, what);
    }
    // Without a subcommand clap prints the usage (not an `error:` line), still exit 2.
    let out = drcheck(&[]);
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("Usage: drcheck"), "{}", out.stderr);

    let out = drcheck(&["check", "--bug", "nonsense"]);
    let first = out.stderr.lines().next().unwrap();
    assert!(first.contains("nonsense"), "{first}");
    for bug in Bug::ALL {
        assert!(
            first.contains(bug.name()),
            "{} not listed: {first}",
            bug.name()
        );
    }
}

#[test]
fn out_of_range_and_non_multiple_parameters_exit_2() {
    let out = check(SMALL, &["--regions", "7"]);
    assert_one_line_error(&out, "--regions 7");
    assert!(out.stderr.contains("--regions 7"), "{}", out.stderr);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);

    let out = check(SMALL, &["--lease", "5", "--tick", "2"]);
    assert_one_line_error(&out, "--lease 5 --tick 2");
    assert!(
        out.stderr.contains("is not a multiple of --tick 2"),
        "{}",
        out.stderr
    );

    // With every other time a multiple of the tick, the message names the lease itself.
    let even = [
        "--tick",
        "2",
        "--heartbeat",
        "2",
        "--delay",
        "2",
        "--detection",
        "10",
        "--skew",
        "2",
        "--throttle",
        "10",
        "--rpo",
        "20",
        "--rto",
        "60",
        "--grace",
        "30",
        "--drain-timeout",
        "6",
        "--sync-timeout",
        "10",
    ];
    let out = check(SMALL, &[&even[..], &["--lease", "5"]].concat());
    assert_one_line_error(&out, "--lease 5 with even times");
    assert!(
        out.stderr
            .contains("--lease 5 is not a multiple of --tick 2"),
        "{}",
        out.stderr
    );
    let out = check(SMALL, &[&even[..], &["--lease", "6"]].concat());
    assert!(
        out.code == 0 || out.code == 1,
        "--lease 6 is fine: {}",
        out.stderr
    );
}

/// One flag set that breaks each rule (and only it), in the order of `RULES`.
const BREAKS: [&[&str]; 8] = [
    &["--detection", "2"],
    &["--lease", "1", "--skew", "0"],
    &["--lease", "60"],
    &["--rpo", "2", "--throttle", "1"],
    &["--throttle", "15"],
    &["--throttle", "12", "--sync-timeout", "74"],
    &["--drain-timeout", "55"],
    &["--sync-timeout", "57"],
];

/// The error names the broken rule, what it endangers, and no other rule.
fn assert_names_only(out: &Output, what: &str, i: usize) {
    assert_one_line_error(out, what);
    assert!(
        out.stderr.contains("inconsistent"),
        "{what}: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(rule(i)) && out.stderr.contains(RULES[i].endangers),
        "{what}: stderr does not name `{}` and what it endangers: {}",
        rule(i),
        out.stderr
    );
    for other in RULES.iter().map(|r| r.name) {
        if other != rule(i) && !rule(i).contains(other) {
            assert!(
                !out.stderr.contains(other),
                "{what}: also names `{other}`: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn each_consistency_rule_is_enforced() {
    assert_eq!(BREAKS.len(), RULES.len());
    for (i, args) in BREAKS.iter().enumerate() {
        let what = args.join(" ");
        assert_names_only(&check(SMALL, args), &what, i);
    }
}

/// DESIGN's sufficient RPO rule (`2D + H + D < rpo`) refused `--rpo 4` with a heartbeat and
/// a delay of a minute, although every property holds there. The model's exact rule
/// (`H + D < rpo`) accepts it. `--rpo 4` alone stays refused: the default throttle (5) breaks
/// the loss window's rule there, and the model breaks `loss_window` (pinned in
/// `model/tests/it/rules.rs`).
#[test]
fn an_rpo_of_four_minutes_is_accepted_where_every_property_holds() {
    let budget = [
        "--writes",
        "1",
        "--partitions",
        "1",
        "--failbacks",
        "1",
        "--forced",
        "1",
        "--threads",
        "1",
        "-q",
    ];
    let flags = [
        "--rpo",
        "4",
        "--throttle",
        "3",
        "--heartbeat",
        "1",
        "--delay",
        "1",
    ];
    let out = check(&budget, &flags);
    assert_ne!(out.code, 2, "{}", out.stderr);
    let table = verdict_table(&out.stdout);
    assert_eq!(table.len(), CATALOG.len());
    for row in table.iter().filter(|r| r.kind == "always") {
        assert_eq!(row.verdict, "holds", "{row:?}");
    }

    let loss = RULES
        .iter()
        .position(|r| r.endangers == "loss_window")
        .expect("a rule for the loss window");
    assert_names_only(&check(&budget, &["--rpo", "4"]), "--rpo 4", loss);
}

#[test]
fn serve_refuses_inconsistent_timing_before_starting_anything() {
    let data = std::env::temp_dir().join(format!("drcheck-cli-serve-{}", std::process::id()));
    for (i, args) in BREAKS.iter().enumerate() {
        let mut argv = vec!["serve", "--listen", "127.0.0.1:1"];
        let dir = data.to_string_lossy().into_owned();
        argv.extend(["--data", dir.as_str()]);
        argv.extend_from_slice(args);
        let what = argv.join(" ");
        assert_names_only(&drcheck(&argv), &what, i);
        assert!(
            !data.join("cluster.json").exists(),
            "{what}: wrote a cluster"
        );
    }
}

/// A two-region cluster file's contents with `timing`, every address port 1 (nothing
/// listens there), its data under `dir`.
fn cluster_at(dir: &std::path::Path, timing: Timing) -> drcheck_impl::service::Cluster {
    let addrs = || drcheck_impl::service::NodeAddrs {
        protocol: "127.0.0.1:1".parse().expect("addr"),
        rpc: "127.0.0.1:1".parse().expect("addr"),
    };
    drcheck_impl::service::Cluster {
        regions: 2,
        timing: drcheck_impl::time::in_millis(&timing),
        minute_ms: 1000,
        start_unix_ms: 0,
        control: addrs(),
        region: vec![addrs(), addrs()],
        data_dir: dir.to_path_buf(),
        resume: None,
    }
}

#[test]
fn region_and_control_refuse_a_cluster_file_with_inconsistent_timing() {
    let dir = std::env::temp_dir().join(format!("drcheck-cli-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cluster = cluster_at(
        &dir,
        Timing {
            detection: 2,
            ..Timing::default()
        },
    );
    let file = dir.join("cluster.json");
    std::fs::write(&file, serde_json::to_string(&cluster).expect("json")).expect("write");
    let file = file.to_string_lossy().into_owned();
    for argv in [
        vec!["region", "--cluster", file.as_str(), "--id", "0"],
        vec!["control", "--cluster", file.as_str()],
    ] {
        assert_names_only(&drcheck(&argv), &argv.join(" "), 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn region_and_control_refuse_a_corrupt_cluster_file_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("drcheck-cli-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = cluster_at(&dir, Timing::default());
    let mut json = serde_json::to_value(&good).expect("json");
    let corrupt = |field: &str, value: serde_json::Value| {
        let mut json = json.clone();
        json[field] = value;
        json.to_string()
    };
    for (text, field) in [
        // The control plane panicked on this one (index out of bounds).
        (corrupt("resume", serde_json::json!([5, 7])), "`resume`"),
        (corrupt("minute_ms", serde_json::json!(0)), "`minute_ms`"),
        (corrupt("regions", serde_json::json!(3)), "`region`"),
        (corrupt("regions", serde_json::json!(-1)), "field `regions`"),
        (corrupt("region", serde_json::json!("x")), "field `region`"),
        (
            corrupt("timing", serde_json::json!({"rpo": 1})),
            "field `timing`",
        ),
        ("{\"regions\": 2".to_string(), "EOF"),
    ] {
        let file = dir.join("cluster.json");
        std::fs::write(&file, &text).expect("write");
        let file = file.to_string_lossy().into_owned();
        for argv in [
            vec!["region", "--cluster", file.as_str(), "--id", "0"],
            vec!["control", "--cluster", file.as_str()],
        ] {
            let what = format!("{} with {text}", argv.join(" "));
            let out = drcheck(&argv);
            assert_one_line_error(&out, &what);
            assert!(out.stderr.contains(field), "{what}: {}", out.stderr);
        }
    }
    // A resume naming a region that exists is fine: the same file, corrected, is accepted
    // (the process then fails to reach port 1, which is another matter).
    json["resume"] = serde_json::json!([3, 1]);
    let text = json.to_string();
    let parsed = drcheck_impl::service::Cluster::load(&{
        let file = dir.join("cluster.json");
        std::fs::write(&file, &text).expect("write");
        file
    });
    assert!(parsed.is_ok(), "{parsed:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fault_targets_are_checked_before_the_endpoint_is_asked() {
    // Nothing listens on port 1: a fault that passes the checks fails to reach it (exit 1).
    let token = std::env::temp_dir().join(format!("drcheck-cli-token-{}", std::process::id()));
    std::fs::write(&token, "t\n").expect("token file");
    let token = token.to_string_lossy().into_owned();
    let endpoint = [
        "--endpoint",
        "http://127.0.0.1:1",
        "--token-file",
        token.as_str(),
    ];
    let fault = |args: &[&str]| {
        let mut argv = vec!["fault"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&endpoint);
        drcheck(&argv)
    };
    for (args, expected) in [
        (&["crash"][..], "fault crash needs --region N or --control"),
        (&["recover"], "fault recover needs --region N or --control"),
        (
            &["crash", "--control", "--region", "0"],
            "fault crash takes --region N or --control, not both",
        ),
        (
            &["recover", "--region", "1", "--control"],
            "fault recover takes --region N or --control, not both",
        ),
        (&["isolate"], "fault isolate needs --region N"),
        (
            &["reconnect", "--control"],
            "fault reconnect takes --region N",
        ),
        (
            &["partition", "--control"],
            "fault partition is between the regions",
        ),
        (
            &["heal", "--region", "0"],
            "fault heal is between the regions",
        ),
    ] {
        let what = args.join(" ");
        let out = fault(args);
        assert_one_line_error(&out, &what);
        assert!(out.stderr.contains(expected), "{what}: {}", out.stderr);
    }
    for args in [&["crash", "--control"][..], &["recover", "--control"]] {
        let out = fault(args);
        assert_eq!(out.code, 1, "{}: {}", args.join(" "), out.stderr);
        assert!(
            out.stderr.contains("cannot reach the endpoint"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn allow_inconsistent_skips_the_rules() {
    let out = check(SMALL, &["--allow-inconsistent", "--detection", "2"]);
    assert!(
        out.code == 0 || out.code == 1,
        "exit {}; stderr: {}",
        out.code,
        out.stderr
    );
    assert_eq!(verdict_table(&out.stdout).len(), CATALOG.len());
    // Ranges are still checked.
    let out = check(SMALL, &["--allow-inconsistent", "--regions", "7"]);
    assert_one_line_error(&out, "--allow-inconsistent --regions 7");
}

#[test]
fn failovers_without_bound_are_a_clear_error_not_a_panic() {
    // heartbeat + delay >= detection: every heartbeat is late, so the control plane fails
    // over again and again and epochs grow without bound. The model refuses to promote past
    // its epoch bound and check says why, in one line, with exit 2.
    let args = [
        "--heartbeat",
        "2",
        "--delay",
        "1",
        "--detection",
        "3",
        "--lease",
        "1",
        "--skew",
        "0",
        "--throttle",
        "2",
        "--rpo",
        "6",
        "--rto",
        "8",
        "--grace",
        "1",
        "--writes",
        "1",
        "--sync-timeout",
        "2",
        "--allow-inconsistent",
        "-q",
    ];
    let out = check(&args, &[]);
    assert_one_line_error(&out, "failovers without bound");
    for words in [
        "epoch",
        "without bound",
        "heartbeat + delay >= detection",
        "--horizon",
    ] {
        assert!(
            out.stderr.contains(words),
            "the error does not say {words:?}: {}",
            out.stderr
        );
    }
    let json = check(&args, &["--json"]);
    assert_one_line_error(&json, "failovers without bound, --json");
}

// 6. Progress goes to stderr.

#[test]
fn progress_goes_to_stderr_not_stdout() {
    let out = check(SMALL_NOISY, &["--json"]);
    let r = assert_report_shape(&out);
    assert!(
        out.stderr.contains("explored"),
        "no summary line on stderr: {:?}",
        out.stderr
    );
    let unique = r["unique_states"].as_u64().unwrap();
    assert!(
        out.stderr.contains(&format!("({unique} unique)")),
        "summary disagrees with the report: {:?}",
        out.stderr
    );

    let out = check(SMALL_NOISY, &[]);
    assert!(out.stdout.starts_with("drcheck: "), "{}", out.stdout);
    assert!(!out.stdout.contains("explored"), "{}", out.stdout);
    assert!(!out.stdout.contains('\r'), "{:?}", out.stdout);
    assert!(out.stderr.contains("explored"), "{:?}", out.stderr);
}

#[test]
fn a_run_cut_short_by_the_time_budget_is_incomplete_and_not_a_pass() {
    // The default model with re-applies takes far longer than one second on one thread.
    let out = drcheck(&[
        "check",
        "--reapplies",
        "1",
        "--threads",
        "1",
        "--timeout",
        "1",
        "--json",
        "-q",
    ]);
    assert_eq!(out.code, 1, "an incomplete check proves nothing");
    let report = parse_json(&out);
    assert_eq!(report["complete"], Value::Bool(false));
    let text = drcheck(&["check", "--threads", "1", "--timeout", "1", "-q"]);
    assert!(text.stdout.contains("INCOMPLETE exploration"));
}

#[test]
fn secrets_come_from_a_file_or_the_environment_never_the_command_line() {
    let dir = std::env::temp_dir().join(format!("drcheck-cli-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let spaced = dir.join("spaced");
    std::fs::write(&spaced, "two words\n").expect("write");
    let missing = dir.join("missing");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let (empty, spaced, missing) = (path(&empty), path(&spaced), path(&missing));
    let endpoint = ["--endpoint", "http://127.0.0.1:1"];
    for (argv, expected) in [
        (
            vec!["failback", "--target", "0", "--token", "t"],
            "unexpected argument '--token'",
        ),
        (
            vec!["failback", "--target", "0", "--token-file", empty.as_str()],
            "is empty",
        ),
        (
            vec!["quarantine", "--token-file", spaced.as_str()],
            "holds a space or a control character",
        ),
        (
            vec!["quarantine", "--token-file", missing.as_str()],
            "cannot read the operator token from",
        ),
        (
            vec!["serve", "--fhir-token-file", missing.as_str()],
            "cannot read the FHIR token from",
        ),
    ] {
        let what = argv.join(" ");
        let mut argv = argv;
        if argv[0] != "serve" {
            argv.extend_from_slice(&endpoint);
        }
        let mut command = support::command();
        command.args(&argv).env_remove("DRCHECK_TOKEN");
        let out = support::cli::run(command);
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stderr.contains(expected), "{what}: {}", out.stderr);
    }
    // No token at all: the verb says where to find one, before it asks the endpoint.
    let mut command = support::command();
    command
        .args(["quarantine", "--endpoint", "http://127.0.0.1:1"])
        .env_remove("DRCHECK_TOKEN");
    let out = support::cli::run(command);
    assert_one_line_error(&out, "quarantine without a token");
    assert!(out.stderr.contains("no operator token"), "{}", out.stderr);
    // From the environment: it gets as far as the (absent) endpoint.
    let mut command = support::command();
    command
        .args(["quarantine", "--endpoint", "http://127.0.0.1:1"])
        .env("DRCHECK_TOKEN", "t");
    let out = support::cli::run(command);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the endpoint"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn walk_and_simulate_depths_are_bounded_with_a_clear_message() {
    let out_dir = std::env::temp_dir().join(format!("drcheck-cli-depth-{}", std::process::id()));
    let out_dir = out_dir.to_string_lossy().into_owned();
    for argv in [
        vec![
            "walk",
            "--seed",
            "1",
            "--depth",
            "100000000",
            "--trace-out",
            out_dir.as_str(),
        ],
        vec!["simulate", "--depth", "100000000"],
        vec![
            "walk",
            "--seed",
            "1",
            "--depth",
            "0",
            "--trace-out",
            out_dir.as_str(),
        ],
    ] {
        let what = argv.join(" ");
        let out = drcheck(&argv);
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stderr.contains("--depth"), "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("is not in 1..="),
            "{what}: {}",
            out.stderr
        );
    }
    assert!(
        !std::path::Path::new(&out_dir).exists(),
        "a refused walk wrote nothing"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly_not_with_a_panic() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = std::env::temp_dir().join(format!("drcheck-cli-pipe-{}", std::process::id()));
    let dir_text = dir.to_string_lossy().into_owned();
    let walk = drcheck(&[
        "walk",
        "--seed",
        "1",
        "--depth",
        "20000",
        "--trace-out",
        &dir_text,
    ]);
    assert_eq!(walk.code, 0, "{}", walk.stderr);
    let trace = std::fs::read_dir(&dir)
        .expect("trace dir")
        .next()
        .expect("a trace")
        .expect("entry")
        .path();
    // `drcheck show` of 20,000 steps writes far more than a pipe holds: its reader takes one
    // line and closes the pipe, as `| head -1` would.
    let mut child = support::command()
        .arg("show")
        .arg(&trace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drcheck show starts");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    let output = child.wait_with_output().expect("drcheck show ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(13),
        "ended by SIGPIPE: {:?}",
        output.status
    );
    assert!(first.contains("random walk"), "{first}");
    let _ = std::fs::remove_dir_all(&dir);
}
