//! Text rendering of reports: verdicts, timelines, worst cases.

use std::fmt::Write;

use drcheck_model::check::{Report, WorstCase};
use drcheck_model::search::Step;
use drcheck_model::simulate::Simulation;
use drcheck_model::{Action, Bug, Params};
use drcheck_properties::Expectation;

/// `--list-bugs`: each bug with the property that catches it.
pub fn bug_list() -> String {
    let mut out = String::new();
    let width = Bug::ALL.iter().map(|b| b.name().len()).max().unwrap_or(0);
    for bug in Bug::ALL {
        let _ = writeln!(
            out,
            "{:<width$} caught by {:<22} {}",
            bug.name(),
            bug.caught_by(),
            bug.summary()
        );
    }
    out
}

/// The first line of a report: what was checked.
fn header(out: &mut String, what: &str, p: &Params, bug: Option<Bug>) {
    let _ = writeln!(
        out,
        "{what}: {} regions, {} writes, {} outage(s), {} partition(s), {} failback(s); tick {} min{}",
        p.regions,
        p.writes,
        p.outages,
        p.partitions,
        p.failbacks,
        p.tick,
        bug.map(|b| format!(", --bug {b}")).unwrap_or_default()
    );
}

/// The text report of a simulation.
pub fn simulation(r: &Simulation) -> String {
    let mut out = String::new();
    header(&mut out, "drcheck simulate", &r.params, r.bug);
    let _ = writeln!(
        out,
        "NOT EXHAUSTIVE: {} of {} random walks of at most {} steps from seed {}{}",
        r.walks_done,
        r.walks,
        r.depth,
        r.seed,
        if r.timed_out {
            " (the time budget ran out)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{} steps, {} distinct states, {} walk(s) stuck, {:.2}s ({:.0} steps/s){}",
        r.steps,
        r.distinct_states,
        r.stuck_walks,
        r.seconds,
        r.steps_per_sec,
        r.peak_memory_bytes
            .map(|b| format!(", peak memory {} MiB", b / (1024 * 1024)))
            .unwrap_or_default()
    );
    out.push_str("\"not violated\" means: in no state these walks visited\n\n");
    for prop in &r.properties {
        let walk = prop
            .walk
            .map(|w| format!(" (walk {w})"))
            .unwrap_or_default();
        let verdict = match (prop.expectation, prop.holds) {
            (Expectation::Always, true) => "not violated".to_string(),
            (Expectation::Always, false) => format!("VIOLATED{walk}"),
            (Expectation::Sometimes, true) => format!("found{walk}"),
            (Expectation::Sometimes, false) => "not found".to_string(),
        };
        verdict_row(&mut out, prop.name, prop.expectation, &verdict);
    }
    for prop in r.properties.iter().filter(|p| !p.holds) {
        if let (Some(path), Expectation::Always) = (&prop.path, prop.expectation) {
            let _ = writeln!(
                out,
                "\n{} violated in walk {} (seed {}), after {} steps with its loops cut: {}",
                prop.name,
                prop.walk.unwrap_or(0),
                r.seed.wrapping_add(prop.walk.unwrap_or(0)),
                path.len(),
                prop.violation.as_deref().unwrap_or("")
            );
            out.push_str(&timeline(path));
        }
    }
    out
}

/// One row of the verdict table: the property, its kind, the verdict.
fn verdict_row(out: &mut String, name: &str, expectation: Expectation, verdict: &str) {
    let _ = writeln!(
        out,
        "  {:<26} {:<9} {}",
        name,
        expectation_name(expectation),
        verdict
    );
}

fn expectation_name(expectation: Expectation) -> &'static str {
    match expectation {
        Expectation::Always => "always",
        Expectation::Sometimes => "sometimes",
    }
}

