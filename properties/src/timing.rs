//! The protocol's timing parameters, their defaults and their consistency rules: spelled once,
//! here, for the model (which counts in ticks), the implementation (in milliseconds) and every
//! command that starts either.
//!
//! A [`Timing`] holds one unit throughout: minutes as a user states them ([`Timing::default`]),
//! ticks in the model, milliseconds in the implementation ([`Timing::map`] converts). The rules
//! are the model's exact bounds, and some count one tick (the throttle refuses once the oldest
//! unconfirmed write is older than the threshold: a tick past it). So they are linear
//! inequalities in the parameters and the tick together: they hold in one unit exactly when
//! they hold in any multiple of it with the tick scaled alike ([`Timing::check`] in ticks, or
//! in minutes with a tick of one minute; [`Timing::check_with_tick`] in any other unit).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Every timing assumption and bound of the DR protocol, in one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timing<T = u32> {
    /// A region heartbeats the control plane this often.
    pub heartbeat: T,
    /// The largest delay a message may take (a bound the protocol assumes, not enforces).
    pub delay: T,
    /// Silence after which the control plane declares a region failed.
    pub detection: T,
    /// Lease length, on the control plane's clock.
    pub lease: T,
    /// How far a region's clock may lag the control plane's.
    pub skew: T,
    /// Age of the oldest unconfirmed write at which the primary refuses new writes.
    pub throttle: T,
    /// Recovery point objective: the oldest write an automatic failover may lose.
    pub rpo: T,
    /// Recovery time objective: the longest a single outage may stop writes.
    pub rto: T,
    /// How long the control plane waits for the old primary when the RPO guard refuses.
    pub grace: T,
    /// How long a switchover may drain before it is aborted.
    pub drain_timeout: T,
    /// How long an in-sync secondary may leave the primary's oldest unconfirmed write
    /// unconfirmed before the control plane leaves it out of the in-sync set (the primary then
    /// writes unprotected instead of throttling for as long as a partition lasts).
    pub sync_timeout: T,
}

impl Default for Timing {
    /// The defaults, in minutes: heartbeat 1, delay 1, detection 5, lease 5, skew 1,
    /// throttle 5, RPO 15, RTO 60, grace 30, drain timeout 5, sync timeout 15. They keep lease + skew above the
    /// detection time, which is no consistency rule but gives the lease wait something to do
    /// (so that the `no-lease-wait` guard can be caught).
    fn default() -> Self {
        Timing {
            heartbeat: 1,
            delay: 1,
            detection: 5,
            lease: 5,
            skew: 1,
            throttle: 5,
            rpo: 15,
            rto: 60,
            grace: 30,
            drain_timeout: 5,
            sync_timeout: 15,
        }
    }
}

/// The parameters by name, in the order users see them (`--heartbeat`, `--delay`, …).
pub const NAMES: [&str; 11] = [
    "heartbeat",
    "delay",
    "detection",
    "lease",
    "skew",
    "throttle",
    "rpo",
    "rto",
    "grace",
    "drain-timeout",
    "sync-timeout",
];

/// Which parameters may be zero: no delay, no skew and no grace period make sense; a zero
/// heartbeat, detection time, lease, throttle, RPO, RTO or drain timeout does not.
pub const MAY_BE_ZERO: Timing<bool> = Timing {
    heartbeat: false,
    delay: true,
    detection: false,
    lease: false,
    skew: true,
    throttle: false,
    rpo: false,
    rto: false,
    grace: true,
    drain_timeout: false,
    sync_timeout: false,
};

impl<T: Copy> Timing<T> {
    /// The same parameters in another unit (or type).
    pub fn map<U>(&self, f: impl Fn(T) -> U) -> Timing<U> {
        Timing {
            heartbeat: f(self.heartbeat),
            delay: f(self.delay),
            detection: f(self.detection),
            lease: f(self.lease),
            skew: f(self.skew),
            throttle: f(self.throttle),
            rpo: f(self.rpo),
            rto: f(self.rto),
            grace: f(self.grace),
            drain_timeout: f(self.drain_timeout),
            sync_timeout: f(self.sync_timeout),
        }
    }

