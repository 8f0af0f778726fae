//! Why an operator's request (to the control plane, or a re-apply) or a controlled step was
//! refused: typed, so that
//! callers match on the reason and the endpoint words it once.

use drcheck_properties::Role;
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, WriteId};
use crate::event::Refusal;
use crate::time::Millis;

/// Why the control plane refused a data failback or a forced failover, or why an operator's
/// re-apply of a quarantined write was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refused", rename_all = "snake_case")]
pub enum OperatorRefusal {
    /// The target is not a region of the deployment.
    #[error("there is no region {region}")]
    NoSuchRegion {
        /// The region asked for.
        region: u8,
    },
    /// A data failback names a region other than the home region.
    #[error("data fails back only to the home region {home}")]
    NotHome {
        /// The home region.
        home: u8,
    },
    /// The target already is the data primary.
    #[error("region {region} is already the data primary")]
    AlreadyPrimary {
        /// The target.
        region: u8,
    },
    /// A failover or switchover is already under way.
    #[error("a failover or switchover is in progress")]
    InProgress,
    /// The target is declared failed.
    #[error("region {region} is declared failed")]
    DeclaredFailed {
        /// The target.
        region: u8,
    },
    /// The control plane has no heartbeat yet from the target or the primary (it restarted).
    #[error("no heartbeat yet from the target or the primary")]
    NoReport,
    /// The target's last heartbeat shows it is not a secondary of the current epoch.
    #[error(
        "region {region} is not a secondary of epoch {epoch} (it reports {role:?} of epoch {reported_epoch})"
    )]
    NotSecondaryOfEpoch {
        /// The target.
        region: u8,
        /// The current epoch.
        epoch: Epoch,
        /// The role it reports.
        role: Role,
        /// The epoch it reports.
        reported_epoch: Epoch,
    },
    /// The target is not in the primary's in-sync set (as the primary last reported it).
    #[error("region {region} is not an in-sync secondary of the primary")]
    NotInSync {
        /// The target.
        region: u8,
    },
    /// The target has not reported contact with the primary lately (a partition, say).
    #[error("region {region} does not reach the data primary")]
    NotLinked {
        /// The target.
        region: u8,
    },
    /// The data primary is declared failed, or does not report as primary (fenced, say).
    #[error("the data primary {primary} is not healthy")]
    PrimaryUnhealthy {
        /// The data primary.
        primary: u8,
    },
    /// The target's last report does not match the primary's (log length or last entry):
    /// failing back now would lose writes.
    #[error(
        "region {region} has not caught up (it holds {holds} entries, the primary {primary_holds})"
    )]
    NotCaughtUp {
        /// The target.
        region: u8,
        /// The log length the target reports.
        holds: u64,
        /// The log length the primary reports.
        primary_holds: u64,
    },
    /// A forced failover was asked for, but no failover is pending.
    #[error("no failover is pending: the data primary is healthy")]
    NoFailoverPending,
    /// No healthy secondary of the current epoch can be promoted.
    #[error("no secondary of epoch {epoch} is available")]
    NoCandidate {
        /// The current epoch.
        epoch: Epoch,
    },
    /// The RPO guard allows the automatic failover, which needs no operator.
    #[error("the RPO guard allows an automatic failover; it needs no operator")]
    GuardAllows,
    /// The grace period since the primary was declared failed has not passed.
    #[error("the grace period has not passed ({waited} of {grace} ms waited for the old primary)")]
    GraceNotPassed {
        /// How long the control plane has waited since it declared the primary failed, in ms
        /// of protocol time.
        waited: Millis,
        /// The grace period, in ms of protocol time.
        grace: Millis,
    },
    /// The old primary's lease may still be valid: the lease wait has not passed since the
    /// last grant.
    #[error("the old primary's lease may still be valid")]
    LeaseMayBeValid,
    /// The target is the failed primary, or not a healthy secondary of the current epoch.
    #[error("region {region} is not a healthy secondary of epoch {epoch}")]
    NotHealthySecondary {
        /// The target.
        region: u8,
        /// The current epoch.
        epoch: Epoch,
    },
    /// Another region holds more of the log: forcing the failover to the target would lose
    /// more than it must.
    #[error("region {best} holds more of the log than region {region}; force the failover to it")]
    NotTheBest {
        /// The most caught-up candidate.
        best: u8,
        /// The target asked for.
        region: u8,
    },
    /// A re-apply names a write that no readable quarantine holds.
    #[error("write {write} is in no quarantine")]
    NotQuarantined {
        /// The write asked for.
        write: WriteId,
    },
    /// A re-apply names a write that was re-applied already.
    #[error("write {write} was re-applied already")]
    AlreadyReapplied {
        /// The write asked for.
        write: WriteId,
    },
    /// Every region whose quarantine holds the write is down.
    #[error("region {region} holding write {write} is down")]
    HolderDown {
        /// A region holding it.
        region: u8,
        /// The write asked for.
        write: WriteId,
    },
    /// The quarantined write's payload is not a readable FHIR change.
    #[error("write {write} in the quarantine is not a readable change: {reason}")]
    Unreadable {
        /// The write asked for.
        write: WriteId,
        /// Why its payload does not parse.
        reason: String,
    },
    /// The data primary refused the write that re-applies a quarantined one.
    #[error("the data primary refused the write: {refusal}")]
    WriteRefused {
        /// The primary's refusal.
        refusal: Refusal,
    },
}

