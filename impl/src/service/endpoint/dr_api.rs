//! The DR operator and status API under `/_dr/`: the deployment's state for anyone, and for
//! the operator (the [`Operator`] token) failback, forced failover, the quarantine and its
//! re-apply, and fault injection. Answers are plain JSON; errors are OperationOutcomes, as
//! FHIR's are.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Operator;
use super::limits::Gate;
use super::response::{failure_response, ok_json, unavailable, Outcome};
use super::{limited, Answer, Endpoint, Fault, Shared};
use crate::operator::{self, Cluster, QuarantineItem, ReapplyFailed};
use drcheck_fhir::change::Change;
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::FhirWriteResult;
use drcheck_fhir::region::QuarantinedWrite;
use drcheck_protocol::control::{ControlInput, ControlOutput};
use drcheck_protocol::entry::WriteId;

/// Protocol milliseconds as protocol minutes, to a tenth.
fn minutes(ms: u64) -> f64 {
    (ms as f64 / 6_000.0).round() / 10.0
}

/// The deployment's state; `endpoint`: the endpoint's limits and what they refused (when it
/// is served by [`super::limits::serve`]).
pub(super) async fn status(State(ep): Shared, gate: Option<Extension<Arc<Gate>>>) -> Answer {
    let control = ep.control().await?;
    let regions = ep.regions().await;
    let primary = usize::from(control.routing.primary);
    let primary_len = regions
        .get(primary)
        .and_then(|r| r.as_ref().ok())
        .map(|s| s.log_len);
    let pids = ep.cfg.faults.as_ref().map(|f| f.pids()).unwrap_or_default();
    let shown: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(r, summary)| {
            let pid = pids.get(r).copied().flatten();
            match summary {
                Ok(s) => json!({
                    "region": r,
                    "status": "up",
                    "pid": pid,
                    "role": s.role,
                    "epoch": s.epoch,
                    "log_len": s.log_len,
                    "replication_lag": primary_len.map(|p| p.saturating_sub(s.log_len)),
                    "lease_left_minutes": minutes(s.lease_left_ms),
                    "accepts_writes": s.accepts_writes,
                    "in_sync": s.in_sync,
                    "quarantined": s.quarantined,
                    "resources": s.resources,
                    "loss_window_minutes": s.loss_window_ms.map(minutes),
                    "refused_frames": s.edge.refused,
                    "frame_errors": s.edge.errors,
                    "largest_frame_sent": s.edge.largest_sent,
                    "largest_frame_received": s.edge.largest_received,
                }),
                Err(why) => json!({ "region": r, "status": why, "pid": pid }),
            }
        })
        .collect();
    let loss_window = regions
        .get(primary)
        .and_then(|r| r.as_ref().ok())
        .and_then(|s| s.loss_window_ms);
    // Times are in protocol minutes (a protocol minute may be scaled: `serve --minute-ms`).
    Ok(ok_json(&json!({
        "routing": control.routing,
        "phase": control.phase,
        "failed": control.failed,
        "partitioned": ep.cfg.faults.as_ref().map(|f| f.partitioned()),
        "control": ep.cfg.faults.as_ref().map(|f| f.control()),
        "control_edge": ep.control_edge().await.ok().map(|edge| json!({
            "refused_frames": edge.refused,
            "frame_errors": edge.errors,
            "largest_frame_sent": edge.largest_sent,
            "largest_frame_received": edge.largest_received,
        })),
        "loss_window_minutes": loss_window.map(minutes),
        "regions": shown,
        "unauthorized_fhir_requests": ep.unauthorized.load(std::sync::atomic::Ordering::Relaxed),
        "endpoint": gate.map(|Extension(gate)| gate.report()),
    })))
}

#[derive(Deserialize)]
struct Target {
    target: u8,
}

#[derive(Deserialize)]
struct WriteRef {
    write: WriteId,
}

/// Parses an operator request's JSON body, or answers 400.
async fn operator_body<T: for<'de> Deserialize<'de>>(body: Body) -> Result<T, Outcome> {
    let bytes = limited(body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Outcome(FhirError::invalid(format!("request body: {e}"))))
}

/// 409: the operator's request breaks a rule of the protocol or of this deployment.
fn refused(reason: String) -> Response {
    Outcome(FhirError {
        status: 409,
        code: "business-rule",
        diagnostics: reason,
    })
    .into_response()
}

