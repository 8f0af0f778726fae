//! What the participants say to each other.

use drcheck_properties::Role;
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, LogEntry, WriteId};
use crate::time::Millis;

/// A participant that sends and receives protocol messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    /// Region number `r` (0 first).
    Region(u8),
    /// The control plane.
    Control,
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeId::Region(r) => write!(f, "region {r}"),
            NodeId::Control => f.write_str("control plane"),
        }
    }
}

/// A region's periodic report to the control plane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The region's epoch (of its durable state).
    pub epoch: Epoch,
    /// The region's role in that epoch.
    pub role: Role,
    /// How many entries its log holds.
    pub log_len: u64,
    /// Epoch and id of the last entry.
    pub last: Option<(Epoch, WriteId)>,
    /// The log's epoch boundaries (see [`crate::entry::epoch_runs`]); a rejoining region
    /// truncates against the primary's.
    pub runs: Vec<(Epoch, u64)>,
    /// How many leading entries of its log were acknowledged at least RPO − heartbeat − delay
    /// ago (every region reports it: the control plane reads the primary's for the RPO guard,
    /// and a newly promoted region's until it reports as primary).
    pub old_prefix: u64,
    /// A secondary heard from the primary of its epoch within heartbeat + delay (always true
    /// from a primary, fenced or not).
    pub primary_contact: bool,
    /// From a primary: the secondaries it counts as in sync.
    pub in_sync: Vec<u8>,
    /// From a primary: for each in-sync secondary that lacks part of its log, when (on the
    /// primary's clock) the oldest entry it has not confirmed was acknowledged. The control
    /// plane leaves a secondary out of sync when that is the sync timeout ago.
    #[serde(default)]
    pub unconfirmed_since: Vec<(u8, Millis)>,
    /// A fenced primary: the fence it obeys (its `issued`).
    pub fence: Option<Millis>,
    /// When it was sent, on the region's clock: the control plane ignores a heartbeat older
    /// than one it already took (messages may be reordered).
    pub sent_at: Millis,
}

