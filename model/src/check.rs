//! The exhaustive check. Breadth first ([`Strategy::Bfs`]): our exploration on several threads
//! ([`crate::explore`]) explores the whole state space once, decides every property, measures
//! the worst cases and gives a shortest path to each finding. Depth first
//! ([`Strategy::Dfs`]): stateright's checker explores the whole space (every property, the
//! worst-metric probe), then a breadth-first search finds a shortest path for each finding.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use drcheck_properties::{Check, Expectation, PropertySpec, SingleFault, CATALOG};
use serde::Serialize;
use stateright::{Checker, HasDiscoveries, Model};
use thiserror::Error;

use crate::config::{Config, Params};
use crate::explore::{dive_to_epoch_bound, explore, Goals};
use crate::model::{DrModel, Metric, EXPLORE_ALL};
use crate::search::{self, Step, Target};
use crate::Action;
use drcheck_properties::Bug;

/// How to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Depth first, by stateright's checker; then a second, breadth-first pass for the
    /// shortest paths.
    Dfs,
    /// Breadth first, level by level on every thread, remembering how each state was reached:
    /// one pass, and every path it reports is a shortest one.
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
    /// Breadth first: explore only the states within this many steps (the result is then
    /// incomplete if any state lies beyond).
    pub max_steps: Option<usize>,
    /// Stop once the process holds this many bytes (the result is then incomplete): a search
    /// too large for the machine ends with a report instead of the kernel's OOM killer.
    pub max_memory: Option<u64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            strategy: Strategy::Bfs,
            threads: 1,
            property: None,
            timeout: None,
            max_steps: None,
            max_memory: None,
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
    /// States were put in canonical form (fields no step reads erased) before hashing.
    pub reduced: bool,
    /// Distinct states explored.
    pub unique_states: usize,
    /// States generated, duplicates included.
    pub total_states: usize,
    /// The deepest state reached, counted in states from the initial state (which counts as
    /// 1, as stateright counts): depth first, the deepest point of the search; breadth first,
    /// the longest of the shortest paths.
    pub max_depth: usize,
    /// Wall seconds the exhaustive run took.
    pub seconds: f64,
    /// Distinct states per wall second.
    pub states_per_sec: f64,
    /// Seconds spent finding shortest paths after the exhaustive run (breadth first: only
    /// reading them off the exploration's tree).
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
    /// The exploration was bounded to the states within this many steps (`--depth`).
    pub depth_bound: Option<usize>,
    /// The time budget ran out.
    pub timed_out: bool,
    /// The memory budget ran out: the search stopped at this many bytes (`--max-memory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_exceeded: Option<u64>,
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

