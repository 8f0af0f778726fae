//! A breadth-first exploration split between threads that remembers every state by its parent
//! and the step from it: one pass explores the whole space, decides every property, measures
//! the worst cases, and yields a shortest path to each finding (the first state of the
//! breadth-first order that shows it).
//!
//! The levels are explored one after the other. Within a level the frontier is cut into units
//! that the threads take in turn; each thread visits the states of its unit (properties,
//! metrics) and generates their successors, dropping those seen in earlier levels (the set of
//! fingerprints is only read during a level). A successor new to this level is claimed in a
//! sharded map from fingerprint to the position of its parent in the frontier, and the lowest
//! position wins; once the level is done, each thread keeps the successors it won. The result
//! is the same as a single thread's: every state has the parent, the step and the position it
//! would have had in a sequential breadth-first search (first parent in frontier order, first
//! step in the order of `protocol::candidates`), so the paths do not depend on the number of
//! threads or on their timing.

use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::action::Action;
use crate::check::Progress;
use crate::fingerprint::{fingerprint, FingerprintMap, FingerprintTable};
use crate::model::{DrModel, Metric};
use crate::protocol;
use crate::search::Target;
use crate::state::DrState;

/// States a thread takes from the frontier at a time: enough to make taking them cheap, few
/// enough that the threads finish a level at about the same time.
const UNIT: usize = 256;

/// Shards of the claims on the states new in a level: two threads seldom want the same shard
/// at once.
const SHARDS: usize = 16;

/// Which shard holds fingerprint `fp`: bits the hash tables do not use for themselves (they
/// take the lowest bits for the bucket and the highest seven as a tag).
fn shard(fp: u64) -> usize {
    (fp >> 40) as usize % SHARDS
}

/// What an exploration looks for.
pub struct Goals<'a> {
    /// For each target, the first state that reaches it is remembered (the end of a
    /// shortest path).
    pub targets: &'a [Target],
    /// Measure the worst value of every metric over all states (and where it is first
    /// reached), recording it in the model's probe with whether some state waived the RTO.
    pub measure: bool,
    /// Stop after the level where the last target is first reached (otherwise the whole space
    /// is explored).
    pub stop_when_found: bool,
    /// Explore only the states within this many steps of the initial state (the exploration
    /// is then cut, and says so, if any state lies beyond).
    pub max_steps: Option<usize>,
}

/// A state of the exploration tree, numbered in breadth-first order (the initial state is 0).
type Node = u32;

/// The exploration tree: for every state but the initial one, its parent and the position of
/// the step from it among `protocol::candidates` of the parent.
#[derive(Default)]
struct Tree {
    parents: Vec<Node>,
    steps: Vec<u16>,
}

impl Tree {
    fn len(&self) -> usize {
        self.parents.len()
    }
}

/// What an exploration found.
pub struct Exploration {
    /// Distinct states explored.
    pub unique_states: usize,
    /// States generated, duplicates included (as stateright counts them: the initial state,
    /// then every successor within the boundary).
    pub total_states: usize,
    /// The number of levels: states on the longest of the shortest paths (the initial state
    /// counts as 1, as stateright's depth does).
    pub max_depth: usize,
    /// Per target, the first state (in breadth-first order) that reaches it.
    found: Vec<Option<Node>>,
    /// Per metric of [`Metric::ALL`] (when measured): its worst value and the first state that
    /// has it.
    worst: Vec<Option<(u8, Node)>>,
    tree: Tree,
}

impl Exploration {
    /// Was `targets[i]` reached?
    pub fn reached(&self, i: usize) -> bool {
        self.found.get(i).is_some_and(Option::is_some)
    }

    /// A shortest path to a state that reaches `targets[i]`, if one was found.
    pub fn path_to_target(&self, model: &DrModel, i: usize) -> Option<Vec<Action>> {
        let node = (*self.found.get(i)?)?;
        self.actions_to(model, node)
    }

