//! `drcheck validate LOG`: is an implementation's event log a behaviour of the model? `LOG`
//! is one event log (JSON lines) or a `drcheck serve` data directory, whose per-process logs
//! are merged into one run.

use std::process::ExitCode;

use anyhow::Result;
use drcheck_traces::eventlog;
use drcheck_traces::validate::{model_for, validate, Counts, ValidateError};

use crate::args::ValidateArgs;
use crate::UsageError;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub fn run(args: &ValidateArgs) -> Result<ExitCode> {
    let shown = args.log.display();
    let log = eventlog::load(&args.log).map_err(|e| UsageError(e.to_string()))?;
    let records = &log.records;
    let cfg = model_for(records).map_err(|e| {
        let at = match &e {
            ValidateError::OtherStart { index, .. } => format!(" ({})", log.describe(*index)),
            _ => String::new(),
        };
        UsageError(format!("{shown}: {e}{at}"))
    })?;
    let v = validate(&cfg, records);
    let Some(u) = v.unexplained else {
        let c = Counts::of(records);
        println!(
            "valid: {} events explained by {} model steps ({}: {}, {}, {}, {}, {})",
            v.events,
            v.model_steps,
            plural(log.files.len(), "log", "logs"),
            plural(c.writes, "write", "writes"),
            plural(c.failovers, "failover", "failovers"),
            plural(c.switchovers, "switchover", "switchovers"),
            plural(c.faults, "fault", "faults"),
            plural(c.starts, "process start", "process starts"),
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "not valid: event {} of {} ({} at minute {}, from {}; {}) is no model step: {}",
        u.index + 1,
        v.events,
        u.record.event.kind(),
        u.record.at.saturating_sub(records[0].at) / 60_000,
        u.record.node,
        log.describe(u.index),
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