/// Why a controlled step is not enabled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum StepRefusal {
    /// The step names no region of the deployment.
    #[error("no such region")]
    NoSuchRegion,
    /// `Declare`: the region is declared failed already.
    #[error("already declared failed")]
    AlreadyFailed,
    /// `Declare`: the region was heard within the detection time.
    #[error("heard within the detection time")]
    HeardRecently,
    /// `OutOfSync`: the primary did not report the region in sync and lagging for the sync
    /// timeout.
    #[error("not reported in sync and lagging for the sync timeout")]
    StillInSync,
    /// `ComputeToPrimary`: compute is at the primary, or its region still reports contact
    /// with it, or one of them is declared failed.
    #[error("the compute region reaches the data primary")]
    ComputeReachesPrimary,
    /// `Promote`: no failover is pending.
    #[error("no failover is pending")]
    NoFailoverPending,
    /// `Promote`: automatic failover is off (the `no-auto-failover` mutant).
    #[error("automatic failover is off")]
    AutoFailoverOff,
    /// `Promote`: the old primary's lease may still be valid.
    #[error("the old lease may still be valid")]
    LeaseMayBeValid,
    /// `Promote`: the region named is not the most caught-up healthy secondary.
    #[error("not the candidate")]
    NotTheCandidate,
    /// `Promote`: the RPO guard refuses the candidate.
    #[error("the RPO guard refuses")]
    GuardRefuses,
    /// `Rejoin`: the region is not healthy and behind the current epoch (or stale), or the
    /// primary has not taken office yet.
    #[error("not a recovered region that can rejoin now")]
    CannotRejoin,
    /// `ComputeFailback`: compute is home already, or home is not a healthy member of the
    /// current epoch in contact with the primary.
    #[error("the home region cannot take compute now")]
    HomeCannotTakeCompute,
    /// `CompleteSwitchover`, `AbortSwitchover`: no switchover whose fence is confirmed.
    #[error("no fenced switchover")]
    NoFencedSwitchover,
    /// `CompleteSwitchover`: the target has not drained, or is declared failed.
    #[error("the target has not drained")]
    NotDrained,
    /// `AbortSwitchover`: the target drained, or the drain timeout has not passed.
    #[error("the drain has not timed out")]
    DrainNotTimedOut,
    /// `AutoFailback`: only the `auto-data-failback` mutant takes it, when a failback would
    /// be allowed.
    #[error("not an automatic failback")]
    NotAutoFailback,
}
