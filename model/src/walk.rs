//! Seeded random steps through the model: a generator reproducible from a seed, and the choice
//! of one enabled step (our own walker: stateright 0.31's simulation checker reports wrong
//! paths). `drcheck walk` writes one walk as a trace; `drcheck simulate` judges many.

use crate::action::Action;
use crate::config::Config;
use crate::protocol::{apply, candidates};
use crate::state::DrState;

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

/// One step enabled in `state`, chosen by `rng`, with the state after it (`None` when no step
/// is enabled). A kind of step is chosen uniformly first, then a step of that kind:
/// heartbeats, which are always many, would otherwise crowd out the rare steps (promotions,
/// switchovers) a walk is for. `scratch` is reused between calls.
pub fn random_step(
    cfg: &Config,
    state: &DrState,
    rng: &mut Rng,
    scratch: &mut Vec<Action>,
) -> Option<(Action, DrState)> {
    scratch.clear();
    candidates(cfg, state, scratch);
    let mut enabled: Vec<(Action, DrState)> = scratch
        .drain(..)
        .filter_map(|a| apply(cfg, state, &a).map(|next| (a, next)))
        .collect();
    if enabled.is_empty() {
        return None;
    }
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
    Some(enabled.swap_remove(of_kind[rng.below(of_kind.len())]))
}
