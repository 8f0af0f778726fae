//! One region as the invariants see it, and the routing: the parts of the abstract view the
//! ghost ledger also reads (kept apart from [`crate::view::View`] so that the ledger and the
//! view do not import each other).

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Whether a region's machines are running and reachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    /// Running and reachable from the control plane and the other regions.
    Up,
    /// Crashed: volatile state (the lease) is gone, durable storage survives.
    Down,
    /// Running and serving its in-region clients, but cut off from the control plane and the
    /// other regions.
    Isolated,
}

/// The role a region believes it has (it may be out of date).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// The data primary of its epoch: accepts writes while it holds a lease.
    Primary,
    /// Follows the primary of its epoch.
    Secondary,
    /// A primary that stopped writing for a planned switchover.
    Fenced,
    /// Knows a newer epoch exists and waits to rejoin as a secondary.
    Stale,
}

impl Role {
    /// Does a region in this role act as its epoch's primary, fenced or not (it ships its log,
    /// counts secondaries in sync, and reports contact with itself)?
    pub fn ships(self) -> bool {
        matches!(self, Role::Primary | Role::Fenced)
    }
}

/// One entry of a region's log. Its index is its position in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch of the primary that acknowledged it.
    pub epoch: u8,
    /// The id of the acknowledged write (see [`crate::WriteRecord`]).
    pub write: u8,
}

/// A region's log: inline up to a handful of entries (the model's states, cloned for every
/// step the checker takes, hold a few), on the heap beyond (the implementation's ghost).
pub type Log = SmallVec<[Entry; 8]>;

/// One region as the invariants see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegionView {
    /// Whether its machines are running and reachable.
    pub status: Status,
    /// The role it believes it has (possibly out of date).
    pub role: Role,
    /// The newest epoch this region knows.
    pub epoch: u8,
    /// Durable log of entries, index 0 first.
    pub log: Log,
    /// Ticks of real time until this region's own clock reaches its lease expiry (0: no lease).
    pub lease: u8,
    /// Durable lost-writes quarantine: ids of writes moved out of the log on rejoin.
    pub quarantine: Vec<u8>,
    /// Ghost: ticks since the region went down or was isolated; `None` while up and reachable.
    pub down_for: Option<u8>,
    /// Ghost: the region has been unreachable from the control plane at some instant since
    /// the control plane last heard from it (its unavailability began then).
    pub dark: bool,
}

impl RegionView {
    /// Could this region acknowledge a write right now (ignoring the throttle)?
    pub fn can_acknowledge(&self) -> bool {
        self.status != Status::Down && self.role == Role::Primary && self.lease > 0
    }

    /// Has this region taken part in the current epoch (as primary, secondary or fenced)?
    /// A region that is down, isolated or stale still holds a log that may diverge.
    pub fn is_member_of(&self, epoch: u8) -> bool {
        self.status == Status::Up && self.epoch == epoch && self.role != Role::Stale
    }

    /// Does the log hold this write?
    pub fn holds(&self, write: u8) -> bool {
        self.log.iter().any(|e| e.write == write)
    }
}

/// The control plane's routing: the data primary, the compute region behind the endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Routing {
    /// The current epoch, as the control plane numbers them.
    pub epoch: u8,
    /// The region the control plane considers the data primary.
    pub primary: u8,
    /// The region the global endpoint sends requests to.
    pub compute: u8,
    /// The region compute fails back to (region 0).
    pub home: u8,
}
