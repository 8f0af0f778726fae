//! Why an operator's request (to the control plane, or a re-apply) or a controlled step was
//! refused: typed, so that
//! callers match on the reason and the endpoint words it once.

use drcheck_properties::Role;
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, WriteId};
use crate::event::Refusal;
use crate::time::Millis;

/// Why the control plane refused a data failback or a forced failover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refused", rename_all = "snake_case")]
pub enum OperatorRefusal {
    #[error("there is no region {region}")]
    NoSuchRegion { region: u8 },
    #[error("data fails back only to the home region {home}")]
    NotHome { home: u8 },
    #[error("region {region} is already the data primary")]
    AlreadyPrimary { region: u8 },
    #[error("a failover or switchover is in progress")]
    InProgress,
    #[error("region {region} is declared failed")]
    DeclaredFailed { region: u8 },
    #[error("no heartbeat yet from the target or the primary")]
    NoReport,
    #[error(
        "region {region} is not a secondary of epoch {epoch} (it reports {role:?} of epoch {reported_epoch})"
    )]
    NotSecondaryOfEpoch {
        region: u8,
        epoch: Epoch,
        role: Role,
        reported_epoch: Epoch,
    },
    #[error("the data primary {primary} is not healthy")]
    PrimaryUnhealthy { primary: u8 },
    #[error(
        "region {region} has not caught up (it holds {holds} entries, the primary {primary_holds})"
    )]
    NotCaughtUp {
        region: u8,
        holds: u64,
        primary_holds: u64,
    },
    #[error("no failover is pending: the data primary is healthy")]
    NoFailoverPending,
    #[error("no secondary of epoch {epoch} is available")]
    NoCandidate { epoch: Epoch },
    #[error("the RPO guard allows an automatic failover; it needs no operator")]
    GuardAllows,
    #[error("the grace period has not passed ({waited} of {grace} ms waited for the old primary)")]
    GraceNotPassed { waited: Millis, grace: Millis },
    #[error("the old primary's lease may still be valid")]
    LeaseMayBeValid,
    #[error("region {region} is not a healthy secondary of epoch {epoch}")]
    NotHealthySecondary { region: u8, epoch: Epoch },
    #[error("region {best} holds more of the log than region {region}; force the failover to it")]
    NotTheBest { best: u8, region: u8 },
    #[error("write {write} is in no quarantine")]
    NotQuarantined { write: WriteId },
    #[error("write {write} was re-applied already")]
    AlreadyReapplied { write: WriteId },
    #[error("region {region} holding write {write} is down")]
    HolderDown { region: u8, write: WriteId },
    #[error("write {write} in the quarantine is not a readable change: {reason}")]
    Unreadable { write: WriteId, reason: String },
    #[error("the data primary refused the write: {refusal}")]
    WriteRefused { refusal: Refusal },
}

/// Why a controlled step is not enabled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum StepRefusal {
    #[error("no such region")]
    NoSuchRegion,
    #[error("already declared failed")]
    AlreadyFailed,
    #[error("heard within the detection time")]
    HeardRecently,
    #[error("no failover is pending")]
    NoFailoverPending,
    #[error("automatic failover is off")]
    AutoFailoverOff,
    #[error("the old lease may still be valid")]
    LeaseMayBeValid,
    #[error("not the candidate")]
    NotTheCandidate,
    #[error("the RPO guard refuses")]
    GuardRefuses,
    #[error("not a recovered region that can rejoin now")]
    CannotRejoin,
    #[error("the home region cannot take compute now")]
    HomeCannotTakeCompute,
    #[error("no fenced switchover")]
    NoFencedSwitchover,
    #[error("the target has not drained")]
    NotDrained,
    #[error("the drain has not timed out")]
    DrainNotTimedOut,
    #[error("not an automatic failback")]
    NotAutoFailback,
}