impl UnboundedFailovers {
    /// Failovers took the epoch past `bound` with `params`: why, as far as they tell.
    pub fn new(bound: u8, params: &Params) -> UnboundedFailovers {
        let t = &params.timing;
        // The consistency rule `H + D < detection` keeps a healthy region's heartbeat in time;
        // broken, every heartbeat may be late, and every region is declared failed in turn.
        let late = !drcheck_properties::timing::DETECTION.holds(t);
        let why = if late {
            " (heartbeat + delay >= detection makes every heartbeat late)".to_string()
        } else if let Some(bug) = params.bug {
            format!(" (under --bug {bug})")
        } else {
            String::new()
        };
        UnboundedFailovers {
            bound,
            why,
            remedy: if late {
                "consistent parameters or --horizon"
            } else {
                "--horizon"
            },
        }
    }
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
        Some(UnboundedFailovers::new(self.epochs_exceeded?, &self.params))
    }

    /// No explored state violates an `always` property.
    pub fn no_violation(&self) -> bool {
        self.properties
            .iter()
            .all(|p| p.expectation != Expectation::Always || p.holds)
    }

    /// What the check was asked for was shown: every property decided over the whole space,
    /// or, bounded by `--depth` (and not cut by the time budget), no violation within it.
    pub fn passed(&self) -> bool {
        match self.depth_bound {
            Some(_) if !self.timed_out && self.memory_exceeded.is_none() => self.no_violation(),
            _ => self.all_hold(),
        }
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
    let specs: Vec<&'static PropertySpec> = CATALOG
        .iter()
        .filter(|spec| opts.property.is_none_or(|name| name == spec.name))
        .collect();
    if let Some(t) = opts.timeout {
        let probe = probe.clone();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            probe.expire();
        });
    }
    let memory_watch = opts
        .max_memory
        .map(|limit| MemoryWatch::start(limit, probe.clone()));
    let threads = opts.threads.max(1);
    let findings = match opts.strategy {
        Strategy::Dfs => depth_first(model, &specs, threads, &mut progress),
        Strategy::Bfs => breadth_first(&model, &specs, threads, opts.max_steps, &mut progress),
    };
    let memory_exceeded = memory_watch.and_then(MemoryWatch::stop);
    let complete = !probe.cut();

    let path_model = DrModel::new(cfg.clone());
    let timeline = |actions: &[Action]| search::timeline(&path_model, actions).ok();
    let properties = specs
        .iter()
        .zip(&findings.properties)
        .map(|(spec, (found, actions))| {
            let expectation = spec.expectation();
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
                    Expectation::Sometimes => *found,
                },
                violation,
                path: actions.as_deref().and_then(timeline),
            }
        })
        .collect();

    let worst_case = |metric: Metric| -> Option<WorstCase> {
        let value = probe.worst(metric)?;
        let path = findings
            .worst_paths
            .iter()
            .find(|(m, _)| *m == metric)
            .and_then(|(_, actions)| timeline(actions));
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
        threads,
        reduced: cfg.reduce,
        unique_states: findings.unique,
        total_states: findings.total,
        max_depth: findings.depth,
        seconds: findings.elapsed.as_secs_f64(),
        states_per_sec: rate(findings.unique, findings.elapsed),
        path_seconds: findings.path_seconds,
        peak_memory_bytes: peak_memory_bytes(),
        params: cfg.params.clone(),
        bug: cfg.bug(),
        properties,
        worst,
        epochs_exceeded: probe.epochs_exceeded().then(|| cfg.max_epoch()),
        depth_bound: opts.max_steps,
        timed_out: probe.expired() && !probe.epochs_exceeded() && memory_exceeded.is_none(),
        memory_exceeded,
    }
}

/// Stops a search (through its probe) once the process's resident memory passes a limit,
/// read every 100 ms: between two reads a search grows by a few MiB at most.
struct MemoryWatch {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: std::thread::JoinHandle<Option<u64>>,
}