/// Every protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Region → control plane.
    Heartbeat(Heartbeat),
    /// Control plane → primary: a lease until `expiry` on the control plane's clock, issued
    /// at `issued` (a primary ignores grants issued before its latest fence).
    Grant {
        /// The primary's epoch the lease is for.
        epoch: Epoch,
        /// Lease expiry, in ms of protocol time on the control plane's clock.
        expiry: Millis,
        /// When the control plane issued the grant, on its clock.
        issued: Millis,
    },
    /// Control plane → a region that missed a promotion: epoch `epoch` exists.
    NewEpoch {
        /// The current epoch.
        epoch: Epoch,
    },
    /// Control plane → candidate: become primary of `epoch`, with a lease until `expiry`.
    Promote {
        /// The new epoch.
        epoch: Epoch,
        /// Lease expiry, in ms of protocol time on the control plane's clock.
        expiry: Millis,
    },
    /// New primary → control plane: promoted; its log's epoch runs (final for the older
    /// epochs), which regions rejoining this epoch truncate against.
    Promoted {
        /// The epoch it is primary of.
        epoch: Epoch,
        /// Its log's epoch runs at the promotion (see [`crate::entry::epoch_runs`]).
        runs: Vec<(Epoch, u64)>,
    },
    /// Rejoined region → control plane: rejoined `epoch` as secondary, keeping `log_len`
    /// entries (the control plane's picture of it is current at once).
    Rejoined {
        /// The epoch it rejoined.
        epoch: Epoch,
        /// Its log length after the rejoin.
        log_len: u64,
        /// Epoch and id of its last entry after the rejoin.
        last: Option<(Epoch, WriteId)>,
    },
    /// Control plane → recovered region: rejoin `epoch` as a secondary of `primary` (asking
    /// the primary for its log's epoch runs, which needs a link to it).
    Rejoin {
        /// The current epoch to rejoin.
        epoch: Epoch,
        /// The primary of that epoch.
        primary: u8,
    },
    /// Rejoining region → primary: where does your log stand?
    JoinRequest {
        /// The epoch it rejoins (the primary answers only for its own).
        epoch: Epoch,
    },
    /// Primary → rejoining region: my log's epoch runs; truncate against them.
    JoinAccept {
        /// The primary's epoch.
        epoch: Epoch,
        /// The primary's log's epoch runs (see [`crate::entry::epoch_runs`]).
        runs: Vec<(Epoch, u64)>,
    },
    /// Control plane → primary: stop writing and give up the lease (switchover to `target`),
    /// issued at `issued` on the control plane's clock.
    Fence {
        /// The primary's epoch.
        epoch: Epoch,
        /// The switchover's target.
        target: u8,
        /// When the control plane issued the fence, on its clock (identifies the switchover).
        issued: Millis,
    },
    /// Primary → control plane: fenced; `log_len` is final.
    Fenced {
        /// The primary's epoch.
        epoch: Epoch,
        /// Its log length, final while fenced.
        log_len: u64,
        /// The fence obeyed (its `issued`): an older switchover's answer is told apart.
        fence: Millis,
    },
    /// Control plane → fenced primary: the switchover whose fence was issued at `fence` was
    /// aborted (an older switchover's late unfence is ignored).
    Unfence {
        /// The primary's epoch.
        epoch: Epoch,
        /// The aborted switchover's fence (its `issued`).
        fence: Millis,
    },
    /// Fenced primary → control plane: `target` confirmed the whole log.
    Drained {
        /// The primary's epoch.
        epoch: Epoch,
        /// The switchover's target.
        target: u8,
        /// The fence it drains for (its `issued`).
        fence: Millis,
    },
    /// Primary → control plane: `region` confirmed the whole log and counts in sync again
    /// (told at once, so that a data failback to it need not wait for a heartbeat).
    InSync {
        /// The primary's epoch.
        epoch: Epoch,
        /// The secondary now in sync.
        region: u8,
    },
    /// Control plane → primary: `region` was declared failed (or did not confirm within the
    /// sync timeout); it is no longer in sync.
    OutOfSync {
        /// The current epoch.
        epoch: Epoch,
        /// The region declared failed.
        region: u8,
    },
    /// Primary → secondary: entries from index `start` (possibly none: a keep-alive).
    Append {
        /// The primary's epoch.
        epoch: Epoch,
        /// The log index of the first entry carried.
        start: u64,
        /// Consecutive log entries from `start` (at most a batch).
        entries: Vec<LogEntry>,
        /// The (epoch, write) of the primary's entry just before `start` (Raft's
        /// prevLogTerm/prevLogIndex): the secondary appends only if its own entry there is the
        /// same, so that the batch extends its log. `None` when `start` is 0; also what a
        /// sender that predates the field means (missing on the wire), whose Appends are then
        /// checked only where they overlap the secondary's log.
        #[serde(default)]
        prev: Option<(Epoch, WriteId)>,
    },
    /// Secondary → primary: my log holds `log_len` entries of yours.
    Confirm {
        /// The secondary's epoch.
        epoch: Epoch,
        /// The secondary's log length.
        log_len: u64,
    },
    /// Rejoining region → primary: take my divergent writes back. Sent only by the
    /// `rejoin-merge` mutant (see `crate::mutant`); a correct primary ignores it.
    Merge {
        /// The rejoining region's divergent suffix.
        entries: Vec<LogEntry>,
    },
}

impl Message {
    /// The message's kind, as events and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Heartbeat(_) => "heartbeat",
            Message::Grant { .. } => "grant",
            Message::NewEpoch { .. } => "new_epoch",
            Message::Promote { .. } => "promote",
            Message::Promoted { .. } => "promoted",
            Message::Rejoined { .. } => "rejoined",
            Message::Rejoin { .. } => "rejoin",
            Message::JoinRequest { .. } => "join_request",
            Message::JoinAccept { .. } => "join_accept",
            Message::Fence { .. } => "fence",
            Message::Fenced { .. } => "fenced",
            Message::Unfence { .. } => "unfence",
            Message::Drained { .. } => "drained",
            Message::InSync { .. } => "in_sync",
            Message::OutOfSync { .. } => "out_of_sync",
            Message::Append { .. } => "append",
            Message::Confirm { .. } => "confirm",
            Message::Merge { .. } => "merge",
        }
    }
}

/// A message as it travels: who sent it, to whom, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}
