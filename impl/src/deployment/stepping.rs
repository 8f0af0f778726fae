//! Stepping in the virtual mode: holding, delivering and dropping messages, controlled
//! control-plane steps, letting time pass.

use drcheck_properties::{Role, Status};

use super::{DeployError, Deployment};
use crate::ghost::TICK;
use crate::transport::memory::InFlight;
use drcheck_protocol::control::{ControlInput, ControlOutput, ControlStep};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::message::{Envelope, Message, NodeId};
use drcheck_protocol::refusal::StepRefusal;
use drcheck_protocol::region::{RegionInput, RegionSnapshot};

/// A step a controlled deployment has due now: letting time pass over it would postpone
/// what the running service does by the next tick, or a message past the maximum delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// A decision the control plane has enabled and waits to be asked for.
    Control(ControlStep),
    /// A heartbeat of this region has been in flight for the maximum delay.
    Heartbeat {
        /// The region that sent it.
        region: u8,
    },
    /// The control plane's fence is in flight to this region (the data primary).
    Fence {
        /// The primary being fenced.
        region: u8,
    },
    /// The primary (or fenced primary) `from` has entries that the secondary `to`, linked
    /// to it, lacks and the oldest of them was acknowledged at least the maximum delay ago;
    /// or `to` holds the whole log and has yet to confirm it (`confirm`).
    Replication {
        /// The primary.
        from: u8,
        /// The secondary.
        to: u8,
        /// `to` lacks nothing and only has to confirm.
        confirm: bool,
    },
}

impl std::fmt::Display for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Pending::Control(step) => write!(f, "{step}"),
            Pending::Heartbeat { region } => write!(
                f,
                "a heartbeat of region {region} has waited the maximum delay and would arrive"
            ),
            Pending::Fence { region } => {
                write!(f, "the control plane's fence would reach region {region}")
            }
            Pending::Replication {
                from,
                to,
                confirm: false,
            } => write!(
                f,
                "region {from} would ship to region {to} the entries it lacks (the oldest has \
                 waited the maximum delay)"
            ),
            Pending::Replication {
                from,
                to,
                confirm: true,
            } => write!(
                f,
                "region {to} would confirm to region {from} that it holds its whole log"
            ),
        }
    }
}

