//! The stateright [`Model`]: the protocol's steps, the properties of the catalog, and a probe
//! that records the worst data loss and outage over every state the checker generates.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use drcheck_properties::{Bounds, FailoverKind, SingleFault, CATALOG};
use stateright::{Model, Path, Property};

use crate::action::Action;
use crate::config::Config;
use crate::protocol;
use crate::state::DrState;

/// The DR protocol as a stateright model.
pub struct DrModel {
    /// The configuration explored, in ticks.
    pub cfg: Config,
    /// The bounds the properties judge against ([`Config::bounds`]).
    pub bounds: Bounds,
    /// Check only this property (by name); all when `None`.
    pub only: Option<&'static str>,
    /// Worst values seen by the checker.
    pub probe: Arc<Probe>,
    /// List only enabled steps (the Explorer shows every listed step; the checker skips the
    /// disabled ones itself, more cheaply).
    pub enabled_only: bool,
    /// [`Config::max_epoch`], read once: states past it are outside the boundary.
    pub max_epoch: u8,
}

impl DrModel {
    /// The model of `cfg`, checking every property (see [`DrModel::only`] and
    /// [`DrModel::for_explorer`]).
    pub fn new(cfg: Config) -> DrModel {
        DrModel {
            bounds: cfg.bounds(),
            max_epoch: cfg.max_epoch(),
            cfg,
            only: None,
            probe: Arc::new(Probe::default()),
            enabled_only: false,
        }
    }

    /// The model as the Explorer should show it: only enabled steps are offered.
    pub fn for_explorer(mut self) -> DrModel {
        self.enabled_only = true;
        self
    }

    /// Checks only the named property.
    pub fn only(mut self, name: &'static str) -> DrModel {
        self.only = Some(name);
        self
    }

    /// The initial state.
    pub fn initial(&self) -> DrState {
        DrState::initial(&self.cfg)
    }

    /// Is `s` explored? Not once the time budget has run out, nor past the epoch bound (see
    /// `within_boundary`, which also lets the probe observe `s`); the probe records why not.
    pub(crate) fn admits(&self, s: &DrState) -> bool {
        if self.probe.expired() {
            self.probe.mark_cut();
            return false;
        }
        if s.view.routing.epoch > self.max_epoch {
            self.probe.epochs_exceeded.store(true, Ordering::Relaxed);
            self.probe.mark_cut();
            self.probe.expire();
            return false;
        }
        true
    }

    /// Every enabled step from `s` with its successor, in a fixed order.
    pub fn successors(&self, s: &DrState) -> Vec<(Action, DrState)> {
        let mut candidates = Vec::new();
        protocol::candidates(&self.cfg, s, &mut candidates);
        candidates
            .into_iter()
            .filter_map(|a| protocol::apply(&self.cfg, s, &a).map(|n| (a, n)))
            .collect()
    }
}

/// The measures `check` reports as worst over all reachable states, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Oldest write lost by an automatic failover, before the outage began.
    DataLoss,
    /// Oldest write lost by an operator-forced failover, before the outage began.
    ForcedDataLoss,
    /// Time from a single-fault primary outage until the endpoint takes writes again.
    OutageToWrites,
    /// The longest spell without writes under a single fault of this kind
    /// (`write_availability`'s clock).
    Unwritable(SingleFault),
}

impl Metric {
    /// Every metric, in the order the probe stores them.
    pub const ALL: [Metric; 7] = [
        Metric::DataLoss,
        Metric::ForcedDataLoss,
        Metric::OutageToWrites,
        Metric::Unwritable(SingleFault::PrimaryOutage),
        Metric::Unwritable(SingleFault::SecondaryOutage),
        Metric::Unwritable(SingleFault::Partition),
        Metric::Unwritable(SingleFault::ControlRestart),
    ];

