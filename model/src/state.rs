//! The model's state: the shared [`View`] plus what only the model tracks (the control plane's
//! private bookkeeping, volatile region timers, heartbeats in flight, remaining fault budget).

use std::fmt;

use drcheck_properties::{fmt_log, Entry, FailoverKind, Fate, RegionView, Role, Status, View};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::config::Config;

/// The most regions a deployment has (the configuration checks it).
pub const MAX_REGIONS: usize = 3;

/// Heartbeats a state holds without a heap allocation: with the default timing, each region
/// has at most two in flight (one due, one just sent).
pub const INLINE_HEARTBEATS: usize = 2 * MAX_REGIONS;

/// What a heartbeat tells the control plane about its sender: the implementation's heartbeat
/// reduced to what the control plane decides on. It is taken when the heartbeat is sent, so
/// the control plane's copy lags the region by the flight and the time since.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Report {
    /// The sender's epoch.
    pub epoch: u8,
    /// The sender's role in that epoch.
    pub role: Role,
    /// How many entries its log holds.
    pub len: u8,
    /// Its last entry.
    pub last: Option<Entry>,
    /// How many of its leading entries were acknowledged at least RPO - heartbeat - delay
    /// ticks ago (the RPO guard reads the primary's, and a newly promoted region's).
    pub old_prefix: u8,
    /// It heard the primary of its epoch within heartbeat + delay (always, from a primary).
    pub contact: bool,
    /// From a primary: the secondaries it counts in sync (bit per region).
    pub in_sync: u8,
    /// From a primary, per in-sync secondary that lacks part of its log: how many ticks ago
    /// the oldest entry it has not confirmed was acknowledged, saturating at the sync
    /// timeout (in the control plane's copy: as of the heartbeat's arrival, so that its age
    /// now adds the silence since).
    pub unconfirmed: [Option<u8>; MAX_REGIONS],
}

impl Report {
    /// Does the sender act as a primary (fenced or not)?
    pub fn ships(&self) -> bool {
        self.role.ships()
    }
}

/// A heartbeat on its way from a region to the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The region that sent it.
    pub from: u8,
    /// Ticks in flight; delivered before it would exceed the maximum delay.
    pub age: u8,
    /// What it reports.
    pub report: Report,
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
        /// Ticks since it started until the fence, then ticks spent draining; saturating at
        /// the drain timeout.
        draining: u8,
        /// An operator asked for it (false only under `--bug auto-data-failback`).
        requested: bool,
    },
}

/// The control plane's private state (its routing is in the view).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlPlane {
    /// Per region: ticks since its last heartbeat arrived, saturating past detection (slots
    /// past the deployment's regions stay 0).
    pub silence: [u8; MAX_REGIONS],
    /// Regions declared failed (bit per region).
    pub failed: u8,
    /// Ticks since the last lease grant to the primary, saturating at lease + skew.
    pub grant_age: u8,
    /// `old_prefix` of the primary's last heartbeat ([`UNKNOWN_PREFIX`] after a restart, until
    /// the primary reports: the RPO guard refuses meanwhile).
    pub old_prefix: u8,
    /// What it is doing about the data primary.
    pub phase: Phase,
    /// Per region: what its last heartbeat reported (`None`: nothing since the control plane
    /// started, or since it declared the region failed, after which no decision reads it;
    /// always `None` past the deployment's regions).
    pub reports: [Option<Report>; MAX_REGIONS],
    /// The data primary took office: it answered its promotion or reported as primary of the
    /// current epoch. Until then a secondary of the previous epoch may still replace it, and
    /// no rejoin is offered (the primary's log is not known).
    pub confirmed: bool,
    /// Regions offered a rejoin since their last report (bit per region): the offer is made
    /// once per report that shows the region behind.
    pub rejoin_offered: u8,
}

/// The `old_prefix` of a control plane that has not heard the primary since it restarted:
/// larger than any log, so the RPO guard refuses.
pub const UNKNOWN_PREFIX: u8 = u8::MAX;

impl ControlPlane {
    /// Is region `r` declared failed?
    pub fn is_failed(&self, r: u8) -> bool {
        self.failed & (1 << r) != 0
    }

    /// What region `r` last reported, if anything.
    pub fn report(&self, r: u8) -> Option<&Report> {
        self.reports.get(usize::from(r))?.as_ref()
    }
}

