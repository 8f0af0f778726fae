//! Region boot and where a region's store lives: written once for the in-process
//! [`crate::deployment::Deployment`] and the region process of `drcheck serve`.

use std::path::{Path, PathBuf};

use drcheck_fhir::region::FhirRegion;
use drcheck_properties::FIRST_PRIMARY;
use drcheck_protocol::mutant::Mutants;
use drcheck_protocol::region::{RegionMachine, Window};

use crate::store::{load_or_init, Store, StoreError};
use crate::time::{Millis, Timing};

/// Region `r`'s directory in a deployment's data directory.
pub fn region_dir(data_dir: &Path, r: u8) -> PathBuf {
    data_dir.join(format!("region-{r}"))
}

/// Region `r`'s redb file in its directory.
pub fn store_file(region_dir: &Path, r: u8) -> PathBuf {
    region_dir.join(format!("region-{r}.redb"))
}

/// Everything a region's boot needs besides its store.
#[derive(Clone, Copy, Debug)]
pub struct RegionBoot {
    /// The region to boot.
    pub region: u8,
    /// How many regions the deployment has.
    pub regions: u8,
    /// The protocol's timing, in protocol milliseconds.
    pub timing: Timing,
    /// Implementation mutants switched on (none without the `mutants` feature).
    pub mutants: Mutants,
    /// How far it ships ahead of its secondaries' confirmations as primary.
    pub window: Window,
    /// Protocol time now (the control plane's clock), and when the deployment started.
    pub now: Millis,
    /// When the deployment started, in protocol milliseconds on the control plane's clock.
    pub started: Millis,
    /// How far this region's clock lags the control plane's.
    pub lag: Millis,
    /// Wall milliseconds per protocol minute (for Retry-After).
    pub minute_ms: u64,
}

impl RegionBoot {
    /// The region as its store left it (a new store gets the initial role). The first primary
    /// of a deployment that is just starting holds the lease the control plane counts as
    /// granted at the start; a region whose store was new later gets none.
    pub fn boot(&self, store: &mut dyn Store) -> Result<FhirRegion, StoreError> {
        let (durable, new_store) = load_or_init(store, self.region)?;
        let mut machine = RegionMachine::new(
            self.region,
            self.regions,
            self.timing,
            durable,
            self.now.saturating_sub(self.lag),
        )
        .with_mutants(self.mutants)
        .with_window(self.window);
        let starting = self.now < self.started.saturating_add(self.timing.lease);
        if self.region == FIRST_PRIMARY && new_store && starting {
            machine = machine.initial_primary(self.now + self.timing.lease);
        }
        Ok(FhirRegion::new(machine, self.minute_ms))
    }
}
