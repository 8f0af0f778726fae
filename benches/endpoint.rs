//! Requests per second and latency (p50/p99) of FHIR create and read through the endpoint of
//! a `drcheck serve` deployment (real processes, TCP, redb, replication on), with 1, 8 and 32
//! concurrent keep-alive clients, beside redb alone on the same disk (1, 8 and 64 entries per
//! commit): the limit a durable write is measured against. Reads are the other baseline: they
//! touch neither the disk nor the secondary. While the creates run, the status API is sampled
//! every 20 ms for the replication lag: the entries the secondary lacks, and how long ago the
//! primary first held more than the secondary holds now (ms); `catch-up` is how long the
//! secondary takes to hold the whole log once the creates stop.
//!
//! `cargo bench --bench endpoint` (`-- --requests N` per client, default 1000; `--raw-ms M`
//! per redb variant, default 1500; `--clients 1,8,32`; `--no-reads`). `DRCHECK_BIN=path` runs
//! another build's `drcheck` (to compare two versions in one session). The endpoint runs with
//! its default limits but the request rate (see `drcheck serve --help`).

#[path = "../impl/benches/support/raw_redb.rs"]
mod raw_redb;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drcheck_impl::service::http::Connection;

struct Run {
    what: String,
    creates: bool,
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u128>,
    lag: Option<Lag>,
}

/// Replication lag while the creates ran.
struct Lag {
    max_entries: u64,
    mean_entries: f64,
    max_ms: u128,
    catch_up_ms: u128,
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

/// How often the lag is sampled, in ms (the resolution of the lag in time).
const SAMPLE_MS: u64 = 20;

/// The primary's and the secondary's log lengths, from the status API.
async fn log_lens(status: &mut Connection) -> Option<(u64, u64)> {
    let response = status.send("GET", "/_dr/status", &[], b"").await.ok()?;
    let body = response.json().ok()?;
    let primary = body["routing"]["primary"].as_u64()?;
    let len = |r: u64| body["regions"][r as usize]["log_len"].as_u64();
    Some((len(primary)?, len(1 - primary.min(1))?))
}

/// Samples the lag until `stop`, then until the secondary holds what the primary held then.
async fn sample_lag(addr: SocketAddr, stop: Arc<AtomicBool>) -> Lag {
    let mut status = Connection::open(addr).await.expect("connect");
    // (when, primary's log length, secondary's log length)
    let mut samples: Vec<(Instant, u64, u64)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some((p, s)) = log_lens(&mut status).await {
            samples.push((Instant::now(), p, s));
        }
        tokio::time::sleep(Duration::from_millis(SAMPLE_MS)).await;
    }
    let stopped = Instant::now();
    let mut catch_up_ms = 0;
    while let Some((p, s)) = log_lens(&mut status).await {
        if s >= p {
            catch_up_ms = stopped.elapsed().as_millis();
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "the secondary did not catch up within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let behind: Vec<u64> = samples
        .iter()
        .map(|&(_, p, s)| p.saturating_sub(s))
        .collect();
    // How long ago the primary first held more than the secondary holds at a sample (to the
    // sampling interval).
    let ms_behind = samples.iter().map(|&(at, p, s)| {
        if s >= p {
            return 0;
        }
        samples
            .iter()
            .find(|&&(_, earlier_p, _)| earlier_p > s)
            .map_or(0, |&(earlier, _, _)| at.duration_since(earlier).as_millis())
    });
    Lag {
        max_entries: behind.iter().copied().max().unwrap_or(0),
        mean_entries: behind.iter().sum::<u64>() as f64 / behind.len().max(1) as f64,
        max_ms: ms_behind.max().unwrap_or(0),
        catch_up_ms,
    }
}

async fn measure(
    addr: SocketAddr,
    what: &str,
    clients: usize,
    requests: usize,
    ids: &[String],
) -> Run {
    let creates = ids.is_empty();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = creates.then(|| tokio::spawn(sample_lag(addr, stop.clone())));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(addr, requests, ids.to_vec())))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let seconds = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let lag = match sampler {
        Some(sampler) => Some(sampler.await.expect("lag sampler")),
        None => None,
    };
    latencies.sort_unstable();
    Run {
        what: format!("{what}, {clients} client(s)"),
        creates,
        requests: clients * requests,
        seconds,
        latencies_us: latencies,
        lag,
    }
}

fn number_after(args: &[String], flag: &str, default: usize, least: usize) -> usize {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return default;
    };
    match args.get(i + 1).and_then(|n| n.parse().ok()) {
        Some(n) if n >= least => n,
        _ => {
            eprintln!("error: {flag} takes a number >= {least}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = number_after(&args, "--requests", 1000, 10);
    let raw_ms = number_after(&args, "--raw-ms", 1500, 100);
    let client_counts: Vec<usize> = match args.iter().position(|a| a == "--clients") {
        None => vec![1, 8, 32],
        Some(i) => match args.get(i + 1).map(|list| {
            list.split(',')
                .map(|n| n.parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
        }) {
            Some(Some(counts)) if !counts.is_empty() => counts,
            _ => {
                eprintln!("error: --clients takes a list of counts, as 1,8,32");
                std::process::exit(2);
            }
        },
    };
    // Creates only (to profile them): `--no-reads`.
    let reads = !args.iter().any(|a| a == "--no-reads");
    let data = std::env::temp_dir().join(format!("drcheck-bench-endpoint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    // redb alone first, on the disk the deployment will use, while nothing else runs.
    let raws = raw_redb::baseline(&data.join("raw"), Duration::from_millis(raw_ms as u64));
    let raw8 = raws[1].entries_per_s;

    let bin = std::env::var_os("DRCHECK_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_drcheck").into());
    // Real minutes: no lease or detection timer runs out while the load runs. No request-rate
    // limit: the clients share one address and are meant to run as fast as the endpoint goes.
    let mut serve = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DRCHECK_TOKEN", "bench")
        .arg("--data")
        .arg(data.join("serve"))
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
        let mut runs = Vec::new();
        for &clients in &client_counts {
            if reads {
                runs.push(measure(addr, "read", clients, requests, &ids).await);
            }
            runs.push(measure(addr, "create", clients, requests, &[]).await);
        }
        runs
    });
    let _ = Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status();
    let _ = serve.wait();
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "{:<22} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "requests",
        "count",
        "req/s",
        "p50 µs",
        "p99 µs",
        "÷ redb8",
        "lag max",
        "lag mean",
        "lag ms",
        "catch-up"
    );
    for run in &runs {
        let pct = |p: usize| {
            run.latencies_us[(run.latencies_us.len() * p / 100).min(run.latencies_us.len() - 1)]
        };
        let rate = run.requests as f64 / run.seconds;
        let ratio = if run.creates {
            format!("{:.2}", rate / raw8)
        } else {
            "-".to_string()
        };
        let lag = match &run.lag {
            // Below the sampling interval, the lag in time reads as under it.
            Some(l) => format!(
                "{:>9} {:>9.1} {:>9} {:>7}ms",
                l.max_entries,
                l.mean_entries,
                if l.max_ms == 0 {
                    format!("<{SAMPLE_MS}")
                } else {
                    l.max_ms.to_string()
                },
                l.catch_up_ms
            ),
            None => format!("{:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-"),
        };
        println!(
            "{:<22} {:>9} {:>10.0} {:>9} {:>9} {:>9} {}",
            run.what,
            run.requests,
            rate,
            pct(50),
            pct(99),
            ratio,
            lag
        );
    }
}
