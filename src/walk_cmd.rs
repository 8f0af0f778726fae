//! `drcheck walk --seed N`: a seeded random walk of the model, written as a trace file.

use std::process::ExitCode;

use anyhow::Result;
use drcheck_traces::walk::random_walk;
use drcheck_traces::{Finding, TraceFile};

use crate::args::WalkArgs;
use crate::UsageError;

pub fn run(args: &WalkArgs) -> Result<ExitCode> {
    let cfg = args.model.config(false)?;
    let depth = usize::try_from(args.depth).map_err(|e| UsageError(format!("--depth: {e}")))?;
    let path = random_walk(&cfg, args.seed, depth);
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let finding = Finding::Walk { seed: args.seed };
    let file = TraceFile::record(
        &cfg.params,
        false,
        finding,
        &path,
        Some(format!("drcheck {command}")),
    )?;
    std::fs::create_dir_all(&args.trace_out)
        .map_err(|e| UsageError(format!("{}: cannot create: {e}", args.trace_out.display())))?;
    let out = args
        .trace_out
        .join(drcheck_traces::file_name(&cfg.params, &file.finding));
    file.write(&out).map_err(|e| UsageError(e.to_string()))?;
    println!("wrote {} ({} steps)", out.display(), path.len());
    Ok(ExitCode::SUCCESS)
}
