//! Seeded random walks of the model: a path of enabled steps, the same for the same seed.
//! (Our own walker: stateright 0.31's simulation checker reports wrong paths.)

use drcheck_model::protocol::{apply, candidates};
use drcheck_model::{Action, Config, DrState};

/// A small, fast generator (xorshift64*): enough to pick steps, reproducible from a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed` (any seed, 0 included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Up to `depth` steps from the initial state, each chosen among the enabled ones (a kind
/// of step uniformly, then a step of that kind).
pub fn random_walk(cfg: &Config, seed: u64, depth: usize) -> Vec<Action> {
    let mut rng = Rng::new(seed);
    let mut state = DrState::initial(cfg);
    let mut path = Vec::new();
    let mut all = Vec::new();
    for _ in 0..depth {
        all.clear();
        candidates(cfg, &state, &mut all);
        let mut enabled: Vec<(Action, DrState)> = all
            .drain(..)
            .filter_map(|a| apply(cfg, &state, &a).map(|next| (a, next)))
            .collect();
        if enabled.is_empty() {
            break;
        }
        // A kind of step first, then one of that kind: heartbeats, which are always many,
        // would otherwise crowd out the rare steps (promotions, switchovers) a walk is for.
        let mut kinds: Vec<std::mem::Discriminant<Action>> = enabled
            .iter()
            .map(|(a, _)| std::mem::discriminant(a))
            .collect();
        kinds.dedup();
        kinds.sort_by_key(|k| format!("{k:?}"));
        kinds.dedup();
        let kind = kinds[rng.below(kinds.len())];
        let of_kind: Vec<usize> = (0..enabled.len())
            .filter(|&i| std::mem::discriminant(&enabled[i].0) == kind)
            .collect();
        let (action, next) = enabled.swap_remove(of_kind[rng.below(of_kind.len())]);
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
