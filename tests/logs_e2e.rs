//! What a `drcheck serve` deployment writes where an operator looks, end to end with real
//! processes: each process's log is JSON lines with a level, a message refused at a region's
//! protocol port is a line in that region's log, each region's event log keeps its history
//! across a restart (a second `started` after the crash and the recovery), and
//! `drcheck validate` on the data directory finds the whole failover run a behaviour of the
//! model.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::serve::{Serve, MINUTE_MS};

fn minutes(n: u64) -> Duration {
    Duration::from_millis(n * MINUTE_MS)
}

fn patient(family: &str) -> String {
    json!({ "resourceType": "Patient", "name": [{ "family": family }] }).to_string()
}

/// Region `r`'s protocol port, from the deployment's `cluster.json`.
fn protocol_port(data: &Path, r: usize) -> SocketAddr {
    let text = std::fs::read_to_string(data.join("cluster.json")).expect("cluster.json");
    let cluster: Value = serde_json::from_str(&text).expect("cluster JSON");
    cluster["region"][r]["protocol"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("a protocol address")
}

/// The lines of a process's log, each parsed; panics on a line that is not a JSON object
/// with a timestamp, a level and a target.
fn log_lines(data: &Path, name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join(name)).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let json: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not a JSON line ({e}): {line}"));
            for field in ["timestamp", "level", "target"] {
                assert!(json[field].is_string(), "{name}: no {field}: {line}");
            }
            json
        })
        .collect()
}

/// The `event` kinds of a JSON-lines event log, in order.
fn event_kinds(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["event"].as_str().map(str::to_string))
        .collect()
}

/// A number `drcheck validate` printed before `word` ("12 writes").
fn count(summary: &str, word: &str) -> u64 {
    let words: Vec<&str> = summary
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')' || c == ':')
        .filter(|w| !w.is_empty())
        .collect();
    words
        .windows(2)
        .find(|w| w[1] == word)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no count of {word} in {summary:?}"))
}

#[test]
fn a_failover_run_is_logged_kept_across_restarts_and_validates_against_the_model() {
    let serve = Serve::start("logs");
    let data = serve.data.clone();
    for n in 0..4 {
        let created = serve.create("Patient", &patient(&format!("Before{n}")));
        assert_eq!(created.status, 201, "{}", created.text());
    }

    // A line that is no frame, from outside the deployment, to region 1's protocol port: the
    // region refuses it and says so in its log.
    let mut stream = TcpStream::connect(protocol_port(&data, 1)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"{\"from\":\"control\",\"garbage\":true}\n")
        .expect("write");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    let refusal = |line: &Value| {
        line["target"] == "drcheck::edge"
            && line["level"] == "WARN"
            && line["reason"].is_string()
            && line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("refused ("))
    };
    serve.eventually(Duration::from_secs(5), "region 1 logs the refusal", || {
        log_lines(&data, "region-1.log").iter().any(refusal)
    });

    // The primary's process crashes (the operator's fault, through the DR API): failover.
    let crash = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": "crash", "region": 0 }),
    );
    assert_eq!(crash.status, 200, "{}", crash.text());
    serve.eventually(minutes(60), "writes resume after the failover", || {
        serve.create("Patient", &patient("AfterFailover")).status == 201
    });
    assert_eq!(serve.status()["routing"]["primary"], 1);

    // It restarts from its store and rejoins as secondary.
    let recover = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": "recover", "region": 0 }),
    );
    assert_eq!(recover.status, 200, "{}", recover.text());
    serve.eventually(minutes(20), "region 0 rejoins as secondary", || {
        let s = serve.status();
        s["regions"][0]["role"] == "Secondary" && s["regions"][0]["epoch"] == 2
    });
    for n in 0..2 {
        let created = serve.create("Patient", &patient(&format!("After{n}")));
        assert_eq!(created.status, 201, "{}", created.text());
    }
    // Time for the last writes to replicate, and a few heartbeats.
    std::thread::sleep(minutes(3));
    let exit = serve.stop_keeping_data();
    assert!(exit.success(), "serve stops cleanly on Ctrl-C: {exit:?}");

    // Every process's log is JSON lines with a level; serve's own too.
    for name in ["region-0.log", "region-1.log", "control.log", "serve.log"] {
        let lines = log_lines(&data, name);
        assert!(!lines.is_empty(), "{name} is empty");
    }
    // Region 0's event log holds both its lives: written before the crash, appended after.
    let region0 = event_kinds(&data.join("events-region-0.jsonl"));
    let started = region0.iter().filter(|k| *k == "started").count();
    assert_eq!(started, 2, "events-region-0.jsonl: {region0:?}");
    assert_eq!(region0[0], "started");
    assert!(
        region0.iter().any(|k| k == "write_accepted"),
        "its first life's writes are kept: {region0:?}"
    );
    assert!(region0.iter().any(|k| k == "rejoined"), "{region0:?}");
    let faults = event_kinds(&data.join("events-serve.jsonl"));
    assert_eq!(faults, ["fault", "fault"]);

    // The whole run, merged from the processes' logs, is a behaviour of the model.
    let validated = support::cli::drcheck(&["validate", data.to_str().expect("UTF-8 path")]);
    let summary = validated.stdout.trim().to_string();
    assert_eq!(
        validated.code,
        0,
        "{summary}\n{}\n(data kept in {})",
        validated.stderr,
        data.display()
    );
    assert!(summary.starts_with("valid: "), "{summary}");
    println!("drcheck validate {}: {summary}", data.display());
    assert!(count(&summary, "events") > 0, "{summary}");
    // The warm-up write, 4 before the crash, 1 after the failover, 2 after the recovery.
    assert!(count(&summary, "writes") >= 8, "{summary}");
    assert_eq!(count(&summary, "failover"), 1, "{summary}");
    assert_eq!(count(&summary, "faults"), 2, "{summary}");
    // Two regions and the control plane, and region 0 again.
    assert_eq!(count(&summary, "process"), 4, "{summary}");
    let _ = std::fs::remove_dir_all(&data);
}

