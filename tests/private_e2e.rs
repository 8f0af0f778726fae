//! Least privilege of a running `drcheck serve`, with real processes: its data directory is
//! its owner's alone (0700, every file 0600, a laxer directory from before made private);
//! the operator token is never on a command line, it is printed once, kept in the data
//! directory and the same after a restart; and with a FHIR token, FHIR requests without it
//! are refused with a bearer challenge while `/metadata` stays open.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use drcheck_impl::service::http::{self, Response};

/// A `drcheck serve` started here: its process, endpoint and what it printed before it.
struct Running {
    child: Child,
    endpoint: SocketAddr,
    printed: Vec<String>,
    runtime: tokio::runtime::Runtime,
}

impl Running {
    fn start(data: &Path, env: &[(&str, &str)]) -> Running {
        let mut command = support::command();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--minute-ms", "200"])
            .arg("--data")
            .arg(data)
            .env_remove("DRCHECK_TOKEN")
            .env_remove("DRCHECK_FHIR_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("drcheck serve starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("serve prints its endpoint")
                .expect("stdout");
            printed.push(line.clone());
            if let Some(url) = line.strip_prefix("endpoint: http://") {
                break url.parse().expect("endpoint address");
            }
        };
        // The rest of the banner comes right after the endpoint line.
        for line in lines.by_ref() {
            let line = line.expect("stdout");
            let last = line.starts_with("stop with");
            printed.push(line);
            if last {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Running {
            child,
            endpoint,
            printed,
            runtime,
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.runtime
            .block_on(http::request(
                self.endpoint,
                method,
                path,
                headers,
                body.as_bytes(),
            ))
            .expect("the endpoint answers")
    }

    /// Creates a Patient until the deployment takes it (it may still be starting).
    fn create_eventually(&self, headers: &[(&str, &str)]) -> Response {
        let mut headers = headers.to_vec();
        headers.push(("Content-Type", "application/fhir+json"));
        let start = Instant::now();
        loop {
            let response = self.request(
                "POST",
                "/Patient",
                &headers,
                r#"{"resourceType":"Patient"}"#,
            );
            if response.status == 201 || start.elapsed() > Duration::from_secs(30) {
                return response;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn printed(&self, prefix: &str) -> String {
        self.printed
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("serve printed no {prefix:?}: {:?}", self.printed))
            .to_string()
    }

    /// The command lines of serve and of every process it started.
    fn command_lines(&self) -> Vec<String> {
        let mut pids = vec![self.child.id()];
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                .unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids.iter()
            .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .collect()
    }

    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Every directory and file under `dir` (itself included) whose mode is not the private one.
fn not_private(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut lax = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode(&path) != wanted {
            lax.push((path.clone(), mode(&path)));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
    lax
}

#[test]
fn the_data_directory_and_the_tokens_are_the_owners_alone() {
    let data = std::env::temp_dir().join(format!("drcheck-private-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // A data directory someone made readable by all, with a file in it.
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(data.join("notes.txt"), "x").expect("write");
    std::fs::set_permissions(
        data.join("notes.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");

    // First run, no token given: one is generated, printed with its value, kept 0600.
    let first = Running::start(&data, &[]);
    let created = first.create_eventually(&[]);
    assert_eq!(created.status, 201, "{}", created.text());
    let shown = first.printed("operator token: ");
    let token = shown
        .split_whitespace()
        .next()
        .expect("a token")
        .to_string();
    let kept = data.join("operator-token");
    assert!(shown.contains(&kept.display().to_string()), "{shown}");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("token file").trim(),
        token
    );
    let bearer = format!("Bearer {token}");
    let quarantine = first.request("GET", "/_dr/quarantine", &[("Authorization", &bearer)], "");
    assert_eq!(quarantine.status, 200, "{}", quarantine.text());
    let lines = first.command_lines();
    assert!(
        lines.len() >= 4,
        "serve, 2 regions, a control plane: {lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(&token)), "{lines:?}");
    // Everything the deployment wrote (stores, logs, keys, cluster.json) and what was there.
    let lax = not_private(&data);
    assert!(lax.is_empty(), "readable by others: {lax:?}");
    first.stop();

    // Second run on the same directory, a FHIR token from the environment: the operator
    // token is the same and is not printed again.
    let second = Running::start(&data, &[("DRCHECK_FHIR_TOKEN", "fhir-secret")]);
    let shown = second.printed("operator token: ");
    assert!(!shown.contains(&token), "printed again: {shown}");
    assert!(shown.contains("operator-token"), "{shown}");
    let metadata = second.request("GET", "/metadata", &[], "");
    assert_eq!(metadata.status, 200, "{}", metadata.text());
    let refused = second.request(
        "POST",
        "/Patient",
        &[("Content-Type", "application/fhir+json")],
        r#"{"resourceType":"Patient"}"#,
    );
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(
        refused.header("WWW-Authenticate"),
        Some(r#"Bearer realm="drcheck""#)
    );
    let created = second.create_eventually(&[("Authorization", "Bearer fhir-secret")]);
    assert_eq!(created.status, 201, "{}", created.text());
    let status = second.request("GET", "/_dr/status", &[], "");
    let status = status.json().expect("status JSON");
    assert_eq!(status["unauthorized_fhir_requests"], 1, "{status}");
    let quarantine = second.request("GET", "/_dr/quarantine", &[("Authorization", &bearer)], "");
    assert_eq!(quarantine.status, 200, "{}", quarantine.text());
    let lines = second.command_lines();
    assert!(
        lines.iter().all(|l| !l.contains("fhir-secret")),
        "{lines:?}"
    );
    assert!(not_private(&data).is_empty());
    second.stop();
    let _ = std::fs::remove_dir_all(&data);
}
