//! `drcheck validate LOG`: is an implementation's event log a behaviour of the model?

use std::process::ExitCode;

use anyhow::Result;
use drcheck_traces::validate::{model_for, parse_log, validate};

use crate::args::ValidateArgs;
use crate::UsageError;

pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let shown = args.log.display();
    let text = std::fs::read_to_string(&args.log)
        .map_err(|e| UsageError(format!("{shown}: cannot read: {e}")))?;
    let records = parse_log(&text).map_err(|e| UsageError(format!("{shown}: {e}")))?;
    let cfg = model_for(&records).map_err(|e| UsageError(format!("{shown}: {e}")))?;
    let v = validate(&cfg, &records);
    let Some(u) = v.unexplained else {
        println!(
            "valid: {} events explained by {} model steps",
            v.events, v.model_steps
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "not valid: event {} of {} ({} at minute {}, from {}) is no model step: {}",
        u.index + 1,
        v.events,
        u.record.event.kind(),
        u.record.at.saturating_sub(records[0].at) / 60_000,
        u.record.node,
        u.step
    );
    if let Some(cause) = drcheck_traces::validate::confirmation_lag(&u) {
        println!("the one known gap: {cause}");
    }
    for (i, state) in u.tried.iter().enumerate() {
        println!("tried from model state {}:\n{state}", i + 1);
    }
    Ok(ExitCode::from(1))
}
