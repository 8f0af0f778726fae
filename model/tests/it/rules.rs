//! The consistency rules of the timing parameters against the model.
//!
//! Each rule's boundary is pinned by a proptest over the other parameters, stated through the
//! rule itself (`Rule::holds`), so that a change to the protocol that moves a boundary fails
//! the test that names the rule: at the last value where the rule holds, every rule holds and
//! the model keeps every `always` property; one unit further, only this rule breaks and the
//! model breaks the property it names. Each check runs under the smallest budget that reaches
//! the boundary's counterexample.
//!
//! The sweep (ignored: an hour or more of checks) judges the same families of boundaries on a
//! grid, each boundary under the full budgets of `drcheck_model::sweep::SWEEP` and the set past
//! it under the edge's own budget, then random small parameter sets under the full budgets,
//! and compares the rules' verdict with the model's. Run it after any change to the protocol's
//! timing with
//!
//! ```text
//! CARGO_TARGET_DIR=target cargo test --release -p drcheck-model --test it -- \
//!     --ignored --nocapture rules::sweep
//! ```
//!
//! (`DRCHECK_SWEEP_RANDOM=n` in the environment judges `n` random sets instead of 300.)
//!
//! It prints every boundary and every parameter set where the rules and the model disagree,
//! and a summary. After the canonical-state reductions, with `DRCHECK_SWEEP_RANDOM=100`, on
//! two cores shared with other work (load about 5): 165 boundaries (330 sets, 488 M states)
//! in 38 minutes, all exact; 100 random sets (224 M states) in 12 minutes, 95 agreeing and 5
//! refused for a lease lapse alone (`LEASE_RENEWAL` is tight, not exact). The boundary
//! proptests below take 15 to 55 s of CPU, depending on the cases drawn and the load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use drcheck_model::sweep::{self, Budget, Outcome};
use drcheck_properties::timing::{
    Rule, DETECTION, FAILOVER_RTO, LEASE_RENEWAL, LOSS_WINDOW, PARTITION, RPO_MARGIN, RULES,
    SWITCHOVER, SWITCHOVER_PARTITION,
};
use drcheck_properties::Timing;
use proptest::prelude::*;

/// A small deterministic generator (xorshift64*), so that a sweep is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + u32::try_from(self.next() % u64::from(hi - lo + 1)).expect("small")
    }

    fn pick(&mut self, values: &[u32]) -> u32 {
        values[usize::try_from(self.next() % values.len() as u64).expect("small")]
    }
}

/// Small parameter sets, most near some rule's boundary: every time a few ticks, the RTO
/// around what a failback accepted on stale reports needs (`drain_timeout + 3*(heartbeat +
/// delay)`, the largest bound for most sets).
fn random_timing(rng: &mut Rng) -> Timing {
    let heartbeat = rng.pick(&[1, 1, 2]);
    let delay = rng.pick(&[0, 1, 1]);
    let hd = heartbeat + delay;
    Timing {
        heartbeat,
        delay,
        // Past the detection rule: heartbeats always late make failovers repeat up to the
        // epoch bound, and huge spaces (the rule is pinned by its own test).
        detection: hd + rng.pick(&[1, 1, 2]),
        lease: rng.range(1, hd + 1),
        skew: rng.range(0, 1),
        throttle: rng.range(1, 6),
        rpo: rng.range(hd, hd + 4),
        rto: 3 * hd + rng.range(0, 6),
        grace: rng.pick(&[0, 2]),
        drain_timeout: rng.range(1, 3),
        sync_timeout: rng.range(1, 8),
    }
}

/// Judges every set on two worker threads (one checker thread each), in order: under the
/// budget given, or, without one, under every budget of [`sweep::SWEEP`].
fn judge_all(sets: &[(Timing, Option<Budget>)]) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; sets.len()]);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(t, budget)) = sets.get(i) else {
                    break;
                };
                let outcome = match budget {
                    Some(budget) => Ok(check_under(budget, t)),
                    None => sweep::judge(t, 1),
                }
                .expect("sweep sets are in range");
                let mut results = results.lock().expect("no panic");
                results[i] = Some(outcome);
                let done = results.iter().filter(|o| o.is_some()).count();
                if done % 50 == 0 {
                    eprintln!("{done}/{} judged", sets.len());
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no panic")
        .into_iter()
        .map(|o| o.expect("judged"))
        .collect()
}