    /// Each parameter paired with the same parameter of `other`.
    pub fn zip<U: Copy>(&self, other: &Timing<U>) -> Timing<(T, U)> {
        Timing {
            heartbeat: (self.heartbeat, other.heartbeat),
            delay: (self.delay, other.delay),
            detection: (self.detection, other.detection),
            lease: (self.lease, other.lease),
            skew: (self.skew, other.skew),
            throttle: (self.throttle, other.throttle),
            rpo: (self.rpo, other.rpo),
            rto: (self.rto, other.rto),
            grace: (self.grace, other.grace),
            drain_timeout: (self.drain_timeout, other.drain_timeout),
            sync_timeout: (self.sync_timeout, other.sync_timeout),
        }
    }

    /// Each parameter converted with `f`, stopping at the first it refuses (with the
    /// parameter's name).
    pub fn try_map<U, E>(
        &self,
        f: impl Fn(&'static str, T) -> Result<U, E>,
    ) -> Result<Timing<U>, E> {
        Ok(Timing {
            heartbeat: f(NAMES[0], self.heartbeat)?,
            delay: f(NAMES[1], self.delay)?,
            detection: f(NAMES[2], self.detection)?,
            lease: f(NAMES[3], self.lease)?,
            skew: f(NAMES[4], self.skew)?,
            throttle: f(NAMES[5], self.throttle)?,
            rpo: f(NAMES[6], self.rpo)?,
            rto: f(NAMES[7], self.rto)?,
            grace: f(NAMES[8], self.grace)?,
            drain_timeout: f(NAMES[9], self.drain_timeout)?,
            sync_timeout: f(NAMES[10], self.sync_timeout)?,
        })
    }
}

impl<T: Copy + std::ops::Add<Output = T>> Timing<T> {
    /// The longest silence after which a peer still counts as heard: heartbeat + delay (a
    /// heartbeat leaves every heartbeat and takes up to a delay). A region reports contact with
    /// its primary, and the control plane trusts a region's report, only within it.
    pub fn contact_window(&self) -> T {
        self.heartbeat + self.delay
    }

    /// How long after its last grant a lease has surely expired on every region's clock:
    /// lease + skew.
    pub fn lease_wait(&self) -> T {
        self.lease + self.skew
    }
}

impl<T: Copy + Into<u64>> Timing<T> {
    fn wide(&self) -> Timing<u64> {
        self.map(Into::into)
    }

    /// Writes acknowledged at least this long ago count in `old_prefix_len`:
    /// RPO − heartbeat − delay (writes younger than heartbeat + delay at the outage may have
    /// been acknowledged after the last heartbeat the control plane received).
    pub fn old_prefix_age(&self) -> u64 {
        let t = self.wide();
        t.rpo.saturating_sub(t.heartbeat + t.delay)
    }

    /// The consistency rules, with this timing in ticks of the model (or in minutes, a tick of
    /// one minute, as the implementation's commands take them): the first rule the parameters
    /// break, or `Ok`.
    pub fn check(&self) -> Result<(), Inconsistent> {
        self.check_ticks_of(1)
    }

    /// The consistency rules, with this timing in a unit of which one tick of the model is
    /// `tick` (the implementation's milliseconds: a tick of one protocol minute).
    pub fn check_with_tick(&self, tick: T) -> Result<(), Inconsistent> {
        self.check_ticks_of(tick.into())
    }

