//! The catalog: unique names, lookup by name, and exactly the properties these tests test.

use std::collections::HashSet;

use drcheck_properties::{property, Check, Expectation, CATALOG};

use crate::support::*;

// ---------------------------------------------------------------------------------------------
// CATALOG
// ---------------------------------------------------------------------------------------------

#[test]
fn catalog_names_are_unique() {
    let names: HashSet<&str> = CATALOG.iter().map(|p| p.name).collect();
    assert_eq!(names.len(), CATALOG.len());
}

#[test]
fn property_finds_every_catalog_entry() {
    for spec in CATALOG {
        let found = property(spec.name).unwrap_or_else(|| panic!("{} not found", spec.name));
        assert_eq!(found.name, spec.name);
        assert_eq!(found.summary, spec.summary);
    }
}

#[test]
fn property_of_unknown_name_is_none() {
    assert!(property("no_such_property").is_none());
}

/// Every property has tests in this binary: a new one must be added here and tested.
#[test]
fn catalog_lists_exactly_the_tested_properties() {
    assert_eq!(
        names_of(Expectation::Always),
        [
            "single_writer",
            "log_matching",
            "rpo_bound",
            "loss_window",
            "no_spurious_failover",
            "no_silent_loss",
            "no_resurrection",
            "rto_bound",
            "data_failback_manual",
            "failback_zero_loss",
            "routing_healthy",
            "write_availability",
            "failback_completes",
        ]
    );
    assert_eq!(
        names_of(Expectation::Sometimes),
        [
            "failover_reachable",
            "forced_failover_reachable",
            "failback_reachable",
            "quarantine_reachable",
            "loss_within_rpo_reachable",
            "compute_split_reachable",
        ]
    );
}

#[test]
fn expectation_matches_the_kind_of_check() {
    for spec in CATALOG {
        let expected = match spec.check {
            Check::Always(_) => Expectation::Always,
            Check::Sometimes(_) => Expectation::Sometimes,
        };
        assert_eq!(spec.expectation(), expected, "{}", spec.name);
    }
}
