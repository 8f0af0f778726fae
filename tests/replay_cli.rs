//! `drcheck replay FILE`: a trace replayed on the implementation.

mod support;

use support::cli::{check, drcheck, ONE_WRITE};

#[test]
fn a_model_path_is_followed_by_the_implementation_step_by_step() {
    let dir = std::env::temp_dir().join(format!("drcheck-replay-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().unwrap();
    let checked = check(ONE_WRITE, &["--trace-out", out]);
    // (It exits 1: with no forced failover in the budget, one `sometimes` is not reached.)
    let trace = dir.join("model.worst-data-loss.json");
    assert!(trace.exists(), "{}", checked.stderr);
    let replay = drcheck(&["replay", trace.to_str().unwrap()]);
    let stdout = &replay.stdout;
    assert_eq!(replay.code, 0, "{stdout}");
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
    let stdout = &replay.stdout;
    assert_eq!(replay.code, 1, "{stdout}");
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
fn an_omitted_step_is_refused_at_the_tick_that_passes_over_it() {
    // Under --bug no-auto-failover nobody promotes; the correct control plane would, so it
    // refuses to let time pass over the promotion.
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/corpus/no-auto-failover.rto_bound.json"
    );
    let replay = drcheck(&["replay", trace]);
    let stdout = &replay.stdout;
    assert_eq!(replay.code, 1, "{stdout}");
    assert!(
        stdout.contains(
            "(tick): enabled in the model, refused by the implementation: time may not pass: \
             the control plane would promote region 1 first"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("due: the control plane would promote region 1"),
        "{stdout}"
    );
}

#[test]
fn a_bad_trace_file_is_a_one_line_error_and_exit_2() {
    let missing = drcheck(&["replay", "/nonexistent/trace.json"]);
    assert_eq!(missing.code, 2);
    let stderr = &missing.stderr;
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

/// A log of a short run of the implementation: a write, a crash of the primary, failover.
fn write_log(path: &std::path::Path) {
    use drcheck_impl::deployment::{Deployment, DeploymentConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut d = Deployment::start(DeploymentConfig {
            operator_token: "t".to_string(),
            event_log: Some(path.to_path_buf()),
            ..DeploymentConfig::default()
        })
        .await
        .expect("deployment");
        d.write(r#"{"resourceType":"Patient"}"#.to_string())
            .await
            .expect("write")
            .expect("acknowledged");
        d.advance(2).await.expect("advance");
        d.crash(0).await.expect("crash");
        d.advance(10).await.expect("advance");
        d.shutdown().await.expect("shutdown");
    });
}

#[test]
fn an_implementation_log_is_validated_against_the_model() {
    let path =
        std::env::temp_dir().join(format!("drcheck-validate-cli-{}.jsonl", std::process::id()));
    write_log(&path);
    let valid = drcheck(&["validate", path.to_str().unwrap()]);
    let stdout = &valid.stdout;
    assert_eq!(valid.code, 0, "{stdout}");
    assert!(stdout.starts_with("valid: "), "{stdout}");

    // A failover with no declaration before it is no behaviour of the model.
    let text = std::fs::read_to_string(&path).unwrap();
    let tampered: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"region_declared_failed\""))
        .collect();
    std::fs::write(&path, tampered.join("\n")).unwrap();
    let invalid = drcheck(&["validate", path.to_str().unwrap()]);
    let stdout = &invalid.stdout;
    assert_eq!(invalid.code, 1, "{stdout}");
    assert!(stdout.starts_with("not valid: event"), "{stdout}");
    assert!(stdout.contains("tried from model state 1:"), "{stdout}");

    std::fs::write(&path, "not a log\n").unwrap();
    let garbage = drcheck(&["validate", path.to_str().unwrap()]);
    assert_eq!(garbage.code, 2);
    let stderr = &garbage.stderr;
    assert!(
        stderr.contains("line 1:") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_seeded_walk_is_written_and_replayed() {
    let dir = std::env::temp_dir().join(format!("drcheck-walk-cli-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let walk = drcheck(&["walk", "--seed", "7", "--depth", "40", "--trace-out", out]);
    assert_eq!(walk.code, 0, "{}", walk.stderr);
    let file = dir.join("model.walk-7.json");
    let again = std::fs::read_to_string(&file).unwrap();
    let rewalk = drcheck(&["walk", "--seed", "7", "--depth", "40", "--trace-out", out]);
    assert_eq!(rewalk.code, 0, "{}", rewalk.stderr);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        again,
        "the same seed, the same walk"
    );
    let replay = drcheck(&["replay", file.to_str().unwrap()]);
    let stdout = &replay.stdout;
    assert_eq!(replay.code, 0, "{stdout}");
    assert!(stdout.contains("random walk, seed 7"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