    fn check_ticks_of(&self, tick: u64) -> Result<(), Inconsistent> {
        let t = self.wide();
        RULES
            .iter()
            .find(|rule| !(rule.holds)(&t, tick))
            .map_or(Ok(()), |rule| {
                Err(Inconsistent {
                    rule: rule.name,
                    endangers: rule.endangers,
                    why: rule.why,
                    detail: (rule.detail)(&t, tick),
                })
            })
    }
}

/// One consistency rule between timing parameters: a bound the model's steps make exact (see
/// [`RULES`]).
pub struct Rule {
    /// The inequality, as messages and the README spell it. `tick` is one tick of the model
    /// (a minute for the implementation's commands).
    pub name: &'static str,
    /// The `always` property that fails when the rule does not hold (its name in
    /// [`crate::CATALOG`]).
    pub endangers: &'static str,
    /// How it fails, in a few words.
    pub why: &'static str,
    holds: fn(&Timing<u64>, u64) -> bool,
    /// The inequality with the numbers filled in, as it fails.
    detail: fn(&Timing<u64>, u64) -> String,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("endangers", &self.endangers)
            .finish_non_exhaustive()
    }
}

impl Rule {
    /// Does `t`, in ticks, keep this rule?
    pub fn holds<T: Copy + Into<u64>>(&self, t: &Timing<T>) -> bool {
        (self.holds)(&t.wide(), 1)
    }
}

/// How long after an inter-region partition began the control plane may still act on reports
/// from before it: the compute region reports the lost contact once it has not heard its
/// primary for longer than the contact window (heartbeat + delay), at its next heartbeat,
/// which takes up to heartbeat + delay more. Until then a failback is accepted, and compute
/// stays where it cannot write.
fn stale_window(t: &Timing<u64>) -> u64 {
    t.contact_window() + t.heartbeat + t.delay
}

/// What the throttle still needs, when a switchover accepted on stale reports has aborted and
/// the primary's lease is back, before it refuses for the write taken just before the fence.
/// See [`SWITCHOVER_PARTITION`].
fn switchover_head_start(t: &Timing<u64>, tick: u64) -> u64 {
    (t.throttle + tick).saturating_sub(t.drain_timeout + t.heartbeat + t.delay)
}

/// Can an aborted switchover's spell without writes run into the throttle's? The oldest
/// unconfirmed write may be acknowledged up to a delay before the partition, and the lease is
/// back up to `stale_window + drain_timeout + heartbeat + delay` after it. (Otherwise the
/// throttle's spell stands alone: [`PARTITION`].)
fn switchover_meets_throttle(t: &Timing<u64>, tick: u64) -> bool {
    stale_window(t) + t.drain_timeout + t.heartbeat + 2 * t.delay >= t.throttle + tick
}

/// A region heard every heartbeat + delay at worst is never declared failed while healthy.
pub const DETECTION: Rule = Rule {
    name: "heartbeat + delay < detection",
    endangers: "no_spurious_failover",
    why: "a healthy region's next heartbeat may arrive after the detection time",
    holds: |t, _| t.heartbeat + t.delay < t.detection,
    detail: |t, _| format!("{} + {} >= {}", t.heartbeat, t.delay, t.detection),
};

/// The primary's lease, renewed by each heartbeat's answer, never lapses between renewals.
pub const LEASE_RENEWAL: Rule = Rule {
    name: "heartbeat + delay <= lease + skew",
    endangers: "write_availability",
    why: "the primary's lease lapses between renewals, which lengthens every spell without writes",
    holds: |t, _| t.heartbeat + t.delay <= t.lease + t.skew,
    detail: |t, _| format!("{} + {} > {} + {}", t.heartbeat, t.delay, t.lease, t.skew),
};

/// Detection and the lease wait fit in the RTO.
pub const FAILOVER_RTO: Rule = Rule {
    name: "max(detection, lease + skew) <= rto",
    endangers: "rto_bound",
    why: "detection and the lease wait hold the failover back past the RTO",
    holds: |t, _| t.detection.max(t.lease + t.skew) <= t.rto,
    detail: |t, _| format!("max({}, {} + {}) > {}", t.detection, t.lease, t.skew, t.rto),
};

