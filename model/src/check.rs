//! The exhaustive check: stateright's checker explores the whole state space (every property,
//! the worst-metric probe), then our breadth-first search (on as many threads) finds a shortest
//! path for each finding.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use drcheck_properties::{Check, Expectation, PropertySpec, SingleFault, CATALOG};
use serde::Serialize;
use stateright::{Checker, HasDiscoveries, Model};
use thiserror::Error;

use crate::config::{Config, Params};
use crate::model::{DrModel, Metric, EXPLORE_ALL};
use crate::search::{self, Step, Target};
use crate::Action;
use drcheck_properties::Bug;

/// How to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Depth first.
    Dfs,
    /// Breadth first.
    Bfs,
}

/// Options of one check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The order of exploration.
    pub strategy: Strategy,
    /// How many checker threads explore.
    pub threads: usize,
    /// Check only this property.
    pub property: Option<&'static str>,
    /// Stop after this long (the result is then incomplete).
    pub timeout: Option<Duration>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            strategy: Strategy::Dfs,
            threads: 1,
            property: None,
            timeout: None,
        }
    }
}

/// Progress while the checker runs.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// States generated so far, duplicates included.
    pub total_states: usize,
    /// Distinct states so far.
    pub unique_states: usize,
    /// The deepest state reached so far, in steps from the initial state.
    pub max_depth: usize,
    /// Wall time since the check started.
    pub elapsed: Duration,
}

impl Progress {
    /// Distinct states per second of wall time so far.
    pub fn states_per_sec(&self) -> f64 {
        rate(self.unique_states, self.elapsed)
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// The verdict on one property.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyReport {
    /// The property's stable name (as in `drcheck_properties::CATALOG`).
    pub name: &'static str,
    /// Whether it must hold always or be reached sometimes.
    pub expectation: Expectation,
    /// `always`: no reachable state violates it. `sometimes`: some reachable state shows it.
    pub holds: bool,
    /// The violation found at the end of `path` (for a failed `always` property).
    pub violation: Option<String>,
    /// A shortest path to a counterexample (failed `always`), or an example found by the
    /// checker (`sometimes`; not necessarily the shortest).
    pub path: Option<Vec<Step>>,
}

/// The worst value of a metric and a shortest path that reaches it.
#[derive(Clone, Debug, Serialize)]
pub struct WorstCase {
    /// The worst value, in minutes.
    pub minutes: u32,
    /// True when the value sits at the model's age cap: the real value may be larger.
    pub saturated: bool,
    /// A shortest path to it (none is searched for the forced-failover loss: the grace
    /// period makes it deep and it is not bounded by any property).
    pub path: Option<Vec<Step>>,
}

/// Worst cases over all reachable states.
#[derive(Clone, Debug, Serialize)]
pub struct Worst {
    /// Oldest write lost by an automatic failover, in minutes before the outage began.
    pub data_loss_minutes: Option<u32>,
    /// Longest single-fault primary outage before the endpoint took writes again.
    pub outage_to_writes_minutes: Option<u32>,
    /// Oldest write lost by an operator-forced failover (not bounded by the RPO).
    pub forced_data_loss_minutes: Option<u32>,
    /// Some reachable state has the RPO guard refusing an automatic failover: availability
    /// then waits for the old primary or the operator, and `rto_bound` does not apply.
    pub rto_waived: bool,
    /// The worst loss of an automatic failover with a shortest path to it (`None`: no
    /// automatic failover lost a write).
    pub data_loss: Option<WorstCase>,
    /// The longest single-fault outage of writes with a shortest path to it.
    pub outage_to_writes: Option<WorstCase>,
    /// The worst loss of a forced failover (without a path).
    pub forced_data_loss: Option<WorstCase>,
    /// Per kind of single fault that some reachable state has: the longest spell without
    /// writes under it (what `write_availability` bounds by the RTO), with a shortest path.
    pub unwritable: Vec<FaultWorst>,
}

/// The longest spell without writes under one kind of single fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultWorst {
    /// The kind of fault.
    pub fault: SingleFault,
    /// The longest spell, with a shortest path to it.
    pub worst: WorstCase,
}

