//! The conformance suite every [`Store`] runs: the fixtures (random batches of ops as a region
//! writes them, and what they mean by [`Durable::apply`] alone) and the laws, each generic
//! over a [`Harness`] that makes and reopens one kind of store.
//!
//! A store's own tests instantiate the whole suite with [`conformance_tests!`], so that a law
//! added here is run on every store.

use drcheck_properties::Role;
use proptest::prelude::*;

use super::{load_or_init, Durable, Store, StoreError, StoreOp};
use drcheck_protocol::entry::{LogEntry, Quarantined};

/// One kind of store under test, with whatever keeps its data alive between two opens (a
/// temporary directory, a clone).
pub(crate) trait Harness {
    type Store: Store;

    /// A never-written store.
    fn new() -> Self;

    /// The open store.
    fn store(&mut self) -> &mut Self::Store;

    /// Drops the open store and opens the same data again, as a restarted region does.
    fn reopen(&mut self) -> Result<(), StoreError>;
}

pub(crate) fn entry(epoch: u32, write: u64) -> LogEntry {
    LogEntry {
        epoch,
        write,
        acked_at: write * 10,
        reapply_of: write.checked_sub(5),
        payload: format!("{{\"resourceType\":\"Patient\",\"id\":\"{write}\"}}"),
    }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Primary),
        Just(Role::Secondary),
        Just(Role::Fenced),
        Just(Role::Stale),
    ]
}

/// One op; write ids are small so that `MarkReapplied` sometimes hits a quarantined one.
fn op() -> impl Strategy<Value = StoreOp> {
    prop_oneof![
        3 => prop::collection::vec((1u32..4, 0u64..20), 0..4)
            .prop_map(|es| StoreOp::Append(es.into_iter().map(|(e, w)| entry(e, w)).collect())),
        1 => (1u32..6, role()).prop_map(|(epoch, role)| StoreOp::SetRole { epoch, role }),
        1 => (0u64..12).prop_map(|keep| StoreOp::QuarantineSuffix { keep }),
        1 => (0u64..12).prop_map(|keep| StoreOp::Truncate { keep }),
        1 => (0u64..20).prop_map(|write| StoreOp::MarkReapplied { write }),
    ]
}

/// Batches whose first one begins with `SetRole`, as a region writes them.
pub(crate) fn batches() -> impl Strategy<Value = Vec<Vec<StoreOp>>> {
    (
        1u32..6,
        role(),
        prop::collection::vec(op(), 0..4),
        prop::collection::vec(prop::collection::vec(op(), 0..5), 0..12),
    )
        .prop_map(|(epoch, role, first_rest, mut rest)| {
            let mut first = vec![StoreOp::SetRole { epoch, role }];
            first.extend(first_rest);
            rest.insert(0, first);
            rest
        })
}

/// What the batches mean, by [`Durable::apply`] alone.
pub(crate) fn expected(batches: &[Vec<StoreOp>]) -> Durable {
    let mut durable = Durable::fresh(Role::Secondary);
    for op in batches.iter().flatten() {
        durable.apply(op);
    }
    durable
}