/// The full text report.
pub fn report(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, "drcheck", &r.params, r.bug);
    let _ = writeln!(
        out,
        "{} exploration: {} unique states, {} generated, max depth {}, {:.2}s ({:.0} unique/s){}",
        if r.complete { "complete" } else { "INCOMPLETE" },
        r.unique_states,
        r.total_states,
        r.max_depth,
        r.seconds,
        r.states_per_sec,
        r.peak_memory_bytes
            .map(|b| format!(", peak memory {} MiB", b / (1024 * 1024)))
            .unwrap_or_default()
    );
    if !r.complete {
        let why = match (r.depth_bound, r.memory_exceeded) {
            (_, Some(bytes)) => format!(
                "the memory budget ran out at {} MiB (--max-memory): \"holds\" means no \
                 counterexample in the explored part; try --depth N or drcheck simulate",
                bytes / (1024 * 1024)
            ),
            (Some(n), None) if !r.timed_out => format!(
                "bounded by --depth {n}: \"holds\" means no counterexample within {n} steps"
            ),
            _ => "the time budget ran out: \"holds\" means no counterexample in the explored part"
                .to_string(),
        };
        let _ = writeln!(out, "{why}");
    }
    out.push('\n');
    for prop in &r.properties {
        let verdict = match (prop.expectation, prop.holds) {
            (Expectation::Always, true) => "holds",
            (Expectation::Always, false) => "VIOLATED",
            (Expectation::Sometimes, true) => "found",
            (Expectation::Sometimes, false) => "NOT FOUND",
        };
        verdict_row(&mut out, prop.name, prop.expectation, verdict);
    }
    for prop in r.properties.iter().filter(|p| !p.holds) {
        if let (Some(path), Expectation::Always) = (&prop.path, prop.expectation) {
            let _ = writeln!(
                out,
                "\n{} violated after {} steps: {}",
                prop.name,
                path.len(),
                prop.violation.as_deref().unwrap_or("")
            );
            out.push_str(&timeline(path));
        }
    }
    out.push_str("\nworst cases over all reachable states:\n");
    worst(
        &mut out,
        "data loss (automatic failover)",
        &r.worst.data_loss,
        "before the outage",
    );
    worst(
        &mut out,
        "outage to writes",
        &r.worst.outage_to_writes,
        "until the endpoint took writes",
    );
    worst(
        &mut out,
        "data loss (forced failover)",
        &r.worst.forced_data_loss,
        "before the outage",
    );
    for f in &r.worst.unwritable {
        let what = format!("under a single {}", f.fault.name());
        worst(
            &mut out,
            &what,
            &Some(f.worst.clone()),
            "at most without writes",
        );
    }
    for (what, case) in [
        ("worst data loss", &r.worst.data_loss),
        ("worst outage to writes", &r.worst.outage_to_writes),
    ] {
        if let Some(path) = case.as_ref().and_then(|c| c.path.as_ref()) {
            let _ = writeln!(out, "\n{what}, reached after {} steps:", path.len());
            out.push_str(&timeline(path));
        }
    }
    if r.worst.rto_waived {
        out.push_str(
            "  RTO waived: in some reachable states the RPO guard refused automatic failover;\n    availability then waits for the old primary or the operator (rto_bound does not apply)\n",
        );
    }
    out
}

fn worst(out: &mut String, what: &str, case: &Option<WorstCase>, suffix: &str) {
    match case {
        None => {
            let _ = writeln!(out, "  {what}: none reachable");
        }
        Some(c) => {
            let steps = c
                .path
                .as_ref()
                .map(|p| format!(" ({} steps)", p.len()))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  {what}: {}{} min {suffix}{steps}",
                if c.saturated { ">= " } else { "" },
                c.minutes,
            );
        }
    }
}

/// A path as a table; ticks and heartbeats that changed nothing visible are folded into the
/// minute column (the JSON report keeps every step).
pub fn timeline(path: &[Step]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:>5}  {:<14} {:<40} what changed",
        "min", "actor", "action"
    );
    for (i, step) in path.iter().enumerate() {
        let routine = matches!(step.action, Action::Tick | Action::DeliverHeartbeat { .. });
        if routine && step.changes.is_empty() && i + 1 < path.len() {
            continue;
        }
        let changes = if step.changes.is_empty() {
            "-".to_string()
        } else {
            step.changes.join("; ")
        };
        let _ = writeln!(
            out,
            "  {:>5}  {:<14} {:<40} {}",
            step.minute,
            step.actor.to_string(),
            step.action.to_string(),
            changes
        );
    }
    out
}
