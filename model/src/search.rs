//! Shortest paths, found by our own breadth-first search: stateright 0.31.0 overwrites its
//! discoveries with later (longer) paths, so its paths are valid but not minimal.

use drcheck_properties::{describe_changes, Expectation, PropertySpec};
use serde::Serialize;

use crate::action::{Action, Actor};
use crate::explore::{explore, Goals};
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
    /// Does `s` reach the target?
    pub fn reached(&self, model: &DrModel, s: &DrState) -> bool {
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

/// For each target, the actions of a shortest path from the initial state to a state that
/// reaches it (`None` if no reachable state does), found by a breadth-first search on
/// `threads` threads that stops at the level where the last target is first reached. The
/// paths are those a single thread would find: the first in breadth-first order.
pub fn shortest_paths(
    model: &DrModel,
    targets: &[Target],
    threads: usize,
) -> Vec<Option<Vec<Action>>> {
    if targets.is_empty() {
        return Vec::new();
    }
    let goals = Goals {
        targets,
        measure: false,
        stop_when_found: true,
        max_steps: None,
    };
    let exploration = explore(model, &goals, threads, &mut |_| {});
    (0..targets.len())
        .map(|i| exploration.path_to_target(model, i))
        .collect()
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
