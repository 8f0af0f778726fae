//! `canonical::canonicalize` erases only what no step reads: a reachable state with the erased
//! fields set to other values has the same successors, step for step, as the state itself. (The
//! properties judge the view, which canonicalisation never touches.)

use drcheck_model::canonical::canonicalize;
use drcheck_model::state::Report;
use drcheck_model::{Bug, CheckOptions, Config, DrModel, DrState, Params};
use drcheck_properties::{Entry, Timing};

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

/// What [`perturbed`] changed, per kind of field.
#[derive(Default)]
struct Perturbed {
    in_sync: usize,
    log_end: usize,
    lags: usize,
    in_flight_log_end: usize,
}

/// `s` with every field `canonicalize` erases set to something else: each field is changed
/// where canonicalising the changed state gives `s` back (so the test does not restate the
/// rules of erasure, it checks them), and `count` says how many of each kind were changed.
fn perturbed(cfg: &Config, s: &DrState, count: &mut Perturbed) -> DrState {
    let mut t = s.clone();
    let n = t.view.regions.len();
    let try_change = |t: &mut DrState, change: &dyn Fn(&mut DrState)| -> usize {
        let mut changed = t.clone();
        change(&mut changed);
        let mut back = changed.clone();
        canonicalize(cfg, &mut back);
        if changed != *t && back == *s {
            *t = changed;
            1
        } else {
            0
        }
    };
    let odd_end = |report: &mut Report| {
        report.len = 9;
        report.last = Some(Entry { epoch: 9, write: 9 });
    };
    for r in 0..n {
        count.in_sync += try_change(&mut t, &|u| u.volatile[r].in_sync = 0b011);
        count.log_end += try_change(&mut t, &|u| {
            if let Some(h) = &mut u.control.reports[r] {
                odd_end(h);
            }
        });
        for x in 0..n {
            count.lags += try_change(&mut t, &|u| {
                if let Some(h) = &mut u.control.reports[r] {
                    h.unconfirmed[x] = Some(3);
                }
            });
        }
    }
    for i in 0..t.heartbeats.len() {
        count.in_flight_log_end += try_change(&mut t, &|u| odd_end(&mut u.heartbeats[i].report));
    }
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
        // Short timeouts, so that walks reach what long ones put deep: secondaries left out
        // of sync, grace periods over, a restarted control plane.
        Params {
            timing: short_timing(),
            cp_restarts: 1,
            isolation: false,
            ..Params::default()
        },
        // The same with three regions and two outages: promotions that do not arrive, and
        // candidates among the secondaries of the epoch before.
        Params {
            timing: short_timing(),
            regions: 3,
            outages: 2,
            cp_restarts: 1,
            ..Params::default()
        },
    ] {
        let cfg = params.validate().expect("consistent");
        let model = DrModel::new(cfg.clone());
        let states = walk_states(&cfg, 400, 80);
        assert!(states.len() > 5_000);
        let mut count = Perturbed::default();
        let mut differed = 0;
        for s in &states {
            let t = perturbed(&cfg, s, &mut count);
            differed += usize::from(&t != s);
            let (a, b) = (model.successors(&t), model.successors(s));
            if a != b {
                for (x, y) in a.iter().zip(&b) {
                    if x != y {
                        panic!("from\n{s}\nstep {:?}\nperturbed gives\n{}\n{:?}\noriginal gives\n{}\n{:?}", x.0, x.1, x.1.volatile, y.1, y.1.volatile);
                    }
                }
                panic!("lengths {} {}", a.len(), b.len());
            }
        }
        // The perturbation is not vacuous: most states have an erased field, and every kind
        // of erasure happens.
        assert!(
            differed * 2 > states.len(),
            "only {differed} states perturbed"
        );
        for (kind, changed) in [
            ("in sync", count.in_sync),
            ("log end", count.log_end),
            ("lags", count.lags),
            ("log end in flight", count.in_flight_log_end),
        ] {
            assert!(changed > 0, "no {kind} perturbed");
        }
    }
}

/// The short timing of the perturbation walks (every rule holds).
fn short_timing() -> Timing {
    Timing {
        heartbeat: 1,
        delay: 1,
        detection: 3,
        lease: 3,
        skew: 0,
        throttle: 2,
        rpo: 5,
        rto: 10,
        grace: 2,
        drain_timeout: 2,
        sync_timeout: 3,
    }
}

/// What a check found, without what reduction may change: state counts, depth, times, and
/// the steps of each path (a path may pass through other representatives), of which only the
/// length is kept.
fn findings(cfg: &Config) -> serde_json::Value {
    let report = drcheck_model::check(cfg.clone(), &CheckOptions::default(), |_| {});
    assert!(report.complete, "incomplete: {:?}", cfg.params);
    let mut json = serde_json::to_value(&report).expect("a report serialises");
    fn paths_as_lengths(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if key == "path" {
                        if let Some(steps) = value.as_array() {
                            *value = serde_json::json!(steps.len());
                        }
                    } else {
                        paths_as_lengths(value);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(paths_as_lengths),
            _ => {}
        }
    }
    paths_as_lengths(&mut json);
    if let Some(map) = json.as_object_mut() {
        for volatile in [
            "reduced",
            "unique_states",
            "total_states",
            "max_depth",
            "seconds",
            "states_per_sec",
            "path_seconds",
            "peak_memory_bytes",
            "threads",
        ] {
            map.remove(volatile);
        }
    }
    json
}

#[test]
fn reduction_keeps_every_verdict_worst_case_and_shortest_path_length() {
    let base = Params {
        timing: short_timing(),
        writes: 1,
        forced: 0,
        isolation: false,
        ..Params::default()
    };
    let partition = Params {
        failbacks: 0,
        ..base.clone()
    };
    let failback = Params {
        partitions: 0,
        ..base.clone()
    };
    let three_regions = Params {
        regions: 3,
        partitions: 0,
        failbacks: 0,
        ..base
    };
    let cases = [
        (partition.clone(), None),
        (partition.clone(), Some(Bug::NoSyncTimeout)),
        (partition, Some(Bug::NoRpoGuard)),
        (failback.clone(), None),
        (failback.clone(), Some(Bug::FailbackNeedsCaughtUp)),
        (failback, Some(Bug::FailbackStaleLastEntry)),
        (three_regions.clone(), None),
        (three_regions, Some(Bug::CandidateAnyEpoch)),
    ];
    for (params, bug) in cases {
        let cfg = Params { bug, ..params }.validate().expect("consistent");
        let full = Config {
            reduce: false,
            ..cfg.clone()
        };
        assert_eq!(findings(&cfg), findings(&full), "{bug:?}");
    }
}
