//! The abstract view of a DR deployment: what every invariant is stated over.
//!
//! Both the model and the implementation produce a [`View`]; time quantities are in ticks of
//! the deployment's clock and relative to now (ages), never absolute.

use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;

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

/// One entry of a region's log. Its index is its position in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch of the primary that acknowledged it.
    pub epoch: u8,
    /// The id of the acknowledged write (see [`crate::WriteRecord`]).
    pub write: u8,
}

/// One region as the invariants see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegionView {
    pub status: Status,
    pub role: Role,
    /// The newest epoch this region knows.
    pub epoch: u8,
    /// Durable log of entries, index 0 first.
    pub log: Vec<Entry>,
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

/// Everything the invariants look at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    pub regions: Vec<RegionView>,
    pub routing: Routing,
    /// The inter-region link is cut (the control plane still reaches every region).
    pub partitioned: bool,
    pub ledger: Ledger,
}

impl View {
    /// The region the control plane considers the data primary.
    pub fn primary(&self) -> &RegionView {
        &self.regions[usize::from(self.routing.primary)]
    }

    /// Can region `a` exchange data with region `b`?
    pub fn connected(&self, a: usize, b: usize) -> bool {
        let up = |r: usize| self.regions[r].status == Status::Up;
        a == b || (up(a) && up(b) && !self.partitioned)
    }
}

/// The timing bounds the invariants need, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bounds {
    pub rpo: u8,
    pub rto: u8,
    pub detection: u8,
}