fn show(t: &Timing) -> String {
    format!(
        "H {} D {} detection {} lease {} skew {} throttle {} rpo {} rto {} grace {} drain {} sync {}",
        t.heartbeat,
        t.delay,
        t.detection,
        t.lease,
        t.skew,
        t.throttle,
        t.rpo,
        t.rto,
        t.grace,
        t.drain_timeout,
        t.sync_timeout
    )
}

/// Every family of boundaries the proptests below draw from, on a grid: the same ranges,
/// every combination.
fn grid() -> Vec<Edge> {
    let mut edges = Vec::new();
    for h in 1..=3 {
        for d in 0..=2 {
            edges.push(detection_edge(h, d));
        }
    }
    for h in 1..=2 {
        for skew in 0..=1 {
            for x in 0..=1 {
                if h + 1 >= skew + 2 {
                    edges.push(lease_edge(h, skew, x));
                }
            }
        }
    }
    for h in 1..=2 {
        for d in 0..=1 {
            for de in 0..=2 {
                for le in 0..=3 {
                    if de >= 1 || le >= 2 {
                        edges.push(failover_rto_edge(h, d, de, le));
                    }
                }
            }
            if h + d >= 2 {
                edges.push(rpo_margin_edge(h, d));
            }
            for sync in 1..=3 {
                for le in 0..=1 {
                    if sync + le >= 2 {
                        edges.push(loss_window_edge(h, d, sync, le));
                    }
                }
            }
            for x in 0..=1 {
                for r in 0..=2 {
                    edges.push(partition_edge(h, d, x, r));
                }
            }
            for r in 0..=2 {
                edges.push(switchover_edge(h, d, r));
            }
            for throttle in 1..=8 {
                for drain in 1..=2 {
                    if drain + 3 * h + 4 * d > throttle {
                        edges.push(switchover_partition_edge(h, d, throttle, drain));
                    }
                }
            }
        }
    }
    edges
}

/// The sweep: every boundary of [`grid`] (the last set where the rule holds under the full
/// budgets of [`sweep::SWEEP`], the first past it under the edge's own), then random small
/// parameter sets under the full budgets. Do the rules accept exactly those where every
/// `always` property holds?
#[test]
#[ignore = "minutes of model checks: run by hand (see the module documentation)"]
fn sweep() {
    let started = Instant::now();
    let edges = grid();
    // One unit past a boundary, the edge's own budget, the smallest that breaks the property,
    // is enough (every budget of the sweep allows what it allows), and far cheaper: past the
    // detection rule, say, spurious failovers under every fault take tens of millions of
    // states.
    let sets: Vec<(Timing, Option<Budget>)> = edges
        .iter()
        .flat_map(|e| [(e.at, None), (e.past, Some(e.budget))])
        .collect();
    let outcomes = judge_all(&sets);
    let mut failed = 0;
    for (e, pair) in edges.iter().zip(outcomes.chunks(2)) {
        let (at, past) = (&pair[0], &pair[1]);
        let ok = at.holds() && past.breaks(e.rule.endangers);
        failed += usize::from(!ok);
        println!(
            "{} `{}`: at {} -> {:?}; past -> {:?}",
            if ok { "ok  " } else { "FAIL" },
            e.rule.name,
            show(&e.at),
            at.broken,
            past.broken
        );
    }
    let edge_states: usize = outcomes.iter().map(|o| o.unique_states).sum();
    println!(
        "{} boundaries ({} sets) in {:.0} s, {edge_states} states: {failed} not exact",
        edges.len(),
        sets.len(),
        started.elapsed().as_secs_f64()
    );

    let random_started = Instant::now();
    let mut rng = Rng(0x005e_ed0f_d15a_57e4);
    let count = std::env::var("DRCHECK_SWEEP_RANDOM").ok().map_or(300, |n| {
        n.parse().expect("DRCHECK_SWEEP_RANDOM: a number of sets")
    });
    let sets: Vec<Timing> = (0..count).map(|_| random_timing(&mut rng)).collect();
    let jobs: Vec<(Timing, Option<Budget>)> = sets.iter().map(|&t| (t, None)).collect();
    let outcomes = judge_all(&jobs);
    let (mut agree, mut lapses, mut too_strict, mut too_lax, mut states) = (0, 0, 0, 0, 0);
    for (t, o) in sets.iter().zip(&outcomes) {
        states += o.unique_states;
        let verdict = t.check();
        match (&verdict, o.holds()) {
            (Ok(()), true) | (Err(_), false) => agree += 1,
            (Err(_), true) => {
                // Only the lease's rule may refuse where the model holds: it is tight, not
                // exact (a lapse may fit in the other bounds' room).
                let broken: Vec<_> = RULES.iter().filter(|r| !r.holds(t)).collect();
                let lapse = broken.len() == 1 && std::ptr::eq(*broken[0], &LEASE_RENEWAL);
                if lapse {
                    lapses += 1;
                } else {
                    too_strict += 1;
                }
                let names: Vec<_> = broken.iter().map(|r| r.name).collect();
                println!("refused, yet every property holds: {}: {names:?}", show(t));
            }
            (Ok(()), false) => {
                too_lax += 1;
                println!(
                    "accepted, yet {:?} (complete: {}): {}",
                    o.broken,
                    o.complete,
                    show(t)
                );
            }
        }
    }
    println!(
        "{} random sets in {:.0} s, {states} states: {agree} agree, {lapses} refused for a lease \
         lapse alone although the model holds, {too_strict} refused otherwise although it \
         holds, {too_lax} accepted although it does not",
        sets.len(),
        random_started.elapsed().as_secs_f64()
    );
    assert_eq!(failed, 0, "some boundaries are not exact");
    assert_eq!(too_lax, 0, "the rules accept sets where a property fails");
    assert_eq!(
        too_strict, 0,
        "the rules refuse sets where every property holds"
    );
}