    /// The worst value of `metric` and a shortest path to a state that has it (when the
    /// exploration measured the metrics and some state has it).
    pub fn worst(&self, model: &DrModel, metric: Metric) -> Option<(u8, Option<Vec<Action>>)> {
        let i = Metric::ALL.iter().position(|&m| m == metric)?;
        let (value, node) = (*self.worst.get(i)?)?;
        Some((value, self.actions_to(model, node)))
    }

    /// The steps from the initial state to `node`, replayed to name them (`None` if the model
    /// did not retrace its own steps, which would be a bug: its steps are deterministic).
    fn actions_to(&self, model: &DrModel, mut node: Node) -> Option<Vec<Action>> {
        let mut steps = Vec::new();
        while node != 0 {
            let i = usize::try_from(node).ok()? - 1;
            steps.push(*self.tree.steps.get(i)?);
            node = *self.tree.parents.get(i)?;
        }
        steps.reverse();
        let mut state = model.initial();
        let mut actions = Vec::with_capacity(steps.len());
        let mut candidates = Vec::new();
        for step in steps {
            candidates.clear();
            protocol::candidates(&model.cfg, &state, &mut candidates);
            let action = candidates.get(usize::from(step))?.clone();
            state = protocol::apply(&model.cfg, &state, &action)?;
            actions.push(action);
        }
        Some(actions)
    }
}

/// What the states of one level showed one thread: per target and per metric, the first
/// position in the frontier (and the value), and whether some state waived the RTO.
struct LevelFindings {
    first: Vec<Option<u32>>,
    worst: Vec<Option<(u8, u32)>>,
    rto_waived: bool,
}

impl LevelFindings {
    fn new(targets: usize) -> LevelFindings {
        LevelFindings {
            first: vec![None; targets],
            worst: vec![None; Metric::ALL.len()],
            rto_waived: false,
        }
    }

    /// Folds in another thread's findings: the earlier position wins, the worse value first.
    fn merge(&mut self, other: LevelFindings) {
        for (mine, theirs) in self.first.iter_mut().zip(other.first) {
            *mine = match (*mine, theirs) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        for (mine, theirs) in self.worst.iter_mut().zip(other.worst) {
            if let Some(theirs) = theirs {
                if is_worse(theirs, *mine) {
                    *mine = Some(theirs);
                }
            }
        }
        self.rto_waived |= other.rto_waived;
    }
}

/// Is `(value, position)` a worse value than `best`, or the same value found earlier?
fn is_worse(candidate: (u8, u32), best: Option<(u8, u32)>) -> bool {
    best.is_none_or(|(value, position)| {
        candidate.0 > value || (candidate.0 == value && candidate.1 < position)
    })
}

/// A successor claimed by a state of the frontier.
struct Successor {
    state: DrState,
    fp: u64,
    /// The position of its parent in the frontier.
    parent: u32,
    /// The step's position among the parent's candidates.
    step: u16,
}

/// The successors one unit of the frontier claimed.
struct Expanded {
    /// The unit's number (units are numbered in frontier order).
    unit: usize,
    successors: Vec<Successor>,
}

/// The shared state of one level.
struct Level<'a> {
    model: &'a DrModel,
    goals: &'a Goals<'a>,
    /// Targets reached in an earlier level: not looked for again.
    done: &'a [bool],
    /// Fingerprints of every state of the earlier levels (read only during a level).
    seen: &'a FingerprintTable,
    /// Fingerprints new in this level, each with the lowest frontier position of a parent.
    claims: &'a [Mutex<FingerprintMap<u32>>],
    /// The units of the frontier, each taken by one thread, and the frontier position of
    /// their first state.
    units: Vec<Mutex<Vec<Successor>>>,
    offsets: Vec<u32>,
    next_unit: AtomicUsize,
    /// States generated so far in the whole exploration (for progress).
    generated: &'a AtomicUsize,
    /// The last level within the step bound: its new successors are not kept, only noted.
    last: bool,
    /// Set when the last level has a successor not seen before (the bound cut the search).
    beyond: AtomicBool,
}

