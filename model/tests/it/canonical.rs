//! `canonical::canonicalize` erases only what no step reads: a reachable state with the erased
//! fields set to other values has the same successors, step for step, as the state itself. (The
//! properties judge the view, which canonicalisation never touches.)

use drcheck_model::canonical::canonicalize;
use drcheck_model::{Config, DrModel, DrState, Params};
use drcheck_properties::Role;

/// States along deterministic pseudo-random walks of `cfg`'s model.
fn walk_states(cfg: &Config, walks: u64, depth: usize) -> Vec<DrState> {
    let model = DrModel::new(cfg.clone());
    let mut out = Vec::new();
    for seed in 0..walks {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut s = model.initial();
        for _ in 0..depth {
            let next = model.successors(&s);
            if next.is_empty() {
                break;
            }
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pick = usize::try_from(x >> 33).unwrap_or(0) % next.len();
            s = next[pick].1.clone();
            out.push(s.clone());
        }
    }
    out
}

/// `s` with every field `canonicalize` erases set to something else.
fn perturbed(cfg: &Config, s: &DrState) -> DrState {
    let mut t = s.clone();
    let n = t.view.regions.len();
    for (r, v) in t.volatile[..n].iter_mut().enumerate() {
        if t.view.regions[r].role != Role::Secondary {
            v.heard = 0;
        }
    }
    for h in t.control.reports.iter_mut().flatten() {
        if h.ships() {
            h.len = 9;
        }
    }
    for hb in &mut t.heartbeats {
        if hb.report.ships() {
            hb.report.len = 9;
        }
    }
    let mut back = t.clone();
    canonicalize(cfg, &mut back);
    assert_eq!(&back, s, "canonicalize undoes the perturbation");
    t
}

#[test]
fn erased_fields_change_no_successor() {
    for params in [
        Params::default(),
        Params {
            regions: 3,
            outages: 2,
            writes: 2,
            ..Params::default()
        },
    ] {
        let cfg = params.validate().expect("consistent");
        let model = DrModel::new(cfg.clone());
        let states = walk_states(&cfg, 200, 60);
        assert!(states.len() > 5_000);
        let mut differed = 0;
        for s in &states {
            let t = perturbed(&cfg, s);
            differed += usize::from(&t != s);
            assert_eq!(model.successors(&t), model.successors(s), "from\n{s}");
        }
        // The perturbation is not vacuous.
        assert!(
            differed * 2 > states.len(),
            "only {differed} states perturbed"
        );
    }
}
