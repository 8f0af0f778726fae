//! Beyond exhaustive search: simulation (seeded random walks judging every property) and the
//! check bounded by `--depth`. What they find is real, what they count is true, and they say
//! that they are not exhaustive.

use std::collections::HashSet;
use std::time::Duration;

use drcheck_model::fingerprint::fingerprint;
use drcheck_model::simulate::{simulate, SimulateOptions, Simulation};
use drcheck_model::walk::{random_step, Rng};
use drcheck_model::{check, protocol, search, Bug, CheckOptions, Config, DrModel, DrState, Params};
use drcheck_properties::Expectation;

fn config(params: Params) -> Config {
    params.validate().expect("consistent parameters")
}

fn walks(cfg: &Config, walks: u64, depth: usize, threads: usize) -> Simulation {
    let opts = SimulateOptions {
        walks,
        depth,
        seed: 7,
        threads,
        timeout: None,
    };
    simulate(cfg.clone(), &opts, |_| {})
}

/// One crash outage and one write: small enough to exhaust in a moment.
fn tiny() -> Params {
    Params {
        writes: 1,
        partitions: 0,
        failbacks: 0,
        forced: 0,
        isolation: false,
        ..Params::default()
    }
}

#[test]
fn a_walk_finds_a_bug_and_its_path_leads_to_the_violation_without_loops() {
    let cfg = config(Params {
        bug: Some(Bug::NoLeaseWait),
        ..Params::default()
    });
    let sim = walks(&cfg, 300, 200, 2);
    assert!(!sim.no_violation());
    let found = sim
        .properties
        .iter()
        .find(|p| p.name == "single_writer")
        .expect("listed");
    assert!(
        !found.holds,
        "no-lease-wait breaks single_writer on some walk"
    );
    assert!(found.violation.is_some());
    let actions: Vec<_> = found
        .path
        .as_ref()
        .expect("a path")
        .iter()
        .map(|s| s.action.clone())
        .collect();
    let model = DrModel::new(cfg.clone());
    let states = search::replay(&model, &actions).expect("the path is a path of the model");
    let spec = drcheck_properties::property("single_writer").expect("in the catalog");
    let last = states.last().expect("states");
    assert!(!spec.holds_in(&last.view, &model.bounds));
    let distinct: HashSet<u64> = states.iter().map(fingerprint).collect();
    assert_eq!(
        distinct.len(),
        states.len(),
        "a state recurs: a loop was left"
    );

    // The path is walk `walk` of the seed, with its loops cut: the raw walk reaches the same
    // state at its first violation.
    let walk = found.walk.expect("a walk number");
    let mut rng = Rng::new(7 + walk);
    let mut state = DrState::initial(&cfg);
    let mut scratch = Vec::new();
    while spec.holds_in(&state.view, &model.bounds) {
        state = random_step(&cfg, &state, &mut rng, &mut scratch)
            .expect("the walk goes on")
            .1;
    }
    assert_eq!(fingerprint(&state), fingerprint(last));
}

#[test]
fn the_findings_do_not_depend_on_the_number_of_threads() {
    let cfg = config(Params {
        bug: Some(Bug::NoLeaseWait),
        ..Params::default()
    });
    let summary = |sim: &Simulation| -> Vec<(bool, Option<u64>, Option<usize>)> {
        sim.properties
            .iter()
            .map(|p| (p.holds, p.walk, p.path.as_ref().map(Vec::len)))
            .collect()
    };
    let one = walks(&cfg, 200, 120, 1);
    assert!(!one.no_violation(), "the bug is found");
    for threads in [2, 3] {
        let many = walks(&cfg, 200, 120, threads);
        assert_eq!(summary(&many), summary(&one), "{threads} threads");
        assert_eq!(many.steps, one.steps);
        assert_eq!(many.distinct_states, one.distinct_states);
    }
}

#[test]
fn the_correct_model_survives_the_walks_and_the_counts_add_up() {
    let cfg = config(Params::default());
    let sim = walks(&cfg, 300, 150, 2);
    assert!(sim.no_violation());
    assert!(!sim.exhaustive && !sim.timed_out);
    assert_eq!(sim.walks_done, 300);
    assert!(sim.steps <= 300 * 150 && sim.steps > 300);
    assert!(sim.distinct_states > 100 && sim.distinct_states as u64 <= sim.steps + 1);
    let found = |name: &str| sim.properties.iter().any(|p| p.name == name && p.holds);
    assert!(found("failover_reachable"), "walks reach a failover");
    for p in &sim.properties {
        assert_eq!(
            p.holds,
            p.walk.is_none() == (p.expectation == Expectation::Always)
        );
    }
}

#[test]
fn a_time_budget_stops_the_walks_and_says_so() {
    let opts = SimulateOptions {
        walks: 1_000_000,
        depth: 100,
        seed: 0,
        threads: 2,
        timeout: Some(Duration::ZERO),
    };
    let sim = simulate(config(Params::default()), &opts, |_| {});
    assert!(sim.timed_out);
    assert!(sim.walks_done < opts.walks);
}

/// The states within `steps` steps of the start, by a plain breadth-first search.
fn states_within(cfg: &Config, steps: usize) -> usize {
    let initial = DrState::initial(cfg);
    let mut seen: HashSet<DrState> = HashSet::from([initial.clone()]);
    let mut layer = vec![initial];
    let mut candidates = Vec::new();
    for _ in 0..steps {
        let mut next_layer = Vec::new();
        for state in &layer {
            candidates.clear();
            protocol::candidates(cfg, state, &mut candidates);
            for action in &candidates {
                if let Some(next) = protocol::apply(cfg, state, action) {
                    if seen.insert(next.clone()) {
                        next_layer.push(next);
                    }
                }
            }
        }
        layer = next_layer;
    }
    seen.len()
}

fn bounded(cfg: &Config, max_steps: Option<usize>) -> drcheck_model::Report {
    let opts = CheckOptions {
        threads: 2,
        max_steps,
        ..CheckOptions::default()
    };
    check(cfg.clone(), &opts, |_| {})
}

#[test]
fn a_bounded_check_explores_exactly_the_states_within_its_depth() {
    let cfg = config(tiny());
    let full = bounded(&cfg, None);
    assert!(full.complete);
    let deepest = full.max_depth - 1;
    for steps in [0, 1, 3, 10, deepest - 1] {
        let report = bounded(&cfg, Some(steps));
        assert!(!report.complete, "states lie beyond {steps} steps");
        assert_eq!(report.unique_states, states_within(&cfg, steps), "{steps}");
        assert_eq!(report.depth_bound, Some(steps));
    }
    let report = bounded(&cfg, Some(deepest));
    assert!(report.complete, "nothing lies beyond the deepest state");
    assert_eq!(report.unique_states, full.unique_states);
}

#[test]
fn a_bounded_check_finds_a_bug_within_its_depth_and_not_before() {
    let cfg = config(Params {
        bug: Some(Bug::NoLeaseWait),
        isolation: true,
        ..tiny()
    });
    let full = bounded(&cfg, None);
    let shortest = full
        .property("single_writer")
        .and_then(|p| p.path.as_ref())
        .expect("a counterexample")
        .len();
    let within = bounded(&cfg, Some(shortest));
    assert!(!within.no_violation() && !within.passed());
    let before = bounded(&cfg, Some(shortest - 1));
    assert!(before.no_violation() && before.passed() && !before.complete);
}
