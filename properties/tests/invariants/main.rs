//! Unit tests of the properties crate: every invariant against hand-built views, the ghost
//! ledger's bookkeeping, `describe_changes` and the catalog, in one test binary.
//!
//! Each invariant test starts from [`support::baseline`], a healthy two-region deployment,
//! changes as little as possible, and checks that exactly the property under test notices.

#[path = "../support/mod.rs"]
mod support;

mod always;
mod catalog;
mod describe;
mod ledger;
mod sometimes;
