//! The operator API of a deployment: data failback, forced failover, the quarantine and
//! re-apply, behind the operator token.

use drcheck_properties::{Role, Status};

use crate::operator::{self, Cluster, QuarantineItem, ReapplyFailed};
use drcheck_fhir::region::FhirWriteResult;
use drcheck_fhir::WriteRequest;
use drcheck_protocol::control::{ControlInput, ControlOutput, Phase};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Event;
use drcheck_protocol::message::NodeId;
use drcheck_protocol::refusal::OperatorRefusal;
use drcheck_protocol::region::RegionInput;

use super::clients::acknowledged;
use super::{DeployError, Deployment};

/// An operator request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum OperatorRequest {
    /// Manual data failback to `target` (the home region), as a drained switchover.
    DataFailback {
        /// The region to fail the data back to.
        target: u8,
    },
    /// Fail over to `target` although the RPO guard refused, after the grace period.
    ForceFailover {
        /// The region to promote.
        target: u8,
    },
    /// List the quarantined writes of every region (a down region's read from its store).
    ListQuarantine,
    /// Re-apply a quarantined write as a new write at the data primary.
    Reapply {
        /// The quarantined write's id.
        write: WriteId,
    },
}

/// The answer to an operator request that was not refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum OperatorResponse {
    /// A failback or forced failover was accepted (it proceeds in the control plane).
    Accepted,
    /// The quarantined writes.
    Quarantine {
        /// Every quarantined write found.
        items: Vec<QuarantineItem>,
    },
    /// The quarantined write was re-applied.
    Reapplied {
        /// The quarantined write.
        original: WriteId,
        /// The new write that carries it.
        write: WriteId,
    },
}

/// Why an operator request was not carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The operator token is missing or wrong.
    #[error("the operator credential is missing or wrong")]
    Unauthorized,
    /// The control plane (or the re-apply's checks) refused it; nothing changed.
    #[error("refused: {0}")]
    Refused(OperatorRefusal),
}

impl Deployment {
    /// An operator request, refused unless `token` is the deployment's operator token; a
    /// refused request changes nothing.
    pub async fn operator(
        &mut self,
        token: &str,
        request: OperatorRequest,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        if !operator::same_secret(token, &self.cfg.operator_token) {
            self.observer.emit(
                self.clock.now(),
                NodeId::Control,
                Event::OperatorRefused {
                    request: format!("{request:?}"),
                    reason: "missing or wrong operator credential".to_string(),
                },
            );
            return Ok(Err(OperatorError::Unauthorized));
        }
        let answer = match request {
            OperatorRequest::DataFailback { target } => {
                let eligible = self.failback_eligible(target).await?;
                let answer = self
                    .control_request(ControlInput::Failback { target })
                    .await?;
                if let (true, Some(g)) = (eligible, &mut self.ghost) {
                    g.failback_requested(target, answer.is_ok());
                }
                answer
            }
            OperatorRequest::ForceFailover { target } => {
                self.control_request(ControlInput::ForceFailover { target })
                    .await?
            }
            OperatorRequest::ListQuarantine => Ok(OperatorResponse::Quarantine {
                items: self.quarantine().await?,
            }),
            OperatorRequest::Reapply { write } => self.reapply(write).await?,
        };
        self.settle().await?;
        Ok(answer)
    }

    /// Is `target` a data failback target the checker expects accepted, judged on the actual
    /// state: the home region, up, a secondary of the current epoch that the primary counts in
    /// sync, linked to it, neither declared failed, and no failover or switchover under way.
    /// In sync also as the primary last reported it: the control plane cannot know sooner
    /// (the model judges on the primary's state; this gap is a known divergence).
    async fn failback_eligible(&self, target: u8) -> Result<bool, DeployError> {
        let control = self.control_state().await?;
        let routing = control.routing;
        let p = routing.primary;
        if target == p || target != routing.home || control.phase != Phase::Normal {
            return Ok(false);
        }
        let failed = |r: u8| control.failed.get(usize::from(r)).copied().unwrap_or(true);
        let up = |r: u8| {
            self.regions
                .get(usize::from(r))
                .is_some_and(|s| s.status == Status::Up)
        };
        if failed(target) || failed(p) || !up(target) || !up(p) || self.links.is_partitioned() {
            return Ok(false);
        }
        let (t, primary) = (
            self.region_state(target).await?,
            self.region_state(p).await?,
        );
        Ok(t.role == Role::Secondary
            && t.epoch == routing.epoch
            && primary.role == Role::Primary
            && primary.in_sync.contains(&target)
            && control.primary_in_sync.contains(&target))
    }

    pub(super) async fn control_request(
        &mut self,
        input: ControlInput,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        match self.control.call(input).await {
            Some(ControlOutput::Operator(Ok(()))) => Ok(Ok(OperatorResponse::Accepted)),
            Some(ControlOutput::Operator(Err(reason))) => Ok(Err(OperatorError::Refused(reason))),
            _ => Err(DeployError::Stopped(NodeId::Control)),
        }
    }

    /// Every quarantined write of every region (a region that is down shows its store's).
    pub async fn quarantine(&self) -> Result<Vec<QuarantineItem>, DeployError> {
        let mut items = Vec::new();
        for r in 0..self.cfg.regions {
            for q in self.region_state(r).await?.quarantine {
                items.push(QuarantineItem {
                    region: r,
                    write: q.entry.write,
                    epoch: q.entry.epoch,
                    reapplied: q.reapplied,
                    payload: q.entry.payload,
                });
            }
        }
        Ok(items)
    }

    pub(super) async fn reapply(
        &mut self,
        write: WriteId,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        let refuse = |reason: OperatorRefusal| Ok(Err(OperatorError::Refused(reason)));
        let written = match operator::reapply(self, write).await? {
            Ok(written) => Ok(written),
            Err(ReapplyFailed::Refused(refusal)) => return refuse(refusal),
            Err(ReapplyFailed::Write(failure)) => Err(failure),
        };
        let ack = match acknowledged(written)? {
            Ok(ack) => ack,
            Err(refusal) => return refuse(OperatorRefusal::WriteRefused { refusal }),
        };
        self.observer.emit(
            self.clock.now(),
            NodeId::Control,
            Event::Reapplied {
                original: write,
                write: ack.write,
            },
        );
        Ok(Ok(OperatorResponse::Reapplied {
            original: write,
            write: ack.write,
        }))
    }
}

impl Cluster for Deployment {
    type Error = DeployError;

    async fn quarantine(&mut self) -> Result<Vec<QuarantineItem>, DeployError> {
        Deployment::quarantine(self).await
    }

    fn running(&self, r: u8) -> bool {
        self.status(r).is_some_and(|s| s != Status::Down)
    }

    async fn write(
        &mut self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, DeployError> {
        self.write_routed(request, reapply_of).await
    }

    async fn mark_reapplied(&mut self, write: WriteId) -> Result<(), DeployError> {
        for r in 0..self.cfg.regions {
            let _ = self
                .call_region(r, RegionInput::MarkReapplied { write })
                .await;
        }
        Ok(())
    }
}