/// One rule's boundary: `at`, the last parameter set on a line where the rule holds, and
/// `past`, one unit further, where it does not.
#[derive(Clone, Copy, Debug)]
struct Edge {
    rule: &'static Rule,
    /// The smallest budget that reaches the counterexample past the boundary.
    budget: Budget,
    at: Timing,
    past: Timing,
}

/// Walks `set` over `values`, from where `rule` holds towards where it does not, and returns
/// the last set where it holds and the first where it does not.
fn edge(
    rule: &'static Rule,
    budget: Budget,
    base: Timing,
    set: fn(&mut Timing, u32),
    values: impl IntoIterator<Item = u32>,
) -> Edge {
    let mut last = None;
    for v in values {
        let mut t = base;
        set(&mut t, v);
        if rule.holds(&t) {
            last = Some(t);
        } else if let Some(at) = last {
            return Edge {
                rule,
                budget,
                at,
                past: t,
            };
        }
    }
    panic!(
        "`{}` does not change along the line from {base:?}",
        rule.name
    )
}

const fn budget(writes: u32, outages: u32, partitions: u32, failbacks: u32, forced: u32) -> Budget {
    Budget {
        writes,
        outages,
        partitions,
        failbacks,
        forced,
    }
}

/// A consistent small parameter set: detection a tick past heartbeat + delay, a lease that
/// just never lapses, an RTO that just fits a failback accepted on stale reports
/// (`drain_timeout + 3*(heartbeat + delay)`), every other time as small as the rules allow.
fn base(heartbeat: u32, delay: u32) -> Timing {
    let hd = heartbeat + delay;
    Timing {
        heartbeat,
        delay,
        detection: hd + 1,
        lease: hd,
        skew: 0,
        throttle: 1,
        rpo: hd + 2,
        rto: 3 * hd + 1,
        grace: 1,
        drain_timeout: 1,
        sync_timeout: 1,
    }
}

/// `heartbeat + delay < detection`: without faults, a declaration is spurious. The lease
/// wait outlasts the longest silence between two heartbeats, so that the primary's next
/// heartbeat calls the failover off: past the boundary, failovers would otherwise repeat
/// without bound, and the check would stop at the epoch bound with no verdict.
fn detection_edge(heartbeat: u32, delay: u32) -> Edge {
    let hd = heartbeat + delay;
    let t = Timing {
        lease: hd + 1,
        ..base(heartbeat, delay)
    };
    edge(
        &DETECTION,
        budget(1, 0, 0, 0, 0),
        t,
        |t, v| t.detection = v,
        (1..=hd + 2).rev(),
    )
}

/// The throttle a tick past where a switchover accepted on stale reports could run into it
/// (its rule, [`SWITCHOVER_PARTITION`], is then void), plus `extra`.
fn throttle_alone(t: &Timing, extra: u32) -> u32 {
    t.drain_timeout + 3 * t.heartbeat + 4 * t.delay + extra
}