/// Everything `drcheck check` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The whole state space was explored.
    pub complete: bool,
    /// The order of exploration.
    pub strategy: Strategy,
    /// How many checker threads explored.
    pub threads: usize,
    /// Distinct states explored.
    pub unique_states: usize,
    /// States generated, duplicates included.
    pub total_states: usize,
    /// The deepest state reached, in steps from the initial state.
    pub max_depth: usize,
    /// Wall seconds the exhaustive run took.
    pub seconds: f64,
    /// Distinct states per wall second.
    pub states_per_sec: f64,
    /// Seconds spent finding shortest paths after the exhaustive run.
    pub path_seconds: f64,
    /// Peak resident memory of the process, in bytes (Linux), if known.
    pub peak_memory_bytes: Option<u64>,
    /// The parameters checked, as the user stated them.
    pub params: Params,
    /// The guard switched off, if any.
    pub bug: Option<Bug>,
    /// The verdict on every property checked, in catalog order.
    pub properties: Vec<PropertyReport>,
    /// Worst data loss and outage over all reachable states.
    pub worst: Worst,
    /// Set when a promotion took the epoch past [`Config::max_epoch`] (the bound given):
    /// failovers repeat without bound, and the exploration stopped there (`complete` is
    /// false). See [`Report::unbounded_failovers`].
    pub epochs_exceeded: Option<u8>,
}

/// Failovers repeat without bound: a promotion took the epoch past the model's bound, and
/// the exploration stopped there. The message says why, as far as the parameters tell.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "epochs passed {bound}, the model's bound: failovers repeat without bound{why}; use {remedy}"
)]
pub struct UnboundedFailovers {
    /// The largest epoch the model admits ([`Config::max_epoch`]).
    pub bound: u8,
    /// What makes them repeat, in parentheses, or nothing when the parameters do not say.
    why: String,
    /// What to do about it.
    remedy: &'static str,
}

impl Report {
    /// The whole space was explored, every `always` property holds and every `sometimes`
    /// property was found.
    pub fn all_hold(&self) -> bool {
        self.complete && self.properties.iter().all(|p| p.holds)
    }

    /// Why the check could not finish, if failovers repeated without bound
    /// ([`Report::epochs_exceeded`]).
    pub fn unbounded_failovers(&self) -> Option<UnboundedFailovers> {
        let bound = self.epochs_exceeded?;
        let t = &self.params.timing;
        // The consistency rule `H + D < detection` keeps a healthy region's heartbeat in time;
        // broken, every heartbeat may be late, and every region is declared failed in turn.
        let late = t.heartbeat.saturating_add(t.delay) >= t.detection;
        let why = if late {
            " (heartbeat + delay >= detection makes every heartbeat late)".to_string()
        } else if let Some(bug) = self.bug {
            format!(" (under --bug {bug})")
        } else {
            String::new()
        };
        Some(UnboundedFailovers {
            bound,
            why,
            remedy: if late {
                "consistent parameters or --horizon"
            } else {
                "--horizon"
            },
        })
    }

