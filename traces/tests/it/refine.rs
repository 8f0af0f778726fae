//! Model paths replayed on the implementation (`drcheck_traces::refine`): random walks of
//! the model, and every bug's counterexample on the correct implementation and on the
//! mutant named as the bug.

use std::path::Path;
use std::time::Instant;

use drcheck_impl::protocol::mutant::Mutants;
use drcheck_model::{Action, Params};
use drcheck_traces::refine::{replay, Coverage, DivergenceKind};
use drcheck_traces::walk::random_walk;

/// Each with the `drcheck` flags that give the same parameters (to reproduce a walk).
fn parameter_sets() -> Vec<(&'static str, &'static str, Params)> {
    vec![
        ("default", "", Params::default()),
        (
            "3 regions",
            "--regions 3 --writes 3 --outages 2",
            Params {
                regions: 3,
                writes: 3,
                outages: 2,
                ..Params::default()
            },
        ),
        (
            "re-apply, more faults",
            "--reapplies 1 --writes 3 --outages 2 --partitions 2 --failbacks 2",
            Params {
                reapplies: 1,
                writes: 3,
                outages: 2,
                partitions: 2,
                failbacks: 2,
                ..Params::default()
            },
        ),
        (
            "control-plane restarts, lost messages",
            "--cp-restarts 2 --losses 3 --writes 3",
            Params {
                cp_restarts: 2,
                losses: 3,
                writes: 3,
                ..Params::default()
            },
        ),
    ]
}

const WALKS: u64 = 1000;
const DEPTH: usize = 100;

#[tokio::test]
async fn random_walks_of_the_model_replay_on_the_implementation() {
    let mut total = Coverage::default();
    let start = Instant::now();
    for (name, flags, params) in parameter_sets() {
        let cfg = params.validate().expect("consistent parameters");
        for seed in 0..WALKS {
            let path = random_walk(&cfg, seed, DEPTH);
            let r = replay(&cfg, &path, Mutants::default())
                .await
                .expect("replay");
            total.merge(&r.coverage);
            if let Some(d) = r.divergence {
                panic!(
                    "{name}, walk seed {seed} (depth {DEPTH}): the implementation diverged\n{d}\n\
                     reproduce: drcheck walk --seed {seed} --depth {DEPTH} {flags} --trace-out \
                     /tmp/walks && drcheck replay /tmp/walks/model.walk-{seed}.json"
                );
            }
        }
        println!("{name}: all {WALKS} walks of {DEPTH} steps followed to the end");
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} steps replayed ({:.0} steps/s), {} distinct model transitions; by kind: {:?}",
        total.steps,
        total.steps as f64 / seconds,
        total.transitions.len(),
        total.kinds
    );
    assert!(
        total.implementation_only.is_empty(),
        "decisions enabled on the implementation and not in the model, after a matched step: \
         {:#?}",
        total.implementation_only
    );
}

fn corpus() -> Vec<drcheck_traces::Trace> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut traces: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "json").then_some(path)
        })
        .map(|path| drcheck_traces::load(&path).expect("a corpus file loads"))
        .collect();
    traces.sort_by_key(|t| t.model.cfg.params.bug.map(|b| b.name()));
    traces
}

