//! The protocol's guards, each of which `--bug NAME` switches off in the model and the
//! implementation mutant of the same name switches off in the implementation: spelled once,
//! here, with the property that must catch it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! bugs {
    ($($variant:ident $name:literal => $property:literal: $summary:literal,)*) => {
        /// A guard of the protocol switched off.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Bug { $(#[doc = $summary] $variant,)* }

        impl Bug {
            /// Every guard, in the order `--list-bugs` shows them.
            pub const ALL: &'static [Bug] = &[$(Bug::$variant,)*];

            /// The stable name used by `--bug` and by the implementation's mutants.
            pub fn name(self) -> &'static str {
                match self { $(Bug::$variant => $name,)* }
            }

            /// The property that catches this bug.
            pub fn caught_by(self) -> &'static str {
                match self { $(Bug::$variant => $property,)* }
            }

            /// What the bug switches off.
            pub fn summary(self) -> &'static str {
                match self { $(Bug::$variant => $summary,)* }
            }
        }
    };
}

bugs! {
    NoThrottle "no-throttle" => "loss_window":
        "the primary never refuses writes while its oldest unconfirmed write ages",
    NoLeaseWait "no-lease-wait" => "single_writer":
        "the control plane promotes right after detection, without waiting for the old lease to expire",
    NoRpoGuard "no-rpo-guard" => "rpo_bound":
        "automatic failover promotes a candidate that lacks old writes",
    RpoGuardNoMargin "rpo-guard-no-margin" => "rpo_bound":
        "old_prefix_len counts writes older than RPO, without the heartbeat + delay margin",
    RejoinNoTruncate "rejoin-no-truncate" => "log_matching":
        "a recovered region rejoins as secondary keeping its divergent suffix",
    RejoinNoQuarantine "rejoin-no-quarantine" => "no_silent_loss":
        "a recovered region drops its divergent suffix instead of quarantining it",
    RejoinMerge "rejoin-merge" => "no_resurrection":
        "a recovered region's divergent writes are quarantined and also merged back into the primary",
    FailbackNoDrain "failback-no-drain" => "failback_zero_loss":
        "manual data failback promotes the target without draining replication",
    AutoDataFailback "auto-data-failback" => "data_failback_manual":
        "data fails back to the home region automatically once it has caught up",
    HastyDetection "hasty-detection" => "no_spurious_failover":
        "a region is declared failed after one missed heartbeat, ignoring message delay",
    NoComputeFailover "no-compute-failover" => "routing_healthy":
        "the endpoint keeps routing to a failed compute region",
    NoAutoFailover "no-auto-failover" => "rto_bound":
        "the control plane never fails over by itself: every failover waits for the operator",
    NoSyncTimeout "no-sync-timeout" => "write_availability":
        "a secondary that stops confirming stays in the in-sync set until it is declared failed: the primary throttles for as long as a partition lasts",
    CpRestartHasty "cp-restart-hasty" => "no_spurious_failover":
        "a restarted control plane declares at once every region it has not heard and takes every lease as expired, instead of listening for a detection period",
    ComputeIgnoresData "compute-ignores-data" => "write_availability":
        "compute fails back home without checking that home reaches the data primary, and stays there when a partition cuts it off",
    FailbackUnfenced "failback-unfenced" => "single_writer":
        "manual data failback promotes the drained target without waiting for the primary to confirm its fence (that it stopped writing and gave up its lease)",
    FailbackNeedsCaughtUp "failback-needs-caught-up" => "failback_completes":
        "data failback is refused unless the target already holds the primary's whole log, which never holds while clients write",
    CandidateAnyEpoch "candidate-any-epoch" => "rto_bound":
        "automatic failover takes any healthy secondary by its last report for a candidate, whatever the epoch it reported, not only one of the current epoch (or of the previous one while the new primary has not taken office)",
    FailbackStaleLastEntry "failback-stale-last-entry" => "failback_zero_loss":
        "manual data failback promotes the fenced target once it reports the log end the primary last reported, not the fenced primary's actual last entry",
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--bug` name no guard has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBug(pub String);

impl fmt::Display for UnknownBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
        write!(f, "unknown bug '{}' (known: {})", self.0, names.join(", "))
    }
}

impl std::error::Error for UnknownBug {}

impl FromStr for Bug {
    type Err = UnknownBug;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBug(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_names_a_property_of_the_catalog_and_parses_back() {
        for &bug in Bug::ALL {
            assert!(crate::property(bug.caught_by()).is_some(), "{bug}");
            assert_eq!(bug.name().parse::<Bug>(), Ok(bug));
        }
        let e = "no-such".parse::<Bug>().expect_err("unknown");
        assert!(e.to_string().contains("no-throttle"), "{e}");
    }
}
