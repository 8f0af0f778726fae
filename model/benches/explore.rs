//! Throughput of the exhaustive check on the default model: DFS on one thread is the
//! baseline; DFS on two threads and BFS on two threads are measured against it in the same
//! run (the machines are shared and noisy: compare ratios, not absolute numbers).
//!
//! `cargo bench -p drcheck-model --bench explore` (add `-- --quick` for a smaller model).

use drcheck_model::{check, CheckOptions, Params, Strategy};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let params = if quick {
        Params {
            writes: 1,
            ..Params::default()
        }
    } else {
        Params::default()
    };
    let config = params.validate().expect("consistent defaults");
    let runs = [
        ("dfs, 1 thread (baseline)", Strategy::Dfs, 1),
        ("dfs, 2 threads", Strategy::Dfs, 2),
        ("bfs, 2 threads", Strategy::Bfs, 2),
    ];
    let mut baseline = None;
    println!(
        "{:<26} {:>12} {:>12} {:>8} {:>14} {:>8} {:>10}",
        "run", "unique", "generated", "secs", "unique/s", "vs base", "paths s"
    );
    for (name, strategy, threads) in runs {
        let opts = CheckOptions {
            strategy,
            threads,
            ..CheckOptions::default()
        };
        let report = check(config.clone(), &opts, |_| {});
        assert!(
            report.complete && report.all_hold(),
            "the default model holds"
        );
        let rate = report.states_per_sec;
        let base = *baseline.get_or_insert(rate);
        println!(
            "{:<26} {:>12} {:>12} {:>8.2} {:>14.0} {:>7.2}x {:>10.2}",
            name,
            report.unique_states,
            report.total_states,
            report.seconds,
            rate,
            rate / base,
            report.path_seconds
        );
    }
    if let Some(bytes) = drcheck_model::check::peak_memory_bytes() {
        println!(
            "peak memory of the whole run: {} MiB",
            bytes / (1024 * 1024)
        );
    }
}
