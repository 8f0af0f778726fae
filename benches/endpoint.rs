//! Requests per second and latency (p50/p99) of FHIR create and read through the endpoint of
//! a `drcheck serve` deployment (real processes, TCP, redb, replication on), with 1 and 8
//! concurrent keep-alive clients. Reads are the baseline: they touch neither the disk nor
//! the secondary. `cargo bench --bench endpoint` (`-- --requests N` per client). The
//! endpoint runs with its default limits but the request rate (see `drcheck serve --help`).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Instant;

use drcheck_impl::service::http::Connection;

struct Run {
    what: String,
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u128>,
}

async fn client(addr: SocketAddr, requests: usize, read_ids: Vec<String>) -> Vec<u128> {
    let mut connection = Connection::open(addr).await.expect("connect");
    let body = br#"{"resourceType":"Patient","name":[{"family":"Bench","given":["Load"]}]}"#;
    let mut latencies = Vec::with_capacity(requests);
    for n in 0..requests {
        let t = Instant::now();
        let response = if read_ids.is_empty() {
            connection
                .send(
                    "POST",
                    "/Patient",
                    &[("Content-Type", "application/fhir+json")],
                    body,
                )
                .await
        } else {
            let id = &read_ids[n % read_ids.len()];
            connection
                .send("GET", &format!("/Patient/{id}"), &[], b"")
                .await
        }
        .expect("request");
        assert!(
            response.status == 200 || response.status == 201,
            "{}",
            response.text()
        );
        latencies.push(t.elapsed().as_micros());
    }
    latencies
}

async fn measure(
    addr: SocketAddr,
    what: &str,
    clients: usize,
    requests: usize,
    ids: &[String],
) -> Run {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, requests, ids.to_vec())))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    latencies.sort_unstable();
    Run {
        what: format!("{what}, {clients} client(s)"),
        requests: clients * requests,
        seconds: start.elapsed().as_secs_f64(),
        latencies_us: latencies,
    }
}

fn main() {
    let mut requests = 1000;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--requests") {
        match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) if n >= 10 => requests = n,
            _ => {
                eprintln!("error: --requests takes a number >= 10");
                std::process::exit(2);
            }
        }
    }
    let data = std::env::temp_dir().join(format!("drcheck-bench-endpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    // Real minutes: no lease or detection timer runs out while the load runs. No request-rate
    // limit: the clients share one address and are meant to run as fast as the endpoint goes.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_drcheck"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DRCHECK_TOKEN", "bench")
        .arg("--data")
        .arg(&data)
        .args(["--rate-limit", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("drcheck serve");
    let mut lines = BufReader::new(serve.stdout.take().expect("stdout")).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("endpoint line").expect("stdout");
        if let Some(url) = line.strip_prefix("endpoint: http://") {
            break url.parse().expect("address");
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runs = runtime.block_on(async {
        // Wait for the deployment, and make resources to read.
        let mut ids = Vec::new();
        while ids.len() < 100 {
            if let Ok(mut c) = Connection::open(addr).await {
                let body = br#"{"resourceType":"Patient"}"#;
                if let Ok(r) = c
                    .send(
                        "POST",
                        "/Patient",
                        &[("Content-Type", "application/fhir+json")],
                        body,
                    )
                    .await
                {
                    if r.status == 201 {
                        ids.push(
                            r.json().expect("json")["id"]
                                .as_str()
                                .expect("id")
                                .to_string(),
                        );
                        continue;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        vec![
            measure(addr, "read", 1, requests, &ids).await,
            measure(addr, "create", 1, requests, &[]).await,
            measure(addr, "read", 8, requests, &ids).await,
            measure(addr, "create", 8, requests, &[]).await,
        ]
    });
    let _ = Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "{:<22} {:>9} {:>10} {:>9} {:>9}",
        "requests", "count", "req/s", "p50 µs", "p99 µs"
    );
    for run in &runs {
        let pct = |p: usize| {
            run.latencies_us[(run.latencies_us.len() * p / 100).min(run.latencies_us.len() - 1)]
        };
        println!(
            "{:<22} {:>9} {:>10.0} {:>9} {:>9}",
            run.what,
            run.requests,
            run.requests as f64 / run.seconds,
            pct(50),
            pct(99)
        );
    }
}
