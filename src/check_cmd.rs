//! `drcheck check`: the exhaustive check of the DR model.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use drcheck_model::{check, CheckOptions, Progress, Strategy};

use crate::args::CheckArgs;
use crate::{render, UsageError};

pub fn run(args: &CheckArgs) -> Result<ExitCode> {
    if args.list_bugs {
        print!("{}", render::bug_list());
        return Ok(ExitCode::SUCCESS);
    }
    let params = args.model.params();
    let config = if args.allow_inconsistent {
        params.to_ticks()
    } else {
        params.validate()
    }
    .map_err(|e| UsageError(e.to_string()))?;
    let property = match &args.property {
        Some(name) => Some(
            drcheck_properties::property(name)
                .ok_or_else(|| UsageError(unknown_property(name)))?
                .name,
        ),
        None => None,
    };
    let opts = CheckOptions {
        strategy: if args.bfs {
            Strategy::Bfs
        } else {
            Strategy::Dfs
        },
        threads: args.threads.map_or_else(default_threads, usize::from),
        property,
        timeout: args.timeout.map(Duration::from_secs),
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
    if show_progress {
        eprintln!(
            "\rexplored {} states ({} unique) in {:.1}s            ",
            report.total_states, report.unique_states, report.seconds
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render::report(&report));
    }
    Ok(if report.all_hold() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn unknown_property(name: &str) -> String {
    let names: Vec<&str> = drcheck_properties::CATALOG.iter().map(|p| p.name).collect();
    format!("unknown property '{name}' (known: {})", names.join(", "))
}
