//! The model's state: the shared [`View`] plus what only the model tracks (the control plane's
//! private bookkeeping, volatile region timers, heartbeats in flight, remaining fault budget).

use std::fmt;

use drcheck_properties::{fmt_log, Fate, RegionView, Role, Status, View};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// A heartbeat on its way from a region to the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The region that sent it.
    pub from: u8,
    /// Ticks in flight; delivered before it would exceed the maximum delay.
    pub age: u8,
    /// The sender's epoch when it sent it.
    pub epoch: u8,
    /// The sender's role when it sent it.
    pub role: Role,
    /// From a primary: how many of its entries were acknowledged at least
    /// RPO - heartbeat - delay ticks ago.
    pub old_prefix: u8,
}

/// What the control plane is doing about the data primary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// No failover or switchover under way.
    Normal,
    /// The primary was declared failed; the control plane waits for the old lease to expire
    /// (and, if the RPO guard refused, for the grace period and then the operator).
    FailingOver {
        /// The primary declared failed.
        from: u8,
        /// The RPO guard's verdict, judged at the last heartbeat.
        guard_ok: bool,
        /// Ticks since detection, saturating at the grace period.
        waited: u8,
    },
    /// Manual data failback in progress.
    Switchover {
        /// The region the data fails back to.
        target: u8,
        /// The primary has fenced: it stopped writing and gave up its lease.
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
    /// `old_prefix` of the primary's last heartbeat ([`UNKNOWN_PREFIX`] after a restart, until
    /// the primary reports: the RPO guard refuses meanwhile).
    pub old_prefix: u8,
    /// What it is doing about the data primary.
    pub phase: Phase,
}

/// The `old_prefix` of a control plane that has not heard the primary since it restarted:
/// larger than any log, so the RPO guard refuses.
pub const UNKNOWN_PREFIX: u8 = u8::MAX;

impl ControlPlane {
    /// Is region `r` declared failed?
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
    /// Client writes left.
    pub writes: u8,
    /// Region outages (crash or isolation) left.
    pub outages: u8,
    /// Inter-region partitions left.
    pub partitions: u8,
    /// Operator failback requests left.
    pub failbacks: u8,
    /// Forced failovers left.
    pub forced: u8,
    /// Re-applies of quarantined writes left.
    pub reapplies: u8,
    /// Control-plane restarts left.
    pub cp_restarts: u8,
    /// Message losses left.
    pub losses: u8,
}

/// One state of the model. Its `Debug` is the compact `Display`: the Explorer prints states
/// with `Debug`, and a derived one would bury the protocol under field names.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DrState {
    /// The abstract view the properties judge: regions, routing, ghost ledger.
    pub view: View,
    /// The control plane's private state.
    pub control: ControlPlane,
    /// Per region: its volatile state besides the lease.
    pub volatile: Vec<Volatile>,
    /// Heartbeats in flight, oldest first per region.
    pub heartbeats: Vec<Heartbeat>,
    /// What is left of the search's budgets.
    pub budget: Budget,
    /// Ticks elapsed, kept only when a horizon bounds the search.
    pub elapsed: Option<u8>,
}

impl DrState {
    /// The initial state: region 0 is primary and compute region of epoch 1 and holds a lease;
    /// everything else is a caught-up secondary.
    pub fn initial(cfg: &Config) -> DrState {
        let n = usize::from(cfg.regions);
        DrState {
            view: View::initial(cfg.regions, cfg.lease_wait()),
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
                cp_restarts: cfg.cp_restarts,
                losses: cfg.losses,
            },
            elapsed: cfg.horizon.map(|_| 0),
        }
    }

    /// Region `r` of the view.
    pub fn region(&self, r: u8) -> &RegionView {
        &self.view.regions[usize::from(r)]
    }

    /// Region `r` of the view, to change.
    pub fn region_mut(&mut self, r: u8) -> &mut RegionView {
        &mut self.view.regions[usize::from(r)]
    }

    /// How many regions the deployment has.
    pub fn region_count(&self) -> u8 {
        // At most 3 regions (checked by the configuration).
        self.view.regions.len() as u8
    }

    /// Index in `heartbeats` of the oldest heartbeat in flight from region `r`, if any.
    pub fn oldest_heartbeat(&self, r: u8) -> Option<usize> {
        self.heartbeats
            .iter()
            .enumerate()
            .filter(|(_, h)| h.from == r)
            .max_by_key(|(_, h)| h.age)
            .map(|(i, _)| i)
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

/// Longest line [`DrState`]'s `Display` writes (longer lists wrap onto indented lines).
pub const DISPLAY_WIDTH: usize = 96;

/// Writes `head` then `items` separated by `sep`, wrapping onto lines indented by two spaces
/// so that no line exceeds [`DISPLAY_WIDTH`] (an item longer than that stays whole).
fn wrapped(f: &mut fmt::Formatter<'_>, head: &str, items: &[String], sep: &str) -> fmt::Result {
    let mut line = head.to_string();
    let mut first = true;
    for item in items {
        let piece = if first {
            item.clone()
        } else {
            format!("{sep}{item}")
        };
        if !first && line.len() + piece.trim_end().len() > DISPLAY_WIDTH {
            writeln!(f, "{}", line.trim_end())?;
            line = format!("  {item}");
        } else {
            line.push_str(&piece);
        }
        first = false;
    }
    writeln!(f, "{}", line.trim_end())
}

/// Region numbers set in `bits`, as `[0 2]`.
fn fmt_bits(bits: u8, n: usize) -> String {
    let set: Vec<String> = (0..n)
        .filter(|r| bits & (1 << r) != 0)
        .map(|r| r.to_string())
        .collect();
    format!("[{}]", set.join(" "))
}

/// `n` ticks, as `1 tick` or `3 ticks`.
fn ticks(n: u8) -> String {
    if n == 1 {
        "1 tick".to_string()
    } else {
        format!("{n} ticks")
    }
}

fn fmt_ids(ids: &[u8]) -> String {
    let ids: Vec<String> = ids.iter().map(|id| format!("w{id}")).collect();
    format!("[{}]", ids.join(" "))
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Phase::Normal => f.write_str("normal"),
            Phase::FailingOver {
                from,
                guard_ok,
                waited,
            } => write!(
                f,
                "failing over from {from} (RPO guard {}, waited {waited})",
                if guard_ok { "ok" } else { "refused" }
            ),
            Phase::Switchover {
                target,
                fenced,
                draining,
                requested,
            } => write!(
                f,
                "switchover to {target} ({}, draining {draining}{})",
                if fenced { "fenced" } else { "not fenced" },
                if requested { "" } else { ", unrequested" }
            ),
        }
    }
}