/// `heartbeat + delay <= lease + skew`, at the partition's boundary (where a lapse of one tick
/// lengthens the spell the throttle causes). Only with some delay: without jitter, whether a
/// lapse meets the spell depends on where heartbeats fall.
fn lease_edge(heartbeat: u32, skew: u32, throttle_extra: u32) -> Edge {
    let delay = 1;
    let hd = heartbeat + delay;
    let mut t = base(heartbeat, delay);
    t.skew = skew;
    t.throttle = throttle_alone(&t, throttle_extra);
    t.rpo = t.throttle + 1;
    t.sync_timeout = t.rto + t.throttle + 1;
    edge(
        &LEASE_RENEWAL,
        budget(1, 0, 1, 0, 0),
        t,
        |t, v| t.lease = v,
        (1..=hd).rev(),
    )
}

/// `max(detection, lease + skew) <= rto`: a crash or isolation of the primary. Detection and
/// the lease start where the RTO the stale failback needs ends.
fn failover_rto_edge(heartbeat: u32, delay: u32, detection_extra: u32, lease_extra: u32) -> Edge {
    let hd = heartbeat + delay;
    let mut t = base(heartbeat, delay);
    t.detection = 3 * hd + 1 + detection_extra;
    t.lease = 3 * hd + lease_extra;
    let top = t.detection.max(t.lease + t.skew) + 2;
    edge(
        &FAILOVER_RTO,
        budget(0, 1, 0, 0, 0),
        t,
        |t, v| t.rto = v,
        (1..=top).rev(),
    )
}

/// `heartbeat + delay < rpo`: a write acknowledged just after a heartbeat, then an outage.
fn rpo_margin_edge(heartbeat: u32, delay: u32) -> Edge {
    let hd = heartbeat + delay;
    let t = Timing {
        throttle: hd - 1,
        ..base(heartbeat, delay)
    };
    edge(
        &RPO_MARGIN,
        budget(1, 1, 1, 0, 0),
        t,
        |t, v| t.rpo = v,
        (1..=hd + 3).rev(),
    )
}

/// `min(throttle + tick, sync_timeout + lease + skew) <= rpo`, crossed by the throttle: an
/// isolated primary writes a second protected write as late as the throttle lets it.
fn loss_window_edge(heartbeat: u32, delay: u32, sync_timeout: u32, lease_extra: u32) -> Edge {
    let hd = heartbeat + delay;
    let mut t = base(heartbeat, delay);
    t.sync_timeout = sync_timeout;
    t.lease += lease_extra;
    t.rto = (t.detection.max(t.lease) + 1)
        .max(3 * hd + 1)
        .max(sync_timeout + 2 * hd);
    t.rpo = hd + 1;
    let top = t.rpo + 1;
    edge(
        &LOSS_WINDOW,
        budget(2, 1, 1, 0, 1),
        t,
        |t, v| t.throttle = v,
        1..=top,
    )
}

/// `sync_timeout <= rto + throttle + tick`: a write behind a partition, the throttle too long
/// for a switchover's spell to run into it.
fn partition_edge(heartbeat: u32, delay: u32, throttle_extra: u32, rto_extra: u32) -> Edge {
    let mut t = base(heartbeat, delay);
    t.throttle = throttle_alone(&t, throttle_extra);
    t.rpo = t.throttle + 1;
    t.rto += rto_extra;
    let top = t.rto + t.throttle + 2;
    edge(
        &PARTITION,
        budget(1, 0, 1, 0, 0),
        t,
        |t, v| t.sync_timeout = v,
        1..=top,
    )
}

/// `drain_timeout + 3*(heartbeat + delay) <= rto`: a failback home accepted on reports a
/// partition has just made stale, which aborts (it needs a write to drain: with nothing to
/// drain it completes, partition or not). The data must be away from home first: an outage.
fn switchover_edge(heartbeat: u32, delay: u32, rto_extra: u32) -> Edge {
    let mut t = base(heartbeat, delay);
    t.rto += rto_extra;
    let top = t.rto;
    edge(
        &SWITCHOVER,
        budget(1, 1, 1, 1, 0),
        t,
        |t, v| t.drain_timeout = v,
        1..=top,
    )
}

/// The stale switchover's spell reaching the throttle's: a write just before the fence, the
/// drain timing out, the throttle engaged by the time the lease is back.
fn switchover_partition_edge(heartbeat: u32, delay: u32, throttle: u32, drain: u32) -> Edge {
    let hd = heartbeat + delay;
    let mut t = base(heartbeat, delay);
    t.throttle = throttle;
    t.drain_timeout = drain;
    t.rpo = (throttle + 1).max(hd + 1);
    t.rto = drain + 3 * hd;
    let top = t.rto + throttle + 2;
    edge(
        &SWITCHOVER_PARTITION,
        budget(1, 1, 1, 1, 0),
        t,
        |t, v| t.sync_timeout = v,
        1..=top,
    )
}

