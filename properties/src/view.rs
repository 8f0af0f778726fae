//! The abstract view of a DR deployment: what every invariant is stated over.
//!
//! Both the model and the implementation produce a [`View`]; time quantities are in ticks of
//! the deployment's clock and relative to now (ages), never absolute.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::ledger::Ledger;
use crate::region::{Log, RegionView, Role, Routing, Status};

/// The data epoch a new deployment starts in.
pub const FIRST_EPOCH: u8 = 1;

/// The region that is data primary, compute region and home of a new deployment.
pub const FIRST_PRIMARY: u8 = 0;

/// The role region `r` of a new deployment starts with.
pub fn initial_role(r: u8) -> Role {
    if r == FIRST_PRIMARY {
        Role::Primary
    } else {
        Role::Secondary
    }
}

impl Routing {
    /// A new deployment's routing: everything at [`FIRST_PRIMARY`], epoch [`FIRST_EPOCH`].
    pub fn initial() -> Routing {
        Routing {
            epoch: FIRST_EPOCH,
            primary: FIRST_PRIMARY,
            compute: FIRST_PRIMARY,
            home: FIRST_PRIMARY,
        }
    }
}

/// Everything the invariants look at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    /// Every region, indexed by region number.
    pub regions: SmallVec<[RegionView; 3]>,
    /// The control plane's routing: epoch, data primary, compute and home region.
    pub routing: Routing,
    /// The inter-region link is cut (the control plane still reaches every region).
    pub partitioned: bool,
    /// Ghost bookkeeping of acknowledged writes and promotions (no region reads it).
    pub ledger: Ledger,
}

impl View {
    /// A new deployment of `regions` regions: every region up with an empty log, the first
    /// primary holding a lease of `lease` ticks, the others caught-up secondaries.
    pub fn initial(regions: u8, lease: u8) -> View {
        View {
            regions: (0..regions)
                .map(|r| RegionView {
                    status: Status::Up,
                    role: initial_role(r),
                    epoch: FIRST_EPOCH,
                    log: Log::new(),
                    lease: if r == FIRST_PRIMARY { lease } else { 0 },
                    quarantine: Vec::new(),
                    down_for: None,
                    dark: false,
                })
                .collect(),
            routing: Routing::initial(),
            partitioned: false,
            ledger: Ledger::default(),
        }
    }

    /// The region the control plane considers the data primary.
    pub fn primary(&self) -> &RegionView {
        &self.regions[usize::from(self.routing.primary)]
    }

    /// The kind of a fault that begins now at region `region` (an outage) or between the
    /// regions (`None`: a partition), if nothing else is wrong; `None` when it overlaps another.
    pub fn single_fault(&self, region: Option<u8>) -> Option<crate::ledger::SingleFault> {
        use crate::ledger::SingleFault;
        let others_up = self
            .regions
            .iter()
            .enumerate()
            .all(|(r, x)| Some(r) == region.map(usize::from) || x.status == Status::Up);
        if self.partitioned || !others_up {
            return None;
        }
        Some(match region {
            None => SingleFault::Partition,
            Some(r) if r == self.routing.primary => SingleFault::PrimaryOutage,
            Some(_) => SingleFault::SecondaryOutage,
        })
    }

    /// The kind of a control-plane restart that begins now, if nothing else is wrong.
    pub fn single_control_restart(&self) -> Option<crate::ledger::SingleFault> {
        self.all_up()
            .then_some(crate::ledger::SingleFault::ControlRestart)
    }

    /// Is nothing wrong: every region up, and the regions linked?
    pub fn all_up(&self) -> bool {
        !self.partitioned && self.regions.iter().all(|r| r.status == Status::Up)
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
    /// Recovery point objective: an automatic failover may only lose writes younger than
    /// this, in ticks before the outage began.
    pub rpo: u8,
    /// Recovery time objective: the longest a single outage of the primary may stop writes,
    /// in ticks.
    pub rto: u8,
    /// The silence after which the control plane declares a region failed, in ticks; the
    /// endpoint must stop routing to a down region after this long.
    pub detection: u8,
    /// How long a switchover may drain before it is aborted, in ticks: a data failback
    /// completes or aborts within this long of the request.
    pub drain_timeout: u8,
}