impl fmt::Debug for DrState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DrState {
    /// Compact, a few short lines: each region, the control plane, the messages in flight, the
    /// network, the ghost ledger and the remaining budget. This is how the Explorer shows a
    /// state (see `DrModel::format_step`); ages and leases are in ticks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.view;
        let n = v.regions.len();
        for (r, region) in v.regions.iter().enumerate() {
            let status = match region.down_for {
                Some(t) if region.status != Status::Up => {
                    format!("{:?} ({})", region.status, ticks(t))
                }
                _ => format!("{:?}", region.status),
            };
            let mut items = vec![
                format!("{status} {:?}@{}", region.role, region.epoch),
                format!("log {}", fmt_log(&region.log)),
                format!("lease {}", ticks(region.lease)),
            ];
            if !region.quarantine.is_empty() {
                items.push(format!("quarantine {}", fmt_ids(&region.quarantine)));
            }
            if let Some(vol) = self.volatile.get(r) {
                if region.role == Role::Primary {
                    items.push(format!("in sync {}", fmt_bits(vol.in_sync, n)));
                }
                items.push(format!("hb sent {} ago", vol.since_heartbeat));
            }
            wrapped(f, &format!("region {r}: "), &items, ", ")?;
        }

        let c = &self.control;
        let routing = &v.routing;
        let silence: Vec<String> = c.silence.iter().map(u8::to_string).collect();
        wrapped(
            f,
            "control plane: ",
            &[
                format!("epoch {}", routing.epoch),
                format!("data primary {}", routing.primary),
                format!("endpoint -> region {}", routing.compute),
                format!("failed {}", fmt_bits(c.failed, n)),
                format!("phase {}", c.phase),
                format!("silence [{}]", silence.join(" ")),
                format!("grant age {}", c.grant_age),
                format!("old prefix {}", c.old_prefix),
            ],
            ", ",
        )?;

        let heartbeats: Vec<String> = self
            .heartbeats
            .iter()
            .map(|h| format!("from {} age {}", h.from, h.age))
            .collect();
        if heartbeats.is_empty() {
            writeln!(f, "heartbeats: none")?;
        } else {
            wrapped(f, "heartbeats: ", &heartbeats, "; ")?;
        }
        writeln!(f, "partition: {}", if v.partitioned { "yes" } else { "no" })?;

        let ledger = &v.ledger;
        let writes: Vec<String> = ledger
            .writes
            .iter()
            .map(|w| {
                let fate = match w.fate {
                    Fate::Live => "live".to_string(),
                    Fate::Lost { failover } => format!("lost by #{failover}"),
                };
                let mut s = format!("w{} by {} {fate} age {}", w.id, w.by, w.age);
                if w.quarantined {
                    s.push_str(" quarantined");
                }
                if let Some(original) = w.reapply_of {
                    s.push_str(&format!(" (re-applies w{original})"));
                }
                s
            })
            .collect();
        if writes.is_empty() {
            writeln!(f, "writes: none")?;
        } else {
            wrapped(f, "writes: ", &writes, "; ")?;
        }
        let failovers: Vec<String> = ledger
            .failovers
            .iter()
            .enumerate()
            .map(|(i, fo)| {
                let mut s = format!(
                    "#{i} {:?} {}->{} epoch {} lost {}",
                    fo.kind, fo.from, fo.to, fo.epoch, fo.lost
                );
                if let Some(age) = fo.oldest_loss {
                    s.push_str(&format!(" (oldest {age} before outage)"));
                }
                s
            })
            .collect();
        if failovers.is_empty() {
            writeln!(f, "failovers: none")?;
        } else {
            wrapped(f, "failovers: ", &failovers, "; ")?;
        }
        let outage = ledger.outage.map_or("off".to_string(), ticks);
        let spurious = ledger
            .spurious
            .map_or("none".to_string(), |r| format!("region {r}"));
        writeln!(
            f,
            "outage clock: {outage}{}, spurious: {spurious}",
            if ledger.rto_waived {
                " (RTO waived)"
            } else {
                ""
            }
        )?;

        let b = &self.budget;
        write!(
            f,
            "budget: writes {} outages {} partitions {} failbacks {} forced {} reapplies {} \
             restarts {} losses {}",
            b.writes,
            b.outages,
            b.partitions,
            b.failbacks,
            b.forced,
            b.reapplies,
            b.cp_restarts,
            b.losses
        )?;
        if let Some(t) = self.elapsed {
            write!(f, ", elapsed {t}")?;
        }
        Ok(())
    }
}
