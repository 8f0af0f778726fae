//! The protocol's timing parameters, their defaults and their consistency rules: spelled once,
//! here, for the model (which counts in ticks), the implementation (in milliseconds) and every
//! command that starts either.
//!
//! A [`Timing`] holds one unit throughout: minutes as a user states them ([`Timing::default`]),
//! ticks in the model, milliseconds in the implementation ([`Timing::map`] converts). The rules
//! are homogeneous linear inequalities, so they hold in one unit exactly when they hold in any
//! multiple of it: checking minutes that are whole ticks is checking ticks.

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

impl<T: Copy + Into<u64>> Timing<T> {
    fn wide(&self) -> Timing<u64> {
        self.map(Into::into)
    }

    /// How long after its last grant a lease has surely expired on every region's clock.
    pub fn lease_wait(&self) -> u64 {
        let t = self.wide();
        t.lease + t.skew
    }

    /// Writes acknowledged at least this long ago count in `old_prefix_len`:
    /// RPO − heartbeat − delay (writes younger than heartbeat + delay at the outage may have
    /// been acknowledged after the last heartbeat the control plane received).
    pub fn old_prefix_age(&self) -> u64 {
        let t = self.wide();
        t.rpo.saturating_sub(t.heartbeat + t.delay)
    }

    /// DESIGN's consistency rules: the first one the parameters break, or `Ok`.
    pub fn check(&self) -> Result<(), Inconsistent> {
        let t = self.wide();
        RULES
            .iter()
            .find(|rule| !(rule.holds)(&t))
            .map_or(Ok(()), |rule| {
                Err(Inconsistent {
                    rule: rule.name,
                    endangers: rule.endangers,
                    detail: (rule.detail)(&t),
                })
            })
    }
}

/// One consistency rule between timing parameters.
pub struct Rule {
    /// The inequality, as messages and the README spell it.
    pub name: &'static str,
    /// What breaks when the rule does not hold (a property name where one watches it).
    pub endangers: &'static str,
    holds: fn(&Timing<u64>) -> bool,
    /// The inequality with the numbers filled in, as it fails.
    detail: fn(&Timing<u64>) -> String,
}