impl Level<'_> {
    /// One thread's share of the level: units until there are none left (or the time budget
    /// has run out). `after_unit` runs after each.
    fn work(&self, after_unit: &mut dyn FnMut()) -> (Vec<Expanded>, LevelFindings) {
        let model = self.model;
        let mut findings = LevelFindings::new(self.goals.targets.len());
        let mut expanded = Vec::new();
        let mut candidates = Vec::new();
        loop {
            let unit = self.next_unit.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.units.get(unit) else {
                break;
            };
            if model.probe.expired() {
                model.probe.mark_cut();
                break;
            }
            let states = std::mem::take(&mut *slot.lock().unwrap_or_else(PoisonError::into_inner));
            let mut successors = Vec::with_capacity(states.len());
            let mut count = 0;
            for (position, Successor { state, .. }) in (self.offsets[unit]..).zip(&states) {
                self.visit(state, position, &mut findings);
                if self.goals.stop_when_found && self.all_found(&findings) {
                    // This level is the last: its successors are not needed.
                    continue;
                }
                candidates.clear();
                protocol::candidates(&model.cfg, state, &mut candidates);
                for (step, action) in candidates.iter().enumerate() {
                    let Some(next) = protocol::apply(&model.cfg, state, action) else {
                        continue;
                    };
                    if !model.admits(&next) {
                        continue;
                    }
                    count += 1;
                    let fp = fingerprint(&next);
                    if self.last {
                        if !self.seen.contains(fp) {
                            self.beyond.store(true, Ordering::Relaxed);
                        }
                        continue;
                    }
                    // Dropped at once if seen: the allocator is quickest with the memory it
                    // has just been given back.
                    if !self.seen.contains(fp) && self.claim(fp, position) {
                        successors.push(Successor {
                            state: next,
                            fp,
                            parent: position,
                            // Fewer than 2^16 candidates per state (they are listed per region).
                            step: u16::try_from(step).unwrap_or(u16::MAX),
                        });
                    }
                }
            }
            // Dropped here, in parallel, rather than with the whole frontier in one thread.
            drop(states);
            self.generated.fetch_add(count, Ordering::Relaxed);
            expanded.push(Expanded { unit, successors });
            after_unit();
        }
        (expanded, findings)
    }

    /// Claims the state with fingerprint `fp`, new in this level, for the parent at frontier
    /// position `parent`: true unless a parent at an earlier position has claimed it.
    fn claim(&self, fp: u64, parent: u32) -> bool {
        let mut claims = self.claims[shard(fp)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match claims.entry(fp) {
            Entry::Vacant(e) => {
                e.insert(parent);
                true
            }
            Entry::Occupied(mut e) if *e.get() > parent => {
                e.insert(parent);
                true
            }
            Entry::Occupied(_) => false,
        }
    }

    /// Looks at one state of the frontier, at `position`.
    fn visit(&self, s: &DrState, position: u32, findings: &mut LevelFindings) {
        let model = self.model;
        for ((target, first), done) in self
            .goals
            .targets
            .iter()
            .zip(&mut findings.first)
            .zip(self.done)
        {
            // Units come in frontier order to each thread: a target it has already seen in
            // this level cannot be seen earlier in it.
            if !done && first.is_none() && target.reached(model, s) {
                *first = Some(position);
            }
        }
        if self.goals.measure {
            for (metric, worst) in Metric::ALL.iter().zip(&mut findings.worst) {
                if let Some(value) = metric.value(s) {
                    if is_worse((value, position), *worst) {
                        *worst = Some((value, position));
                    }
                }
            }
            findings.rto_waived |= s.view.ledger.rto_waived;
        }
    }

    /// Has every target been reached, in an earlier level or by this thread in this one?
    fn all_found(&self, findings: &LevelFindings) -> bool {
        self.done
            .iter()
            .zip(&findings.first)
            .all(|(done, first)| *done || first.is_some())
    }
}

/// Runs `job` on `threads` threads (this one included, which also runs `on_main` after each
/// unit) and returns their results, this thread's first.
fn on_threads<R: Send>(
    threads: usize,
    job: &(dyn Fn(&mut dyn FnMut()) -> R + Sync),
    on_main: &mut dyn FnMut(),
) -> Vec<R> {
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| job(&mut || {})))
            .collect();
        let mut results = vec![job(on_main)];
        for handle in others {
            match handle.join() {
                Ok(result) => results.push(result),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    })
}

