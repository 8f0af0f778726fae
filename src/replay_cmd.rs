//! `drcheck replay FILE`: a model path replayed on the implementation, step by step.

use std::process::ExitCode;

use anyhow::{Context, Result};
use drcheck_impl::protocol::mutant::Mutants;
use drcheck_traces::refine::{self, RefineError};

use crate::args::ShowArgs;
use crate::UsageError;

pub fn run(args: &ShowArgs) -> Result<ExitCode> {
    let trace = drcheck_traces::load(&args.file).map_err(|e| UsageError(e.to_string()))?;
    let actions = trace.actions();
    println!(
        "{}: {} steps of the model ({}) on the implementation (virtual clock, messages held, \
         control plane stepped)",
        args.file.display(),
        actions.len(),
        trace.file.finding
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let replay = match runtime.block_on(refine::replay(
        &trace.model.cfg,
        &actions,
        Mutants::default(),
    )) {
        Ok(r) => r,
        Err(e @ (RefineError::Tick(_) | RefineError::NotInModel { .. })) => {
            return Err(UsageError(e.to_string()).into())
        }
        Err(e) => return Err(e.into()),
    };
    let Some(d) = replay.divergence else {
        println!(
            "followed all {} steps: the implementation's view equals the model's after every one \
             ({} distinct transitions)",
            replay.matched,
            replay.coverage.transitions.len()
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!("followed {} steps, then:", replay.matched);
    print!("{d}");
    if let Some(bug) = trace.model.cfg.params.bug {
        println!(
            "(a counterexample of --bug {bug}: the correct implementation is not expected to follow it)"
        );
    }
    let json = |v| serde_json::to_string_pretty(v).unwrap_or_default();
    println!("model view:\n{}", json(&d.model));
    println!("implementation view:\n{}", json(&d.implementation));
    Ok(ExitCode::from(1))
}