/// Bad input to `drcheck validate`: one line naming the file (and the line), exit 2.
#[test]
fn validate_refuses_a_bad_data_directory_in_one_line() {
    let dir = std::env::temp_dir().join(format!("drcheck-logs-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shown = dir.to_str().expect("UTF-8 path").to_string();

    let missing = support::cli::drcheck(&["validate", &shown]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains(&shown), "{}", missing.stderr);
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);

    std::fs::create_dir_all(&dir).expect("dir");
    let empty = support::cli::drcheck(&["validate", &shown]);
    assert_eq!(empty.code, 2, "{}", empty.stderr);
    assert!(empty.stderr.contains("no event log"), "{}", empty.stderr);

    let started = json!({
        "seq": 0, "at": 0, "node": "control", "event": "started", "regions": 2,
        "timing": {
            "heartbeat": 1, "delay": 1, "detection": 5, "lease": 5, "skew": 1,
            "throttle": 5, "rpo": 15, "rto": 60, "grace": 30, "drain_timeout": 5,
            "sync_timeout": 15
        }
    });
    std::fs::write(dir.join("events-control.jsonl"), format!("{started}\n")).expect("write");
    let mut region = started.clone();
    region["node"] = json!({ "region": 0 });
    std::fs::write(
        dir.join("events-region-0.jsonl"),
        format!("{region}\n{{\"seq\":1,\"at\":\n"),
    )
    .expect("write");
    let garbled = support::cli::drcheck(&["validate", &shown]);
    assert_eq!(garbled.code, 2, "{}", garbled.stderr);
    let stderr = garbled.stderr.trim();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("events-region-0.jsonl: line 2:"),
        "names the file and the line: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `RUST_LOG` that is no filter stops `serve` and the processes at once: one line, exit 2,
/// nothing created.
#[test]
fn a_bad_rust_log_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("drcheck-logs-rust-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let shown = dir.to_str().expect("UTF-8 path");
    for verb in [
        vec!["serve", "--listen", "127.0.0.1:0", "--data", shown],
        vec!["region", "--cluster", shown, "--id", "0"],
        vec!["control", "--cluster", shown],
    ] {
        let mut command = support::command();
        command.args(&verb).env("RUST_LOG", "verbose");
        let out = support::cli::run(command);
        assert_eq!(out.code, 2, "{verb:?}: {}", out.stderr);
        let stderr = out.stderr.trim();
        assert_eq!(stderr.lines().count(), 1, "{verb:?}: {stderr}");
        assert!(
            stderr.starts_with("error: RUST_LOG=\"verbose\": "),
            "{verb:?}: {stderr}"
        );
        assert!(!dir.exists(), "{verb:?} created {shown}");
    }
}
