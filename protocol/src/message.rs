//! What the participants say to each other.

use drcheck_properties::Role;
use serde::{Deserialize, Serialize};

use crate::entry::{Epoch, LogEntry, WriteId};
use crate::time::Millis;

/// A participant that sends and receives protocol messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    Region(u8),
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
    pub epoch: Epoch,
    pub role: Role,
    pub log_len: u64,
    /// Epoch and id of the last entry.
    pub last: Option<(Epoch, WriteId)>,
    /// The log's epoch boundaries (see [`crate::entry::epoch_runs`]); a rejoining region
    /// truncates against the primary's.
    pub runs: Vec<(Epoch, u64)>,
    /// From a primary (fenced or not): how many leading entries were acknowledged at least
    /// RPO − heartbeat − delay ago. 0 from anyone else.
    pub old_prefix: u64,
    /// A secondary heard from the primary of its epoch within heartbeat + delay.
    pub primary_contact: bool,
    /// From a primary: the secondaries it counts as in sync.
    pub in_sync: Vec<u8>,
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
        epoch: Epoch,
        expiry: Millis,
        issued: Millis,
    },
    /// Control plane → a region that missed a promotion: epoch `epoch` exists.
    NewEpoch { epoch: Epoch },
    /// Control plane → candidate: become primary of `epoch`, with a lease until `expiry`.
    Promote { epoch: Epoch, expiry: Millis },
    /// New primary → control plane: promoted; its log's epoch runs (final for the older
    /// epochs), which regions rejoining this epoch truncate against.
    Promoted {
        epoch: Epoch,
        runs: Vec<(Epoch, u64)>,
    },
    /// Rejoined region → control plane: rejoined `epoch` as secondary, keeping `log_len`
    /// entries (the control plane's picture of it is current at once).
    Rejoined {
        epoch: Epoch,
        log_len: u64,
        last: Option<(Epoch, WriteId)>,
    },
    /// Control plane → recovered region: rejoin `epoch` as a secondary of `primary` (asking
    /// the primary for its log's epoch runs, which needs a link to it).
    Rejoin { epoch: Epoch, primary: u8 },
    /// Rejoining region → primary: where does your log stand?
    JoinRequest { epoch: Epoch },
    /// Primary → rejoining region: my log's epoch runs; truncate against them.
    JoinAccept {
        epoch: Epoch,
        runs: Vec<(Epoch, u64)>,
    },
    /// Control plane → primary: stop writing and give up the lease (switchover to `target`),
    /// issued at `issued` on the control plane's clock.
    Fence {
        epoch: Epoch,
        target: u8,
        issued: Millis,
    },
    /// Primary → control plane: fenced; `log_len` is final.
    Fenced {
        epoch: Epoch,
        log_len: u64,
        /// The fence obeyed (its `issued`): an older switchover's answer is told apart.
        fence: Millis,
    },
    /// Control plane → fenced primary: the switchover whose fence was issued at `fence` was
    /// aborted (an older switchover's late unfence is ignored).
    Unfence { epoch: Epoch, fence: Millis },
    /// Fenced primary → control plane: `target` confirmed the whole log.
    Drained {
        epoch: Epoch,
        target: u8,
        /// The fence it drains for (its `issued`).
        fence: Millis,
    },
    /// Control plane → primary: `region` was declared failed; it is no longer in sync.
    OutOfSync { epoch: Epoch, region: u8 },
    /// Primary → secondary: entries from index `start` (possibly none: a keep-alive).
    Append {
        epoch: Epoch,
        start: u64,
        entries: Vec<LogEntry>,
    },
    /// Secondary → primary: my log holds `log_len` entries of yours.
    Confirm { epoch: Epoch, log_len: u64 },
    /// Rejoining region → primary: take my divergent writes back. Sent only by the
    /// `rejoin-merge` mutant (see `crate::mutant`); a correct primary ignores it.
    Merge { entries: Vec<LogEntry> },
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
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
}