/// A region's volatile state besides its lease (lost on a crash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Volatile {
    /// Ticks since its last heartbeat was sent.
    pub since_heartbeat: u8,
    /// As primary: the secondaries in sync (bit per region).
    pub in_sync: u8,
    /// Ticks since it last heard the primary of its epoch, saturating at heartbeat + delay +
    /// 1 (it reports contact up to heartbeat + delay).
    pub heard: u8,
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
    /// Per region: its volatile state besides the lease (slots past the deployment's regions
    /// stay at their default).
    pub volatile: [Volatile; MAX_REGIONS],
    /// Heartbeats in flight, oldest first per region (inline up to a few: a state is cloned
    /// for every step the checker takes).
    pub heartbeats: SmallVec<[Heartbeat; INLINE_HEARTBEATS]>,
    /// What is left of the search's budgets.
    pub budget: Budget,
    /// Ticks elapsed, kept only when a horizon bounds the search.
    pub elapsed: Option<u8>,
    /// Failovers decided whose new primary has not taken office yet (ghost bookkeeping for
    /// the ledger, as the implementation's ghost keeps it).
    pub promotions: Vec<Promotion>,
}

/// A failover the control plane decided whose new primary has not taken office yet (the
/// promotion did not reach it: it went down or was cut off since its last report). The
/// ledger records the failover when it does, judged as of the decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Promotion {
    /// The region promoted.
    pub to: u8,
    /// How the failover was decided.
    pub kind: FailoverKind,
    /// The old primary (of the first of a chain of promotions none of whose regions took
    /// office).
    pub from: u8,
    /// The old primary was not declared failed.
    pub from_healthy: bool,
    /// An operator asked for it.
    pub requested: bool,
    /// Each write's `ages_at_outage` at the decision, in the ledger's order.
    pub outage_ages: Vec<[Option<u8>; 3]>,
}

impl DrState {
    /// The initial state: region 0 is primary and compute region of epoch 1 and holds a lease;
    /// everything else is a caught-up secondary.
    pub fn initial(cfg: &Config) -> DrState {
        let n = usize::from(cfg.regions);
        DrState {
            view: View::initial(cfg.regions, cfg.lease_wait()),
            control: ControlPlane {
                silence: [0; MAX_REGIONS],
                failed: 0,
                grant_age: 0,
                old_prefix: 0,
                phase: Phase::Normal,
                // A new deployment: the control plane knows how every region starts.
                reports: std::array::from_fn(|r| {
                    (r < n).then_some(Report {
                        epoch: 1,
                        role: if r == 0 {
                            Role::Primary
                        } else {
                            Role::Secondary
                        },
                        len: 0,
                        last: None,
                        old_prefix: 0,
                        contact: true,
                        in_sync: 0,
                        unconfirmed: [None; MAX_REGIONS],
                    })
                }),
                confirmed: true,
                rejoin_offered: 0,
            },
            volatile: std::array::from_fn(|r| {
                if r < n {
                    Volatile {
                        since_heartbeat: 0,
                        in_sync: if r == 0 { all_but(n, 0) } else { 0 },
                        heard: cfg.contact_cap(),
                    }
                } else {
                    Volatile::default()
                }
            }),
            heartbeats: SmallVec::new(),
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
            promotions: Vec::new(),
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
                if region.role == Role::Secondary {
                    items.push(format!("heard primary {} ago", vol.heard));
                }
            }
            wrapped(f, &format!("region {r}: "), &items, ", ")?;
        }

        let c = &self.control;
        let routing = &v.routing;
        let silence: Vec<String> = c.silence[..n].iter().map(u8::to_string).collect();
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
        let reports: Vec<String> = c.reports[..n]
            .iter()
            .enumerate()
            .map(|(r, report)| match report {
                None => format!("{r}: none"),
                Some(h) => {
                    let mut s = format!("{r}: {:?}@{} len {}", h.role, h.epoch, h.len);
                    if !h.contact {
                        s.push_str(" no contact");
                    }
                    if h.ships() {
                        s.push_str(&format!(" in sync {}", fmt_bits(h.in_sync, n)));
                    }
                    for (x, age) in h.unconfirmed.iter().enumerate() {
                        if let Some(age) = age {
                            s.push_str(&format!(" ({x} lags {age})"));
                        }
                    }
                    s
                }
            })
            .collect();
        let mut knows = reports;
        if !c.confirmed {
            knows.push("primary not yet in office".to_string());
        }
        if c.rejoin_offered != 0 {
            knows.push(format!("rejoin offered {}", fmt_bits(c.rejoin_offered, n)));
        }
        wrapped(f, "reports: ", &knows, ", ")?;

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
