//! `drcheck simulate`: every property judged along many seeded random walks of the model.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use drcheck_model::simulate::{simulate, SimulateOptions, SimulationProgress};
use drcheck_properties::Expectation;
use drcheck_traces::Finding;

use crate::args::SimulateArgs;
use crate::check_cmd::{command_line, default_threads, exit_code, print_report, write_trace};
use crate::{render, UsageError};

pub fn run(args: &SimulateArgs) -> Result<ExitCode> {
    let config = args.model.config(args.allow_inconsistent)?;
    let opts = SimulateOptions {
        walks: args.walks,
        depth: usize::try_from(args.depth).map_err(|e| UsageError(format!("--depth: {e}")))?,
        seed: args.seed,
        threads: args.threads.map_or_else(default_threads, usize::from),
        timeout: args.timeout.map(Duration::from_secs),
    };
    let show_progress = !args.quiet;
    let report = simulate(config, &opts, |p: SimulationProgress| {
        if show_progress {
            eprint!(
                "\r{} walks, {} steps, {} distinct states, {:.0}s   ",
                p.walks,
                p.steps,
                p.distinct_states,
                p.elapsed.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    });
    if show_progress {
        eprintln!(
            "\rsimulated {} walks ({} steps) in {:.1}s            ",
            report.walks_done, report.steps, report.seconds
        );
    }
    if let Some(unbounded) = report.unbounded_failovers() {
        return Err(UsageError(unbounded.to_string()).into());
    }
    if let Some(dir) = &args.trace_out {
        std::fs::create_dir_all(dir)
            .map_err(|e| UsageError(format!("cannot create {}: {e}", dir.display())))?;
        let command = command_line();
        for p in report.properties.iter().filter(|p| !p.holds) {
            let (Expectation::Always, Some(path)) = (p.expectation, &p.path) else {
                continue;
            };
            let finding = Finding::Counterexample {
                property: p.name.to_string(),
            };
            let actions: Vec<_> = path.iter().map(|s| s.action.clone()).collect();
            let out = write_trace(
                dir,
                &report.params,
                args.allow_inconsistent,
                finding,
                &actions,
                &command,
            )?;
            eprintln!("wrote {}", out.display());
        }
    }
    print_report(args.json, &report, render::simulation)?;
    Ok(exit_code(report.no_violation()))
}