#[tokio::test]
async fn a_bug_counterexample_is_not_followed_by_the_correct_implementation() {
    let mut table = Vec::new();
    for trace in corpus() {
        let cfg = &trace.model.cfg;
        let bug = cfg.params.bug.map_or("?", |b| b.name());
        let property = trace.violation().expect("the model's violation").property;
        // On the bug's own path the correct implementation parts from the path at a named
        // step: it refuses a step (a guard, or time passing over a step it has due: the
        // omission bugs) or its view differs. It never follows the path to its end.
        let r = replay(cfg, &trace.actions(), Mutants::default())
            .await
            .expect("replay");
        let d = r.divergence.unwrap_or_else(|| {
            panic!("--bug {bug}: the correct implementation followed the whole path")
        });
        let broken = drcheck_properties::violations(&r.last_view, &trace.model.bounds);
        assert!(
            broken.iter().all(|v| v.property != property),
            "--bug {bug}: the correct implementation breaks {property}"
        );
        let action = d.action.as_ref().expect("a step, not the initial state");
        let reason = match &d.kind {
            DivergenceKind::Refused(why) => why.clone(),
            DivergenceKind::RefusedButChanged(why) => format!("refused, view changed: {why}"),
            DivergenceKind::Views => format!("views differ: {}", d.differences().join(", ")),
        };
        table.push(format!(
            "{bug:<26} {:>4}  {:<38} {reason}",
            d.step,
            action.to_string()
        ));
        if bug == "no-auto-failover" {
            assert_eq!(*action, Action::Tick);
            assert!(
                reason.contains("the control plane would promote region 1"),
                "{reason}"
            );
        }
    }
    println!("{:<26} {:>4}  {:<38} reason", "bug", "step", "action");
    for row in &table {
        println!("{row}");
    }
}

#[tokio::test]
async fn a_bug_counterexample_breaks_the_same_property_on_its_mutant() {
    let mut reproduced = Vec::new();
    let mut parted = Vec::new();
    for trace in corpus() {
        let cfg = &trace.model.cfg;
        let bug = cfg.params.bug.expect("a bug's counterexample");
        let r = replay(cfg, &trace.actions(), Mutants::only(bug))
            .await
            .expect("replay");
        let property = trace.violation().expect("the model's violation").property;
        match &r.divergence {
            None => {
                let broken = drcheck_properties::violations(&r.last_view, &trace.model.bounds);
                assert!(
                    broken.iter().any(|v| v.property == property),
                    "--bug {}: the mutant followed the path but {property} holds: {broken:?}",
                    bug.name()
                );
                reproduced.push(bug.name());
            }
            Some(d) => parted.push(format!("{}: {d}", bug.name())),
        }
    }
    println!("reproduced on the mutant: {reproduced:?}");
    // A mutant is the implementation with the bug's guard removed; the model with the bug
    // is the model with the same guard removed. They decide on the same reports, so the
    // mutant follows the model's path to the same violation.
    assert!(
        parted.is_empty(),
        "mutants that parted from the path: {parted:#?}"
    );
}

#[tokio::test]
async fn a_wrong_abstraction_is_caught_with_a_readable_difference() {
    let cfg = Params::default().validate().expect("defaults");
    let path = random_walk(&cfg, 1, 10);
    let r = replay(&cfg, &path, Mutants::wrong_abstraction())
        .await
        .expect("replay");
    let d = r.divergence.expect("the wrong lease is seen");
    assert_eq!((d.step, d.kind.clone()), (0, DivergenceKind::Views));
    assert_eq!(d.differences(), ["regions[0].lease: 6 -> 7"]);
    let text = d.to_string();
    assert!(
        text.contains("step 0 (the initial state): the views differ"),
        "{text}"
    );
    assert!(text.contains("regions[0].lease: 6 -> 7"), "{text}");
}

/// Every transition of the default model within this many steps is replayed.
const BOUNDED_DEPTH: usize = 9;

#[tokio::test]
async fn every_transition_of_the_default_model_within_a_depth_replays_on_the_implementation() {
    let cfg = Params::default().validate().expect("defaults");
    let paths = drcheck_traces::walk::transitions_within(&cfg, BOUNDED_DEPTH);
    let start = Instant::now();
    let mut steps = 0;
    let mut total = Coverage::default();
    for path in &paths {
        let r = replay(&cfg, path, Mutants::default())
            .await
            .expect("replay");
        steps += path.len();
        total.merge(&r.coverage);
        if let Some(d) = r.divergence {
            panic!("the implementation diverged on {path:?}\n{d}");
        }
    }
    println!(
        "all {} transitions within {BOUNDED_DEPTH} steps followed ({steps} steps, {:.0} \
         steps/s)",
        paths.len(),
        steps as f64 / start.elapsed().as_secs_f64()
    );
    assert!(
        total.implementation_only.is_empty(),
        "decisions enabled on the implementation and not in the model: {:#?}",
        total.implementation_only
    );
}
