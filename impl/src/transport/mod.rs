//! The `Transport` seam: how protocol messages travel between participants.
//!
//! Sending never fails: a message may be delayed or lost, and the protocol copes (it
//! retransmits and times out). [`Links`] is the fault injection both transports obey: an
//! isolated region reaches no one; a partition cuts region-to-region links only.

pub mod memory;
pub mod tcp;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use drcheck_protocol::message::{Envelope, NodeId};

/// How a node's messages reach the others.
pub trait Transport: Send + Sync + 'static {
    /// Sends a message; it may be lost.
    fn send(&self, envelope: Envelope);
}

#[derive(Debug, Default)]
struct LinkState {
    isolated: BTreeSet<u8>,
    partitioned: bool,
}

/// Which links are cut. Cheap to clone; clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Links {
    state: Arc<Mutex<LinkState>>,
}

impl Links {
    /// No link cut.
    pub fn new() -> Links {
        Links::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut LinkState) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Cuts (or restores) every link of `region`.
    pub fn set_isolated(&self, region: u8, isolated: bool) {
        self.with(|s| {
            if isolated {
                s.isolated.insert(region);
            } else {
                s.isolated.remove(&region);
            }
        });
    }

    /// Are `region`'s links cut?
    pub fn is_isolated(&self, region: u8) -> bool {
        self.with(|s| s.isolated.contains(&region))
    }

    /// Cuts (or heals) the links between regions; the control plane still reaches all.
    pub fn set_partitioned(&self, partitioned: bool) {
        self.with(|s| s.partitioned = partitioned);
    }

    /// Are the links between regions cut?
    pub fn is_partitioned(&self) -> bool {
        self.with(|s| s.partitioned)
    }

    /// Can a message travel from `from` to `to` now?
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        self.with(|s| {
            let cut = |n: NodeId| matches!(n, NodeId::Region(r) if s.isolated.contains(&r));
            if from == to {
                return true;
            }
            if cut(from) || cut(to) {
                return false;
            }
            !(s.partitioned && matches!((from, to), (NodeId::Region(_), NodeId::Region(_))))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_cuts_every_link_and_a_partition_only_region_links() {
        let links = Links::new();
        let (r0, r1, cp) = (NodeId::Region(0), NodeId::Region(1), NodeId::Control);
        assert!(links.allows(r0, r1) && links.allows(r0, cp));
        links.set_partitioned(true);
        assert!(!links.allows(r0, r1) && !links.allows(r1, r0));
        assert!(links.allows(r0, cp) && links.allows(cp, r1));
        links.set_partitioned(false);
        links.set_isolated(1, true);
        assert!(!links.allows(r1, cp) && !links.allows(cp, r1) && !links.allows(r0, r1));
        assert!(links.allows(r0, cp));
        links.set_isolated(1, false);
        assert!(links.allows(r1, cp));
    }
}
