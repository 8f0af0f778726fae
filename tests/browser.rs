//! A real browser test of `drcheck explore`: Debian's Chromium, driven by Playwright
//! (tests/browser/explorer.mjs), presses "Run to completion" in stateright's Explorer, follows
//! single_writer's counterexample link and takes a screenshot of the path it shows.
//!
//! Needs /usr/bin/chromium, `node` and tests/browser/node_modules (`.ci/run` installs them):
//!
//! ```text
//! apt-get install chromium chromium-driver && (cd tests/browser && npm ci)
//! ```
//!
//! Without them the test is skipped with a message, except under CI=true, where it fails.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::TINY;

const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the explorer may take to print its URL and to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// explorer.mjs gives up by itself after 150 s; this is the backstop.
const NODE_TIMEOUT: Duration = Duration::from_secs(180);
/// A screenshot of the Explorer with a path and its sequence diagram is some 200 KB.
const MIN_SCREENSHOT_BYTES: u64 = 20_000;

/// Kills the child (and reaps it) when dropped, whatever the test did before.
struct KillOnDrop {
    what: &'static str,
    child: Child,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Err(e) = self.child.kill() {
                eprintln!("could not kill {} ({}): {e}", self.what, self.child.id());
            }
        }
        let _ = self.child.wait();
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What this test needs that is not there, each with how to get it.
fn missing_prerequisites(browser_dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} (install it: apt-get update && apt-get install -y \
             --no-install-recommends chromium chromium-driver)"
        ));
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(node, Ok(status) if status.success()) {
        missing.push("`node` on PATH (Node.js 20 or later, with npm)".to_string());
    }
    let playwright = browser_dir.join("node_modules/playwright-core/package.json");
    if !playwright.exists() {
        missing.push(format!(
            "{} (install it: cd {} && npm ci --no-audit --no-fund)",
            playwright.parent().unwrap().display(),
            browser_dir.display()
        ));
    }
    missing
}

fn free_loopback_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Reads a pipe to its end on a thread, so that a full pipe never blocks the child.
fn drain<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for the child to exit, at most `timeout`; on time-out asks it to stop (SIGTERM, so
/// that Playwright closes its Chromium), then kills it. `None` means it timed out.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let grace = Instant::now() + Duration::from_secs(5);
    while Instant::now() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn explorer_shows_single_writer_counterexample_in_chromium() {
    let root = workspace();
    let browser_dir = root.join("tests/browser");
    let missing = missing_prerequisites(&browser_dir);
    if !missing.is_empty() {
        let list = missing.join("\n  - ");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "the browser test cannot run under CI; missing:\n  - {list}\n\
                 .ci/run installs them: apt-get install -y --no-install-recommends chromium \
                 chromium-driver && (cd tests/browser && npm ci --no-audit --no-fund)"
            );
        }
        eprintln!(
            "SKIPPED the browser test; missing:\n  - {list}\nTo run it: \
             apt-get install chromium chromium-driver && (cd tests/browser && npm ci), then \
             cargo test --release --test browser -- --nocapture"
        );
        return;
    }

    // The screenshot goes to the target directory: <workspace>/target unless moved.
    let exe = Path::new(env!("CARGO_BIN_EXE_drcheck"));
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("target"));
    let screenshot = target_dir.join("explorer-no-lease-wait.png");
    let _ = std::fs::remove_file(&screenshot);

    let started = Instant::now();
    let port = free_loopback_port();
    let addr = format!("127.0.0.1:{port}");
    let mut explorer = KillOnDrop {
        what: "drcheck explore",
        child: support::command()
            .args(["explore", "--bug", "no-lease-wait"])
            .args(TINY)
            .args(["--addr", &addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start drcheck explore"),
    };

    // The first line on stdout is "Explorer: URL"; read it on a thread to bound the wait, and
    // keep reading so that the explorer never writes to a closed pipe.
    let stdout = explorer.child.stdout.take().expect("explorer stdout");
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Once nobody listens, sending fails: go on draining all the same.
            let _ = line_tx.send(line);
        }
    });
    let first = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(line) => line,
        Err(e) => panic!(
            "drcheck explore printed no line within {STARTUP_TIMEOUT:?} ({e}); exit status: {:?}",
            explorer.child.try_wait()
        ),
    };
    let url = first
        .strip_prefix("Explorer: ")
        .unwrap_or_else(|| panic!("drcheck explore's first line is not `Explorer: URL`: {first:?}"))
        .trim()
        .to_string();
    assert_eq!(
        url,
        format!("http://{addr}/"),
        "the URL drcheck explore printed"
    );

    let socket: SocketAddr = addr.parse().expect("socket address");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&socket, Duration::from_millis(500)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = explorer.child.try_wait() {
            panic!("drcheck explore exited ({status}) before serving on {addr}");
        }
        assert!(
            Instant::now() < deadline,
            "drcheck explore does not accept connections on {addr} after {STARTUP_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "explorer up at {url} after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let browser_started = Instant::now();
    let mut node = KillOnDrop {
        what: "node explorer.mjs",
        child: Command::new("node")
            .arg(browser_dir.join("explorer.mjs"))
            .arg(&url)
            .arg(&screenshot)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node tests/browser/explorer.mjs"),
    };
    let node_stdout = drain(node.child.stdout.take().expect("node stdout"));
    let node_stderr = drain(node.child.stderr.take().expect("node stderr"));
    let status = wait_bounded(&mut node.child, NODE_TIMEOUT);
    let out = node_stdout.join().unwrap_or_default();
    let err = node_stderr.join().unwrap_or_default();
    drop(node);
    drop(explorer);
    eprintln!(
        "browser run took {:.1} s; stderr of explorer.mjs:\n{err}",
        browser_started.elapsed().as_secs_f64()
    );
    let status = status.unwrap_or_else(|| {
        panic!("node explorer.mjs did not finish within {NODE_TIMEOUT:?}; stdout:\n{out}\nstderr:\n{err}")
    });
    assert!(
        status.success(),
        "node explorer.mjs failed ({status}); stdout:\n{out}\nstderr:\n{err}"
    );

    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("explorer.mjs printed nothing on stdout; stderr:\n{err}"));
    let report: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("explorer.mjs's last line is not JSON ({e}): {line}"));
    println!("explorer.mjs saw: {report:#}");
    assert_eq!(report["property"], "single_writer", "{report:#}");
    let href = report["href"].as_str().unwrap_or_default();
    assert!(
        href.starts_with("#/steps/") && href.len() > "#/steps/".len(),
        "no counterexample link: {report:#}"
    );
    assert!(
        report["summary"]
            .as_str()
            .is_some_and(|s| s.contains("Counterexample found")),
        "{report:#}"
    );
    let actions = href["#/steps/".len()..].split('/').count() as u64;
    assert_eq!(
        report["steps"].as_u64(),
        Some(actions + 1),
        "the page shows Pre-init and one step per action of {href}: {report:#}"
    );

    let bytes = std::fs::read(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot at {}: {e}", screenshot.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        screenshot.display()
    );
    assert!(
        bytes.len() as u64 > MIN_SCREENSHOT_BYTES,
        "{} is only {} bytes",
        screenshot.display(),
        bytes.len()
    );
    println!(
        "screenshot: {} ({} bytes); whole test {:.1} s",
        screenshot.display(),
        bytes.len(),
        started.elapsed().as_secs_f64()
    );
}
