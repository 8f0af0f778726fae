//! Simulation: many seeded random walks of the model, judging every property at every state
//! they visit. For the configurations an exhaustive check cannot finish, it still gives a real
//! answer, with its coverage stated (walks, steps, distinct states): a violation it finds is a
//! real counterexample, and "not violated" means only "not in these walks".
//!
//! Walk `i` of a simulation from seed `s` is the walk `drcheck walk --seed s+i` writes (the same
//! steps, [`crate::walk::random_step`]), so any walk can be written out and replayed alone. The
//! findings are those of the lowest-numbered walk that has them, whatever the number of threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use drcheck_properties::{Bug, Check, Expectation, PropertySpec, CATALOG};
use serde::Serialize;

use crate::action::Action;
use crate::config::{Config, Params};
use crate::fingerprint::{fingerprint, FingerprintSet};
use crate::model::DrModel;
use crate::search::{self, Step};
use crate::state::DrState;
use crate::walk::{random_step, Rng};

/// How to simulate.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// How many walks.
    pub walks: u64,
    /// The most steps a walk takes.
    pub depth: usize,
    /// Walk `i` uses seed `seed + i`.
    pub seed: u64,
    /// Threads that take walks in turn.
    pub threads: usize,
    /// Stop starting walks after this long.
    pub timeout: Option<Duration>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        SimulateOptions {
            walks: 1000,
            depth: 500,
            seed: 0,
            threads: 1,
            timeout: None,
        }
    }
}

/// What the walks showed of one property.
#[derive(Clone, Debug, Serialize)]
pub struct SimulatedProperty {
    /// The property's name (as in `drcheck_properties::CATALOG`).
    pub name: &'static str,
    /// Whether it must hold always or be reached sometimes.
    pub expectation: Expectation,
    /// `always`: no state a walk visited violates it. `sometimes`: some visited state shows it.
    pub holds: bool,
    /// The violation (for a violated `always` property).
    pub violation: Option<String>,
    /// The first walk that violated (`always`) or showed (`sometimes`) it.
    pub walk: Option<u64>,
    /// That walk's steps up to the state that did, with the loops it made cut out.
    pub path: Option<Vec<Step>>,
}

/// What a simulation found, and how much of the space it saw.
#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    /// Always false: a simulation samples the state space, it does not exhaust it.
    pub exhaustive: bool,
    /// The walks asked for.
    pub walks: u64,
    /// The walks taken (fewer when the time ran out).
    pub walks_done: u64,
    /// The most steps a walk takes.
    pub depth: usize,
    /// The first walk's seed.
    pub seed: u64,
    /// Steps taken over all walks.
    pub steps: u64,
    /// Distinct states visited (in canonical form, as `check` counts them).
    pub distinct_states: usize,
    /// Walks that ended before `depth` because no step was enabled.
    pub stuck_walks: u64,
    /// Threads that took walks.
    pub threads: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Steps per wall second.
    pub steps_per_sec: f64,
    /// The time budget ran out before every walk was taken.
    pub timed_out: bool,
    /// Peak resident memory of the process, in bytes (Linux), if known.
    pub peak_memory_bytes: Option<u64>,
    /// The parameters simulated, as the user stated them.
    pub params: Params,
    /// The guard switched off, if any.
    pub bug: Option<Bug>,
    /// Every property, in catalog order.
    pub properties: Vec<SimulatedProperty>,
    /// Set when a walk took the epoch past the model's bound (failovers repeat without
    /// bound): that walk stopped there.
    pub epochs_exceeded: Option<u8>,
}

impl Simulation {
    /// Why the walks stopped short, if failovers repeated without bound
    /// ([`Simulation::epochs_exceeded`]).
    pub fn unbounded_failovers(&self) -> Option<crate::check::UnboundedFailovers> {
        Some(crate::check::UnboundedFailovers::new(
            self.epochs_exceeded?,
            &self.params,
        ))
    }

    /// No walk violated an `always` property.
    pub fn no_violation(&self) -> bool {
        self.properties
            .iter()
            .all(|p| p.expectation != Expectation::Always || p.holds)
    }
}

/// Progress while a simulation runs.
#[derive(Clone, Copy, Debug)]
pub struct SimulationProgress {
    /// Walks finished.
    pub walks: u64,
    /// Steps taken.
    pub steps: u64,
    /// Distinct states visited.
    pub distinct_states: usize,
    /// Time since the start.
    pub elapsed: Duration,
}

