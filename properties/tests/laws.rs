//! Laws of the properties crate, checked by quickcheck on small random views (two or three
//! regions, short logs of small write ids, any roles and statuses, an empty or a small ghost
//! ledger) and random bounds:
//!
//! - `violations` is deterministic and agrees with the catalog, property by property;
//! - a new deployment (`View::initial`) satisfies every `always` property;
//! - each `always` property has a breaker, a change that breaks it in any view: applied to
//!   any view the property is violated, applied to a new deployment or to one of the scenario
//!   views of tests/invariants/ it is the only one violated;
//! - `describe_changes` of a view with itself is empty, reports every change a timeline
//!   shows, and leaves out the passing of time.
//!
//! The breakers are the constructions of tests/invariants/always.rs made to work on any view.

mod support;

use drcheck_properties::{
    describe_changes, property, violations, Bounds, Entry, Expectation, FailoverKind,
    FailoverRecord, Fate, Ledger, RegionView, Role, Routing, SingleFault, Status, View,
    WriteRecord, CATALOG,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult, Testable};
use support::{
    after_failover, after_rejoin, baseline, crash, failover, lossy_failover, names_of, write,
    BOUNDS,
};

/// Cases per law: every law is cheap.
const TESTS: u64 = 2_000;

fn check<A: Testable>(law: A) {
    QuickCheck::new().tests(TESTS).quickcheck(law);
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// A number in `0..n`.
fn below(g: &mut Gen, n: u8) -> u8 {
    u8::arbitrary(g) % n
}

fn pick<T: Copy>(g: &mut Gen, choices: &[T]) -> T {
    *g.choose(choices).expect("a choice")
}

/// `Some` of a number in `0..n`, or `None`.
fn maybe(g: &mut Gen, n: u8) -> Option<u8> {
    bool::arbitrary(g).then(|| below(g, n))
}

const ROLES: [Role; 4] = [Role::Primary, Role::Secondary, Role::Fenced, Role::Stale];
const STATUSES: [Status; 3] = [Status::Up, Status::Down, Status::Isolated];
const KINDS: [FailoverKind; 3] = [
    FailoverKind::Automatic,
    FailoverKind::Forced,
    FailoverKind::Switchover,
];

/// Write ids the generated views use; the breakers use others (250 and up).
const WRITES: u8 = 6;

fn entry(g: &mut Gen) -> Entry {
    Entry {
        epoch: 1 + below(g, 3),
        write: 1 + below(g, WRITES - 1),
    }
}

fn region_view(g: &mut Gen) -> RegionView {
    let status = pick(g, &STATUSES);
    let unreachable = status != Status::Up;
    RegionView {
        status,
        role: pick(g, &ROLES),
        epoch: 1 + below(g, 3),
        log: (0..below(g, 5)).map(|_| entry(g)).collect(),
        lease: below(g, 4),
        quarantine: (0..below(g, 3)).map(|_| 1 + below(g, WRITES - 1)).collect(),
        down_for: if unreachable {
            Some(below(g, 12))
        } else {
            None
        },
        dark: unreachable || bool::arbitrary(g),
    }
}

fn write_record(g: &mut Gen, id: u8, regions: u8) -> WriteRecord {
    WriteRecord {
        id,
        by: below(g, regions),
        age: below(g, 20),
        gap: below(g, 20),
        fate: if bool::arbitrary(g) {
            Fate::Live
        } else {
            Fate::Lost { failover: 0 }
        },
        reapply_of: maybe(g, WRITES),
        quarantined: bool::arbitrary(g),
        reapplied: bool::arbitrary(g),
        protected_by: below(g, 8),
        ages_at_outage: [maybe(g, 20), maybe(g, 20), maybe(g, 20)],
    }
}

fn failover_record(g: &mut Gen, regions: u8) -> FailoverRecord {
    FailoverRecord {
        kind: pick(g, &KINDS),
        from: below(g, regions),
        to: below(g, regions),
        epoch: 1 + below(g, 3),
        lost: below(g, 4),
        oldest_loss: maybe(g, 20),
        spread: below(g, 20),
        from_healthy: bool::arbitrary(g),
        requested: bool::arbitrary(g),
    }
}

/// The default ledger one time in three, else a few writes (distinct ids) and failovers.
fn ledger(g: &mut Gen, regions: u8) -> Ledger {
    if below(g, 3) == 0 {
        return Ledger::default();
    }
    let mut ids: Vec<u8> = (1..WRITES).collect();
    ids.retain(|_| bool::arbitrary(g));
    ids.truncate(3);
    Ledger {
        writes: ids
            .into_iter()
            .map(|id| write_record(g, id, regions))
            .collect(),
        failovers: (0..below(g, 3))
            .map(|_| failover_record(g, regions))
            .collect(),
        spurious: if below(g, 4) == 0 {
            Some(below(g, regions))
        } else {
            None
        },
        outage: maybe(g, 70),
        rto_waived: bool::arbitrary(g),
        single_fault: if below(g, 2) == 0 {
            None
        } else {
            Some(SingleFault::ALL[usize::from(below(g, 3))])
        },
        unwritable: maybe(g, 70),
        failback: maybe(g, 10),
        failback_refused: if below(g, 8) == 0 {
            Some(below(g, regions))
        } else {
            None
        },
    }
}

/// A small view of two or three regions. Every region index in it is in range, as in any
/// view the model or the implementation makes; nothing else is promised.
#[derive(Clone, Debug)]
struct SmallView(View);

impl Arbitrary for SmallView {
    fn arbitrary(g: &mut Gen) -> SmallView {
        let n = 2 + below(g, 2);
        SmallView(View {
            regions: (0..n).map(|_| region_view(g)).collect(),
            routing: Routing {
                epoch: 1 + below(g, 3),
                primary: below(g, n),
                compute: below(g, n),
                home: below(g, n),
            },
            partitioned: bool::arbitrary(g),
            ledger: ledger(g, n),
        })
    }

    /// Smaller views: the default ledger, one write or failover fewer, one log entry or
    /// quarantined write fewer.
    fn shrink(&self) -> Box<dyn Iterator<Item = SmallView>> {
        let v = &self.0;
        let mut smaller = Vec::new();
        let mut with = |change: &dyn Fn(&mut View)| {
            let mut w = v.clone();
            change(&mut w);
            if w != *v {
                smaller.push(SmallView(w));
            }
        };
        with(&|w| w.ledger = Ledger::default());
        with(&|w| {
            w.ledger.writes.pop();
        });
        with(&|w| {
            w.ledger.failovers.pop();
        });
        for r in 0..v.regions.len() {
            with(&|w| {
                w.regions[r].log.pop();
            });
            with(&|w| {
                w.regions[r].quarantine.pop();
            });
        }
        Box::new(smaller.into_iter())
    }
}

/// Bounds small enough that one tick past each still fits a `u8`.
#[derive(Clone, Copy, Debug)]
struct SmallBounds(Bounds);

impl Arbitrary for SmallBounds {
    fn arbitrary(g: &mut Gen) -> SmallBounds {
        SmallBounds(Bounds {
            rpo: 1 + below(g, 20),
            rto: 1 + below(g, 70),
            detection: 1 + below(g, 10),
            drain_timeout: 1 + below(g, 10),
        })
    }
}

/// A new deployment's size and lease.
#[derive(Clone, Copy, Debug)]
struct Deployment {
    regions: u8,
    lease: u8,
}

impl Arbitrary for Deployment {
    fn arbitrary(g: &mut Gen) -> Deployment {
        Deployment {
            regions: 2 + below(g, 2),
            lease: u8::arbitrary(g),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Breakers: for each `always` property, a change that breaks it in any view
// ---------------------------------------------------------------------------------------------

type Breaker = fn(&mut View, &Bounds);

/// Every `always` property's breaker, in catalog order.
const BREAKERS: [(&str, Breaker); 13] = [
    ("single_writer", two_leased_primaries),
    ("log_matching", different_writes_at_one_epoch_and_index),
    ("rpo_bound", loss_at_rpo),
    ("loss_window", losses_rpo_apart),
    ("no_spurious_failover", healthy_region_declared_failed),
    ("no_silent_loss", write_nowhere),
    ("no_resurrection", quarantined_write_in_current_epoch),
    ("rto_bound", outage_past_rto),
    (
        "data_failback_manual",
        unrequested_move_from_healthy_primary,
    ),
    ("failback_zero_loss", lossy_switchover),
    ("routing_healthy", compute_down_past_detection),
    ("write_availability", unwritable_past_rto),
    ("failback_completes", eligible_failback_refused),
];

/// Regions 0 and 1 are up primaries holding leases.
fn two_leased_primaries(v: &mut View, _: &Bounds) {
    for r in &mut v.regions[..2] {
        r.status = Status::Up;
        r.down_for = None;
        r.role = Role::Primary;
        r.lease = r.lease.max(1);
    }
}

/// Regions 0 and 1 hold different writes (w250, w251) at epoch 1 and one index, past the end
/// of both their logs: entries are only added, so that no write is lost on the way.
fn different_writes_at_one_epoch_and_index(v: &mut View, _: &Bounds) {
    let end = v.regions[0].log.len().max(v.regions[1].log.len());
    for (r, write) in [(0, 250), (1, 251)] {
        v.regions[r].log.resize(end + 1, Entry { epoch: 1, write });
    }
}

/// An automatic failover lost a write acknowledged RPO before the outage.
fn loss_at_rpo(v: &mut View, b: &Bounds) {
    let record = lossy_failover(FailoverKind::Automatic, 1, b.rpo, 0);
    v.ledger.failovers.push(record);
}

/// A forced failover (which `rpo_bound` leaves alone) lost two writes RPO apart.
fn losses_rpo_apart(v: &mut View, b: &Bounds) {
    let record = lossy_failover(FailoverKind::Forced, 2, 0, b.rpo);
    v.ledger.failovers.push(record);
}

fn healthy_region_declared_failed(v: &mut View, _: &Bounds) {
    v.ledger.spurious = Some(0);
}

/// The ledger holds w252, which no log or quarantine holds.
fn write_nowhere(v: &mut View, _: &Bounds) {
    v.ledger.writes.push(write(252, 0, 0, 0));
}

/// The data primary takes part in the current epoch and holds w253, a quarantined write.
fn quarantined_write_in_current_epoch(v: &mut View, _: &Bounds) {
    let epoch = v.routing.epoch;
    let primary = &mut v.regions[usize::from(v.routing.primary)];
    primary.status = Status::Up;
    primary.down_for = None;
    primary.epoch = epoch;
    if primary.role == Role::Stale {
        primary.role = Role::Primary;
    }
    primary.log.push(Entry { epoch, write: 253 });
    let mut w = write(253, v.routing.primary, 0, 0);
    w.quarantined = true;
    v.ledger.writes.push(w);
}

fn outage_past_rto(v: &mut View, b: &Bounds) {
    v.ledger.outage = Some(b.rto + 1);
}

fn unrequested_move_from_healthy_primary(v: &mut View, _: &Bounds) {
    v.ledger.failovers.push(FailoverRecord {
        from_healthy: true,
        ..failover(FailoverKind::Switchover)
    });
}

fn lossy_switchover(v: &mut View, _: &Bounds) {
    v.ledger.failovers.push(FailoverRecord {
        from_healthy: true,
        requested: true,
        ..lossy_failover(FailoverKind::Switchover, 1, 0, 0)
    });
}

/// A single partition under which the endpoint has taken no write for longer than the RTO.
fn unwritable_past_rto(v: &mut View, b: &Bounds) {
    v.ledger.single_fault = Some(SingleFault::Partition);
    v.ledger.unwritable = Some(b.rto + 1);
}

fn eligible_failback_refused(v: &mut View, _: &Bounds) {
    v.ledger.failback_refused = Some(v.routing.home);
}

/// The compute region crashed one tick more than the detection time ago, while another
/// region is up and heard from.
fn compute_down_past_detection(v: &mut View, b: &Bounds) {
    let compute = usize::from(v.routing.compute);
    crash(v, compute, b.detection + 1);
    let other = (compute + 1) % v.regions.len();
    let other = &mut v.regions[other];
    other.status = Status::Up;
    other.down_for = None;
    other.dark = false;
}

/// The names of the `always` properties `v` violates, in catalog order.
fn violated(v: &View, b: &Bounds) -> Vec<&'static str> {
    violations(v, b).iter().map(|f| f.property).collect()
}

/// `Err` unless each breaker makes its property the only one `v` violates.
fn each_breaker_breaks_only_its_own(v: &View, b: &Bounds) -> Result<(), String> {
    let found = violated(v, b);
    if !found.is_empty() {
        return Err(format!("the unbroken view violates {found:?}"));
    }
    for (name, breaker) in BREAKERS {
        let mut broken = v.clone();
        breaker(&mut broken, b);
        let found = violated(&broken, b);
        if found != [name] {
            return Err(format!(
                "broken for {name}, the view violates {found:?}: {broken:?}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The laws
// ---------------------------------------------------------------------------------------------

#[test]
fn there_is_a_breaker_for_each_always_property() {
    let names: Vec<&str> = BREAKERS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, names_of(Expectation::Always));
}

#[test]
fn violations_is_deterministic_and_agrees_with_the_catalog() {
    fn law(v: SmallView, b: SmallBounds) -> TestResult {
        let (v, b) = (v.0, b.0);
        let found = violations(&v, &b);
        if violations(&v, &b) != found {
            return TestResult::error("two calls of violations disagree");
        }
        // Exactly the `always` properties whose own check fails, once each, in catalog order.
        let failing: Vec<&str> = CATALOG
            .iter()
            .filter(|p| p.expectation() == Expectation::Always && !p.holds_in(&v, &b))
            .map(|p| p.name)
            .collect();
        let names: Vec<&str> = found.iter().map(|f| f.property).collect();
        if names != failing {
            return TestResult::error(format!("violations {names:?}, failing checks {failing:?}"));
        }
        for f in &found {
            let spec = property(f.property);
            if spec.map(|p| p.expectation()) != Some(Expectation::Always) {
                return TestResult::error(format!("{f} names no always property of CATALOG"));
            }
            if f.reason.is_empty() || f.to_string() != format!("{}: {}", f.property, f.reason) {
                return TestResult::error(format!("{f:?} does not say why"));
            }
        }
        TestResult::passed()
    }
    check(law as fn(SmallView, SmallBounds) -> TestResult);
}

#[test]
fn a_new_deployment_satisfies_every_always_property_and_each_breaker_breaks_only_its_own() {
    fn law(d: Deployment, b: SmallBounds) -> TestResult {
        let v = View::initial(d.regions, d.lease);
        match each_breaker_breaks_only_its_own(&v, &b.0) {
            Ok(()) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    check(law as fn(Deployment, SmallBounds) -> TestResult);
}

#[test]
fn each_breaker_breaks_only_its_own_property_in_the_scenario_views() {
    for (name, v) in [
        ("baseline", baseline()),
        ("after_failover", after_failover()),
        ("after_rejoin", after_rejoin()),
    ] {
        if let Err(e) = each_breaker_breaks_only_its_own(&v, &BOUNDS) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn each_breaker_breaks_its_property_in_any_view() {
    fn law(v: SmallView, b: SmallBounds) -> TestResult {
        let (v, b) = (v.0, b.0);
        for (name, breaker) in BREAKERS {
            let mut broken = v.clone();
            breaker(&mut broken, &b);
            let spec = property(name).expect("a catalog name");
            if spec.holds_in(&broken, &b) || !violated(&broken, &b).contains(&name) {
                return TestResult::error(format!("{name} not caught in {broken:?}"));
            }
        }
        TestResult::passed()
    }
    check(law as fn(SmallView, SmallBounds) -> TestResult);
}

/// The generator is not vacuous: with a fixed seed, some views satisfy every `always`
/// property, and each `always` property is violated by some view.
#[test]
fn the_generator_makes_healthy_views_and_views_that_break_each_property() {
    let mut g = Gen::from_size_and_seed(100, 7);
    let mut healthy = 0;
    let mut broken: Vec<&str> = Vec::new();
    for _ in 0..5_000 {
        let (v, b) = (
            SmallView::arbitrary(&mut g).0,
            SmallBounds::arbitrary(&mut g).0,
        );
        let found = violated(&v, &b);
        healthy += usize::from(found.is_empty());
        broken.extend(found);
    }
    assert!(healthy > 0, "no generated view is healthy");
    for name in names_of(Expectation::Always) {
        assert!(broken.contains(&name), "no generated view violates {name}");
    }
}

#[test]
fn describe_changes_of_a_view_with_itself_is_empty() {
    fn law(v: SmallView) -> TestResult {
        let changes = describe_changes(&v.0, &v.0.clone());
        if changes.is_empty() {
            TestResult::passed()
        } else {
            TestResult::error(format!("{changes:?}"))
        }
    }
    check(law as fn(SmallView) -> TestResult);
}

/// One change of the kinds a timeline reports, to region `region` (modulo the number of
/// regions) where it concerns a region.
#[derive(Clone, Copy, Debug)]
enum Change {
    Status(Status),
    Role(Role),
    Epoch,
    Append(Entry),
    LeaseGainedOrLost,
    Quarantine(u8),
    Primary,
    Compute,
    Partition,
    Acknowledge,
    Failover(FailoverKind),
    Lose,
    Spurious,
    OutageStartsOrStops,
    RtoWaived,
}

#[derive(Clone, Copy, Debug)]
struct Visible {
    region: u8,
    change: Change,
}

impl Arbitrary for Visible {
    fn arbitrary(g: &mut Gen) -> Visible {
        let change = match below(g, 15) {
            0 => Change::Status(pick(g, &STATUSES)),
            1 => Change::Role(pick(g, &ROLES)),
            2 => Change::Epoch,
            3 => Change::Append(entry(g)),
            4 => Change::LeaseGainedOrLost,
            5 => Change::Quarantine(1 + below(g, WRITES - 1)),
            6 => Change::Primary,
            7 => Change::Compute,
            8 => Change::Partition,
            9 => Change::Acknowledge,
            10 => Change::Failover(pick(g, &KINDS)),
            11 => Change::Lose,
            12 => Change::Spurious,
            13 => Change::OutageStartsOrStops,
            _ => Change::RtoWaived,
        };
        Visible {
            region: below(g, 3),
            change,
        }
    }
}

impl Visible {
    /// Applies the change; `false` if it changes nothing in `v` (a status it already has, a
    /// ledger with no live write to lose, ...).
    fn apply(self, v: &mut View) -> bool {
        let before = v.clone();
        let n = v.regions.len();
        let r = usize::from(self.region) % n;
        let next = |x: u8| ((usize::from(x) + 1) % n) as u8;
        let region = &mut v.regions[r];
        match self.change {
            Change::Status(s) => region.status = s,
            Change::Role(role) => region.role = role,
            Change::Epoch => region.epoch += 1,
            Change::Append(e) => region.log.push(e),
            Change::LeaseGainedOrLost => region.lease = if region.lease == 0 { 3 } else { 0 },
            Change::Quarantine(w) => region.quarantine.push(w),
            Change::Primary => v.routing.primary = next(v.routing.primary),
            Change::Compute => v.routing.compute = next(v.routing.compute),
            Change::Partition => v.partitioned = !v.partitioned,
            Change::Acknowledge => v.ledger.writes.push(write(254, r as u8, 0, 0)),
            Change::Failover(kind) => v.ledger.failovers.push(failover(kind)),
            Change::Lose => {
                if let Some(w) = v.ledger.writes.iter_mut().find(|w| w.fate == Fate::Live) {
                    w.fate = Fate::Lost { failover: 0 };
                }
            }
            Change::Spurious => {
                if v.ledger.spurious.is_none() {
                    v.ledger.spurious = Some(r as u8);
                }
            }
            Change::OutageStartsOrStops => {
                v.ledger.outage = match v.ledger.outage {
                    Some(_) => None,
                    None => Some(0),
                }
            }
            Change::RtoWaived => v.ledger.rto_waived = true,
        }
        *v != before
    }
}

#[test]
fn describe_changes_reports_every_change_a_timeline_shows() {
    fn law(v: SmallView, change: Visible) -> TestResult {
        let before = v.0;
        let mut after = before.clone();
        if !change.apply(&mut after) {
            return TestResult::discard();
        }
        if describe_changes(&before, &after).is_empty() {
            TestResult::error(format!("{change:?} not reported"))
        } else {
            TestResult::passed()
        }
    }
    check(law as fn(SmallView, Visible) -> TestResult);
}

#[test]
fn describe_changes_leaves_out_the_passing_of_time() {
    fn law(v: SmallView, ticks: u8) -> TestResult {
        let before = v.0;
        let mut after = before.clone();
        let ticks = 1 + ticks % 5;
        // Leases run down or are renewed without lapsing; the unreachable stay so for longer;
        // writes age; an outage goes on.
        for r in &mut after.regions {
            if r.lease > 0 {
                r.lease = 1 + (r.lease + ticks) % 4;
            }
            r.down_for = r.down_for.map(|t| t.saturating_add(ticks));
        }
        for w in &mut after.ledger.writes {
            w.age = w.age.saturating_add(ticks);
            w.ages_at_outage = w.ages_at_outage.map(|a| a.map(|t| t.saturating_add(ticks)));
        }
        after.ledger.outage = after.ledger.outage.map(|t| t.saturating_add(ticks));
        let changes = describe_changes(&before, &after);
        if changes.is_empty() {
            TestResult::passed()
        } else {
            TestResult::error(format!("{changes:?}"))
        }
    }
    check(law as fn(SmallView, u8) -> TestResult);
}