    /// The verdict on property `name`, if it was checked.
    pub fn property(&self, name: &str) -> Option<&PropertyReport> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// Runs the exhaustive check. `progress` is called about once a second while it runs.
pub fn check(cfg: Config, opts: &CheckOptions, mut progress: impl FnMut(Progress)) -> Report {
    let mut model = DrModel::new(cfg.clone());
    if let Some(name) = opts.property {
        model = model.only(name);
    }
    let probe = model.probe.clone();
    let specs: Vec<_> = CATALOG
        .iter()
        .filter(|spec| opts.property.is_none_or(|name| name == spec.name))
        .collect();
    let started = Instant::now();
    // Never finish early: the whole space is explored so that every property is decided
    // (EXPLORE_ALL, never discovered, also keeps states past a violation expanding).
    let builder = model
        .checker()
        .threads(opts.threads.max(1))
        .finish_when(HasDiscoveries::AllOf([EXPLORE_ALL].into()));
    if let Some(t) = opts.timeout {
        let probe = probe.clone();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            probe.expire();
        });
    }
    let run = match opts.strategy {
        Strategy::Dfs => drive(builder.spawn_dfs(), started, &mut progress),
        Strategy::Bfs => drive(builder.spawn_bfs(), started, &mut progress),
    };
    let elapsed = started.elapsed();
    let complete = !probe.cut();
    let Run {
        discoveries,
        unique,
        total,
        depth,
    } = run;

    // A shortest counterexample for every failed `always` property and a shortest path to
    // each worst case, in one breadth-first pass. Examples of `sometimes` properties are the
    // checker's own paths (valid, not necessarily shortest). After a time-out the pass would
    // outlast the budget: the checker's counterexamples are reported as they are.
    let path_model = DrModel::new(cfg.clone());
    let failed: Vec<&'static PropertySpec> = if !complete {
        Vec::new()
    } else {
        specs
            .iter()
            .copied()
            .filter(|spec| spec.expectation() == Expectation::Always)
            .filter(|spec| discoveries.contains_key(spec.name))
            .collect()
    };
    let unwritable = SingleFault::ALL.map(Metric::Unwritable);
    let worst_values: Vec<(Metric, u8)> = [Metric::DataLoss, Metric::OutageToWrites]
        .into_iter()
        .chain(unwritable)
        .filter_map(|m| probe.worst(m).map(|v| (m, v)))
        .filter(|_| complete)
        .collect();
    let targets: Vec<Target> = failed
        .iter()
        .map(|&spec| Target::Property(spec))
        .chain(worst_values.iter().map(|&(m, v)| Target::Metric(m, v)))
        .collect();
    let path_started = Instant::now();
    let mut paths = search::shortest_paths(&path_model, &targets, opts.threads.max(1)).into_iter();
    let path_seconds = path_started.elapsed().as_secs_f64();
    let mut counterexamples: HashMap<&str, Vec<Action>> = HashMap::new();
    for spec in &failed {
        if let Some(Some(actions)) = paths.next() {
            counterexamples.insert(spec.name, actions);
        }
    }
    let worst_paths: Vec<Option<Vec<Action>>> = paths.collect();
    let timeline = |actions: &[Action]| search::timeline(&path_model, actions).ok();

    let properties = specs
        .iter()
        .map(|spec| {
            let expectation = spec.expectation();
            let found = discoveries.contains_key(spec.name);
            let actions = match expectation {
                Expectation::Always if complete => counterexamples.get(spec.name),
                _ => discoveries.get(spec.name),
            };
            let violation = match (spec.check, actions) {
                (Check::Always(f), Some(actions)) => search::replay(&path_model, actions)
                    .ok()
                    .and_then(|states| {
                        states
                            .last()
                            .and_then(|s| f(&s.view, &path_model.bounds).err())
                    })
                    .map(|v| v.reason),
                _ => None,
            };
            PropertyReport {
                name: spec.name,
                expectation,
                holds: match expectation {
                    Expectation::Always => !found,
                    Expectation::Sometimes => found,
                },
                violation,
                path: actions.and_then(|a| timeline(a)),
            }
        })
        .collect();

    let worst_case = |metric: Metric| -> Option<WorstCase> {
        let value = probe.worst(metric)?;
        let path = worst_values
            .iter()
            .position(|&(m, _)| m == metric)
            .and_then(|i| worst_paths.get(i).cloned().flatten())
            .and_then(|a| timeline(&a));
        Some(WorstCase {
            minutes: cfg.minutes(u32::from(value)),
            saturated: matches!(metric, Metric::DataLoss | Metric::ForcedDataLoss)
                && value >= cfg.age_cap,
            path,
        })
    };
    let minutes = |m: Metric| probe.worst(m).map(|v| cfg.minutes(u32::from(v)));
    let worst = Worst {
        data_loss_minutes: minutes(Metric::DataLoss),
        outage_to_writes_minutes: minutes(Metric::OutageToWrites),
        forced_data_loss_minutes: minutes(Metric::ForcedDataLoss),
        rto_waived: probe.rto_waived(),
        data_loss: worst_case(Metric::DataLoss),
        outage_to_writes: worst_case(Metric::OutageToWrites),
        forced_data_loss: worst_case(Metric::ForcedDataLoss),
        unwritable: SingleFault::ALL
            .into_iter()
            .filter_map(|fault| {
                let worst = worst_case(Metric::Unwritable(fault))?;
                Some(FaultWorst { fault, worst })
            })
            .collect(),
    };

    Report {
        complete,
        strategy: opts.strategy,
        threads: opts.threads.max(1),
        unique_states: unique,
        total_states: total,
        max_depth: depth,
        seconds: elapsed.as_secs_f64(),
        states_per_sec: rate(unique, elapsed),
        path_seconds,
        peak_memory_bytes: peak_memory_bytes(),
        params: cfg.params.clone(),
        bug: cfg.bug(),
        properties,
        worst,
        epochs_exceeded: probe.epochs_exceeded().then(|| cfg.max_epoch()),
    }
}

/// What the stateright run found.
struct Run {
    discoveries: HashMap<&'static str, Vec<Action>>,
    unique: usize,
    total: usize,
    depth: usize,
}

/// Waits for the checker, reporting progress about once a second.
fn drive(
    checker: impl Checker<DrModel>,
    started: Instant,
    progress: &mut impl FnMut(Progress),
) -> Run {
    let mut last_report = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            progress(Progress {
                total_states: checker.state_count(),
                unique_states: checker.unique_state_count(),
                max_depth: checker.max_depth(),
                elapsed: started.elapsed(),
            });
        }
    }
    let checker = checker.join();
    Run {
        discoveries: checker
            .discoveries()
            .into_iter()
            .map(|(name, path)| (name, path.into_actions()))
            .collect(),
        unique: checker.unique_state_count(),
        total: checker.state_count(),
        depth: checker.max_depth(),
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
