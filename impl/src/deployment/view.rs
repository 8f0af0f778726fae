//! The abstraction: the deployment as the `properties` view every invariant reads, with the
//! ghost bookkeeping brought up to date first.

use drcheck_properties::{Entry, RegionView, Routing, Status, View, Violation};

use super::{DeployError, Deployment};
use crate::ghost::{ticks, TICK};
use drcheck_protocol::entry::WriteId;

impl Deployment {
    /// The `properties` view of the deployment now, whether the endpoint would take a write,
    /// and whether a switchover is under way.
    pub(super) async fn base_view(&self) -> Result<(View, bool, bool), DeployError> {
        let control = self.control_state().await?;
        let ghost = self.ghost.as_ref();
        let id = |w: WriteId| ghost.map_or(0, |g| g.view_id(w));
        let mut regions = Vec::new();
        let mut accepts = Vec::new();
        for r in 0..self.cfg.regions {
            let s = self.region_state(r).await?;
            let status = self.regions[usize::from(r)].status;
            regions.push(RegionView {
                status,
                role: s.role,
                epoch: u8::try_from(s.epoch).unwrap_or(u8::MAX),
                log: s
                    .log
                    .iter()
                    .map(|e| Entry {
                        epoch: u8::try_from(e.epoch).unwrap_or(u8::MAX),
                        write: id(e.write),
                    })
                    .collect(),
                lease: if status == Status::Down {
                    0
                } else if self.cfg.mutants.wrong_view() && s.lease_left > 0 {
                    ticks(s.lease_left) + 1
                } else {
                    ticks(s.lease_left)
                },
                quarantine: s.quarantine.iter().map(|q| id(q.entry.write)).collect(),
                down_for: None,
                dark: false,
            });
            accepts.push(s.accepts_writes && status != Status::Down);
        }
        let routing = control.routing;
        let view = View {
            regions: regions.into(),
            routing: Routing {
                epoch: u8::try_from(routing.epoch).unwrap_or(u8::MAX),
                primary: routing.primary,
                compute: routing.compute,
                home: routing.home,
            },
            partitioned: self.links.is_partitioned(),
            ledger: Default::default(),
        };
        let (c, p) = (usize::from(routing.compute), usize::from(routing.primary));
        let writable = view.regions[c].status == Status::Up
            && view.regions[p].status == Status::Up
            && view.regions[p].epoch == view.routing.epoch
            && view.connected(c, p)
            && accepts[p];
        let switching = matches!(
            control.phase,
            drcheck_protocol::control::Phase::Switchover { .. }
        );
        Ok((view, writable, switching))
    }

    /// The `properties` view of the deployment now: every invariant can be checked on it.
    pub async fn abstract_view(&mut self) -> Result<View, DeployError> {
        self.observe().await?;
        let (mut view, ..) = self.base_view().await?;
        if let Some(ghost) = &self.ghost {
            ghost.fill(&mut view);
        }
        Ok(view)
    }

    /// Every `always` property the deployment violates now.
    pub async fn violations(&mut self) -> Result<Vec<Violation>, DeployError> {
        let view = self.abstract_view().await?;
        Ok(drcheck_properties::violations(&view, &self.bounds()))
    }

    /// Feeds the events emitted since the last call to the ghost bookkeeping.
    pub(super) async fn observe(&mut self) -> Result<(), DeployError> {
        if self.ghost.is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let records = self.observer.drain();
        if let Some(g) = &mut self.ghost {
            while self.ghost_time + TICK <= now {
                self.ghost_time += TICK;
                g.tick();
            }
            g.acknowledge(&records);
        }
        let (mut view, writable, switching) = self.base_view().await?;
        if let Some(g) = &mut self.ghost {
            g.fill(&mut view);
            g.observe(&records, &view);
            g.settle(&view, writable, switching);
        }
        Ok(())
    }
}
