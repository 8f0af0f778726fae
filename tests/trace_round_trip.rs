//! Round trip: `check --trace-out` writes a trace, `show` prints the same timeline as `check`,
//! and `explore --trace` opens the Explorer at the same path.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drcheck_impl::service::port::PortReservation;
use support::cli::{drcheck, QUIET, TINY};

/// The bug whose `single_writer` counterexample the tests follow, in the tiny model.
const NO_LEASE_WAIT: &[&str] = &["--bug", "no-lease-wait"];

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("drcheck-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The table rows of the timeline that follows `heading` in a report.
fn timeline_after(report: &str, heading: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip_while(|l| !l.trim_start().starts_with("min  actor"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("single_writer:"))
        .map(str::to_string)
        .collect()
}

/// Kills the explorer when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            return response;
        }
        assert!(Instant::now() < deadline, "the explorer does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port nobody else takes while the test runs (the explorer binds it beside).
fn free_port() -> PortReservation {
    PortReservation::new().expect("a free port")
}

#[test]
fn check_show_and_explore_agree_on_the_steps() {
    let dir = temp_dir("round-trip");
    let dir_arg = dir.to_string_lossy().to_string();
    let checked = drcheck(
        &[
            &["check", "--trace-out", dir_arg.as_str()][..],
            NO_LEASE_WAIT,
            TINY,
            QUIET,
        ]
        .concat(),
    );
    assert_eq!(checked.code, 1, "the bug is caught");
    let check_report = checked.stdout;
    let file: PathBuf = dir.join("no-lease-wait.single_writer.json");
    assert!(file.exists(), "check --trace-out wrote {}", file.display());
    let file_arg = file.to_string_lossy().to_string();

    // show prints the same rows as check did.
    let shown = drcheck(&["show", file_arg.as_str()]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let show_report = shown.stdout;
    let from_check = timeline_after(&check_report, "single_writer violated");
    let from_show = timeline_after(&show_report, &file.display().to_string());
    assert!(!from_check.is_empty());
    assert_eq!(from_check, from_show);
    assert!(show_report.contains("single_writer: regions 0"));

    // explore opens at the trace's last step: one index per step after the initial state.
    let steps = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&file).unwrap())
        .unwrap()["steps"]
        .as_array()
        .unwrap()
        .len();
    let port = free_port();
    let addr = port.addr().to_string();
    let child = support::command()
        .args([
            "explore",
            "--trace",
            file_arg.as_str(),
            "--addr",
            addr.as_str(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore starts");
    let mut server = Server(child);
    // Keep reading its stdout open: the explorer prints a second line after the URL.
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("Explorer: ").expect("a URL line");
    let fragment = url
        .split_once("#/steps/")
        .map(|(_, f)| f.to_string())
        .expect("a URL at a path");
    assert_eq!(fragment.split('/').count(), steps + 1, "{url}");
    let response = get(port.addr().port(), &format!("/.states/{fragment}"));
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"));
    // The last step is the promotion that makes region 1 a second writer.
    let (parent, _) = fragment.rsplit_once('/').unwrap();
    let listing = get(port.addr().port(), &format!("/.states/{parent}"));
    let body = listing.split("\r\n\r\n").nth(1).unwrap_or_default();
    let next: serde_json::Value = serde_json::from_str(body).expect("JSON steps");
    let taken = next
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["action"]
                .as_str()
                .is_some_and(|a| a.contains("promote region 1"))
        })
        .expect("the promotion is offered");
    assert!(taken["outcome"].as_str().unwrap().contains("Primary@2"));
    drop(server);
    drop(stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_trace_file_is_a_usage_error_for_show_and_explore() {
    let dir = temp_dir("bad-trace");
    let bad: &Path = &dir.join("bad.json");
    std::fs::write(bad, "{\"drcheck_trace\": 1, \"steps\": 3}").unwrap();
    let bad_arg = bad.to_string_lossy().to_string();
    for args in [
        vec!["show", bad_arg.as_str()],
        vec![
            "explore",
            "--trace",
            bad_arg.as_str(),
            "--addr",
            "127.0.0.1:0",
        ],
    ] {
        let out = drcheck(&args);
        assert_eq!(out.code, 2, "{args:?}");
        let stderr = out.stderr;
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains("bad.json"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_ui_folder_where_the_user_stands_does_not_replace_the_explorer() {
    // stateright serves ./ui/index.htm from the working directory when there is one.
    let dir = temp_dir("ui-gotcha");
    std::fs::create_dir_all(dir.join("ui")).unwrap();
    std::fs::write(dir.join("ui/index.htm"), "HIJACKED").unwrap();
    let port = free_port();
    let addr = port.addr().to_string();
    let args = [
        &["explore", "--addr", addr.as_str()][..],
        NO_LEASE_WAIT,
        TINY,
    ]
    .concat();
    let child = support::command()
        .args(&args)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("explore starts");
    let server = Server(child);
    let page = get(port.addr().port(), "/");
    assert!(page.contains("200"), "{page}");
    assert!(
        !page.contains("HIJACKED"),
        "the Explorer served ./ui from the user's directory"
    );
    assert!(
        page.contains("<html") || page.contains("<!DOCTYPE"),
        "{page}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