pub(crate) fn fail(e: StoreError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Applying `batches` one by one leaves the store holding what [`Durable::apply`] makes of
/// them, before and after a reopen after batch `reopen_after` (taken modulo their number) and
/// a reopen at the end.
pub(crate) fn agrees_with_durable_apply<H: Harness>(
    batches: &[Vec<StoreOp>],
    reopen_after: prop::sample::Index,
) -> Result<(), TestCaseError> {
    let mut h = H::new();
    prop_assert_eq!(h.store().load().map_err(fail)?, None);
    let reopen_after = reopen_after.index(batches.len());
    for (i, batch) in batches.iter().enumerate() {
        h.store().apply(batch).map_err(fail)?;
        if i == reopen_after {
            h.reopen().map_err(fail)?;
            let so_far = expected(&batches[..=i]);
            prop_assert_eq!(h.store().load().map_err(fail)?, Some(so_far));
        }
    }
    let want = expected(batches);
    prop_assert_eq!(h.store().load().map_err(fail)?, Some(want.clone()));
    h.reopen().map_err(fail)?;
    prop_assert_eq!(h.store().load().map_err(fail)?, Some(want));
    Ok(())
}

/// A never-written store loads `None`, also after a reopen; it refuses a batch that does not
/// begin with `SetRole`, and the refused batch changes nothing, not even on reopening.
pub(crate) fn a_never_written_store_loads_none_and_refuses_a_batch_without_set_role<H: Harness>() {
    let mut h = H::new();
    assert_eq!(h.store().load().ok(), Some(None));
    h.reopen().expect("reopen a never-written store");
    assert_eq!(
        h.store().load().ok(),
        Some(None),
        "reopening wrote something"
    );
    let refused = h.store().apply(&[
        StoreOp::Append(vec![entry(1, 1)]),
        StoreOp::SetRole {
            epoch: 1,
            role: Role::Primary,
        },
    ]);
    assert!(
        refused.is_err(),
        "a batch not starting with SetRole was accepted"
    );
    assert_eq!(
        h.store().load().ok(),
        Some(None),
        "a refused batch changed the store"
    );
    h.reopen().expect("reopen");
    assert_eq!(
        h.store().load().ok(),
        Some(None),
        "a refused batch was kept"
    );
}

/// An empty batch is accepted and changes nothing, even in a never-written store.
pub(crate) fn an_empty_batch_changes_nothing<H: Harness>() {
    let mut h = H::new();
    assert!(h.store().apply(&[]).is_ok());
    h.reopen().expect("reopen");
    assert_eq!(h.store().load().ok(), Some(None));
}

/// A never-written store starts from the leading `SetRole`: its epoch and role, not those of
/// a fresh region.
pub(crate) fn the_first_set_role_sets_the_epoch<H: Harness>() {
    let mut h = H::new();
    let ops = [
        StoreOp::SetRole {
            epoch: 4,
            role: Role::Fenced,
        },
        StoreOp::Append(vec![entry(4, 7)]),
    ];
    assert!(h.store().apply(&ops).is_ok());
    for when in ["applied", "reopened"] {
        let loaded = h.store().load().ok().flatten();
        assert_eq!(
            loaded.as_ref().map(|d| (d.epoch, d.role)),
            Some((4, Role::Fenced)),
            "{when}"
        );
        assert_eq!(loaded.map(|d| d.log), Some(vec![entry(4, 7)]), "{when}");
        h.reopen().expect("reopen");
    }
}

/// Once written, a batch may begin with anything: here a quarantine of the log's suffix.
pub(crate) fn once_written_a_batch_may_begin_with_anything<H: Harness>() {
    let mut h = H::new();
    let first = [
        StoreOp::SetRole {
            epoch: 2,
            role: Role::Secondary,
        },
        StoreOp::Append(vec![entry(2, 1), entry(2, 2)]),
    ];
    assert!(h.store().apply(&first).is_ok());
    h.reopen().expect("reopen");
    assert!(h
        .store()
        .apply(&[StoreOp::QuarantineSuffix { keep: 1 }])
        .is_ok());
    let loaded = h.store().load().ok().flatten().expect("written");
    assert_eq!((loaded.epoch, loaded.role), (2, Role::Secondary));
    assert_eq!(loaded.log, vec![entry(2, 1)]);
    assert_eq!(
        loaded.quarantine,
        vec![Quarantined {
            entry: entry(2, 2),
            reapplied: false
        }]
    );
}

/// [`load_or_init`] writes region `r`'s initial state into a never-written store once, and
/// from then on loads what the store holds.
pub(crate) fn load_or_init_writes_the_initial_state_once<H: Harness>() {
    for region in [0, 1] {
        let mut h = H::new();
        let (fresh, _) = drcheck_protocol::durable::initial(region);
        let (booted, new) = load_or_init(h.store(), region).expect("boot");
        assert_eq!((&booted, new), (&fresh, true), "region {region}");
        assert_eq!(h.store().load().ok(), Some(Some(fresh.clone())));
        let append = [StoreOp::Append(vec![entry(1, 1)])];
        assert!(h.store().apply(&append).is_ok());
        h.reopen().expect("reopen");
        let (rebooted, new) = load_or_init(h.store(), region).expect("reboot");
        assert!(!new, "region {region}: a written store booted as new");
        assert_eq!(rebooted.log, vec![entry(1, 1)], "region {region}");
        assert_eq!(rebooted.role, fresh.role, "region {region}");
    }
}

/// Runs the whole conformance suite on the store that harness `$harness` makes, with
/// `$cases` random cases for the property: one test function per law, in a module
/// `conformance` of the invoking module.
macro_rules! conformance_tests {
    ($harness:ty, cases = $cases:expr) => {
        mod conformance {
            use proptest::prelude::*;

            use super::*;
            use $crate::store::conformance as suite;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases($cases))]

                #[test]
                fn agrees_with_durable_apply_also_after_reopening(
                    batches in suite::batches(),
                    reopen_after in any::<prop::sample::Index>(),
                ) {
                    suite::agrees_with_durable_apply::<$harness>(&batches, reopen_after)?;
                }
            }

            #[test]
            fn a_never_written_store_loads_none_and_refuses_a_batch_without_set_role() {
                suite::a_never_written_store_loads_none_and_refuses_a_batch_without_set_role::<
                    $harness,
                >();
            }

            #[test]
            fn an_empty_batch_changes_nothing() {
                suite::an_empty_batch_changes_nothing::<$harness>();
            }

            #[test]
            fn the_first_set_role_sets_the_epoch() {
                suite::the_first_set_role_sets_the_epoch::<$harness>();
            }

            #[test]
            fn once_written_a_batch_may_begin_with_anything() {
                suite::once_written_a_batch_may_begin_with_anything::<$harness>();
            }

            #[test]
            fn load_or_init_writes_the_initial_state_once() {
                suite::load_or_init_writes_the_initial_state_once::<$harness>();
            }
        }
    };
}

pub(crate) use conformance_tests;
