//! `drcheck control`: the control plane as a process.

use std::sync::Arc;

use crate::node::{NodeHandle, Wiring};
use crate::service::edge::Guard;
use crate::service::region::Common;
use crate::service::rpc::{Answer, CallFailure, ControlAnswer, ControlCall};
use crate::service::{ProcessConfig, ServiceError};
use crate::time::Clock;
use drcheck_protocol::control::{ControlInput, ControlMachine, ControlOutput};
use drcheck_protocol::message::NodeId;

/// Runs the control plane until `shutdown` resolves.
pub async fn run(
    cfg: ProcessConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    if cfg.node != NodeId::Control {
        return Err(ServiceError::Config(
            "`control` runs the control plane".into(),
        ));
    }
    let common = Common::new(&cfg)?;
    let now = common.clock.now();
    let machine = match cfg.resume {
        Some((epoch, primary)) => {
            ControlMachine::resume(cfg.regions, cfg.timing, now, epoch, primary)
        }
        None => ControlMachine::new(cfg.regions, cfg.timing, now),
    };
    let node = Arc::new(NodeHandle::spawn(
        machine,
        Wiring {
            store: None,
            transport: common.transport(&cfg),
            clock: common.clock.clone(),
            lag: 0,
            observer: common.observer.clone(),
        },
    ));
    let handler_node = node.clone();
    let stats = common.stats.clone();
    let handle = move |call: ControlCall| {
        let node = handler_node.clone();
        let stats = stats.clone();
        async move {
            match call {
                ControlCall::Machine(input) => {
                    answer(&node, input).await.map(ControlAnswer::Machine)
                }
                ControlCall::Edge => Ok(ControlAnswer::Edge(stats.counts())),
            }
        }
    };
    let guard = Guard::control(cfg.timing, common.stats.clone());
    common.run(&cfg, node, guard, handle, shutdown).await
}

async fn answer(node: &NodeHandle<ControlMachine>, input: ControlInput) -> Answer<ControlOutput> {
    match input {
        ControlInput::Snapshot
        | ControlInput::Failback { .. }
        | ControlInput::ForceFailover { .. } => {
            node.call(input).await.ok_or(CallFailure::Stopped {
                node: "the control plane".into(),
            })
        }
        // Ticks and messages come on the protocol port; steps only in controlled mode.
        other => Err(CallFailure::NotOffered {
            what: format!("{other:?}"),
        }),
    }
}