impl MemoryWatch {
    fn start(limit: u64, probe: std::sync::Arc<crate::model::Probe>) -> MemoryWatch {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finished = done.clone();
        let watcher = std::thread::spawn(move || {
            while !finished.load(Ordering::Relaxed) {
                if let Some(rss) = resident_memory_bytes() {
                    if rss >= limit {
                        probe.expire();
                        return Some(rss);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        });
        MemoryWatch { done, watcher }
    }

    /// Ends the watch; the resident size at which it stopped the search, if it did.
    fn stop(self) -> Option<u64> {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        self.watcher.join().ok().flatten()
    }
}

/// This process's resident set size now (Linux `VmRSS`).
pub fn resident_memory_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// A size in kB from `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Three quarters of the machine's memory (Linux `MemTotal`): the default memory budget.
pub fn default_memory_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / 4 * 3)
}

/// What an exploration found, whichever way it explored.
struct Findings {
    unique: usize,
    total: usize,
    depth: usize,
    /// Wall time of the exhaustive exploration.
    elapsed: Duration,
    /// Seconds spent on the paths afterwards.
    path_seconds: f64,
    /// Per property checked, in order: was it discovered (a violation of an `always`
    /// property, an example of a `sometimes` one), and the path to the discovery.
    properties: Vec<(bool, Option<Vec<Action>>)>,
    /// A shortest path to the worst value of each metric of [`metrics_with_paths`] that some
    /// state has (none after a time-out: the worst seen so far is not the worst).
    worst_paths: Vec<(Metric, Vec<Action>)>,
}

/// The metrics whose worst case the report shows with a path (not the forced-failover loss:
/// the grace period makes it deep and it is not bounded by any property).
fn metrics_with_paths() -> impl Iterator<Item = Metric> {
    [Metric::DataLoss, Metric::OutageToWrites]
        .into_iter()
        .chain(SingleFault::ALL.map(Metric::Unwritable))
}

/// How many states the depth-first dive for unbounded failovers visits at most before the
/// breadth-first exploration: a few milliseconds' worth.
const DIVE_BUDGET: usize = 10_000;

/// Our breadth-first exploration on `threads` threads: one pass decides every property and
/// measures the worst cases, and its tree gives a shortest path to each (every property's
/// path is the shortest, a `sometimes` example's too). A depth-first dive goes first: where
/// failovers repeat without bound, it meets the epoch bound at once, and the breadth-first
/// exploration only after tens of millions of states.
fn breadth_first(
    model: &DrModel,
    specs: &[&'static PropertySpec],
    threads: usize,
    max_steps: Option<usize>,
    progress: &mut dyn FnMut(Progress),
) -> Findings {
    let started = Instant::now();
    if let Some(dive) = dive_to_epoch_bound(model, DIVE_BUDGET) {
        // Failovers repeat without bound: the report says so, and nothing else.
        return Findings {
            unique: dive.unique_states,
            total: dive.total_states,
            depth: dive.max_depth,
            elapsed: started.elapsed(),
            path_seconds: 0.0,
            properties: specs.iter().map(|_| (false, None)).collect(),
            worst_paths: Vec::new(),
        };
    }
    let targets: Vec<Target> = specs.iter().map(|&spec| Target::Property(spec)).collect();
    let goals = Goals {
        targets: &targets,
        measure: true,
        stop_when_found: false,
        max_steps,
    };
    let exploration = explore(model, &goals, threads, progress);
    let elapsed = started.elapsed();
    let path_started = Instant::now();
    let properties = (0..specs.len())
        .map(|i| {
            let path = exploration.path_to_target(model, i);
            (exploration.reached(i), path)
        })
        .collect();
    let worst_paths = if model.probe.cut() {
        Vec::new()
    } else {
        metrics_with_paths()
            .filter_map(|m| Some((m, exploration.worst(model, m)?.1?)))
            .collect()
    };
    Findings {
        unique: exploration.unique_states,
        total: exploration.total_states,
        depth: exploration.max_depth,
        elapsed,
        path_seconds: path_started.elapsed().as_secs_f64(),
        properties,
        worst_paths,
    }
}

/// stateright's depth-first search (least memory), then a breadth-first pass that stops once
/// it has a shortest counterexample for every failed `always` property and a shortest path to
/// each worst case. Examples of `sometimes` properties are the checker's own paths (valid, not
/// necessarily shortest). After a time-out the pass would outlast the budget: the checker's
/// counterexamples are reported as they are.
fn depth_first(
    model: DrModel,
    specs: &[&'static PropertySpec],
    threads: usize,
    progress: &mut dyn FnMut(Progress),
) -> Findings {
    let started = Instant::now();
    let probe = model.probe.clone();
    let path_model = DrModel::new(model.cfg.clone());
    // Never finish early: the whole space is explored so that every property is decided
    // (EXPLORE_ALL, never discovered, also keeps states past a violation expanding).
    let checker = model
        .checker()
        .threads(threads)
        .finish_when(HasDiscoveries::AllOf([EXPLORE_ALL].into()))
        .spawn_dfs();
    let Run {
        mut discoveries,
        unique,
        total,
        depth,
    } = drive(checker, started, progress);
    let elapsed = started.elapsed();
    let complete = !probe.cut();

    let failed: Vec<&'static PropertySpec> = specs
        .iter()
        .copied()
        .filter(|spec| complete && spec.expectation() == Expectation::Always)
        .filter(|spec| discoveries.contains_key(spec.name))
        .collect();
    let worst_values: Vec<(Metric, u8)> = metrics_with_paths()
        .filter_map(|m| probe.worst(m).map(|v| (m, v)))
        .filter(|_| complete)
        .collect();
    let targets: Vec<Target> = failed
        .iter()
        .map(|&spec| Target::Property(spec))
        .chain(worst_values.iter().map(|&(m, v)| Target::Metric(m, v)))
        .collect();
    let path_started = Instant::now();
    let mut paths = search::shortest_paths(&path_model, &targets, threads).into_iter();
    for spec in &failed {
        if let Some(Some(actions)) = paths.next() {
            discoveries.insert(spec.name, actions);
        }
    }
    let worst_paths = worst_values
        .iter()
        .zip(paths)
        .filter_map(|(&(metric, _), path)| Some((metric, path?)))
        .collect();
    let path_seconds = path_started.elapsed().as_secs_f64();
    Findings {
        unique,
        total,
        depth,
        elapsed,
        path_seconds,
        properties: specs
            .iter()
            .map(|spec| {
                let path = discoveries.get(spec.name).cloned();
                (path.is_some(), path)
            })
            .collect(),
        worst_paths,
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
    progress: &mut dyn FnMut(Progress),
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
    proc_status_bytes("VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(path: &Option<Vec<Step>>) -> Option<Vec<Action>> {
        path.as_ref()
            .map(|steps| steps.iter().map(|s| s.action.clone()).collect())
    }

    fn assert_same_worst(a: &Option<WorstCase>, b: &Option<WorstCase>, what: &str) {
        assert_eq!(a.is_some(), b.is_some(), "{what}");
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!((a.minutes, a.saturated), (b.minutes, b.saturated), "{what}");
            assert_eq!(steps(&a.path), steps(&b.path), "{what}");
        }
    }

    /// stateright's depth-first search followed by the breadth-first pass for the paths, and
    /// the breadth-first exploration alone, explore the same space and report the same:
    /// verdicts, worst cases, and the same shortest counterexamples and worst-case paths.
    #[test]
    fn both_strategies_report_the_same() {
        for bug in [None, Some(Bug::RejoinNoTruncate)] {
            let cfg = Params {
                writes: 1,
                bug,
                ..Params::default()
            }
            .validate()
            .expect("consistent parameters");
            let run = |strategy| {
                let opts = CheckOptions {
                    strategy,
                    threads: 2,
                    ..CheckOptions::default()
                };
                check(cfg.clone(), &opts, |_| {})
            };
            let (dfs, bfs) = (run(Strategy::Dfs), run(Strategy::Bfs));
            assert!(dfs.complete && bfs.complete);
            assert_eq!(
                (dfs.unique_states, dfs.total_states),
                (bfs.unique_states, bfs.total_states)
            );
            for (d, b) in dfs.properties.iter().zip(&bfs.properties) {
                assert_eq!((d.name, d.holds), (b.name, b.holds));
                assert_eq!(d.violation, b.violation, "{}", d.name);
                if d.expectation == Expectation::Always {
                    assert_eq!(steps(&d.path), steps(&b.path), "{}", d.name);
                } else {
                    // The checker's example is not necessarily the shortest.
                    let len = |p: &PropertyReport| p.path.as_ref().map(Vec::len);
                    assert!(len(b) <= len(d), "{}", d.name);
                }
            }
            if bug.is_some() {
                assert!(bfs.properties.iter().any(|p| !p.holds && p.path.is_some()));
            }
            let (dw, bw) = (&dfs.worst, &bfs.worst);
            assert_eq!(dw.rto_waived, bw.rto_waived);
            assert_same_worst(&dw.data_loss, &bw.data_loss, "data loss");
            assert_same_worst(&dw.outage_to_writes, &bw.outage_to_writes, "outage");
            assert_same_worst(&dw.forced_data_loss, &bw.forced_data_loss, "forced loss");
            assert_eq!(dw.unwritable.len(), bw.unwritable.len());
            for (d, b) in dw.unwritable.iter().zip(&bw.unwritable) {
                assert_eq!(d.fault, b.fault);
                assert_same_worst(&Some(d.worst.clone()), &Some(b.worst.clone()), "unwritable");
            }
        }
    }
}