/// Runs `job(i)` for every `i` below `count`, spread over `threads` threads.
fn for_each_parallel(threads: usize, count: usize, job: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    on_threads(
        threads.min(count).max(1),
        &|_: &mut dyn FnMut()| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            job(i);
        },
        &mut || {},
    );
}

/// What a depth-first dive visited before it met a state past the epoch bound.
pub struct Dive {
    /// Distinct states visited.
    pub unique_states: usize,
    /// States generated within the boundary, duplicates included.
    pub total_states: usize,
    /// The deepest state visited, counted in states (the initial state is 1).
    pub max_depth: usize,
}

/// Dives depth first from the initial state, through at most `budget` distinct states, for a
/// state past the epoch bound ([`crate::Config::max_epoch`]); the model's probe records it,
/// and the time budget, if the dive meets them. When failovers repeat without bound
/// (inconsistent timing, a bug), a breadth-first exploration meets the bound only after every
/// shallower state, tens of millions of them, where a dive down the latest steps first (as
/// stateright's depth-first search goes) meets it after a few hundred. Returns what it
/// visited if it met the bound.
pub fn dive_to_epoch_bound(model: &DrModel, budget: usize) -> Option<Dive> {
    let initial = model.initial();
    if !model.admits(&initial) {
        return None;
    }
    let mut seen = FingerprintTable::default();
    seen.reserve(budget + 1);
    seen.insert_all([fingerprint(&initial)]);
    let mut dive = Dive {
        unique_states: 1,
        total_states: 1,
        max_depth: 1,
    };
    let mut stack = vec![(initial, 1)];
    let mut candidates = Vec::new();
    while let Some((state, depth)) = stack.pop() {
        dive.max_depth = dive.max_depth.max(depth);
        candidates.clear();
        protocol::candidates(&model.cfg, &state, &mut candidates);
        for action in &candidates {
            let Some(next) = protocol::apply(&model.cfg, &state, action) else {
                continue;
            };
            if !model.admits(&next) {
                if model.probe.epochs_exceeded() {
                    return Some(dive);
                }
                // The time budget ran out: the exploration after the dive stops at once.
                return None;
            }
            dive.total_states += 1;
            if dive.unique_states < budget && seen.insert_all([fingerprint(&next)]) == 1 {
                dive.unique_states += 1;
                stack.push((next, depth + 1));
            }
        }
    }
    None
}

