//! Observability: every protocol-significant step as a structured event.
//!
//! Each [`Event`] is emitted (by the implementation's observer) as a `tracing` event (target `drcheck`, field `event` naming
//! the kind, the other fields as in the serde form) and, when a log is switched on, written as
//! one JSON line. The serde form is the stable schema:
//! later tools (validation against the model) read it back.

use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, WriteId};
use crate::message::NodeId;
use crate::time::Millis;

/// Why a region refused a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// This region is not the data primary of its epoch (it is a secondary or stale).
    NotPrimary,
    /// The primary is fenced for a switchover.
    Fenced,
    /// The primary holds no valid lease.
    NoLease,
    /// The oldest write no in-sync secondary confirmed is too old; retry later.
    Throttled { retry_after: Millis },
    /// The endpoint cannot reach a data primary (down, cut off, or failing over).
    Unavailable,
    /// The region could not persist the write (it stops).
    StoreFailed,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotPrimary => f.write_str("not the data primary"),
            Refusal::Fenced => f.write_str("fenced for a switchover"),
            Refusal::NoLease => f.write_str("no valid lease"),
            Refusal::Throttled { retry_after } => {
                write!(
                    f,
                    "throttled (retry after {retry_after} ms of protocol time)"
                )
            }
            Refusal::Unavailable => f.write_str("no writable data primary is reachable"),
            Refusal::StoreFailed => f.write_str("the region's store failed"),
        }
    }
}

pub use drcheck_properties::FailoverKind;

/// Why compute moved (the serde form is the stable wording of the event log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComputeMove {
    /// Off the compute region, declared failed.
    #[serde(rename = "compute region declared failed")]
    RegionDeclaredFailed,
    /// To the new data primary, the compute region being declared failed.
    #[serde(rename = "data primary promoted")]
    PrimaryPromoted,
    /// To the first region heard while the compute region is declared failed.
    #[serde(rename = "first healthy region heard")]
    FirstHealthyHeard,
    /// Home again.
    #[serde(rename = "compute failback")]
    Failback,
}

/// Why a switchover was aborted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The primary did not confirm the fence within the drain timeout.
    #[serde(rename = "the primary did not confirm the fence")]
    FenceUnconfirmed,
    /// The fence was confirmed, and the drain timeout has passed since.
    #[serde(rename = "the drain timed out")]
    DrainTimedOut,
    /// The target was declared failed.
    #[serde(rename = "the target was declared failed")]
    TargetDeclaredFailed,
}

/// A fault injected into a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A region's process stops; its durable storage survives.
    Crash,
    /// A crashed region starts again from its storage.
    Recover,
    /// A region keeps running but reaches neither the control plane nor the other regions.
    Isolate,
    /// An isolated region is reachable again.
    Reconnect,
    /// The regions cannot reach each other (the control plane still reaches all).
    Partition,
    /// The inter-region link is back.
    Heal,
}

