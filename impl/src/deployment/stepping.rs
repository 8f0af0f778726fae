//! Stepping in the virtual mode: holding, delivering and dropping messages, controlled
//! control-plane steps, letting time pass.

use super::{DeployError, Deployment};
use crate::ghost::TICK;
use crate::transport::memory::InFlight;
use drcheck_protocol::control::{ControlInput, ControlOutput};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::message::{Envelope, Message, NodeId};
use drcheck_protocol::refusal::StepRefusal;
use drcheck_protocol::region::RegionInput;

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
