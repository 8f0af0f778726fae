//! Seeded random walks of the model: a path of enabled steps, the same for the same seed.
//! (Our own walker: stateright 0.31's simulation checker reports wrong paths.)

use drcheck_model::protocol::{apply, candidates};
use drcheck_model::walk::random_step;
use drcheck_model::{Action, Config, DrState};

pub use drcheck_model::walk::Rng;

/// Up to `depth` steps from the initial state, each chosen among the enabled ones
/// ([`drcheck_model::walk::random_step`]).
pub fn random_walk(cfg: &Config, seed: u64, depth: usize) -> Vec<Action> {
    let mut rng = Rng::new(seed);
    let mut state = DrState::initial(cfg);
    let mut path = Vec::new();
    let mut scratch = Vec::new();
    for _ in 0..depth {
        let Some((action, next)) = random_step(cfg, &state, &mut rng, &mut scratch) else {
            break;
        };
        path.push(action);
        state = next;
    }
    path
}

/// Every transition of the model reachable within `depth` steps, each as a shortest path
/// from the initial state that ends with it (breadth first, states deduplicated).
pub fn transitions_within(cfg: &Config, depth: usize) -> Vec<Vec<Action>> {
    use std::collections::HashMap;
    let initial = DrState::initial(cfg);
    let mut paths: HashMap<DrState, Vec<Action>> = HashMap::new();
    paths.insert(initial.clone(), Vec::new());
    let mut layer = vec![initial];
    let mut out = Vec::new();
    let mut all = Vec::new();
    for _ in 0..depth {
        let mut next_layer = Vec::new();
        for state in &layer {
            let prefix = paths.get(state).cloned().unwrap_or_default();
            all.clear();
            candidates(cfg, state, &mut all);
            for action in all.drain(..) {
                let Some(next) = apply(cfg, state, &action) else {
                    continue;
                };
                let mut path = prefix.clone();
                path.push(action);
                if !paths.contains_key(&next) {
                    paths.insert(next.clone(), path.clone());
                    next_layer.push(next);
                }
                out.push(path);
            }
        }
        layer = next_layer;
    }
    out
}
