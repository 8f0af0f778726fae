//! Compute: the region the global endpoint sends requests to.
//!
//! Compute moves at once, without the lease wait or the RPO guard the data primary needs:
//! off a region declared failed, to a promoted primary, to the first healthy region heard,
//! and home again as soon as the home region is a healthy member of the current epoch.

use super::ControlMachine;
use crate::effects::Effects;
use crate::event::{ComputeMove, Event};
use crate::mutant::Mutant;

impl ControlMachine {
    /// Routes compute to `to` (the `no-compute-failover` mutant moves it only home).
    pub(super) fn move_compute(&mut self, to: u8, why: ComputeMove, fx: &mut Effects) {
        if self.mutants.has(Mutant::NoComputeFailover) && why != ComputeMove::Failback {
            return;
        }
        let from = self.routing.compute;
        if from != to {
            self.routing.compute = to;
            fx.event(Event::ComputeMoved {
                from,
                to,
                reason: why,
            });
        }
    }
}