    /// The metric's value in a state (`None`: nothing to measure there).
    pub fn value(self, s: &DrState) -> Option<u8> {
        let ledger = &s.view.ledger;
        let loss = |kind| {
            ledger
                .failovers
                .iter()
                .filter(|f| f.kind == kind)
                .filter_map(|f| f.oldest_loss)
                .max()
        };
        match self {
            Metric::DataLoss => loss(FailoverKind::Automatic),
            Metric::ForcedDataLoss => loss(FailoverKind::Forced),
            Metric::OutageToWrites => ledger.outage,
            Metric::Unwritable(kind) => ledger
                .unwritable
                .filter(|_| ledger.single_fault == Some(kind)),
        }
    }

    /// The metric's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Metric::DataLoss => "data_loss",
            Metric::ForcedDataLoss => "forced_data_loss",
            Metric::OutageToWrites => "outage_to_writes",
            Metric::Unwritable(SingleFault::PrimaryOutage) => "unwritable_primary_outage",
            Metric::Unwritable(SingleFault::SecondaryOutage) => "unwritable_secondary_outage",
            Metric::Unwritable(SingleFault::Partition) => "unwritable_partition",
            Metric::Unwritable(SingleFault::ControlRestart) => "unwritable_control_restart",
        }
    }
}

/// Worst metric values seen, plus one (stored as value + 1 so that 0 means "none").
#[derive(Debug, Default)]
pub struct Probe {
    worst: [AtomicU8; 7],
    rto_waived: AtomicBool,
    /// Set when the time budget runs out, or the epochs pass their bound: from then on no new
    /// state is explored.
    expired: AtomicBool,
    /// Some state was left out because its epoch passed [`Config::max_epoch`].
    epochs_exceeded: AtomicBool,
    /// Some state was left unexplored because the time budget ran out.
    cut: AtomicBool,
}

