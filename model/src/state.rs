//! The model's state: the shared [`View`] plus what only the model tracks (the control plane's
//! private bookkeeping, volatile region timers, heartbeats in flight, remaining fault budget).

use std::fmt;

use drcheck_properties::{fmt_log, Ledger, RegionView, Role, Routing, Status, View};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// A heartbeat on its way from a region to the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Heartbeat {
    pub from: u8,
    /// Ticks in flight; delivered before it would exceed the maximum delay.
    pub age: u8,
    pub epoch: u8,
    pub role: Role,
    /// From a primary: how many of its entries were acknowledged at least
    /// RPO - heartbeat - delay ticks ago.
    pub old_prefix: u8,
}

/// What the control plane is doing about the data primary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Normal,
    /// The primary was declared failed; the control plane waits for the old lease to expire
    /// (and, if the RPO guard refused, for the grace period and then the operator).
    FailingOver {
        from: u8,
        /// The RPO guard's verdict, judged at the last heartbeat.
        guard_ok: bool,
        /// Ticks since detection, saturating at the grace period.
        waited: u8,
    },
    /// Manual data failback in progress.
    Switchover {
        target: u8,
        fenced: bool,
        /// Ticks spent draining, saturating at the drain timeout.
        draining: u8,
        /// An operator asked for it (false only under `--bug auto-data-failback`).
        requested: bool,
    },
}

/// The control plane's private state (its routing is in the view).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlPlane {
    /// Per region: ticks since its last heartbeat arrived, saturating past detection.
    pub silence: Vec<u8>,
    /// Regions declared failed (bit per region).
    pub failed: u8,
    /// Ticks since the last lease grant to the primary, saturating at lease + skew.
    pub grant_age: u8,
    /// `old_prefix` of the primary's last heartbeat.
    pub old_prefix: u8,
    pub phase: Phase,
}

impl ControlPlane {
    pub fn is_failed(&self, r: u8) -> bool {
        self.failed & (1 << r) != 0
    }
}

/// A region's volatile state besides its lease (lost on a crash).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Volatile {
    /// Ticks since its last heartbeat was sent.
    pub since_heartbeat: u8,
    /// As primary: the secondaries in sync (bit per region).
    pub in_sync: u8,
}

/// What is left of the search's budgets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    pub writes: u8,
    pub outages: u8,
    pub partitions: u8,
    pub failbacks: u8,
    pub forced: u8,
    pub reapplies: u8,
}

/// One state of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DrState {
    pub view: View,
    pub control: ControlPlane,
    pub volatile: Vec<Volatile>,
    /// Heartbeats in flight, oldest first per region.
    pub heartbeats: Vec<Heartbeat>,
    pub budget: Budget,
    /// Ticks elapsed, kept only when a horizon bounds the search.
    pub elapsed: Option<u8>,
}

impl DrState {
    /// The initial state: region 0 is primary and compute region of epoch 1 and holds a lease;
    /// everything else is a caught-up secondary.
    pub fn initial(cfg: &Config) -> DrState {
        let n = usize::from(cfg.regions);
        let regions = (0..n)
            .map(|r| RegionView {
                status: Status::Up,
                role: if r == 0 {
                    Role::Primary
                } else {
                    Role::Secondary
                },
                epoch: 1,
                log: Vec::new(),
                lease: if r == 0 { cfg.lease_wait() } else { 0 },
                quarantine: Vec::new(),
                down_for: None,
                dark: false,
            })
            .collect();
        DrState {
            view: View {
                regions,
                routing: Routing {
                    epoch: 1,
                    primary: 0,
                    compute: 0,
                    home: 0,
                },
                partitioned: false,
                ledger: Ledger::default(),
            },
            control: ControlPlane {
                silence: vec![0; n],
                failed: 0,
                grant_age: 0,
                old_prefix: 0,
                phase: Phase::Normal,
            },
            volatile: (0..n)
                .map(|r| Volatile {
                    since_heartbeat: 0,
                    in_sync: if r == 0 { all_but(n, 0) } else { 0 },
                })
                .collect(),
            heartbeats: Vec::new(),
            budget: Budget {
                writes: cfg.writes,
                outages: cfg.outages,
                partitions: cfg.partitions,
                failbacks: cfg.failbacks,
                forced: cfg.forced,
                reapplies: cfg.reapplies,
            },
            elapsed: cfg.horizon.map(|_| 0),
        }
    }

    pub fn region(&self, r: u8) -> &RegionView {
        &self.view.regions[usize::from(r)]
    }

    pub fn region_mut(&mut self, r: u8) -> &mut RegionView {
        &mut self.view.regions[usize::from(r)]
    }

    pub fn region_count(&self) -> u8 {
        // At most 3 regions (checked by the configuration).
        self.view.regions.len() as u8
    }

    /// Can the control plane reach region `r` (and `r` the control plane)?
    pub fn reachable(&self, r: u8) -> bool {
        self.region(r).status == Status::Up
    }

    /// Can regions `a` and `b` exchange data?
    pub fn connected(&self, a: u8, b: u8) -> bool {
        self.view.connected(usize::from(a), usize::from(b))
    }
}

/// Bits of every region but `except`.
pub fn all_but(n: usize, except: usize) -> u8 {
    (0..n).filter(|&r| r != except).fold(0, |m, r| m | (1 << r))
}

impl fmt::Display for DrState {
    /// Compact, one line per participant: how states read in the Explorer and timelines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.view;
        for (r, region) in v.regions.iter().enumerate() {
            write!(
                f,
                "region {r}: {:?} {:?}@{} log {} lease {}",
                region.status,
                region.role,
                region.epoch,
                fmt_log(&region.log),
                region.lease
            )?;
            if !region.quarantine.is_empty() {
                write!(f, " quarantine {:?}", region.quarantine)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "control: epoch {} primary {} compute {} failed {:#b} phase {:?}{}",
            v.routing.epoch,
            v.routing.primary,
            v.routing.compute,
            self.control.failed,
            self.control.phase,
            if v.partitioned { " (partitioned)" } else { "" }
        )?;
        let writes: Vec<String> = v
            .ledger
            .writes
            .iter()
            .map(|w| format!("w{}@{}:{:?} age {}", w.id, w.by, w.fate, w.age))
            .collect();
        write!(f, "ledger: [{}]", writes.join(", "))?;
        for (n, fo) in v.ledger.failovers.iter().enumerate() {
            write!(
                f,
                "\nfailover #{n}: {:?} {}->{} lost {}",
                fo.kind, fo.from, fo.to, fo.lost
            )?;
        }
        Ok(())
    }
}