/// Explores the space of `model` breadth first on `threads` threads, looking for `goals`.
/// `progress` is called about once a second. States that `model` does not admit (time budget,
/// epoch bound) are left out, as stateright's `within_boundary` would.
pub fn explore(
    model: &DrModel,
    goals: &Goals,
    threads: usize,
    progress: &mut dyn FnMut(Progress),
) -> Exploration {
    let threads = threads.max(1);
    let started = Instant::now();
    let mut last_progress = started;
    let mut seen = FingerprintTable::default();
    let mut claims: Vec<FingerprintMap<u32>> =
        (0..SHARDS).map(|_| FingerprintMap::default()).collect();
    let mut tree = Tree::default();
    let mut found: Vec<Option<Node>> = vec![None; goals.targets.len()];
    let mut worst: Vec<Option<(u8, Node)>> = vec![None; Metric::ALL.len()];
    let generated = AtomicUsize::new(0);
    let mut levels = 0;

    let initial = model.initial();
    let mut frontier: Vec<Vec<Successor>> = Vec::new();
    if model.admits(&initial) {
        let fp = fingerprint(&initial);
        seen.reserve(1);
        seen.insert_all([fp]);
        generated.fetch_add(1, Ordering::Relaxed);
        frontier.push(vec![Successor {
            state: initial,
            fp,
            parent: 0,
            step: 0,
        }]);
    }
    // The node number of the frontier's first state.
    let mut level_start: usize = 0;
    let mut unique = frontier.len();

    while !frontier.is_empty() {
        levels += 1;
        let done: Vec<bool> = found.iter().map(Option::is_some).collect();
        let (units, offsets) = into_units(frontier);
        let shared_claims: Vec<Mutex<FingerprintMap<u32>>> =
            claims.into_iter().map(Mutex::new).collect();
        let level = Level {
            model,
            goals,
            done: &done,
            seen: &seen,
            claims: &shared_claims,
            units: units.into_iter().map(Mutex::new).collect(),
            offsets,
            next_unit: AtomicUsize::new(0),
            generated: &generated,
            // The frontier holds the states `levels - 1` steps away.
            last: goals.max_steps.is_some_and(|n| levels > n),
            beyond: AtomicBool::new(false),
        };
        let mut report = || {
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                progress(Progress {
                    total_states: generated.load(Ordering::Relaxed),
                    unique_states: unique,
                    max_depth: levels,
                    elapsed: started.elapsed(),
                });
            }
        };
        let results = on_threads(threads, &|after_unit| level.work(after_unit), &mut report);
        let (last_level, beyond) = (level.last, level.beyond.load(Ordering::Relaxed));
        drop(level);
        claims = shared_claims
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
            .collect();

        let mut findings = LevelFindings::new(goals.targets.len());
        let mut expanded = Vec::new();
        for (out, level_findings) in results {
            expanded.extend(out.into_iter().map(Mutex::new));
            findings.merge(level_findings);
        }
        for (found, first) in found.iter_mut().zip(&findings.first) {
            if found.is_none() {
                *found = first.and_then(|p| node(level_start, p));
            }
        }
        for (worst, level_worst) in worst.iter_mut().zip(&findings.worst) {
            if let Some((value, position)) = *level_worst {
                // A later level only counts with a worse value: the first state wins a tie.
                if worst.is_none_or(|(best, _)| value > best) {
                    *worst = node(level_start, position).map(|n| (value, n));
                }
            }
        }
        if findings.rto_waived {
            model.probe.record_rto_waived();
        }

        // Keep the successors whose claim won, and add them to the states seen.
        seen.reserve(claims.iter().map(FingerprintMap::len).sum());
        {
            let (claims, seen) = (&claims, &seen);
            for_each_parallel(threads, expanded.len(), &|i| {
                let mut out = expanded[i].lock().unwrap_or_else(PoisonError::into_inner);
                out.successors
                    .retain(|s| claims[shard(s.fp)].get(&s.fp) == Some(&s.parent));
                seen.insert_all(out.successors.iter().map(|s| s.fp));
            });
        }
        for claims in &mut claims {
            claims.clear();
        }

        // Number the new states in frontier order: the order a single thread would give.
        let mut expanded: Vec<Expanded> = expanded
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
            .collect();
        expanded.sort_unstable_by_key(|out| out.unit);
        let parents_start = level_start;
        level_start = tree.len() + 1;
        for out in &expanded {
            for successor in &out.successors {
                let parent = node(parents_start, successor.parent).unwrap_or(Node::MAX);
                tree.parents.push(parent);
                tree.steps.push(successor.step);
            }
        }
        frontier = expanded.into_iter().map(|out| out.successors).collect();
        frontier.retain(|states| !states.is_empty());
        unique = tree.len() + 1;

        let finished = goals.stop_when_found && found.iter().all(Option::is_some);
        if last_level {
            if beyond {
                model.probe.mark_cut();
            }
            break;
        }
        if finished || model.probe.expired() {
            if !frontier.is_empty() && !finished {
                model.probe.mark_cut();
            }
            break;
        }
        if u32::try_from(unique).is_err() {
            // Node numbers are 32 bits: more states would not fit in memory anyway.
            model.probe.mark_cut();
            break;
        }
    }

    if goals.measure {
        for (i, worst) in worst.iter().enumerate() {
            if let Some((value, _)) = worst {
                model.probe.record_worst(i, *value);
            }
        }
    }
    Exploration {
        unique_states: unique,
        total_states: generated.load(Ordering::Relaxed),
        max_depth: levels,
        found,
        worst,
        tree,
    }
}

/// The node number of the state at `position` in the level that starts at node `level_start`.
fn node(level_start: usize, position: u32) -> Option<Node> {
    Node::try_from(level_start + usize::try_from(position).ok()?).ok()
}

