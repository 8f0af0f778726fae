//! Timing sweeps: the exhaustive check, under small budgets, of many timing parameter sets,
//! recording at each which `always` properties fail. The consistency rules
//! (`drcheck_properties::timing::RULES`) are measured against it: a rule is exact for this
//! model when, on the sets swept, it accepts exactly those where every `always` property
//! holds. `model/tests/it/rules.rs` pins each rule's boundary with it and runs a whole sweep
//! (an ignored test; the command is in its documentation).

use std::time::Duration;

use drcheck_properties::{Expectation, Timing};

use crate::check::{check, CheckOptions};
use crate::config::{ConfigError, Params};

/// How many steps of each kind a sweep's check may take (every other budget is zero: no
/// re-applies, control-plane restarts or lost messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Client writes.
    pub writes: u32,
    /// Region outages (crash or isolation).
    pub outages: u32,
    /// Inter-region partitions.
    pub partitions: u32,
    /// Manual data failback requests.
    pub failbacks: u32,
    /// Forced failovers.
    pub forced: u32,
}

impl Budget {
    /// The model's parameters: `timing` (in minutes, one tick each) under this budget, two
    /// regions, outages that may be isolations.
    pub fn params(&self, timing: Timing) -> Params {
        Params {
            tick: 1,
            timing,
            regions: 2,
            writes: self.writes,
            outages: self.outages,
            partitions: self.partitions,
            failbacks: self.failbacks,
            forced: self.forced,
            reapplies: 0,
            cp_restarts: 0,
            losses: 0,
            isolation: true,
            horizon: 0,
            bug: None,
        }
    }
}

/// The budgets a sweep judges every parameter set under. Each check takes a few seconds at
/// small times (a few ticks each; up to a few minutes with two writes and times of a dozen
/// ticks and more); together they reach every boundary of the rules.
pub const SWEEP: [Budget; 2] = [
    // Every kind of step, once, and one write: every boundary but the loss window's.
    Budget {
        writes: 1,
        outages: 1,
        partitions: 1,
        failbacks: 1,
        forced: 1,
    },
    // Two writes (`loss_window` measures how far apart two lost writes were acknowledged);
    // no failback, which loses nothing and would double the space.
    Budget {
        writes: 2,
        outages: 1,
        partitions: 1,
        failbacks: 0,
        forced: 1,
    },
];

/// What one or more checks of a parameter set found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Every check explored its whole space (none stopped at the epoch bound or timed out).
    pub complete: bool,
    /// The `always` properties some check found violated, in catalog order, each once.
    pub broken: Vec<&'static str>,
    /// Distinct states, summed over the checks.
    pub unique_states: usize,
    /// Wall seconds, summed over the checks.
    pub seconds: f64,
}

impl Outcome {
    /// Every check was complete and every `always` property held.
    pub fn holds(&self) -> bool {
        self.complete && self.broken.is_empty()
    }

    /// Did some check find `property` violated?
    pub fn breaks(&self, property: &str) -> bool {
        self.broken.contains(&property)
    }

    fn merge(mut self, other: Outcome) -> Outcome {
        self.complete &= other.complete;
        for p in other.broken {
            if !self.broken.contains(&p) {
                self.broken.push(p);
            }
        }
        let order = |p: &&str| {
            drcheck_properties::CATALOG
                .iter()
                .position(|s| s.name == *p)
        };
        self.broken.sort_by_key(order);
        self.unique_states += other.unique_states;
        self.seconds += other.seconds;
        self
    }
}

/// A check that runs longer than this (wall time) is cut off and counts as incomplete: no
/// sweep point should come near it, even on a busy machine.
pub const TIME_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Checks `params` exhaustively, consistent or not (ranges are still checked), with `threads`
/// checker threads, and records which `always` properties fail.
pub fn run(params: &Params, threads: usize) -> Result<Outcome, ConfigError> {
    let config = params.to_ticks()?;
    let opts = CheckOptions {
        threads,
        timeout: Some(TIME_LIMIT),
        ..CheckOptions::default()
    };
    let report = check(config, &opts, |_| {});
    let broken = report
        .properties
        .iter()
        .filter(|p| p.expectation == Expectation::Always && !p.holds)
        .map(|p| p.name)
        .collect();
    Ok(Outcome {
        complete: report.complete,
        broken,
        unique_states: report.unique_states,
        seconds: report.seconds,
    })
}

/// Checks `timing` (one tick a minute) under every budget of [`SWEEP`].
pub fn judge(timing: Timing, threads: usize) -> Result<Outcome, ConfigError> {
    SWEEP.iter().try_fold(
        Outcome {
            complete: true,
            ..Outcome::default()
        },
        |acc, budget| Ok(acc.merge(run(&budget.params(timing), threads)?)),
    )
}
