//! drcheck-properties: the vocabulary the model and the implementation share.
//!
//! - [`View`]: the abstract view of a DR deployment (regions, routing, ghost [`Ledger`]);
//! - every invariant of DESIGN.md as a plain function over it ([`invariants`]), listed with
//!   its stable name in [`CATALOG`];
//! - [`describe_changes`]: what changed between two views, for readable timelines;
//! - [`Timing`] and its consistency [`timing::RULES`], and the guard list [`Bug`]: what the
//!   model, the implementation and the CLI must spell alike.

#![warn(missing_docs)]

pub mod diff;
pub mod guard;
pub mod invariants;
pub mod ledger;
pub mod region;
pub mod timing;
pub mod view;

pub use diff::describe_changes;
pub use guard::{Bug, UnknownBug};
pub use invariants::{Verdict, Violation};
pub use ledger::{age_cap, FailoverKind, FailoverRecord, Fate, Ledger, SingleFault, WriteRecord};
pub use region::{Entry, Log, RegionView, Role, Routing, Status};
pub use timing::{Inconsistent, Timing};
pub use view::{initial_role, Bounds, View, FIRST_EPOCH, FIRST_PRIMARY};

use serde::{Deserialize, Serialize};

/// How a property is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    /// Must hold in every reachable state.
    Always,
    /// Must hold in at least one reachable state (the model is not vacuous).
    Sometimes,
}

/// The check a property runs on a view.
#[derive(Clone, Copy)]
pub enum Check {
    /// An invariant: returns the violation it finds in the view, if any.
    Always(fn(&View, &Bounds) -> Verdict),
    /// A reachability witness: is the situation it looks for present in the view?
    Sometimes(fn(&View, &Bounds) -> bool),
}

/// One named property.
#[derive(Clone, Copy)]
pub struct PropertySpec {
    /// The stable name (the name of its function in [`invariants`]).
    pub name: &'static str,
    /// One line stating the property, for reports and `--list`.
    pub summary: &'static str,
    /// The function that judges a view.
    pub check: Check,
}

impl PropertySpec {
    /// Whether the property must hold always or be reached sometimes (follows [`Self::check`]).
    pub fn expectation(&self) -> Expectation {
        match self.check {
            Check::Always(_) => Expectation::Always,
            Check::Sometimes(_) => Expectation::Sometimes,
        }
    }

    /// Does the view satisfy the property's condition? (For `sometimes`: is the situation
    /// present?)
    pub fn holds_in(&self, v: &View, b: &Bounds) -> bool {
        match self.check {
            Check::Always(f) => f(v, b).is_ok(),
            Check::Sometimes(f) => f(v, b),
        }
    }
}

macro_rules! catalog {
    ($($kind:ident $name:ident: $summary:literal,)*) => {
        /// Every property, in report order. Names are stable: the CLI, the JSON report and the
        /// tests use them.
        pub const CATALOG: &[PropertySpec] = &[
            $(PropertySpec {
                name: stringify!($name),
                summary: $summary,
                check: Check::$kind(invariants::$name),
            },)*
        ];
    };
}

catalog! {
    Always single_writer: "at no instant can two regions acknowledge writes",
    Always log_matching: "no two regions hold different entries at one epoch and index; secondaries hold a prefix of the primary's log",
    Always rpo_bound: "every write lost by an automatic failover was acknowledged less than RPO before the outage began",
    Always loss_window: "no failover loses two writes acknowledged RPO or more apart under an in-sync secondary (the throttle)",
    Always no_spurious_failover: "a region that is up and reachable is never declared failed",
    Always no_silent_loss: "every acknowledged write is in the primary's log, an unrejoined region's storage, or a quarantine",
    Always no_resurrection: "a quarantined write never re-enters the current epoch's logs except as a new write",
    Always rto_bound: "after a single fault takes the primary out, writes resume within RTO whenever the RPO guard allows",
    Always data_failback_manual: "no promotion away from a healthy primary without an operator request",
    Always failback_zero_loss: "a manual data failback loses no acknowledged write",
    Always routing_healthy: "the endpoint never routes to a region down for longer than the detection time",
    Always write_availability: "after any single fault, every spell without writes lasts at most RTO whenever the RPO guard allows",
    Always failback_completes: "a data failback to an up, linked, in-sync target is accepted and completes or aborts within the drain timeout",
    Sometimes failover_reachable: "an automatic failover happens",
    Sometimes forced_failover_reachable: "an operator-forced failover happens",
    Sometimes failback_reachable: "a manual data failback completes",
    Sometimes quarantine_reachable: "a write lands in a lost-writes quarantine",
    Sometimes loss_within_rpo_reachable: "an automatic failover loses writes, within the RPO",
    Sometimes compute_split_reachable: "compute fails back home while data is elsewhere",
}

/// The property called `name`.
pub fn property(name: &str) -> Option<&'static PropertySpec> {
    CATALOG.iter().find(|p| p.name == name)
}

/// Every `always` property violated by the view.
pub fn violations(v: &View, b: &Bounds) -> Vec<Violation> {
    CATALOG
        .iter()
        .filter_map(|p| match p.check {
            Check::Always(f) => f(v, b).err(),
            Check::Sometimes(_) => None,
        })
        .collect()
}

/// A log as `[1:w1 1:w2 2:w4]` (epoch:write).
pub fn fmt_log(log: &[Entry]) -> String {
    let entries: Vec<String> = log
        .iter()
        .map(|e| format!("{}:w{}", e.epoch, e.write))
        .collect();
    format!("[{}]", entries.join(" "))
}