/// A request for the control plane to move the routing to the body's `target`.
async fn control_request(ep: &Endpoint, body: Body, request: fn(u8) -> ControlInput) -> Answer {
    let target = operator_body::<Target>(body).await?.target;
    match ep.reroute(request(target)).await? {
        ControlOutput::Operator(Ok(())) => {
            Ok(ok_json(&json!({ "accepted": true, "target": target })))
        }
        ControlOutput::Operator(Err(reason)) => Err(refused(reason.to_string())),
        other => Err(unavailable(format!("the control plane answered {other:?}"))),
    }
}

pub(super) async fn failback(_: Operator, State(ep): Shared, body: Body) -> Answer {
    control_request(&ep, body, |target| ControlInput::Failback { target }).await
}

pub(super) async fn force_failover(_: Operator, State(ep): Shared, body: Body) -> Answer {
    control_request(&ep, body, |target| ControlInput::ForceFailover { target }).await
}

pub(super) async fn quarantine(_: Operator, State(ep): Shared) -> Answer {
    let mut items = Vec::new();
    let mut unanswered = Vec::new();
    for r in 0..ep.cfg.regions.len() as u8 {
        let Some(held) = ep.quarantine_of(r).await else {
            unanswered.push(r);
            continue;
        };
        for q in held {
            let change = Change::from_payload(&q.payload).ok();
            items.push(json!({
                "region": r,
                "write": q.write,
                "epoch": q.epoch,
                "reapplied": q.reapplied,
                "resource": change.as_ref().map(|c| format!("{}/{}", c.kind, c.id)),
                "version": change.as_ref().map(|c| c.version),
                "deleted": change.as_ref().map(|c| c.deleted),
            }));
        }
    }
    // A region that is down or did not answer is named: its quarantine is not in the list.
    Ok(ok_json(
        &json!({ "quarantine": items, "unanswered": unanswered }),
    ))
}

/// A running region's quarantined write as the operator sees it.
fn quarantine_item(region: u8, q: QuarantinedWrite) -> QuarantineItem {
    QuarantineItem {
        region,
        write: q.write,
        epoch: q.epoch,
        reapplied: q.reapplied,
        payload: q.payload,
    }
}

pub(super) async fn reapply(_: Operator, State(ep): Shared, body: Body) -> Answer {
    let original = operator_body::<WriteRef>(body).await?.write;
    let written = match operator::reapply(&mut Processes(&ep), original).await? {
        Ok(written) => written,
        Err(ReapplyFailed::Refused(refusal)) => return Err(refused(refusal.to_string())),
        Err(ReapplyFailed::Write(failure)) => return Err(failure_response(&failure)),
    };
    Ok(ok_json(&json!({
        "reapplied": original,
        "write": written.as_ref().map(|(ack, _)| ack.write),
        "version": written.as_ref().map(|(_, c)| c.version),
    })))
}

/// The deployment's processes as the operator's shared logic sees them.
struct Processes<'a>(&'a Endpoint);

impl Cluster for Processes<'_> {
    type Error = Response;

    /// Only running regions answer: theirs are the quarantines a re-apply can mark.
    async fn quarantine(&mut self) -> Result<Vec<QuarantineItem>, Response> {
        let mut items = Vec::new();
        for r in 0..self.0.cfg.regions.len() as u8 {
            if let Some(held) = self.0.quarantine_of(r).await {
                items.extend(held.into_iter().map(|q| quarantine_item(r, q)));
            }
        }
        Ok(items)
    }

    fn running(&self, r: u8) -> bool {
        self.0.cfg.faults.as_ref().is_none_or(|f| f.running(r))
    }

    async fn write(
        &mut self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, Response> {
        self.0.write_result(request, reapply_of).await
    }

    async fn mark_reapplied(&mut self, write: WriteId) -> Result<(), Response> {
        self.0.mark_reapplied(write).await;
        Ok(())
    }
}

pub(super) async fn fault(_: Operator, State(ep): Shared, body: Body) -> Answer {
    let Some(faults) = ep.cfg.faults.clone() else {
        return Err(refused(
            "this endpoint does not run the processes; faults are injected by `drcheck serve`"
                .into(),
        ));
    };
    let fault = operator_body::<Fault>(body).await?;
    match faults.inject(fault).await {
        Ok(done) => Ok(ok_json(&json!({ "done": done }))),
        Err(reason) => Err(refused(reason)),
    }
}
