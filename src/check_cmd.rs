//! `drcheck check`: the exhaustive check of the DR model.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use drcheck_model::{check, CheckOptions, Metric, Progress, Strategy};
use drcheck_properties::Expectation;
use drcheck_traces::{Finding, TraceFile};

use crate::args::CheckArgs;
use crate::{render, UsageError};

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    if args.list_bugs {
        print!("{}", render::bug_list());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = args.model.config(args.allow_inconsistent)?;
    config.reduce = !args.no_reduce;
    let property = match &args.property {
        Some(name) => Some(
            drcheck_properties::property(name)
                .ok_or_else(|| UsageError(unknown_property(name)))?
                .name,
        ),
        None => None,
    };
    let opts = CheckOptions {
        strategy: if args.dfs {
            Strategy::Dfs
        } else {
            Strategy::Bfs
        },
        threads: args.threads.map_or_else(default_threads, usize::from),
        property,
        timeout: args.timeout.map(Duration::from_secs),
        max_steps: args.depth,
        max_memory: match args.max_memory {
            Some(0) => None,
            Some(mib) => Some(mib.saturating_mul(1024 * 1024)),
            None => drcheck_model::check::default_memory_limit(),
        },
    };
    let show_progress = !args.quiet;
    let report = check(config, &opts, |p: Progress| {
        if show_progress {
            eprint!(
                "\r{} states, {} unique, {:.0} unique/s, depth {}   ",
                p.total_states,
                p.unique_states,
                p.states_per_sec(),
                p.max_depth
            );
            let _ = std::io::stderr().flush();
        }
    });
    if let Some(unbounded) = report.unbounded_failovers() {
        // No report: a state space cut off where the epochs ran out proves nothing, and a
        // report would look like a (failed) verdict.
        if show_progress {
            eprintln!();
        }
        return Err(UsageError(unbounded.to_string()).into());
    }
    if show_progress {
        eprintln!(
            "\rexplored {} states ({} unique) in {:.1}s            ",
            report.total_states, report.unique_states, report.seconds
        );
    }
    if let Some(dir) = &args.trace_out {
        for path in write_traces(dir, args, &report)? {
            eprintln!("wrote {}", path.display());
        }
    }
    print_report(args.json, &report, render::report)?;
    Ok(exit_code(report.passed()))
}

/// Prints `report` as JSON or as `text` renders it.
pub fn print_report<R: serde::Serialize>(
    json: bool,
    report: &R,
    text: impl Fn(&R) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", text(report));
    }
    Ok(())
}

/// Exit 0 when the run showed what it was asked to, 1 otherwise.
pub fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Records `actions` as a trace file of `finding` in `dir` (named after the parameters and the
/// finding), written by `command`; returns its path.
pub fn write_trace(
    dir: &std::path::Path,
    params: &drcheck_model::Params,
    allow_inconsistent: bool,
    finding: Finding,
    actions: &[drcheck_model::Action],
    command: &str,
) -> Result<std::path::PathBuf> {
    let file = TraceFile::record(
        params,
        allow_inconsistent,
        finding,
        actions,
        Some(command.to_string()),
    )?;
    let out = dir.join(drcheck_traces::file_name(params, &file.finding));
    file.write(&out)?;
    Ok(out)
}

/// How this run was asked for, as a trace file records it.
pub fn command_line() -> String {
    let args = std::env::args()
        .skip(1)
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    format!("drcheck {args}")
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn unknown_property(name: &str) -> String {
    let names: Vec<&str> = drcheck_properties::CATALOG.iter().map(|p| p.name).collect();
    format!("unknown property '{name}' (known: {})", names.join(", "))
}

/// Writes one trace file per failed `always` property and per worst case with a path.
fn write_traces(
    dir: &std::path::Path,
    args: &CheckArgs,
    report: &drcheck_model::Report,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
    let mut findings = Vec::new();
    for p in &report.properties {
        if let (false, Expectation::Always, Some(path)) = (p.holds, p.expectation, &p.path) {
            let finding = Finding::Counterexample {
                property: p.name.to_string(),
            };
            findings.push((finding, path));
        }
    }
    for (metric, case) in [
        (Metric::DataLoss, &report.worst.data_loss),
        (Metric::OutageToWrites, &report.worst.outage_to_writes),
    ] {
        if let Some(case) = case {
            if let Some(path) = &case.path {
                let finding = Finding::Worst {
                    metric: metric.name().to_string(),
                    minutes: case.minutes,
                };
                findings.push((finding, path));
            }
        }
    }
    let command = command_line();
    let mut written = Vec::new();
    for (finding, path) in findings {
        let actions: Vec<_> = path.iter().map(|s| s.action.clone()).collect();
        written.push(write_trace(
            dir,
            &report.params,
            args.allow_inconsistent,
            finding,
            &actions,
            &command,
        )?);
    }
    Ok(written)
}
