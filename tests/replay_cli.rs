//! `drcheck replay FILE`: a trace replayed on the implementation.

use std::process::Command;

fn drcheck(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_drcheck"))
        .args(args)
        .output()
        .expect("drcheck runs")
}

#[test]
fn a_model_path_is_followed_by_the_implementation_step_by_step() {
    let dir = std::env::temp_dir().join(format!("drcheck-replay-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let check = drcheck(&[
        "check",
        "-q",
        "--writes",
        "1",
        "--partitions",
        "0",
        "--failbacks",
        "0",
        "--forced",
        "0",
        "--trace-out",
        out,
    ]);
    // (It exits 1: with no forced failover in the budget, one `sometimes` is not reached.)
    let trace = dir.join("model.worst-data-loss.json");
    assert!(trace.exists(), "{}", String::from_utf8_lossy(&check.stderr));
    let replay = drcheck(&["replay", trace.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("followed all"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bug_counterexample_stops_where_the_correct_implementation_refuses() {
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/corpus/no-lease-wait.single_writer.json"
    );
    let replay = drcheck(&["replay", trace]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("step 11 (promote region 1 (automatic failover)): enabled in the model, refused by the implementation"), "{stdout}");
    assert!(
        stdout.contains("regions[1].role: \"Primary\" -> \"Secondary\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("model view:") && stdout.contains("implementation view:"),
        "{stdout}"
    );
}

#[test]
fn a_bad_trace_file_is_a_one_line_error_and_exit_2() {
    let missing = drcheck(&["replay", "/nonexistent/trace.json"]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}
