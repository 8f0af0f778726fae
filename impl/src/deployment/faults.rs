//! Fault injection: crash, recovery, isolation, reconnection, inter-region partition and
//! heal, and a control-plane restart; each also told to the ghost ledger.

use drcheck_properties::Status;

use super::{set_mailbox, transport_for, DeployError, Deployment};
use crate::node::{NodeHandle, Wiring};
use drcheck_protocol::control::{
    recover_routing, ControlInput, ControlMachine, ControlSnapshot, Phase,
};
use drcheck_protocol::event::{Event, FaultKind};
use drcheck_protocol::message::NodeId;

impl Deployment {
    /// The control plane restarts: it loses everything it knew and resumes with the routing
    /// recovered from the regions' durable states.
    pub async fn restart_control(&mut self) -> Result<(), DeployError> {
        let view = self.abstract_view().await?;
        self.fault_event(FaultKind::ControlRestart, None);
        if let Some(g) = &mut self.ghost {
            g.control_restarted(&view);
        }
        let mut held = Vec::new();
        for r in 0..self.cfg.regions {
            let s = self.region_state(r).await?;
            held.push(Some((s.epoch, s.role)));
        }
        let n = self.cfg.regions;
        let now = self.clock.now();
        let machine = match recover_routing(&held) {
            Some((epoch, primary)) => {
                ControlMachine::resume(n, self.cfg.timing, now, epoch, primary)
            }
            None => ControlMachine::new(n, self.cfg.timing, now),
        }
        .with_mutants(self.cfg.mutants);
        // A control plane that replays a model path keeps taking decisions only when asked.
        let machine = if self.cfg.controlled {
            machine.controlled()
        } else {
            machine
        };
        let wiring = Wiring {
            store: None,
            transport: transport_for(&self.memory, &self.real, &self.links, NodeId::Control),
            clock: self.clock.clone(),
            lag: 0,
            observer: self.observer.clone(),
        };
        let old = std::mem::replace(&mut self.control, NodeHandle::spawn(machine, wiring));
        old.kill().await;
        // A starting control plane looks at the clock at once (nothing, in controlled mode).
        let _ = self.control.call(ControlInput::Tick).await;
        if let Some(real) = &self.real {
            set_mailbox(
                &real.mailboxes[usize::from(n)],
                Some(Box::new(self.control.mailbox())),
            );
        }
        self.settle().await
    }

    pub(super) fn fault_event(&self, fault: FaultKind, region: Option<u8>) {
        let event = Event::Fault { fault, region };
        self.observer.emit(self.clock.now(), NodeId::Control, event);
    }

    pub(super) fn expect_status(&self, r: u8, expected: Status) -> Result<(), DeployError> {
        let status = self.slot(r)?.status;
        if status == expected {
            Ok(())
        } else {
            Err(DeployError::Status {
                region: r,
                status,
                expected,
            })
        }
    }

    pub(super) fn guard_refused(control: &ControlSnapshot) -> bool {
        matches!(
            control.phase,
            Phase::FailingOver {
                guard_ok: false,
                ..
            }
        )
    }

    pub(super) async fn before_outage(&mut self, r: u8) -> Result<(), DeployError> {
        let view = self.abstract_view().await?;
        let refused = Self::guard_refused(&self.control_state().await?);
        if let Some(g) = &mut self.ghost {
            g.outage(r, &view, refused);
        }
        Ok(())
    }

    /// Region `r` crashes: its task stops at once, volatile state (the lease) is lost, its
    /// store survives; messages it had sent and not delivered are lost.
    pub async fn crash(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Up)?;
        self.before_outage(r).await?;
        self.fault_event(FaultKind::Crash, Some(r));
        if let Some(real) = &self.real {
            set_mailbox(&real.mailboxes[usize::from(r)], None);
        }
        if let Some(node) = self.regions[usize::from(r)].node.take() {
            node.kill().await;
        }
        if let Some(m) = &self.memory {
            m.drop_from(NodeId::Region(r));
        }
        self.regions[usize::from(r)].status = Status::Down;
        self.settle().await
    }

    /// Region `r` restarts from its store.
    pub async fn recover(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Down)?;
        self.fault_event(FaultKind::Recover, Some(r));
        self.boot_region(r)?;
        self.regions[usize::from(r)].status = Status::Up;
        if let Some(g) = &mut self.ghost {
            g.restored(r);
        }
        self.settle().await
    }

    /// Region `r` is cut off from the control plane and the other regions; it keeps running
    /// and serving its own clients.
    pub async fn isolate(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Up)?;
        self.before_outage(r).await?;
        self.fault_event(FaultKind::Isolate, Some(r));
        self.links.set_isolated(r, true);
        if let Some(m) = &self.memory {
            m.drop_from(NodeId::Region(r));
        }
        self.regions[usize::from(r)].status = Status::Isolated;
        self.settle().await
    }

    /// Isolated region `r` is reachable again.
    pub async fn reconnect(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Isolated)?;
        self.fault_event(FaultKind::Reconnect, Some(r));
        self.links.set_isolated(r, false);
        self.regions[usize::from(r)].status = Status::Up;
        if let Some(g) = &mut self.ghost {
            g.restored(r);
        }
        self.settle().await
    }

    /// Cuts the links between regions (the control plane still reaches every region).
    pub async fn partition(&mut self) -> Result<(), DeployError> {
        if !self.links.is_partitioned() {
            let view = self.abstract_view().await?;
            let refused = Self::guard_refused(&self.control_state().await?);
            self.fault_event(FaultKind::Partition, None);
            self.links.set_partitioned(true);
            if let Some(g) = &mut self.ghost {
                g.partition(&view, refused);
            }
        }
        self.settle().await
    }

    /// Restores the links between regions (a no-op, bar settling, when they are not cut).
    pub async fn heal(&mut self) -> Result<(), DeployError> {
        if self.links.is_partitioned() {
            self.fault_event(FaultKind::Heal, None);
        }
        self.links.set_partitioned(false);
        self.settle().await
    }
}