/// Writes acknowledged after the last heartbeat the control plane heard are younger than the
/// RPO at the outage.
pub const RPO_MARGIN: Rule = Rule {
    name: "heartbeat + delay < rpo",
    endangers: "rpo_bound",
    why:
        "writes acknowledged after the last heartbeat the control plane heard escape the RPO guard",
    holds: |t, _| t.heartbeat + t.delay < t.rpo,
    detail: |t, _| format!("{} + {} >= {}", t.heartbeat, t.delay, t.rpo),
};

/// A primary cut off from everyone acknowledges protected writes for less than the RPO.
pub const LOSS_WINDOW: Rule = Rule {
    name: "min(throttle + tick, sync_timeout + lease + skew) <= rpo",
    endangers: "loss_window",
    why:
        "an isolated primary acknowledges protected writes until the throttle or its lease stops it",
    holds: |t, tick| (t.throttle + tick).min(t.sync_timeout + t.lease + t.skew) <= t.rpo,
    detail: |t, tick| {
        format!(
            "min({} + {tick}, {} + {} + {}) > {}",
            t.throttle, t.sync_timeout, t.lease, t.skew, t.rpo
        )
    },
};

/// Under a partition, the throttle stops writes from throttle + 1 tick to the sync timeout.
/// (Where an aborted switchover's spell can run into the throttle's, [`SWITCHOVER_PARTITION`]
/// is the stricter bound.)
pub const PARTITION: Rule = Rule {
    name: "sync_timeout <= rto + throttle + tick",
    endangers: "write_availability",
    why: "under a partition the throttle stops writes until the sync timeout",
    holds: |t, tick| t.sync_timeout <= t.rto + t.throttle + tick,
    detail: |t, tick| format!("{} > {} + {} + {tick}", t.sync_timeout, t.rto, t.throttle),
};

/// A failback accepted on reports a partition has just made stale: compute is cut off from
/// the partition on, and the switchover fences the primary up to 2*(heartbeat + delay) after
/// it began; it cannot drain, aborts after the drain timeout, and the primary, which gave its
/// lease up at the fence, waits up to heartbeat + delay for a grant.
pub const SWITCHOVER: Rule = Rule {
    name: "drain_timeout + 3*(heartbeat + delay) <= rto",
    endangers: "write_availability",
    why: "a failback accepted on reports a partition has just made stale cannot drain: writes stop until the drain times out and the lease is renewed",
    holds: |t, _| t.drain_timeout + stale_window(t) + t.heartbeat + t.delay <= t.rto,
    detail: |t, _| {
        format!(
            "{} + 3*({} + {}) > {}",
            t.drain_timeout, t.heartbeat, t.delay, t.rto
        )
    },
};

/// A switchover accepted on stale reports may hand the primary straight to the throttle, for a
/// write taken just before the fence: no write is possible from the partition to the sync
/// timeout of that write (less the throttle's head start).
pub const SWITCHOVER_PARTITION: Rule = Rule {
    name: "sync_timeout + 2*(heartbeat + delay) <= rto + max(0, throttle + tick - drain_timeout - heartbeat - delay) unless drain_timeout + 3*heartbeat + 4*delay < throttle + tick",
    endangers: "write_availability",
    why: "a failback accepted on reports a partition has just made stale hands over to the throttle, and writes stay stopped until the sync timeout",
    holds: |t, tick| {
        !switchover_meets_throttle(t, tick)
            || t.sync_timeout + stale_window(t) <= t.rto + switchover_head_start(t, tick)
    },
    detail: |t, tick| {
        format!(
            "{} + 2*({h} + {d}) > {} + {} (and {} + 3*{h} + 4*{d} >= {} + {tick})",
            t.sync_timeout,
            t.rto,
            switchover_head_start(t, tick),
            t.drain_timeout,
            t.throttle,
            h = t.heartbeat,
            d = t.delay,
        )
    },
};

