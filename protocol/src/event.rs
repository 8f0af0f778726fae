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
    Throttled {
        /// How long to wait before retrying, in ms of protocol time (one heartbeat interval).
        retry_after: Millis,
    },
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
    /// To the data primary: the compute region reported no contact with it.
    #[serde(rename = "data primary unreachable from compute")]
    PrimaryUnreachable,
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
    /// The control plane crashed and was restarted.
    ControlRestart,
}

/// One protocol-significant step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A primary acknowledged a client write: it is durable in its log.
    WriteAccepted {
        /// The primary that acknowledged it.
        region: u8,
        /// The write's id.
        write: WriteId,
        /// The primary's epoch, which the entry carries.
        epoch: Epoch,
        /// The entry's position in the log (0 first).
        index: u64,
        /// The write before it in the log.
        previous: Option<WriteId>,
        /// The quarantined write it re-applies, if an operator re-applied one.
        reapply_of: Option<WriteId>,
        /// The secondaries the primary counted in sync.
        in_sync: Vec<u8>,
    },
    /// A region refused a client write; nothing was stored.
    WriteRefused {
        /// The region that refused it.
        region: u8,
        /// The id of the refused write.
        write: WriteId,
        /// Why (flattened: its `reason` tag and fields sit in the event).
        #[serde(flatten)]
        reason: Refusal,
    },
    /// A secondary appended entries from its primary.
    Replicated {
        /// The primary it appended from.
        from: u8,
        /// The secondary that appended.
        to: u8,
        /// The secondary's epoch.
        epoch: Epoch,
        /// The secondary's log length after the append.
        log_len: u64,
    },
    /// A secondary refused an `Append` that would not extend its log: its entry before the
    /// batch, or one the batch overlaps, differs from the primary's. It appended nothing and
    /// confirmed only the entries it knows to agree (`matched`). Never seen while
    /// `log_matching` holds; a secondary holding a divergent entry must rejoin.
    AppendRefused {
        /// The secondary that refused.
        region: u8,
        /// The primary that sent the batch.
        from: u8,
        /// The secondary's epoch.
        epoch: Epoch,
        /// The index of the batch's first entry.
        start: u64,
        /// The secondary's log length, unchanged.
        log_len: u64,
        /// The length it confirmed: the entries it knows agree with the primary's.
        matched: u64,
    },
    /// The primary counts `region` as in sync from now on.
    InSync {
        /// The primary counting.
        primary: u8,
        /// The secondary that confirmed the primary's whole log.
        region: u8,
    },
    /// The control plane left `region` out of the primary's in-sync set: it has not confirmed
    /// the primary's oldest unconfirmed write within the sync timeout.
    SyncTimedOut {
        /// The lagging secondary.
        region: u8,
        /// How long ago (control plane's clock) that write was acknowledged.
        waited: Millis,
    },
    /// The primary no longer counts `region` (the control plane declared it failed, or it
    /// did not confirm within the sync timeout).
    OutOfSync {
        /// The primary counting.
        primary: u8,
        /// The secondary the control plane declared failed.
        region: u8,
    },
    /// A region sent its heartbeat to the control plane (every region does, whatever its
    /// role).
    HeartbeatSent {
        /// The region that sent it.
        region: u8,
        /// The sender's epoch.
        epoch: Epoch,
        /// The sender's log length.
        log_len: u64,
    },
    /// The control plane heard from a region.
    HeartbeatReceived {
        /// The region heard from.
        region: u8,
        /// The epoch its heartbeat reports.
        epoch: Epoch,
    },
    /// A primary took a lease grant from the control plane (a renewal or a first lease).
    LeaseGranted {
        /// The primary.
        region: u8,
        /// Its epoch.
        epoch: Epoch,
        /// The lease's expiry, in ms of protocol time on the control plane's clock.
        expiry: Millis,
    },
    /// A region's lease ran out on its own clock: it acknowledges no more writes.
    LeaseExpired {
        /// The region whose lease ran out.
        region: u8,
        /// Its epoch.
        epoch: Epoch,
    },
    /// The control plane declared a silent region failed.
    RegionDeclaredFailed {
        /// The region declared failed.
        region: u8,
        /// How long it had been silent, in ms of protocol time.
        silent_for: Millis,
    },
    /// The control plane decided to fail over from the primary it declared failed.
    FailoverStarted {
        /// The primary declared failed.
        from: u8,
        /// Whether the RPO guard allowed the best candidate when the failover started.
        guard_ok: bool,
        /// The `old_prefix_len` the guard compares against (`u64::MAX` when unknown, after a
        /// control-plane restart).
        old_prefix: u64,
    },
    /// The RPO guard refused the best candidate; availability waits for the old primary or
    /// the operator.
    FailoverBlocked {
        /// The primary declared failed.
        from: u8,
        /// The most caught-up healthy secondary, if there is one.
        candidate: Option<u8>,
        /// Why the guard refused, in words.
        reason: String,
    },
    /// The old primary was heard again before a promotion: no failover.
    FailoverCancelled {
        /// The primary heard again.
        from: u8,
    },
    /// The control plane promoted `to` (it becomes primary when the message arrives).
    FailoverDecided {
        /// Automatic, forced, or a switchover.
        kind: FailoverKind,
        /// The old primary.
        from: u8,
        /// The region promoted.
        to: u8,
        /// The new epoch.
        epoch: Epoch,
        /// The old primary was not declared failed at the promotion.
        from_healthy: bool,
        /// An operator asked for it (a forced failover or a data failback).
        requested: bool,
    },
    /// A region became the data primary of `epoch`.
    Promoted {
        /// The region promoted.
        region: u8,
        /// The epoch it is primary of.
        epoch: Epoch,
    },
    /// A region learnt that epoch `epoch` exists and stopped acting in its old one.
    Stale {
        /// The region that became stale.
        region: u8,
        /// The newer epoch it learnt of.
        epoch: Epoch,
    },
    /// A recovered region rejoined as secondary; its divergent suffix went to the quarantine.
    Rejoined {
        /// The region that rejoined.
        region: u8,
        /// The epoch it rejoined.
        epoch: Epoch,
        /// How many leading entries of its log it kept (those that agree with the primary's).
        kept: u64,
        /// The ids of the divergent writes moved to its quarantine (empty when none were, as
        /// under the mutants that truncate or keep the suffix).
        quarantined: Vec<WriteId>,
    },
    /// The endpoint's routing moved.
    ComputeMoved {
        /// The region the endpoint routed to before.
        from: u8,
        /// The region it routes to now.
        to: u8,
        /// Why.
        reason: ComputeMove,
    },
    /// A switchover (data failback) started: the primary is asked to fence.
    SwitchoverStarted {
        /// The region the data moves to.
        target: u8,
        /// An operator asked for it (false only for the `auto-data-failback` mutant).
        requested: bool,
    },
    /// A primary fenced for a switchover: it stopped writing and gave up its lease.
    Fenced {
        /// The fenced primary.
        region: u8,
        /// Its epoch.
        epoch: Epoch,
        /// Its log length, final for the switchover.
        log_len: u64,
    },
    /// A fenced primary was unfenced (its switchover was aborted): primary again, it writes
    /// once granted a new lease.
    Unfenced {
        /// The primary.
        region: u8,
        /// Its epoch.
        epoch: Epoch,
    },
    /// The control plane gave up a switchover and unfenced the primary.
    SwitchoverAborted {
        /// The switchover's target.
        target: u8,
        /// Why.
        reason: AbortReason,
    },
    /// An operator request was refused; nothing changed.
    OperatorRefused {
        /// The request, in words.
        request: String,
        /// Why it was refused, in words (an [`crate::refusal::OperatorRefusal`]).
        reason: String,
    },
    /// An operator re-applied a quarantined write as a new write.
    Reapplied {
        /// The quarantined write.
        original: WriteId,
        /// The new write that carries it.
        write: WriteId,
    },
    /// A region's store failed; the region stops (fail-stop).
    StoreFailed {
        /// The region that stopped.
        region: u8,
        /// The store's error, in words.
        error: String,
    },
    /// The primary took a rejoining region's divergent writes back into its log (only the
    /// `rejoin-merge` mutant does this).
    Merged {
        /// The primary that merged them.
        region: u8,
        /// The ids of the merged writes.
        writes: Vec<WriteId>,
    },
    /// A deployment started (in-process), or one process of it (`drcheck serve`: each start
    /// of each process): how many regions, and its timing in whole minutes.
    Started {
        /// The number of regions.
        regions: u8,
        /// Its timing parameters, in whole minutes.
        timing: drcheck_properties::Timing,
        /// How often a process looks at its clock (its ticks), in protocol ms, if it runs on
        /// wall time: an action a deadline calls for is then taken up to this much after the
        /// deadline. `None` (absent): on each whole minute, a virtual clock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticks_every: Option<Millis>,
    },
    /// A fault was injected (crash, isolate, recover, reconnect, partition, heal).
    Fault {
        /// The kind of fault.
        fault: FaultKind,
        /// The region it hit (`None` for a fault of the inter-region link).
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
    /// The participant it happened on.
    pub node: NodeId,
    /// The event (flattened: its `event` tag and fields sit in the record).
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
            Event::AppendRefused { .. } => "append_refused",
            Event::InSync { .. } => "in_sync",
            Event::SyncTimedOut { .. } => "sync_timed_out",
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