/// Cuts the frontier into units of at most [`UNIT`] states, with the frontier position of
/// each unit's first state.
fn into_units<T>(frontier: Vec<Vec<T>>) -> (Vec<Vec<T>>, Vec<u32>) {
    let mut units = Vec::new();
    let mut offsets = Vec::new();
    let mut offset: usize = 0;
    let mut push = |unit: Vec<T>| {
        offsets.push(u32::try_from(offset).unwrap_or(u32::MAX));
        offset += unit.len();
        units.push(unit);
    };
    for batch in frontier {
        if batch.len() <= UNIT {
            push(batch);
            continue;
        }
        // Each state moves once (splitting off the tail again and again would copy it again).
        let mut states = batch.into_iter().peekable();
        while states.peek().is_some() {
            push(states.by_ref().take(UNIT).collect());
        }
    }
    (units, offsets)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use drcheck_properties::{Bug, Expectation, CATALOG};

    use super::*;
    use crate::config::Params;
    use crate::search::{self, shortest_paths};

    fn model(params: Params) -> DrModel {
        DrModel::new(params.validate().expect("consistent parameters"))
    }

    /// What the reference search finds.
    struct Reference {
        /// Per target, the path to the first state in breadth-first order that reaches it.
        paths: Vec<Option<Vec<Action>>>,
        /// How many distinct states there are.
        unique: usize,
        /// Per metric of [`Metric::ALL`], its worst value.
        worst: Vec<Option<u8>>,
    }

    /// The reference: a plain single-threaded breadth-first search (the one `check` used
    /// before the exploration was split between threads).
    fn sequential(model: &DrModel, targets: &[Target]) -> Reference {
        let mut found: Vec<Option<Vec<Action>>> = vec![None; targets.len()];
        let mut worst: Vec<Option<u8>> = vec![None; Metric::ALL.len()];
        let mut nodes: Vec<(usize, Option<Action>)> = vec![(0, None)];
        let mut seen = HashSet::new();
        let init = model.initial();
        seen.insert(fingerprint(&init));
        let mut frontier = vec![(init, 0)];
        while !frontier.is_empty() {
            let mut next_frontier = Vec::new();
            for (state, node) in frontier {
                for (target, found) in targets.iter().zip(&mut found) {
                    if found.is_none() && target.reached(model, &state) {
                        *found = Some(actions_to(&nodes, node));
                    }
                }
                for (metric, worst) in Metric::ALL.iter().zip(&mut worst) {
                    *worst = (*worst).max(metric.value(&state));
                }
                for (action, succ) in model.successors(&state) {
                    if seen.insert(fingerprint(&succ)) {
                        nodes.push((node, Some(action)));
                        next_frontier.push((succ, nodes.len() - 1));
                    }
                }
            }
            frontier = next_frontier;
        }
        Reference {
            paths: found,
            unique: nodes.len(),
            worst,
        }
    }

    fn actions_to(nodes: &[(usize, Option<Action>)], mut node: usize) -> Vec<Action> {
        let mut actions = Vec::new();
        while let (parent, Some(action)) = &nodes[node] {
            actions.push(action.clone());
            node = *parent;
        }
        actions.reverse();
        actions
    }

    /// Every catalog property as a target, and every metric's worst value.
    fn all_targets(worst: &[Option<u8>]) -> Vec<Target> {
        CATALOG
            .iter()
            .map(Target::Property)
            .chain(
                Metric::ALL
                    .iter()
                    .zip(worst)
                    .filter_map(|(&m, &v)| Some(Target::Metric(m, v?))),
            )
            .collect()
    }

    /// `path` replays from the initial state, and its last state reaches `target`.
    fn assert_reaches(model: &DrModel, path: &[Action], target: &Target) {
        let states = search::replay(model, path).expect("every step is enabled");
        let last = states.last().expect("the initial state at least");
        assert!(target.reached(model, last), "the path ends where it should");
    }

    /// The exploration split between threads finds the same states, the same worst values and
    /// the same paths (not only as short: the same steps) as the plain breadth-first search,
    /// on any number of threads; so does the search for given targets.
    fn assert_same_as_sequential(params: Params) {
        let model = model(params);
        let Reference { unique, worst, .. } = sequential(&model, &[]);
        let targets = all_targets(&worst);
        let expected = sequential(&model, &targets).paths;
        assert!(expected.iter().any(Option::is_some), "something to compare");
        for threads in [1, 2, 3] {
            let goals = Goals {
                targets: &targets,
                measure: true,
                stop_when_found: false,
                max_steps: None,
            };
            let exploration = explore(&model, &goals, threads, &mut |_| {});
            assert_eq!(exploration.unique_states, unique, "{threads} threads");
            for (i, (target, expected)) in targets.iter().zip(&expected).enumerate() {
                let path = exploration.path_to_target(&model, i);
                assert_eq!(&path, expected, "target {i}, {threads} threads");
                assert_eq!(exploration.reached(i), expected.is_some());
                if let Some(path) = &path {
                    assert_reaches(&model, path, target);
                }
            }
            for (&metric, &expected_worst) in Metric::ALL.iter().zip(&worst) {
                let measured = exploration.worst(&model, metric);
                assert_eq!(measured.as_ref().map(|w| w.0), expected_worst);
                if let Some((value, path)) = measured {
                    let path = path.expect("a path to the worst value");
                    let i = targets
                        .iter()
                        .position(
                            |t| matches!(t, Target::Metric(m, v) if *m == metric && *v == value),
                        )
                        .expect("a target per worst value");
                    assert_eq!(Some(&path), expected[i].as_ref(), "{}", metric.name());
                }
            }
            assert_eq!(shortest_paths(&model, &targets, threads), expected);
        }
    }

    #[test]
    fn paths_are_those_of_a_sequential_breadth_first_search() {
        assert_same_as_sequential(Params {
            writes: 1,
            ..Params::default()
        });
    }

    #[test]
    fn counterexamples_are_those_of_a_sequential_breadth_first_search() {
        let params = Params {
            writes: 1,
            bug: Some(Bug::RejoinNoTruncate),
            ..Params::default()
        };
        let violated = |name| {
            let model = model(params.clone());
            let spec = CATALOG.iter().find(|p| p.name == name).expect("a property");
            assert_eq!(spec.expectation(), Expectation::Always);
            sequential(&model, &[Target::Property(spec)]).paths[0].is_some()
        };
        assert!(violated("log_matching") && violated("no_silent_loss"));
        assert_same_as_sequential(params);
    }

    #[test]
    fn a_dive_meets_the_epoch_bound_where_failovers_repeat_without_bound() {
        // Every heartbeat is late (heartbeat + delay >= detection): the control plane fails
        // over again and again.
        let late = Params {
            timing: drcheck_properties::Timing {
                heartbeat: 2,
                delay: 1,
                detection: 3,
                lease: 1,
                skew: 0,
                throttle: 2,
                rpo: 6,
                rto: 8,
                grace: 1,
                sync_timeout: 2,
                ..drcheck_properties::Timing::default()
            },
            writes: 1,
            ..Params::default()
        };
        let cfg = late
            .to_ticks()
            .expect("inconsistent, but valid, parameters");
        let unbounded = DrModel::new(cfg);
        let dive = dive_to_epoch_bound(&unbounded, 10_000).expect("the bound is met");
        assert!(unbounded.probe.epochs_exceeded() && unbounded.probe.cut());
        assert!(dive.unique_states < 10_000);
        // Consistent defaults: failovers are paid for from the budgets.
        let bounded = model(Params::default());
        assert!(dive_to_epoch_bound(&bounded, 10_000).is_none());
        assert!(!bounded.probe.epochs_exceeded() && !bounded.probe.cut());
    }

    #[test]
    fn a_time_out_leaves_the_exploration_incomplete() {
        let model = model(Params {
            writes: 1,
            ..Params::default()
        });
        model.probe.expire();
        let goals = Goals {
            targets: &[],
            measure: true,
            stop_when_found: false,
            max_steps: None,
        };
        let exploration = explore(&model, &goals, 2, &mut |_| {});
        assert!(model.probe.cut());
        assert!(exploration.unique_states < 10);
    }
}