/// The consistency rules (sufficient conditions), in the order they are checked.
pub const RULES: &[Rule] = &[
    Rule {
        name: "heartbeat + delay < detection",
        endangers: "no_spurious_failover",
        holds: |t| t.heartbeat + t.delay < t.detection,
        detail: |t| format!("{} + {} >= {}", t.heartbeat, t.delay, t.detection),
    },
    Rule {
        name: "heartbeat + delay < lease + skew",
        endangers: "rto_bound (the lease lapses between renewals)",
        holds: |t| t.heartbeat + t.delay < t.lease + t.skew,
        detail: |t| format!("{} + {} >= {} + {}", t.heartbeat, t.delay, t.lease, t.skew),
    },
    Rule {
        name: "max(detection, lease + skew) <= rto",
        endangers: "rto_bound",
        holds: |t| t.detection.max(t.lease + t.skew) <= t.rto,
        detail: |t| format!("max({}, {} + {}) > {}", t.detection, t.lease, t.skew, t.rto),
    },
    Rule {
        name: "2*delay + heartbeat + delay < rpo",
        endangers: "rpo_bound",
        holds: |t| 2 * t.delay + t.heartbeat + t.delay < t.rpo,
        detail: |t| {
            let (h, d) = (t.heartbeat, t.delay);
            format!("2*{d} + {h} + {d} >= {}", t.rpo)
        },
    },
    Rule {
        name: "2*delay <= throttle",
        endangers: "write availability (a replication round trip is throttled)",
        holds: |t| 2 * t.delay <= t.throttle,
        detail: |t| format!("2*{} > {}", t.delay, t.throttle),
    },
    Rule {
        name: "throttle < rpo",
        endangers: "loss_window",
        holds: |t| t.throttle < t.rpo,
        detail: |t| format!("{} >= {}", t.throttle, t.rpo),
    },
    Rule {
        name: "throttle <= sync_timeout",
        endangers: "write availability (a secondary is left out of sync before the throttle could bound the loss window)",
        holds: |t| t.throttle <= t.sync_timeout,
        detail: |t| format!("{} > {}", t.throttle, t.sync_timeout),
    },
    Rule {
        name: "sync_timeout + heartbeat + delay <= rto",
        endangers: "write_availability (a partition stops writes for longer than the RTO)",
        holds: |t| t.sync_timeout + t.heartbeat + t.delay <= t.rto,
        detail: |t| {
            let (h, d) = (t.heartbeat, t.delay);
            format!("{} + {h} + {d} > {}", t.sync_timeout, t.rto)
        },
    },
    Rule {
        name: "2*(heartbeat + delay) + max(drain_timeout + heartbeat + delay, sync_timeout) <= rto",
        endangers: "write_availability (a failback accepted on reports a partition has just made stale fences the primary until its drain times out, or a write taken just before waits out the sync timeout)",
        // The control plane learns a partition from the compute region's report of lost
        // contact, up to 2*(heartbeat + delay) after it began. A failback the operator asks
        // for before then is accepted: it fences the primary, cannot drain, and aborts after
        // the drain timeout, and the unfenced primary takes writes at its next lease grant
        // (heartbeat + delay later); a write the primary took just before the fence keeps it
        // throttled until the sync timeout leaves the other region out.
        holds: |t| {
            2 * (t.heartbeat + t.delay) + (t.drain_timeout + t.heartbeat + t.delay).max(t.sync_timeout)
                <= t.rto
        },
        detail: |t| {
            let (h, d) = (t.heartbeat, t.delay);
            format!(
                "2*({h} + {d}) + max({} + {h} + {d}, {}) > {}",
                t.drain_timeout, t.sync_timeout, t.rto
            )
        },
    },
];

/// A parameter set that breaks a consistency rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inconsistent {
    /// The broken inequality ([`Rule::name`]).
    pub rule: &'static str,
    /// What it endangers ([`Rule::endangers`]).
    pub endangers: &'static str,
    /// The inequality with the numbers, in the unit checked.
    pub detail: String,
}

impl fmt::Display for Inconsistent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} does not hold ({}); it endangers {}",
            self.rule, self.detail, self.endangers
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
    }

    #[test]
    fn each_rule_can_fail_and_is_named() {
        let base = Timing::default();
        let broken = [
            Timing {
                detection: 2,
                ..base
            },
            Timing {
                lease: 1,
                skew: 0,
                ..base
            },
            Timing { rto: 5, ..base },
            Timing { rpo: 4, ..base },
            Timing {
                throttle: 1,
                ..base
            },
            Timing {
                throttle: 14,
                sync_timeout: 15,
                rpo: 14,
                ..base
            },
            Timing {
                throttle: 14,
                sync_timeout: 13,
                rpo: 20,
                ..base
            },
            Timing {
                sync_timeout: 59,
                ..base
            },
            Timing {
                drain_timeout: 55,
                ..base
            },
        ];
        assert_eq!(broken.len(), RULES.len());
        for (t, rule) in broken.iter().zip(RULES) {
            let e = t.check().expect_err(rule.name);
            assert_eq!(e.rule, rule.name);
            assert!(e.to_string().contains(rule.endangers), "{e}");
        }
    }

    #[test]
    fn scaling_keeps_the_verdict() {
        let ms = Timing::default().map(|m| u64::from(m) * 60_000);
        assert_eq!(ms.check(), Ok(()));
        assert_eq!(ms.lease_wait(), 6 * 60_000);
        let bad = Timing {
            detection: 2,
            ..Timing::default()
        }
        .map(|m| u64::from(m) * 60_000);
        assert_eq!(bad.check().map_err(|e| e.rule), Err(RULES[0].name));
    }
}
