//! Acknowledged writes per second through one region with replication on, and replication
//! lag, for the deployment's storage and transport combinations, in one run so they compare:
//!
//! - `virtual/memory`: in-memory transport and store, stepped (the protocol's own cost);
//! - `tcp/memory`: real clock, TCP between the nodes, stores in memory (baseline for disk);
//! - `tcp/redb`: the same with a redb store per region (every write durable before its ack).
//!
//! One client writes in a closed loop through the global endpoint. Lag is the number of
//! entries the secondary lacks, sampled every 100 writes, and the time it needs to hold the
//! whole log once the writes stop. redb alone on the same disk (1, 8, 64 entries per commit)
//! goes first: `tcp/redb` is also a fraction of its one-entry commit rate (`÷ redb1`).
//! `cargo bench -p drcheck-impl --bench throughput` (`-- --writes N` to change the count).

#[path = "support/raw_redb.rs"]
mod raw_redb;

use std::time::{Duration, Instant};

use drcheck_impl::deployment::{Deployment, DeploymentConfig, Mode, Storage};

struct Outcome {
    name: &'static str,
    writes: usize,
    seconds: f64,
    p50_us: u128,
    p99_us: u128,
    max_lag: u64,
    mean_lag: f64,
    catch_up_ms: u128,
}

async fn measure(name: &'static str, mode: Mode, storage: Storage, writes: usize) -> Outcome {
    let cfg = DeploymentConfig {
        operator_token: "bench".to_string(),
        storage,
        mode,
        ghost: false,
        ..DeploymentConfig::default()
    };
    let mut d = Deployment::start(cfg).await.expect("deployment starts");
    let payload = r#"{"resourceType":"Patient","name":[{"family":"Bench"}]}"#.to_string();
    let mut latencies = Vec::with_capacity(writes);
    let mut lags = Vec::new();
    let start = Instant::now();
    for n in 0..writes {
        let t = Instant::now();
        let ack = d.write(payload.clone()).await.expect("deployment runs");
        latencies.push(t.elapsed().as_micros());
        let ack = ack.expect("the primary acknowledges");
        if n % 100 == 99 {
            let secondary = d.region_state(1).await.expect("region 1").log.len() as u64;
            lags.push(ack.index + 1 - secondary.min(ack.index + 1));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let caught_up = Instant::now();
    while d.region_state(1).await.expect("region 1").log.len() < writes {
        if caught_up.elapsed() > Duration::from_secs(30) {
            panic!("{name}: the secondary did not catch up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let catch_up_ms = caught_up.elapsed().as_millis();
    d.shutdown().await.expect("shutdown");
    latencies.sort_unstable();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    Outcome {
        name,
        writes,
        seconds,
        p50_us: pct(50),
        p99_us: pct(99),
        max_lag: lags.iter().copied().max().unwrap_or(0),
        mean_lag: lags.iter().sum::<u64>() as f64 / lags.len().max(1) as f64,
        catch_up_ms,
    }
}

fn main() {
    let mut writes = 2000;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--writes") {
        match args.get(i + 1).and_then(|n| n.parse().ok()) {
            Some(n) if n >= 100 => writes = n,
            _ => {
                eprintln!("error: --writes takes a number >= 100");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("drcheck-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let raws = raw_redb::baseline(&dir.join("raw"), Duration::from_millis(1500));
    let raw1 = raws[0].entries_per_s;
    // A protocol minute of a real minute: no lease runs out while the bench runs.
    let real = Mode::Real { minute_ms: 60_000 };
    let outcomes = runtime.block_on(async {
        vec![
            measure("virtual/memory", Mode::Virtual, Storage::Memory, writes).await,
            measure("tcp/memory", real, Storage::Memory, writes).await,
            measure("tcp/redb", real, Storage::Disk(dir.clone()), writes).await,
        ]
    });
    let _ = std::fs::remove_dir_all(&dir);
    let baseline = outcomes[1].writes as f64 / outcomes[1].seconds;
    println!(
        "{:<16} {:>8} {:>10} {:>9} {:>9} {:>8} {:>9} {:>10} {:>9} {:>8}",
        "variant",
        "writes",
        "writes/s",
        "p50 µs",
        "p99 µs",
        "max lag",
        "mean lag",
        "catch-up",
        "vs tcp/mem",
        "÷ redb1"
    );
    for o in &outcomes {
        let rate = o.writes as f64 / o.seconds;
        println!(
            "{:<16} {:>8} {:>10.0} {:>9} {:>9} {:>8} {:>9.1} {:>8}ms {:>9.2}x {:>8.2}",
            o.name,
            o.writes,
            rate,
            o.p50_us,
            o.p99_us,
            o.max_lag,
            o.mean_lag,
            o.catch_up_ms,
            rate / baseline,
            rate / raw1
        );
    }
}