/// Shards of the set of visited fingerprints: threads seldom want the same one at once.
const SHARDS: usize = 16;

/// The first finding of each property: the lowest walk, and how many steps into it (the
/// steps themselves are taken again for the winners only, at the end: see [`replay_walk`]).
type Firsts = Vec<Option<(u64, usize)>>;

/// What the walks share while they run.
struct Shared<'a> {
    model: &'a DrModel,
    opts: &'a SimulateOptions,
    next_walk: AtomicU64,
    walks_done: AtomicU64,
    steps: AtomicU64,
    stuck: AtomicU64,
    distinct: AtomicUsize,
    visited: Vec<Mutex<FingerprintSet>>,
    firsts: Mutex<Firsts>,
    deadline: Option<Instant>,
}

impl Shared<'_> {
    /// Counts `fp` as visited; true if it was new.
    fn visit(&self, fp: u64) -> bool {
        let shard = (fp >> 40) as usize % SHARDS;
        let new = self.visited[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(fp);
        if new {
            self.distinct.fetch_add(1, Ordering::Relaxed);
        }
        new
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d) || self.model.probe.expired()
    }

    /// Takes walks until none is left or the time is up.
    fn work(&self, after_walk: &mut dyn FnMut()) {
        let mut scratch = Vec::new();
        loop {
            if self.out_of_time() {
                return;
            }
            let walk = self.next_walk.fetch_add(1, Ordering::Relaxed);
            if walk >= self.opts.walks {
                return;
            }
            // A walk that a finished walk with a lower number has beaten on every property
            // would still count its states: it is taken all the same.
            self.walk(walk, &mut scratch);
            self.walks_done.fetch_add(1, Ordering::Relaxed);
            after_walk();
        }
    }

    /// Walk number `walk`: judges every property at every state, and records what it finds
    /// first if no lower walk found it.
    fn walk(&self, walk: u64, scratch: &mut Vec<Action>) {
        let model = self.model;
        let mut rng = Rng::new(self.opts.seed.wrapping_add(walk));
        let mut state = model.initial();
        let mut mine: Firsts = vec![None; CATALOG.len()];
        self.visit(fingerprint(&state));
        self.judge(&state, walk, 0, &mut mine);
        let mut steps = 0;
        for _ in 0..self.opts.depth {
            let Some((_, next)) = random_step(&model.cfg, &state, &mut rng, scratch) else {
                self.stuck.fetch_add(1, Ordering::Relaxed);
                break;
            };
            if !model.admits(&next) {
                break;
            }
            steps += 1;
            state = next;
            self.visit(fingerprint(&state));
            self.judge(&state, walk, steps, &mut mine);
        }
        self.steps
            .fetch_add(u64::try_from(steps).unwrap_or(u64::MAX), Ordering::Relaxed);
        let mut firsts = self.firsts.lock().unwrap_or_else(PoisonError::into_inner);
        for (first, found) in firsts.iter_mut().zip(mine) {
            if let Some(found) = found {
                if first.as_ref().is_none_or(|(w, _)| found.0 < *w) {
                    *first = Some(found);
                }
            }
        }
    }

    /// Records, per property this walk has not shown yet, whether `state` shows it.
    fn judge(&self, state: &DrState, walk: u64, steps: usize, mine: &mut Firsts) {
        for (spec, found) in CATALOG.iter().zip(mine.iter_mut()) {
            if found.is_none() && shows(self.model, spec, state) {
                *found = Some((walk, steps));
            }
        }
    }
}

/// Does `state` violate `spec` (an `always` property) or show it (a `sometimes` one)?
fn shows(model: &DrModel, spec: &PropertySpec, state: &DrState) -> bool {
    let holds = spec.holds_in(&state.view, &model.bounds);
    match spec.expectation() {
        Expectation::Always => !holds,
        Expectation::Sometimes => holds,
    }
}

/// The first `steps` steps of walk number `walk` from `seed`, taken again.
fn replay_walk(cfg: &Config, seed: u64, walk: u64, steps: usize) -> Vec<Action> {
    let mut rng = Rng::new(seed.wrapping_add(walk));
    let mut state = DrState::initial(cfg);
    let mut scratch = Vec::new();
    let mut path = Vec::with_capacity(steps);
    for _ in 0..steps {
        let Some((action, next)) = random_step(cfg, &state, &mut rng, &mut scratch) else {
            break;
        };
        path.push(action);
        state = next;
    }
    path
}

