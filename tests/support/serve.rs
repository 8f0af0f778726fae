//! A `drcheck serve` deployment of real processes for the service tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drcheck_impl::service::http::{self, Response};
use serde_json::Value;

use super::cli::{self, Output};

pub const TOKEN: &str = "test-operator-token";
/// Wall milliseconds per protocol minute: the 60-minute RTO is 12 s.
pub const MINUTE_MS: u64 = 200;

pub struct Serve {
    child: Child,
    pub endpoint: SocketAddr,
    pub data: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Serve {
    /// Starts `drcheck serve` on a free port and waits until it takes writes.
    pub fn start(name: &str) -> Serve {
        Serve::start_with(name, &[])
    }

    /// [`Serve::start`] with `extra` arguments to `serve`.
    pub fn start_with(name: &str, extra: &[&str]) -> Serve {
        let data = std::env::temp_dir().join(format!("drcheck-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut child = super::command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("DRCHECK_TOKEN", TOKEN)
            .args(["--minute-ms", &MINUTE_MS.to_string()])
            .arg("--data")
            .arg(&data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("drcheck serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("serve prints its endpoint")
                .expect("stdout");
            if let Some(url) = line.strip_prefix("endpoint: http://") {
                break url.parse().expect("endpoint address");
            }
        };
        // Keep draining stdout so serve never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let serve = Serve {
            child,
            endpoint,
            data,
            runtime,
        };
        serve.eventually(
            Duration::from_secs(20),
            "the deployment takes writes",
            || {
                serve
                    .create("Patient", r#"{"resourceType":"Patient","id":"warm-up"}"#)
                    .status
                    == 201
            },
        );
        // Every region's process answers (a secondary may still be starting on a loaded
        // machine when the primary already takes writes).
        serve.eventually(Duration::from_secs(20), "every region answers", || {
            let status = serve.get("/_dr/status");
            status.status == 200
                && status.json().is_ok_and(|s| {
                    s["regions"]
                        .as_array()
                        .is_some_and(|r| r.iter().all(|r| r["status"] == "up"))
                })
        });
        serve
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.runtime
            .block_on(http::request(self.endpoint, method, path, headers, body))
            .expect("the endpoint answers")
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn create(&self, kind: &str, body: &str) -> Response {
        self.request(
            "POST",
            &format!("/{kind}"),
            &[("Content-Type", "application/fhir+json")],
            body.as_bytes(),
        )
    }

    pub fn update(&self, kind: &str, id: &str, body: &str, if_match: Option<&str>) -> Response {
        let mut headers = vec![("Content-Type", "application/fhir+json")];
        if let Some(m) = if_match {
            headers.push(("If-Match", m));
        }
        self.request("PUT", &format!("/{kind}/{id}"), &headers, body.as_bytes())
    }

    pub fn operator(&self, method: &str, path: &str, body: &Value) -> Response {
        let auth = format!("Bearer {TOKEN}");
        self.request(
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    pub fn status(&self) -> Value {
        let response = self.get("/_dr/status");
        assert_eq!(response.status, 200, "{}", response.text());
        response.json().expect("status JSON")
    }

    /// Polls `check` every 50 ms until it holds; fails after `limit`. Returns the time taken.
    pub fn eventually(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut() -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what}: not within {limit:?}; status {}",
            self.get("/_dr/status").text()
        );
    }

    /// Runs a `drcheck` client verb against this deployment to completion.
    pub fn verb(&self, args: &[&str]) -> Output {
        let mut command = super::command();
        command
            .args(args)
            .args(["--endpoint", &format!("http://{}", self.endpoint)])
            .env("DRCHECK_TOKEN", TOKEN);
        cli::run(command)
    }

    /// Stops serve with Ctrl-C (SIGINT) and returns its exit status.
    pub fn stop(self) -> std::process::ExitStatus {
        let data = self.data.clone();
        let status = self.stop_keeping_data();
        let _ = std::fs::remove_dir_all(&data);
        status
    }

    /// Stops serve with Ctrl-C (SIGINT), leaving its data directory for the test to read;
    /// returns its exit status.
    pub fn stop_keeping_data(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.child.wait().expect("serve exits")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The OperationOutcome's first issue code, checking the body is one.
pub fn outcome_code(response: &Response) -> String {
    let body = response
        .json()
        .unwrap_or_else(|e| panic!("{e}: {}", response.text()));
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    body["issue"][0]["code"]
        .as_str()
        .expect("issue code")
        .to_string()
}
