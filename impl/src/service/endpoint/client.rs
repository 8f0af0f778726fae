//! The endpoint's way to the processes: the control plane for the routing (cached between
//! requests), the data primary for FHIR reads and writes (sent once more, by a fresh routing,
//! when the cached one was stale), and every region for the status API. A process that cannot
//! answer becomes a 503 (or a 504 when a write went out and its outcome is unknown).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::PoisonError;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::response::{failure_response, unavailable, Outcome};
use super::Endpoint;
use crate::auth::{EdgeCounts, Principal};
use crate::operator;
use crate::service::rpc::{ControlAnswer, ControlCall, RegionCall, RpcError};
use crate::time::unix_ms;
use drcheck_fhir::change::Change;
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::{
    Failure, FhirInput, FhirOutput, FhirWriteResult, QuarantinedWrite, RegionSummary,
};
use drcheck_properties::Status;
use drcheck_protocol::control::{ControlInput, ControlOutput, ControlSnapshot, Routing};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Refusal;
use drcheck_protocol::region::{Ack, RegionInput};

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// Most payload bytes in one page of a quarantine (JSON-encoded, at most about twice as much,
/// under the RPC line's 32 MiB).
const QUARANTINE_PAGE: usize = 8 * 1024 * 1024;

/// A process the endpoint calls: who it is (its answers must prove it) and where.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    who: Principal,
    addr: SocketAddr,
}

/// A FHIR failure that says the region is not (or no longer) the writable primary: the
/// routing it was chosen by may be out of date (a throttled primary is still the primary).
fn stale_routing(f: &Failure) -> bool {
    f.refusal
        .as_ref()
        .is_some_and(|r| !matches!(r, Refusal::Throttled { .. }))
}