/// `path` without the loops it makes: where a state recurs, the steps between its visits are
/// cut, so the path leads to the same state along the same kinds of steps, only shorter.
fn cut_loops(cfg: &Config, path: &[Action]) -> Vec<Action> {
    let mut state = DrState::initial(cfg);
    let mut at: HashMap<u64, usize> = HashMap::new();
    at.insert(fingerprint(&state), 0);
    let mut out: Vec<Action> = Vec::new();
    for action in path {
        let Some(next) = crate::protocol::apply(cfg, &state, action) else {
            // Not a path of the model: keep it whole (the report replays it and says so).
            return path.to_vec();
        };
        state = next;
        out.push(action.clone());
        let fp = fingerprint(&state);
        match at.get(&fp) {
            Some(&len) => {
                out.truncate(len);
                at.retain(|_, &mut i| i <= len);
            }
            None => {
                at.insert(fp, out.len());
            }
        }
    }
    out
}

/// Runs the walks of `opts` on `cfg`. `progress` is called about once a second.
pub fn simulate(
    cfg: Config,
    opts: &SimulateOptions,
    mut progress: impl FnMut(SimulationProgress),
) -> Simulation {
    let model = DrModel::new(cfg.clone());
    let started = Instant::now();
    let threads = opts.threads.max(1);
    let shared = Shared {
        model: &model,
        opts,
        next_walk: AtomicU64::new(0),
        walks_done: AtomicU64::new(0),
        steps: AtomicU64::new(0),
        stuck: AtomicU64::new(0),
        distinct: AtomicUsize::new(0),
        visited: (0..SHARDS)
            .map(|_| Mutex::new(FingerprintSet::default()))
            .collect(),
        firsts: Mutex::new(vec![None; CATALOG.len()]),
        deadline: opts.timeout.map(|t| started + t),
    };
    let mut last_progress = started;
    let mut report = || {
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            progress(SimulationProgress {
                walks: shared.walks_done.load(Ordering::Relaxed),
                steps: shared.steps.load(Ordering::Relaxed),
                distinct_states: shared.distinct.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
            });
        }
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| shared.work(&mut || {})))
            .collect();
        shared.work(&mut report);
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let walks_done = shared.walks_done.load(Ordering::Relaxed);
    let steps = shared.steps.load(Ordering::Relaxed);
    let firsts: Vec<Option<(u64, Vec<Action>)>> = shared
        .firsts
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .map(|first| {
            first.map(|(walk, steps)| {
                let path = replay_walk(&cfg, opts.seed, walk, steps);
                (walk, cut_loops(&cfg, &path))
            })
        })
        .collect();
    let timeline = |actions: &[Action]| search::timeline(&model, actions).ok();
    let properties = CATALOG
        .iter()
        .zip(firsts)
        .map(|(spec, first)| {
            let expectation = spec.expectation();
            let violation = match (spec.check, &first) {
                (Check::Always(f), Some((_, actions))) => search::replay(&model, actions)
                    .ok()
                    .and_then(|states| states.last().and_then(|s| f(&s.view, &model.bounds).err()))
                    .map(|v| v.reason),
                _ => None,
            };
            SimulatedProperty {
                name: spec.name,
                expectation,
                holds: match expectation {
                    Expectation::Always => first.is_none(),
                    Expectation::Sometimes => first.is_some(),
                },
                violation,
                walk: first.as_ref().map(|(w, _)| *w),
                path: first.as_ref().and_then(|(_, actions)| timeline(actions)),
            }
        })
        .collect();
    Simulation {
        exhaustive: false,
        walks: opts.walks,
        walks_done,
        depth: opts.depth,
        seed: opts.seed,
        steps,
        distinct_states: shared.distinct.load(Ordering::Relaxed),
        stuck_walks: shared.stuck.load(Ordering::Relaxed),
        threads,
        seconds,
        steps_per_sec: if seconds > 0.0 {
            steps as f64 / seconds
        } else {
            0.0
        },
        timed_out: walks_done < opts.walks,
        peak_memory_bytes: crate::check::peak_memory_bytes(),
        params: cfg.params.clone(),
        bug: cfg.params.bug,
        properties,
        epochs_exceeded: model.probe.epochs_exceeded().then_some(model.max_epoch),
    }
}