/// Checks `timing` under `budget` with one checker thread.
fn check_under(budget: Budget, timing: Timing) -> Outcome {
    sweep::run(&budget.params(timing), 1).expect("in range")
}

/// Asserts the boundary: every rule holds at it and the model keeps every `always` property
/// (under `judge`); one unit past it only the edge's rule breaks, and the model breaks the
/// property the rule names.
fn assert_edge(e: &Edge, judge: impl Fn(Timing) -> Outcome) -> Result<(), TestCaseError> {
    let rule = e.rule;
    for other in RULES {
        prop_assert!(other.holds(&e.at), "{:?} breaks `{}`", e.at, other.name);
        let only = std::ptr::eq(*other, rule) || other.holds(&e.past);
        prop_assert!(only, "{:?} breaks `{}` too", e.past, other.name);
    }
    let at = judge(e.at);
    prop_assert!(
        at.holds(),
        "at the boundary of `{}` ({}) the model breaks {:?} (complete: {})",
        rule.name,
        show(&e.at),
        at.broken,
        at.complete
    );
    let past = judge(e.past);
    prop_assert!(
        past.breaks(rule.endangers),
        "one past the boundary of `{}` ({}) the model does not break {} (it breaks {:?})",
        rule.name,
        show(&e.past),
        rule.endangers,
        past.broken
    );
    Ok(())
}

fn assert_scenario_edge(e: &Edge) -> Result<(), TestCaseError> {
    assert_edge(e, |t| check_under(e.budget, t))
}

proptest! {
    // Checks of a second or less each.
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn detection_is_exact(heartbeat in 1u32..=3, delay in 0u32..=2) {
        assert_scenario_edge(&detection_edge(heartbeat, delay))?;
    }

    #[test]
    fn lease_renewal_is_tight(heartbeat in 1u32..=2, skew in 0u32..=1, throttle_extra in 0u32..=1) {
        prop_assume!(heartbeat + 1 >= skew + 2);
        assert_scenario_edge(&lease_edge(heartbeat, skew, throttle_extra))?;
    }

    #[test]
    fn failover_rto_is_exact(
        heartbeat in 1u32..=2,
        delay in 0u32..=1,
        detection_extra in 0u32..=2,
        lease_extra in 0u32..=3,
    ) {
        prop_assume!(detection_extra >= 1 || lease_extra >= 2);
        assert_scenario_edge(&failover_rto_edge(heartbeat, delay, detection_extra, lease_extra))?;
    }

    #[test]
    fn partition_is_exact(
        heartbeat in 1u32..=2,
        delay in 0u32..=1,
        throttle_extra in 0u32..=1,
        rto_extra in 0u32..=2,
    ) {
        assert_scenario_edge(&partition_edge(heartbeat, delay, throttle_extra, rto_extra))?;
    }
}

proptest! {
    // An outage, a partition and a failback (or a partition and a write): up to about 4 s
    // of CPU a case with a delay (the sweep covers every family on its grid).
    #![proptest_config(ProptestConfig { cases: 3, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rpo_margin_is_exact(heartbeat in 1u32..=2, delay in 0u32..=1) {
        prop_assume!(heartbeat + delay >= 2);
        assert_scenario_edge(&rpo_margin_edge(heartbeat, delay))?;
    }

    #[test]
    fn switchover_is_exact(heartbeat in 1u32..=2, delay in 0u32..=1, rto_extra in 0u32..=2) {
        assert_scenario_edge(&switchover_edge(heartbeat, delay, rto_extra))?;
    }

    #[test]
    fn switchover_partition_is_exact(
        heartbeat in 1u32..=2,
        delay in 0u32..=1,
        throttle in 1u32..=8,
        drain in 1u32..=2,
    ) {
        prop_assume!(drain + 3 * heartbeat + 4 * delay > throttle);
        assert_scenario_edge(&switchover_partition_edge(heartbeat, delay, throttle, drain))?;
    }
}

proptest! {
    // Two writes, an isolation, a partition and a forced failover make these checks the
    // costliest (about 8 s of CPU a case with a delay): fewer cases.
    #![proptest_config(ProptestConfig { cases: 2, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn loss_window_is_exact(
        heartbeat in 1u32..=2,
        delay in 0u32..=1,
        sync_timeout in 1u32..=3,
        lease_extra in 0u32..=1,
    ) {
        prop_assume!(sync_timeout + lease_extra >= 2);
        assert_scenario_edge(&loss_window_edge(heartbeat, delay, sync_timeout, lease_extra))?;
    }
}