impl Probe {
    fn observe(&self, s: &DrState) {
        for (slot, metric) in self.worst.iter().zip(Metric::ALL) {
            if let Some(v) = metric.value(s) {
                slot.fetch_max(v.saturating_add(1), Ordering::Relaxed);
            }
        }
        if s.view.ledger.rto_waived && !self.rto_waived.load(Ordering::Relaxed) {
            self.rto_waived.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the exploration: every state generated from now on is left out. (stateright's
    /// own timeout is not seen by a single checker thread that always has work.)
    pub fn expire(&self) {
        self.expired.store(true, Ordering::Relaxed);
    }

    /// Was some state left unexplored because the time budget ran out (or the epochs passed
    /// their bound)?
    pub fn cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Did some promotion take the epoch past [`Config::max_epoch`] (so that failovers repeat
    /// without bound, and the exploration was stopped there)?
    pub fn epochs_exceeded(&self) -> bool {
        self.epochs_exceeded.load(Ordering::Relaxed)
    }

    /// Did the RPO guard refuse an automatic failover in some state (so that availability
    /// waited for the old primary or the operator, and the RTO did not apply)?
    pub fn rto_waived(&self) -> bool {
        self.rto_waived.load(Ordering::Relaxed)
    }

    /// The worst value of `metric` observed, if any state had one.
    pub fn worst(&self, metric: Metric) -> Option<u8> {
        let i = Metric::ALL.iter().position(|&m| m == metric)?;
        self.worst[i].load(Ordering::Relaxed).checked_sub(1)
    }

    /// Records that some state has `value` for `Metric::ALL[i]`.
    pub(crate) fn record_worst(&self, i: usize, value: u8) {
        if let Some(slot) = self.worst.get(i) {
            slot.fetch_max(value.saturating_add(1), Ordering::Relaxed);
        }
    }

    /// Records that the RPO guard refused an automatic failover in some state.
    pub(crate) fn record_rto_waived(&self) {
        self.rto_waived.store(true, Ordering::Relaxed);
    }

    /// Has the exploration been stopped ([`Probe::expire`])?
    pub(crate) fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    /// Records that some state was left unexplored.
    pub(crate) fn mark_cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }
}

/// The name of a property that always holds, which the checker's model lists after the
/// catalog's. stateright 0.31 does not expand a state once it has a discovery for every
/// property it checks there (a violated `always`, a found `sometimes`): with `--property P`
/// that is every state past a counterexample of P (or an example of a `sometimes` P), so the
/// state count, the worst cases and `complete` would depend on `--property`. A property that
/// is never discovered keeps every state expanding, at the cost of one call per state; and
/// `check` finishes only when this property is discovered, which is never, so the whole
/// space is explored. (The Explorer's model leaves it out of its list.)
pub const EXPLORE_ALL: &str = "<explore every state>";

/// `holds::<I>` checks `CATALOG[I]`: stateright wants plain function pointers.
fn holds<const I: usize>(m: &DrModel, s: &DrState) -> bool {
    CATALOG[I].holds_in(&s.view, &m.bounds)
}

const CONDITIONS: [fn(&DrModel, &DrState) -> bool; 19] = [
    holds::<0>,
    holds::<1>,
    holds::<2>,
    holds::<3>,
    holds::<4>,
    holds::<5>,
    holds::<6>,
    holds::<7>,
    holds::<8>,
    holds::<9>,
    holds::<10>,
    holds::<11>,
    holds::<12>,
    holds::<13>,
    holds::<14>,
    holds::<15>,
    holds::<16>,
    holds::<17>,
    holds::<18>,
];

const _: () = assert!(CONDITIONS.len() == CATALOG.len());

impl Model for DrModel {
    type State = DrState;
    type Action = Action;

    fn init_states(&self) -> Vec<DrState> {
        vec![self.initial()]
    }

    fn actions(&self, s: &DrState, actions: &mut Vec<Action>) {
        protocol::candidates(&self.cfg, s, actions);
        if self.enabled_only {
            actions.retain(|a| protocol::apply(&self.cfg, s, a).is_some());
        }
    }

    fn next_state(&self, s: &DrState, action: Action) -> Option<DrState> {
        protocol::apply(&self.cfg, s, &action)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{} | {action}", action.actor())
    }

    /// The Explorer shows the next state in its compact `Display` form, not as `{:#?}`.
    fn format_step(&self, last_state: &DrState, action: Action) -> Option<String> {
        self.next_state(last_state, action)
            .map(|next| next.to_string())
    }

    /// The Explorer's sequence diagram of the path (see [`crate::svg`]).
    fn as_svg(&self, path: Path<DrState, Action>) -> Option<String> {
        Some(crate::svg::sequence_diagram(&self.cfg, &path.into_vec()))
    }

    /// The catalog's properties (or only the one [`DrModel::only`] names), and, for the
    /// checker, [`EXPLORE_ALL`].
    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties: Vec<Property<Self>> = CATALOG
            .iter()
            .zip(CONDITIONS)
            .filter(|(spec, _)| self.only.is_none_or(|name| name == spec.name))
            .map(|(spec, condition)| match spec.expectation() {
                drcheck_properties::Expectation::Always => Property::always(spec.name, condition),
                drcheck_properties::Expectation::Sometimes => {
                    Property::sometimes(spec.name, condition)
                }
            })
            .collect();
        if !self.enabled_only {
            properties.push(Property::always(EXPLORE_ALL, |_, _| true));
        }
        properties
    }

    /// Every generated state passes here once: the probe records the worst metrics, and
    /// once the time budget has run out no state is let in. Nor is a state whose epoch passed
    /// [`Config::max_epoch`]: it shows that failovers repeat without bound, so the
    /// exploration stops there (rather than growing with every epoch, or overflowing it) and
    /// the report says why.
    fn within_boundary(&self, s: &DrState) -> bool {
        if !self.admits(s) {
            return false;
        }
        self.probe.observe(s);
        true
    }
}
