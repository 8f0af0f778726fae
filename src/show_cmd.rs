//! `drcheck show FILE`: a trace file's timeline, after replaying it through the model.

use std::process::ExitCode;

use anyhow::Result;
use drcheck_model::search;

use crate::args::ShowArgs;
use crate::{render, UsageError};

pub fn run(args: &ShowArgs) -> Result<ExitCode> {
    let trace = drcheck_traces::load(&args.file).map_err(|e| UsageError(e.to_string()))?;
    let file = &trace.file;
    let p = &file.params;
    println!(
        "{}: {} in {} steps ({} regions, {} writes, tick {} min{})",
        args.file.display(),
        file.finding,
        file.steps.len(),
        p.regions,
        p.writes,
        p.tick,
        p.bug.map(|b| format!(", --bug {b}")).unwrap_or_default()
    );
    if let Some(command) = &file.command {
        println!("written by: {command}");
    }
    let steps = search::timeline(&trace.model, &trace.actions())
        .map_err(|step| UsageError(format!("step {} does not replay", step + 1)))?;
    print!("{}", render::timeline(&steps));
    if let Some(violation) = trace.violation() {
        println!("{violation}");
    }
    Ok(ExitCode::SUCCESS)
}