impl Endpoint {
    async fn call<Q: Serialize, O: DeserializeOwned>(
        &self,
        peer: Peer,
        request: &Q,
    ) -> Result<O, Response> {
        self.rpc
            .call(peer.addr, peer.who, request, RPC_TIMEOUT)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Asks a region process's machine.
    async fn ask_region(&self, peer: Peer, input: FhirInput) -> Result<FhirOutput, Response> {
        self.call(peer, &RegionCall::Machine(input)).await
    }

    fn control_peer(&self) -> Peer {
        Peer {
            who: Principal::Control,
            addr: self.cfg.control,
        }
    }

    /// Region `r`'s process, if there is one.
    fn region_peer(&self, r: u8) -> Option<Peer> {
        let addr = *self.cfg.regions.get(usize::from(r))?;
        Some(Peer {
            who: Principal::Region(r),
            addr,
        })
    }

    /// Asks the control plane's machine.
    async fn ask_control(&self, input: ControlInput) -> Result<ControlOutput, Response> {
        match self
            .call(self.control_peer(), &ControlCall::Machine(input))
            .await?
        {
            ControlAnswer::Machine(output) => Ok(output),
            other => Err(unavailable(format!(
                "the control plane answered {other:?} to an input of its machine"
            ))),
        }
    }

    /// What the control-plane process refused at its edge.
    pub(super) async fn control_edge(&self) -> Result<EdgeCounts, Response> {
        match self.call(self.control_peer(), &ControlCall::Edge).await? {
            ControlAnswer::Edge(counts) => Ok(counts),
            other => Err(unavailable(format!(
                "the control plane answered {other:?} to a request for its edge counts"
            ))),
        }
    }

    /// The control plane's state now.
    pub(super) async fn control(&self) -> Result<ControlSnapshot, Response> {
        match self.ask_control(ControlInput::Snapshot).await? {
            ControlOutput::Snapshot(snapshot) => Ok(*snapshot),
            other => Err(unavailable(format!(
                "the control plane answered {other:?} to a snapshot"
            ))),
        }
    }

    /// Asks the control plane to move the routing (a failback, a forced failover). Whatever
    /// the answer, the cached routing is dropped: it may be about to change.
    pub(super) async fn reroute(&self, request: ControlInput) -> Result<ControlOutput, Response> {
        let answer = self.ask_control(request).await;
        self.forget_routing();
        answer
    }

    fn cached_routing(&self) -> Option<Routing> {
        *self.routing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember_routing(&self, routing: Routing) {
        *self.routing.lock().unwrap_or_else(PoisonError::into_inner) = Some(routing);
    }

    fn forget_routing(&self) {
        *self.routing.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The control plane's routing now, cached for the requests that follow.
    async fn fresh_routing(&self) -> Result<Routing, Response> {
        let routing = self.control().await?.routing;
        self.remember_routing(routing);
        Ok(routing)
    }

    /// The data primary's RPC address by the cached routing (the control plane's when none
    /// is cached), or by a fresh one if the endpoint cannot reach that primary now.
    async fn primary(&self) -> Result<Peer, Response> {
        match self.cached_routing() {
            Some(routing) => match self.reachable(routing) {
                Ok(primary) => Ok(primary),
                // It may name a region the control plane has moved away from.
                Err(_) => self.fresh_primary().await,
            },
            None => self.fresh_primary().await,
        }
    }

    /// The data primary's RPC address by the control plane's routing now, if the endpoint
    /// can reach it.
    async fn fresh_primary(&self) -> Result<Peer, Response> {
        let routing = self.fresh_routing().await?;
        self.reachable(routing)
    }

    /// The primary's RPC address, if the endpoint can reach it through the compute region.
    fn reachable(&self, routing: Routing) -> Result<Peer, Response> {
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
        self.region_peer(p)
            .ok_or_else(|| unavailable(format!("no region {p}")))
    }

    /// `attempt` on the data primary; once more on a fresh routing's primary if the region
    /// refused as not the writable primary. The second answer is final, refused or not.
    async fn on_primary<T, F, Fut>(&self, attempt: F) -> Result<Result<T, Failure>, Response>
    where
        F: Fn(Peer) -> Fut,
        Fut: Future<Output = Result<Result<T, Failure>, Response>>,
    {
        match attempt(self.primary().await?).await? {
            Err(f) if stale_routing(&f) => attempt(self.fresh_primary().await?).await,
            answer => Ok(answer),
        }
    }

    /// Writes through the data primary: what it acknowledged (`None`: nothing to write).
    pub(super) async fn write(
        &self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<Option<(Ack, Change)>, Response> {
        self.write_result(request, reapply_of)
            .await?
            .map_err(|f| failure_response(&f))
    }

    /// Writes through the data primary: what it acknowledged, or the primary's failure.
    pub(super) async fn write_result(
        &self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, Response> {
        let write = self.next_write.fetch_add(1, Ordering::Relaxed);
        let result = self
            .on_primary(|primary| {
                let input = FhirInput::Write {
                    write,
                    request: request.clone(),
                    unix_ms: unix_ms(),
                    reapply_of,
                };
                self.write_to(primary, input)
            })
            .await?;
        if matches!(&result, Err(f) if stale_routing(f)) {
            // Refused by the fresh routing's primary too: ask again next time.
            self.forget_routing();
        }
        Ok(result)
    }

    async fn write_to(&self, primary: Peer, input: FhirInput) -> Result<FhirWriteResult, Response> {
        let request = RegionCall::Machine(input);
        let output = self
            .rpc
            .call(primary.addr, primary.who, &request, RPC_TIMEOUT)
            .await
            .map_err(|e| match e {
                // Sent, and no answer (or none to believe): the write may or may not have
                // been acknowledged.
                RpcError::Garbled { .. }
                | RpcError::Forged { .. }
                | RpcError::Unreachable { sent: true, .. } => Outcome(FhirError::new(
                    504,
                    "timeout",
                    format!("the outcome is unknown: {e}"),
                ))
                .into_response(),
                RpcError::Unreachable { .. } | RpcError::Failed { .. } => {
                    self.forget_routing();
                    unavailable(e.to_string())
                }
            })?;
        match output {
            FhirOutput::Written(result) => Ok(result),
            other => Err(unavailable(format!(
                "the data primary answered {other:?} to a write"
            ))),
        }
    }

    /// The current version of a resource, or version `version`: one change, or none.
    pub(super) async fn read(
        &self,
        kind: &str,
        id: &str,
        version: Option<u64>,
    ) -> Result<Vec<Change>, Response> {
        self.read_by(|| FhirInput::Read {
            kind: kind.to_string(),
            id: id.to_string(),
            version,
            history: false,
        })
        .await
    }

    /// Every version of a resource.
    pub(super) async fn history(&self, kind: &str, id: &str) -> Result<Vec<Change>, Response> {
        self.read_by(|| FhirInput::Read {
            kind: kind.to_string(),
            id: id.to_string(),
            version: None,
            history: true,
        })
        .await
    }

    async fn read_by(&self, input: impl Fn() -> FhirInput) -> Result<Vec<Change>, Response> {
        self.on_primary(|primary| self.read_from(primary, input()))
            .await?
            .map_err(|f| failure_response(&f))
    }

    async fn read_from(
        &self,
        primary: Peer,
        input: FhirInput,
    ) -> Result<Result<Vec<Change>, Failure>, Response> {
        let output = self
            .ask_region(primary, input)
            .await
            .inspect_err(|_| self.forget_routing())?;
        match output {
            FhirOutput::Read(result) => Ok(result),
            other => Err(unavailable(format!(
                "the data primary answered {other:?} to a read"
            ))),
        }
    }

    /// Every region's summary, or why there is none (`down`: its process does not run).
    pub(super) async fn regions(&self) -> Vec<Result<RegionSummary, String>> {
        let mut out = Vec::new();
        for r in 0..self.cfg.regions.len() as u8 {
            let running = self.cfg.faults.as_ref().is_none_or(|f| f.running(r));
            let Some(peer) = self.region_peer(r).filter(|_| running) else {
                out.push(Err("down".to_string()));
                continue;
            };
            out.push(match self.ask_region(peer, FhirInput::Summary).await {
                Ok(FhirOutput::Summary(summary)) => Ok(*summary),
                Ok(other) => Err(format!("answered {other:?} to a summary")),
                Err(_) => Err(format!("region {r} did not answer")),
            });
        }
        out
    }

    /// Region `r`'s whole quarantine, page by page (a page at most [`QUARANTINE_PAGE`] bytes
    /// of payload, so that no answer nears the RPC line's limit however large the
    /// quarantine); `None` if the region is down or does not answer.
    pub(super) async fn quarantine_of(&self, r: u8) -> Option<Vec<QuarantinedWrite>> {
        let running = self.cfg.faults.as_ref().is_none_or(|f| f.running(r));
        let peer = self.region_peer(r).filter(|_| running)?;
        let mut items = Vec::new();
        let mut from = Some(0);
        while let Some(start) = from {
            let ask = FhirInput::Quarantine {
                from: start,
                max_bytes: QUARANTINE_PAGE,
            };
            match self.ask_region(peer, ask).await {
                Ok(FhirOutput::Quarantine(page)) => {
                    items.extend(page.items);
                    from = page.next;
                }
                _ => return None,
            }
        }
        Some(items)
    }

    /// Tells every region that quarantined `write` that it was re-applied (with three
    /// regions, two may have); a region that does not answer is left as it is.
    pub(super) async fn mark_reapplied(&self, write: WriteId) {
        for r in 0..self.cfg.regions.len() as u8 {
            let mark = RegionInput::MarkReapplied { write };
            if let Some(peer) = self.region_peer(r) {
                let _ = self.ask_region(peer, FhirInput::Protocol(mark)).await;
            }
        }
    }
}
