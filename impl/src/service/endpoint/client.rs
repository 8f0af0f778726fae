//! The endpoint's way to the processes: the control plane for the routing (cached between
//! requests), the data primary for FHIR reads and writes (retried once when the routing was
//! stale), and every region for the status API.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::response::{failure_response, unavailable, Outcome};
use super::Endpoint;
use crate::operator;
use crate::service::rpc::{self, RegionCall, RpcError};
use crate::time::unix_ms;
use drcheck_fhir::change::Change;
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::{Failure, FhirInput, FhirOutput, RegionSummary};
use drcheck_properties::Status;
use drcheck_protocol::control::{ControlInput, ControlOutput, ControlSnapshot, Routing};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Refusal;
use drcheck_protocol::region::Ack;

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn call<Q: Serialize, O: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    request: &Q,
) -> Result<O, Response> {
    rpc::call(addr, request, RPC_TIMEOUT)
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// Asks a region process's machine.
pub(super) async fn ask_region(addr: SocketAddr, input: FhirInput) -> Result<FhirOutput, Response> {
    call(addr, &RegionCall::Machine(input)).await
}

/// A FHIR failure that says the region is not (or no longer) the writable primary: the
/// routing it was chosen by may be out of date (a throttled primary is still the primary).
fn stale_routing(f: &Failure) -> bool {
    f.refusal
        .as_ref()
        .is_some_and(|r| !matches!(r, Refusal::Throttled { .. }))
}

impl Endpoint {
    pub(super) async fn control(&self) -> Result<ControlSnapshot, Response> {
        match call(self.cfg.control, &ControlInput::Snapshot).await? {
            ControlOutput::Snapshot(snapshot) => Ok(*snapshot),
            other => Err(unavailable(format!(
                "the control plane answered {other:?} to a snapshot"
            ))),
        }
    }

    fn cached_routing(&self) -> Option<Routing> {
        *self.routing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn cache_routing(&self, routing: Option<Routing>) {
        *self.routing.lock().unwrap_or_else(PoisonError::into_inner) = routing;
    }

    /// The routing: the cached one, or (`fresh`, or nothing cached) the control plane's now.
    async fn routing(&self, fresh: bool) -> Result<Routing, Response> {
        if let Some(routing) = self.cached_routing().filter(|_| !fresh) {
            return Ok(routing);
        }
        let routing = self.control().await?.routing;
        self.cache_routing(Some(routing));
        Ok(routing)
    }

    /// The data primary's RPC address, if the endpoint can reach it through the compute
    /// region now (by the cached routing unless `fresh`).
    async fn primary(&self, fresh: bool) -> Result<SocketAddr, Response> {
        let routing = self.routing(fresh).await?;
        let reachable = self.reachable(routing);
        if reachable.is_err() && !fresh {
            // The cached routing may name a region the control plane has moved away from.
            return Box::pin(self.primary(true)).await;
        }
        reachable
    }

    fn reachable(&self, routing: Routing) -> Result<SocketAddr, Response> {
        if let Some(faults) = &self.cfg.faults {
            let status = |r: u8| match (faults.running(r), faults.isolated(r)) {
                (false, _) => Status::Down,
                (true, true) => Status::Isolated,
                (true, false) => Status::Up,
            };
            operator::route(&routing, status, faults.partitioned())
                .map_err(|e| unavailable(e.to_string()))?;
        }
        let p = routing.primary;
        self.cfg
            .regions
            .get(usize::from(p))
            .copied()
            .ok_or_else(|| unavailable(format!("no region {p}")))
    }

    pub(super) async fn write(
        &self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<Option<(Ack, Change)>, Response> {
        let write = self.next_write.fetch_add(1, Ordering::Relaxed);
        let mut fresh = false;
        loop {
            let primary = self.primary(fresh).await?;
            let input = FhirInput::Write {
                write,
                request: request.clone(),
                unix_ms: unix_ms(),
                reapply_of,
            };
            let output = rpc::call(primary, &RegionCall::Machine(input), RPC_TIMEOUT)
                .await
                .map_err(|e| match e {
                    // Sent, and no answer: the write may or may not have been acknowledged.
                    RpcError::Garbled { .. } | RpcError::Unreachable { sent: true, .. } => {
                        let e =
                            FhirError::new(504, "timeout", format!("the outcome is unknown: {e}"));
                        Outcome(e).into_response()
                    }
                    RpcError::Unreachable { .. } | RpcError::Failed { .. } => {
                        self.cache_routing(None);
                        unavailable(e.to_string())
                    }
                })?;
            match output {
                FhirOutput::Written(Err(f)) if stale_routing(&f) && !fresh => fresh = true,
                FhirOutput::Written(result) => {
                    if matches!(&result, Err(f) if stale_routing(f)) {
                        self.cache_routing(None);
                    }
                    return result.map_err(|f| failure_response(&f));
                }
                other => {
                    return Err(unavailable(format!(
                        "the data primary answered {other:?} to a write"
                    )))
                }
            }
        }
    }

    pub(super) async fn read(
        &self,
        kind: String,
        id: String,
        version: Option<u64>,
        history: bool,
    ) -> Result<Vec<Change>, Response> {
        let mut fresh = false;
        loop {
            let primary = self.primary(fresh).await?;
            let input = FhirInput::Read {
                kind: kind.clone(),
                id: id.clone(),
                version,
                history,
            };
            let output = ask_region(primary, input).await.inspect_err(|_| {
                self.cache_routing(None);
            })?;
            match output {
                FhirOutput::Read(Err(f)) if stale_routing(&f) && !fresh => fresh = true,
                FhirOutput::Read(result) => return result.map_err(|f| failure_response(&f)),
                other => {
                    return Err(unavailable(format!(
                        "the data primary answered {other:?} to a read"
                    )))
                }
            }
        }
    }

    pub(super) async fn regions(&self) -> Vec<Result<RegionSummary, String>> {
        let mut out = Vec::new();
        for (r, addr) in self.cfg.regions.iter().enumerate() {
            let running = self.cfg.faults.as_ref().is_none_or(|f| f.running(r as u8));
            if !running {
                out.push(Err("down".to_string()));
                continue;
            }
            out.push(match ask_region(*addr, FhirInput::Summary).await {
                Ok(FhirOutput::Summary(summary)) => Ok(*summary),
                Ok(other) => Err(format!("answered {other:?} to a summary")),
                Err(_) => Err(format!("region {r} did not answer")),
            });
        }
        out
    }
}
