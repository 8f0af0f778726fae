//! Shortest paths, found by our own breadth-first search: stateright 0.31.0 overwrites its
//! discoveries with later (longer) paths, so its paths are valid but not minimal.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use drcheck_properties::{describe_changes, Expectation, PropertySpec};
use serde::Serialize;

use crate::action::{Action, Actor};
use crate::model::{DrModel, Metric};
use crate::protocol;
use crate::state::DrState;

/// What a path must reach.
#[derive(Clone, Copy)]
pub enum Target {
    /// A state that violates an `always` property or shows a `sometimes` one.
    Property(&'static PropertySpec),
    /// A state where the metric has this value.
    Metric(Metric, u8),
}

impl Target {
    fn reached(&self, model: &DrModel, s: &DrState) -> bool {
        match *self {
            Target::Property(spec) => {
                let holds = spec.holds_in(&s.view, &model.bounds);
                match spec.expectation() {
                    Expectation::Always => !holds,
                    Expectation::Sometimes => holds,
                }
            }
            Target::Metric(metric, value) => metric.value(s) == Some(value),
        }
    }
}

/// A fast, deterministic hasher (the multiply-rotate scheme of rustc's FxHash): the states
/// are not attacker-controlled, and hashing every successor is a sizeable share of the
/// search's cost (about 15% less time than SipHash on the default model).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn fingerprint(s: &DrState) -> u64 {
    let mut h = FxHasher::default();
    s.hash(&mut h);
    h.finish()
}

/// Fingerprints are already well mixed: use them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 fingerprints are hashed")
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// For each target, the actions of a shortest path from the initial state to a state that
/// reaches it (`None` if no reachable state does).
pub fn shortest_paths(model: &DrModel, targets: &[Target]) -> Vec<Option<Vec<Action>>> {
    let mut found: Vec<Option<Vec<Action>>> = vec![None; targets.len()];
    if targets.is_empty() {
        return found;
    }
    // Node i: (parent node, action that led here); the root has no parent.
    let mut nodes: Vec<(u32, Option<Action>)> = vec![(0, None)];
    let mut seen: HashSet<u64, BuildHasherDefault<Identity>> = HashSet::default();
    let init = model.initial();
    seen.insert(fingerprint(&init));
    let mut frontier = vec![(init, 0u32)];
    let mut remaining = targets.len();
    while !frontier.is_empty() && remaining > 0 {
        let mut next_frontier = Vec::new();
        for (state, node) in frontier {
            for (i, target) in targets.iter().enumerate() {
                if found[i].is_none() && target.reached(model, &state) {
                    found[i] = Some(actions_to(&nodes, node));
                    remaining -= 1;
                }
            }
            if remaining == 0 {
                break;
            }
            for (action, succ) in model.successors(&state) {
                if seen.insert(fingerprint(&succ)) {
                    let id = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
                    nodes.push((node, Some(action)));
                    next_frontier.push((succ, id));
                }
            }
        }
        frontier = next_frontier;
    }
    found
}

fn actions_to(nodes: &[(u32, Option<Action>)], mut node: u32) -> Vec<Action> {
    let mut actions = Vec::new();
    while let (parent, Some(action)) = &nodes[node as usize] {
        actions.push(action.clone());
        node = *parent;
    }
    actions.reverse();
    actions
}

/// One step of a readable timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// Minutes since the start when the step happens.
    pub minute: u32,
    /// Who takes it.
    pub actor: Actor,
    /// The step.
    pub action: Action,
    /// What changed in the abstract view.
    pub changes: Vec<String>,
}

/// Replays `actions` from the initial state. Fails with the index of the first step that is
/// not enabled.
pub fn replay(model: &DrModel, actions: &[Action]) -> Result<Vec<DrState>, usize> {
    let mut states = vec![model.initial()];
    for (i, action) in actions.iter().enumerate() {
        let last = states.last().ok_or(i)?;
        let next = protocol::apply(&model.cfg, last, action).ok_or(i)?;
        states.push(next);
    }
    Ok(states)
}

/// The timeline of a path: minute, actor, action and what changed, ticks folded into the
/// minute column.
pub fn timeline(model: &DrModel, actions: &[Action]) -> Result<Vec<Step>, usize> {
    let states = replay(model, actions)?;
    let mut minute = 0;
    let mut steps = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        if *action == Action::Tick {
            minute += model.cfg.params.tick;
        }
        steps.push(Step {
            minute,
            actor: action.actor(),
            action: action.clone(),
            changes: describe_changes(&states[i].view, &states[i + 1].view),
        });
    }
    Ok(steps)
}