/// One protocol-significant step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    WriteAccepted {
        region: u8,
        write: WriteId,
        epoch: Epoch,
        index: u64,
        /// The write before it in the log.
        previous: Option<WriteId>,
        reapply_of: Option<WriteId>,
        /// The secondaries the primary counted in sync.
        in_sync: Vec<u8>,
    },
    WriteRefused {
        region: u8,
        write: WriteId,
        #[serde(flatten)]
        reason: Refusal,
    },
    /// A secondary appended entries from its primary.
    Replicated {
        from: u8,
        to: u8,
        epoch: Epoch,
        log_len: u64,
    },
    /// The primary counts `region` as in sync from now on.
    InSync {
        primary: u8,
        region: u8,
    },
    /// The primary no longer counts `region` (the control plane declared it failed).
    OutOfSync {
        primary: u8,
        region: u8,
    },
    /// A primary sent its heartbeat.
    HeartbeatSent {
        region: u8,
        epoch: Epoch,
        log_len: u64,
    },
    /// The control plane heard from a region.
    HeartbeatReceived {
        region: u8,
        epoch: Epoch,
    },
    LeaseGranted {
        region: u8,
        epoch: Epoch,
        expiry: Millis,
    },
    LeaseExpired {
        region: u8,
        epoch: Epoch,
    },
    /// The control plane declared a silent region failed.
    RegionDeclaredFailed {
        region: u8,
        silent_for: Millis,
    },
    /// The control plane decided to fail over from the primary it declared failed.
    FailoverStarted {
        from: u8,
        guard_ok: bool,
        old_prefix: u64,
    },
    /// The RPO guard refused the best candidate; availability waits for the old primary or
    /// the operator.
    FailoverBlocked {
        from: u8,
        candidate: Option<u8>,
        reason: String,
    },
    /// The old primary was heard again before a promotion: no failover.
    FailoverCancelled {
        from: u8,
    },
    /// The control plane promoted `to` (it becomes primary when the message arrives).
    FailoverDecided {
        kind: FailoverKind,
        from: u8,
        to: u8,
        epoch: Epoch,
        from_healthy: bool,
        requested: bool,
    },
    /// A region became the data primary of `epoch`.
    Promoted {
        region: u8,
        epoch: Epoch,
    },
    /// A region learnt that epoch `epoch` exists and stopped acting in its old one.
    Stale {
        region: u8,
        epoch: Epoch,
    },
    /// A recovered region rejoined as secondary; its divergent suffix went to the quarantine.
    Rejoined {
        region: u8,
        epoch: Epoch,
        kept: u64,
        quarantined: Vec<WriteId>,
    },
    /// The endpoint's routing moved.
    ComputeMoved {
        from: u8,
        to: u8,
        reason: ComputeMove,
    },
    SwitchoverStarted {
        target: u8,
        requested: bool,
    },
    Fenced {
        region: u8,
        epoch: Epoch,
        log_len: u64,
    },
    Unfenced {
        region: u8,
        epoch: Epoch,
    },
    SwitchoverAborted {
        target: u8,
        reason: AbortReason,
    },
    /// An operator request was refused; nothing changed.
    OperatorRefused {
        request: String,
        reason: String,
    },
    /// An operator re-applied a quarantined write as a new write.
    Reapplied {
        original: WriteId,
        write: WriteId,
    },
    /// A region's store failed; the region stops (fail-stop).
    StoreFailed {
        region: u8,
        error: String,
    },
    /// The primary took a rejoining region's divergent writes back into its log (only the
    /// `rejoin-merge` mutant does this).
    Merged {
        region: u8,
        writes: Vec<WriteId>,
    },
    /// A deployment started: how many regions, and its timing in whole minutes.
    Started {
        regions: u8,
        timing: drcheck_properties::Timing,
    },
    /// A fault was injected (crash, isolate, recover, reconnect, partition, heal).
    Fault {
        fault: FaultKind,
        region: Option<u8>,
    },
}

/// An event with when and where it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the deployment's event stream.
    pub seq: u64,
    /// Protocol time on the control plane's clock.
    pub at: Millis,
    pub node: NodeId,
    #[serde(flatten)]
    pub event: Event,
}

impl Event {
    /// The event's kind: the `event` field of its serde form.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::WriteAccepted { .. } => "write_accepted",
            Event::WriteRefused { .. } => "write_refused",
            Event::Replicated { .. } => "replicated",
            Event::InSync { .. } => "in_sync",
            Event::OutOfSync { .. } => "out_of_sync",
            Event::HeartbeatSent { .. } => "heartbeat_sent",
            Event::HeartbeatReceived { .. } => "heartbeat_received",
            Event::LeaseGranted { .. } => "lease_granted",
            Event::LeaseExpired { .. } => "lease_expired",
            Event::RegionDeclaredFailed { .. } => "region_declared_failed",
            Event::FailoverStarted { .. } => "failover_started",
            Event::FailoverBlocked { .. } => "failover_blocked",
            Event::FailoverCancelled { .. } => "failover_cancelled",
            Event::FailoverDecided { .. } => "failover_decided",
            Event::Promoted { .. } => "promoted",
            Event::Stale { .. } => "stale",
            Event::Rejoined { .. } => "rejoined",
            Event::ComputeMoved { .. } => "compute_moved",
            Event::SwitchoverStarted { .. } => "switchover_started",
            Event::Fenced { .. } => "fenced",
            Event::Unfenced { .. } => "unfenced",
            Event::SwitchoverAborted { .. } => "switchover_aborted",
            Event::OperatorRefused { .. } => "operator_refused",
            Event::Reapplied { .. } => "reapplied",
            Event::StoreFailed { .. } => "store_failed",
            Event::Started { .. } => "started",
            Event::Merged { .. } => "merged",
            Event::Fault { .. } => "fault",
        }
    }
}
