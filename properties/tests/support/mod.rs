//! The fixtures of the properties crate's tests: builders of views, the healthy baseline and
//! the views of a failover and a rejoin, and the assertions on what a view violates.
//!
//! Both test binaries (tests/invariants/ and tests/laws.rs) compile this module, and each uses
//! only part of it: an item one leaves unused the other uses, hence `dead_code` is allowed for
//! the whole module rather than item by item.
#![allow(dead_code)]

use drcheck_properties::{
    property, violations, Bounds, Entry, Expectation, FailoverKind, FailoverRecord, Fate, Ledger,
    RegionView, Role, Routing, Status, View, Violation, WriteRecord, CATALOG,
};

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

pub const BOUNDS: Bounds = Bounds {
    rpo: 15,
    rto: 60,
    detection: 5,
    drain_timeout: 5,
};

/// The ages' saturation point (the model uses max(rpo, throttle); here the throttle is <= RPO).
pub const CAP: u8 = BOUNDS.rpo;

/// A log of `(epoch, write)` pairs.
pub fn log(entries: &[(u8, u8)]) -> Vec<Entry> {
    entries
        .iter()
        .map(|&(epoch, write)| Entry { epoch, write })
        .collect()
}

/// An up, reachable region with an empty quarantine.
pub fn region(role: Role, epoch: u8, lease: u8, entries: &[(u8, u8)]) -> RegionView {
    RegionView {
        status: Status::Up,
        role,
        epoch,
        log: log(entries).into(),
        lease,
        quarantine: Vec::new(),
        down_for: None,
        dark: false,
    }
}

/// A live, protected write acknowledged by `by`.
pub fn write(id: u8, by: u8, age: u8, gap: u8) -> WriteRecord {
    WriteRecord {
        id,
        by,
        age,
        gap,
        fate: Fate::Live,
        reapply_of: None,
        quarantined: false,
        reapplied: false,
        protected_by: 0b10,
        ages_at_outage: [None; 3],
    }
}

/// A promotion of region 1 in place of region 0 into epoch 2 that lost nothing; tests set
/// the fields they care about.
pub fn failover(kind: FailoverKind) -> FailoverRecord {
    FailoverRecord {
        kind,
        from: 0,
        to: 1,
        epoch: 2,
        lost: 0,
        oldest_loss: None,
        spread: 0,
        from_healthy: false,
        requested: false,
    }
}

/// A failover record that lost `lost` writes, the oldest `oldest_loss` ticks before the outage.
pub fn lossy_failover(kind: FailoverKind, lost: u8, oldest_loss: u8, spread: u8) -> FailoverRecord {
    FailoverRecord {
        lost,
        oldest_loss: Some(oldest_loss),
        spread,
        ..failover(kind)
    }
}

/// The healthy baseline: region 0 is the primary of epoch 1 with a lease of 6 ticks and log
/// `[1:w1 1:w2 1:w3]`; region 1 is its in-sync secondary holding `[1:w1 1:w2]`. w1 and w2 are
/// held everywhere (settled: age = cap); w3 was acknowledged 2 ticks ago.
pub fn baseline() -> View {
    View {
        regions: vec![
            region(Role::Primary, 1, 6, &[(1, 1), (1, 2), (1, 3)]),
            region(Role::Secondary, 1, 0, &[(1, 1), (1, 2)]),
        ]
        .into(),
        routing: Routing {
            epoch: 1,
            primary: 0,
            compute: 0,
            home: 0,
        },
        partitioned: false,
        ledger: Ledger {
            writes: vec![
                write(1, 0, CAP, CAP),
                write(2, 0, CAP, 4),
                write(3, 0, 2, CAP),
            ]
            .into(),
            ..Ledger::default()
        },
    }
}

/// The baseline after region 0 crashed and region 1 was promoted automatically into epoch 2,
/// losing w3 (acknowledged 2 ticks before the outage). Region 0 has not rejoined yet.
pub fn after_failover() -> View {
    let mut v = baseline();
    crash(&mut v, 0, 8);
    v.regions[1].role = Role::Primary;
    v.regions[1].epoch = 2;
    v.regions[1].lease = 6;
    v.routing = Routing {
        epoch: 2,
        primary: 1,
        compute: 1,
        home: 0,
    };
    let w3 = write_mut(&mut v, 3);
    w3.fate = Fate::Lost { failover: 0 };
    w3.age = CAP;
    v.ledger
        .failovers
        .push(lossy_failover(FailoverKind::Automatic, 1, 2, 0));
    v
}

/// [`after_failover`], then region 0 recovered and rejoined as a secondary of epoch 2, moving
/// its divergent w3 into its quarantine.
pub fn after_rejoin() -> View {
    let mut v = after_failover();
    let r0 = &mut v.regions[0];
    r0.status = Status::Up;
    r0.role = Role::Secondary;
    r0.epoch = 2;
    r0.log = log(&[(1, 1), (1, 2)]).into();
    r0.quarantine = vec![3];
    r0.down_for = None;
    r0.dark = false;
    write_mut(&mut v, 3).quarantined = true;
    v
}

/// Region `r` crashed `ticks` ago: its lease is gone, its durable log survives.
pub fn crash(v: &mut View, r: usize, ticks: u8) {
    let region = &mut v.regions[r];
    region.status = Status::Down;
    region.lease = 0;
    region.down_for = Some(ticks);
    region.dark = true;
}

pub fn write_mut(v: &mut View, id: u8) -> &mut WriteRecord {
    v.ledger
        .writes
        .iter_mut()
        .find(|w| w.id == id)
        .expect("no such write")
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

pub fn assert_healthy(v: &View) {
    let found = violations(v, &BOUNDS);
    assert!(found.is_empty(), "unexpected violations: {found:#?}");
}

/// Asserts that `name` is the only `always` property the view violates, and returns the
/// violation.
pub fn only_violation(v: &View, name: &str) -> Violation {
    let mut found = violations(v, &BOUNDS);
    assert_eq!(
        found.iter().map(|f| f.property).collect::<Vec<_>>(),
        vec![name],
        "violations: {found:#?}"
    );
    found.remove(0)
}

pub fn assert_mentions(violation: &Violation, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            violation.reason.contains(fragment),
            "reason {:?} does not mention {fragment:?}",
            violation.reason
        );
    }
}

/// Does the view show the situation the `sometimes` property `name` looks for?
pub fn present(name: &str, v: &View) -> bool {
    let spec = property(name).expect("unknown property");
    assert_eq!(spec.expectation(), Expectation::Sometimes);
    spec.holds_in(v, &BOUNDS)
}

pub fn names_of(expectation: Expectation) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|p| p.expectation() == expectation)
        .map(|p| p.name)
        .collect()
}

/// The baseline with one more failover record.
pub fn with_failover(record: FailoverRecord) -> View {
    let mut v = baseline();
    v.ledger.failovers.push(record);
    v
}