/// The consistency rules, in the order they are checked. Each is exact for the model: it
/// holds exactly when the property it names holds, all other rules holding (pinned at each
/// boundary by `model/tests/it/rules.rs`), except [`LEASE_RENEWAL`], which is only tight (see
/// `docs/design.md` §5).
pub const RULES: &[&Rule] = &[
    &DETECTION,
    &LEASE_RENEWAL,
    &FAILOVER_RTO,
    &RPO_MARGIN,
    &LOSS_WINDOW,
    &PARTITION,
    &SWITCHOVER,
    &SWITCHOVER_PARTITION,
];

/// A parameter set that breaks a consistency rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inconsistent {
    /// The broken inequality ([`Rule::name`]).
    pub rule: &'static str,
    /// The property it endangers ([`Rule::endangers`]).
    pub endangers: &'static str,
    /// How ([`Rule::why`]).
    pub why: &'static str,
    /// The inequality with the numbers, in the unit checked.
    pub detail: String,
}

impl fmt::Display for Inconsistent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} does not hold ({}); it endangers {}: {}",
            self.rule, self.detail, self.endangers, self.why
        )
    }
}

impl std::error::Error for Inconsistent {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_consistent() {
        assert_eq!(Timing::default().check(), Ok(()));
        assert_eq!(Timing::default().lease_wait(), 6);
        assert_eq!(Timing::default().old_prefix_age(), 13);
        assert_eq!(Timing::default().contact_window(), 2);
    }

    /// One parameter set per rule, in the order of [`RULES`], that breaks it and no other.
    fn broken() -> [Timing; 8] {
        let base = Timing::default();
        [
            Timing {
                detection: 2,
                ..base
            },
            Timing {
                lease: 1,
                skew: 0,
                ..base
            },
            Timing { lease: 60, ..base },
            Timing {
                rpo: 2,
                throttle: 1,
                ..base
            },
            Timing {
                throttle: 15,
                ..base
            },
            Timing {
                throttle: 12,
                sync_timeout: 74,
                ..base
            },
            Timing {
                drain_timeout: 55,
                ..base
            },
            Timing {
                sync_timeout: 57,
                ..base
            },
        ]
    }

    #[test]
    fn each_rule_can_fail_alone_and_is_named() {
        let broken = broken();
        assert_eq!(broken.len(), RULES.len());
        for (t, rule) in broken.iter().zip(RULES) {
            let e = t.check().expect_err(rule.name);
            assert_eq!(e.rule, rule.name);
            assert!(e.to_string().contains(rule.endangers), "{e}");
            assert!(e.to_string().contains(rule.why), "{e}");
            let others: Vec<_> = RULES.iter().filter(|r| !r.holds(t)).collect();
            assert_eq!(others.len(), 1, "{} breaks more than its rule", rule.name);
        }
    }

    #[test]
    fn every_rule_names_an_always_property() {
        for rule in RULES {
            let spec = crate::property(rule.endangers).expect(rule.endangers);
            assert_eq!(
                spec.expectation(),
                crate::Expectation::Always,
                "{}",
                rule.name
            );
        }
    }

    #[test]
    fn scaling_keeps_the_verdict_when_the_tick_scales_too() {
        let ms = |t: &Timing| t.map(|m| u64::from(m) * 60_000);
        assert_eq!(ms(&Timing::default()).check_with_tick(60_000), Ok(()));
        assert_eq!(ms(&Timing::default()).lease_wait(), 6 * 60_000);
        for (t, rule) in broken().iter().zip(RULES) {
            let e = ms(t).check_with_tick(60_000).map_err(|e| e.rule);
            assert_eq!(e, Err(rule.name));
        }
        // At the partition's boundary (a tick past the throttle, counted in ticks) the rule
        // holds in minutes with a tick of a minute, and so in milliseconds with a tick of
        // 60,000, but not with a tick of one millisecond.
        let edge = Timing {
            throttle: 12,
            sync_timeout: 73,
            ..Timing::default()
        };
        assert_eq!(edge.check(), Ok(()));
        assert_eq!(ms(&edge).check_with_tick(60_000), Ok(()));
        assert!(ms(&edge).check_with_tick(1).is_err());
    }
}