impl Deployment {
    /// Holds messages until [`Deployment::deliver`] or [`Deployment::drop_message`] (on), or
    /// delivers every message as soon as it is sent (off, the default).
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// Messages sent and not yet delivered (virtual mode).
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.memory
            .as_ref()
            .map_or_else(Vec::new, |m| m.in_flight())
    }

    /// Delivers message `seq` now, in any order; `false` if no such message is in flight.
    pub async fn deliver(&mut self, seq: u64) -> Result<bool, DeployError> {
        let Some(m) = self.memory.as_ref().and_then(|m| m.take(seq)) else {
            return Ok(false);
        };
        self.hand_over(m.envelope).await?;
        self.observe().await?;
        Ok(true)
    }

    /// Loses message `seq`. A lost heartbeat makes its region unreachable to the control
    /// plane at this instant, as far as the invariants are concerned.
    pub async fn drop_message(&mut self, seq: u64) -> Result<bool, DeployError> {
        let Some(m) = self.memory.as_ref().and_then(|m| m.take(seq)) else {
            return Ok(false);
        };
        if let (NodeId::Region(r), Message::Heartbeat(_)) = (m.envelope.from, &m.envelope.msg) {
            let view = self.abstract_view().await?;
            if let Some(g) = &mut self.ghost {
                g.unreachable(r, &view);
            }
        }
        Ok(true)
    }

    pub(super) async fn hand_over(&mut self, envelope: Envelope) -> Result<(), DeployError> {
        if !self.links.allows(envelope.from, envelope.to) {
            return Ok(());
        }
        match envelope.to {
            NodeId::Control => {
                self.control
                    .call(ControlInput::Message(envelope))
                    .await
                    .ok_or(DeployError::Stopped(NodeId::Control))?;
            }
            NodeId::Region(r) => {
                // A region that is down loses what arrives.
                let _ = self.call_region(r, RegionInput::Message(envelope)).await;
            }
        }
        Ok(())
    }

    /// Controlled mode: the control plane takes `step` now, or says why it is not enabled.
    pub async fn control_step(
        &mut self,
        step: drcheck_protocol::control::ControlStep,
    ) -> Result<Result<(), StepRefusal>, DeployError> {
        let answer = match self.control.call(ControlInput::Step(step)).await {
            Some(ControlOutput::Stepped(answer)) => answer,
            _ => return Err(DeployError::Stopped(NodeId::Control)),
        };
        self.observe().await?;
        Ok(answer)
    }

    /// Controlled mode: every decision the control plane has enabled now, and those of
    /// them that are due (may not wait for time to pass).
    pub async fn control_steps_enabled(
        &self,
    ) -> Result<(Vec<ControlStep>, Vec<ControlStep>), DeployError> {
        match self.control.call(ControlInput::Pending).await {
            Some(ControlOutput::Pending { enabled, due }) => Ok((enabled, due)),
            _ => Err(DeployError::Stopped(NodeId::Control)),
        }
    }

    /// Controlled mode: what is due now, judged on the implementation's own state (the
    /// control plane's enabled decisions, the messages held in flight, the regions' logs).
    /// Time should not pass while this is not empty: the running service would have taken
    /// each of these by the next tick of its clock.
    pub async fn pending(&self) -> Result<Vec<Pending>, DeployError> {
        let mut due: Vec<Pending> = self
            .control_steps_enabled()
            .await?
            .1
            .into_iter()
            .map(Pending::Control)
            .collect();
        let now = self.clock.now();
        let delay = self.cfg.timing.delay;
        let up = |node: NodeId| match node {
            NodeId::Region(r) => self.status(r).is_some_and(|s| s != Status::Down),
            NodeId::Control => true,
        };
        for m in self.in_flight() {
            let Envelope { from, to, msg } = &m.envelope;
            if !(self.links.allows(*from, *to) && up(*from) && up(*to)) {
                continue;
            }
            let pending = match (*from, *to, msg) {
                // A heartbeat says when it was sent, on its region's clock.
                (NodeId::Region(r), NodeId::Control, Message::Heartbeat(hb)) => {
                    let region_now = now.saturating_sub(self.slot(r)?.lag);
                    (region_now.saturating_sub(hb.sent_at) >= delay)
                        .then_some(Pending::Heartbeat { region: r })
                }
                (NodeId::Control, NodeId::Region(r), Message::Fence { .. }) => {
                    Some(Pending::Fence { region: r })
                }
                _ => None,
            };
            if let Some(p) = pending.filter(|p| !due.contains(p)) {
                due.push(p);
            }
        }
        let mut states: Vec<Option<RegionSnapshot>> = Vec::new();
        for r in 0..self.cfg.regions {
            let running = self.status(r) != Some(Status::Down);
            states.push(if running {
                Some(self.region_state(r).await?)
            } else {
                None
            });
        }
        for (p, primary) in states.iter().enumerate() {
            let Some(primary) = primary.as_ref() else {
                continue;
            };
            if !primary.role.ships() {
                continue;
            }
            let primary_now = now.saturating_sub(self.regions[p].lag);
            for (s, secondary) in states.iter().enumerate() {
                let Some(secondary) = secondary.as_ref() else {
                    continue;
                };
                let (from, to) = (p as u8, s as u8);
                let linked = self.links.allows(NodeId::Region(from), NodeId::Region(to))
                    && self.links.allows(NodeId::Region(to), NodeId::Region(from));
                if p == s
                    || secondary.role != Role::Secondary
                    || secondary.epoch != primary.epoch
                    || !linked
                {
                    continue;
                }
                let have = secondary.log.len();
                let pending = if have < primary.log.len() {
                    let oldest = &primary.log[have];
                    (primary_now.saturating_sub(oldest.acked_at) >= delay).then_some(
                        Pending::Replication {
                            from,
                            to,
                            confirm: false,
                        },
                    )
                } else {
                    let same = have == primary.log.len()
                        && secondary
                            .log
                            .iter()
                            .zip(&primary.log)
                            .all(|(a, b)| a.same_as(b));
                    (same && !primary.in_sync.contains(&to)).then_some(Pending::Replication {
                        from,
                        to,
                        confirm: true,
                    })
                };
                due.extend(pending);
            }
        }
        Ok(due)
    }

    /// Region `from` retransmits to region `to` now (controlled stepping).
    pub async fn ship_now(&mut self, from: u8, to: u8) -> Result<(), DeployError> {
        let _ = self.call_region(from, RegionInput::ShipNow { to }).await;
        self.observe().await
    }

    /// The implementation's write id of the view's write `id` (1, 2, … in order of
    /// acknowledgement).
    pub fn write_id(&self, id: u8) -> Option<WriteId> {
        self.ghost.as_ref()?.write_id(id)
    }

    /// Delivers every message in flight, and those they cause, unless messages are held.
    pub async fn settle(&mut self) -> Result<(), DeployError> {
        self.observe().await?;
        if self.hold {
            return Ok(());
        }
        // Each delivery may send more; a run of them always ends (no message answers a
        // confirmation), the bound only guards against a protocol bug.
        for _ in 0..100_000 {
            let Some(m) = self.memory.as_ref().and_then(|m| m.pop()) else {
                return Ok(());
            };
            self.hand_over(m.envelope).await?;
            self.observe().await?;
        }
        Ok(())
    }

    /// Advances the virtual clock by `minutes`, one minute at a time: every region ticks,
    /// messages are delivered, then the control plane ticks.
    pub async fn advance(&mut self, minutes: u32) -> Result<(), DeployError> {
        let clock = self
            .virtual_clock
            .clone()
            .ok_or(DeployError::NotVirtual("advancing the clock"))?;
        for _ in 0..minutes {
            clock.advance(TICK);
            for r in 0..self.cfg.regions {
                let _ = self.call_region(r, RegionInput::Tick).await;
                self.settle().await?;
            }
            self.control
                .call(ControlInput::Tick)
                .await
                .ok_or(DeployError::Stopped(NodeId::Control))?;
            self.settle().await?;
        }
        Ok(())
    }
}
