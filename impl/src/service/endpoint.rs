//! The global endpoint: FHIR R4 JSON over HTTP (axum) in front of whichever region the
//! control plane names, and the DR operator and status API under `/_dr/`.
//!
//! A FHIR request goes to the data primary of the routing the endpoint last heard from the
//! control plane (one round trip per request); the primary checks versions and appends in one
//! step. A region that refuses as no longer the writable primary, or cannot be reached, makes
//! the endpoint ask the control plane again and retry once. Every error is an
//! OperationOutcome with the right status; nothing is written unless the write is accepted.

// Handlers short-circuit with the finished HTTP response as the error: boxing it would only
// add an allocation to every error path.
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::operator::{self, QuarantineItem};
use crate::service::rpc::{self, RegionCall, RpcError};
use crate::time::unix_ms;
use drcheck_fhir::change::{http_date, Change};
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::{Failure, FhirInput, FhirOutput, QuarantinedWrite, RegionSummary};
use drcheck_fhir::validate;
use drcheck_properties::Status;
use drcheck_protocol::control::{ControlInput, ControlOutput, ControlSnapshot, Routing};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Refusal;
use drcheck_protocol::region::Ack;
use drcheck_protocol::region::RegionInput;

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A fault the operator can inject into a running deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Kill the region's process (SIGKILL).
    Crash {
        region: u8,
    },
    /// Start it again from its data directory.
    Recover {
        region: u8,
    },
    /// Cut the region off from the control plane and the other regions.
    Isolate {
        region: u8,
    },
    Reconnect {
        region: u8,
    },
    /// Cut the links between regions.
    Partition,
    Heal,
}

/// What runs the processes: injects faults and tells which are up.
pub trait Faults: Send + Sync + 'static {
    fn inject(
        &self,
        fault: Fault,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
    /// Is region `r`'s process running?
    fn running(&self, region: u8) -> bool;
    fn partitioned(&self) -> bool;
    /// Is region `r` cut off (isolated)?
    fn isolated(&self, region: u8) -> bool;
    /// Process ids, for the status API.
    fn pids(&self) -> Vec<Option<u32>>;
}

pub struct EndpointConfig {
    pub control: SocketAddr,
    /// Region `r`'s RPC address at index `r`.
    pub regions: Vec<SocketAddr>,
    pub token: String,
    pub faults: Option<Arc<dyn Faults>>,
}

struct Endpoint {
    cfg: EndpointConfig,
    next_write: AtomicU64,
    /// The routing last heard from the control plane: FHIR requests go by it without asking,
    /// until a region refuses (it is no longer the writable primary) or cannot be reached.
    routing: Mutex<Option<Routing>>,
}

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The endpoint's router.
pub fn router(cfg: EndpointConfig) -> Router {
    let state = Arc::new(Endpoint {
        cfg,
        // Unique across restarts of the endpoint: write ids start at the current time.
        next_write: AtomicU64::new(unix_ms().saturating_mul(1000)),
        routing: Mutex::new(None),
    });
    Router::new()
        .route("/metadata", get(metadata))
        .route("/_dr/status", get(status))
        .route("/_dr/failback", post(failback))
        .route("/_dr/force-failover", post(force_failover))
        .route("/_dr/quarantine", get(quarantine))
        .route("/_dr/reapply", post(reapply))
        .route("/_dr/fault", post(fault))
        .route("/{kind}", post(create).fallback(only_post))
        .route(
            "/{kind}/{id}",
            get(read)
                .put(update)
                .delete(delete)
                .fallback(only_get_put_delete),
        )
        .route("/{kind}/{id}/_history", get(history).fallback(only_get))
        .route("/{kind}/{id}/_history/{vid}", get(vread).fallback(only_get))
        .fallback(not_found)
        .with_state(state)
}

type Shared = State<Arc<Endpoint>>;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

fn error_response(e: &FhirError, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &e.operation_outcome());
    if let Some(seconds) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

fn failure_response(f: &Failure) -> Response {
    let e = FhirError {
        status: f.status,
        code: code_of(&f.code),
        diagnostics: f.diagnostics.clone(),
    };
    error_response(&e, f.retry_after)
}

/// The OperationOutcome issue codes a region may send back.
fn code_of(code: &str) -> &'static str {
    [
        "invalid",
        "not-found",
        "deleted",
        "conflict",
        "not-supported",
        "too-long",
        "throttled",
        "transient",
        "security",
        "processing",
    ]
    .into_iter()
    .find(|c| *c == code)
    .unwrap_or("exception")
}

fn unavailable(why: impl Into<String>) -> Response {
    error_response(&FhirError::unavailable(why.into()), Some(1))
}

async fn not_found() -> Response {
    error_response(&FhirError::not_found("no such endpoint".to_string()), None)
}

fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut response = error_response(
        &FhirError::method_not_allowed(format!("{method} is not supported here; use {allow}")),
        None,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

async fn only_post(method: Method) -> Response {
    method_not_allowed(&method, "POST")
}

async fn only_get(method: Method) -> Response {
    method_not_allowed(&method, "GET")
}

async fn only_get_put_delete(method: Method) -> Response {
    method_not_allowed(&method, "GET, PUT, DELETE")
}

async fn call<Q: Serialize, O: serde::de::DeserializeOwned>(
    addr: SocketAddr,
    request: &Q,
) -> Result<O, Response> {
    rpc::call(addr, request, RPC_TIMEOUT)
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// Asks a region process's machine.
async fn ask_region(addr: SocketAddr, input: FhirInput) -> Result<FhirOutput, Response> {
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
    async fn control(&self) -> Result<ControlSnapshot, Response> {
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

    fn cache_routing(&self, routing: Option<Routing>) {
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

    fn authorized(&self, headers: &HeaderMap) -> Result<(), Response> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if operator::same_secret(given, &self.cfg.token) {
            Ok(())
        } else {
            let mut response = error_response(
                &FhirError::unauthorized("the operator token is missing or wrong"),
                None,
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(response)
        }
    }

    async fn write(
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
                        error_response(
                            &FhirError::new(504, "timeout", format!("the outcome is unknown: {e}")),
                            None,
                        )
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

    async fn read(
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

    async fn regions(&self) -> Vec<Result<RegionSummary, String>> {
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

/// `ETag`, `Last-Modified` and, when asked, `Location` of a version.
fn version_headers(response: &mut Response, change: &Change, location: bool) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", change.version)) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(change.last_updated_ms)) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if location {
        let url = format!("/{}/{}/_history/{}", change.kind, change.id, change.version);
        if let Ok(v) = HeaderValue::from_str(&url) {
            headers.insert(header::LOCATION, v);
        }
    }
}

fn resource_response(status: StatusCode, change: &Change, location: bool) -> Response {
    let body = change.resource.clone().unwrap_or(Value::Null);
    let mut response = json_response(status, &body);
    version_headers(&mut response, change, location);
    response
}

/// The request body, checked for media type and size, as bytes.
async fn fhir_body(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, Response> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/fhir+json" && essence != "application/json" {
        let shown = if media.is_empty() { "none" } else { media };
        return Err(error_response(
            &FhirError::unsupported_media_type(format!(
                "Content-Type {shown}: send application/fhir+json"
            )),
            None,
        ));
    }
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        error_response(
            &FhirError::too_large(format!("the body exceeds {BODY_LIMIT} bytes")),
            None,
        )
    })
}

fn rejected(e: FhirError) -> Response {
    error_response(&e, None)
}

async fn create(
    State(ep): Shared,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        validate::check_type(&kind).map_err(rejected)?;
        let bytes = fhir_body(&headers, body).await?;
        let resource = validate::parse_resource(&kind, None, &bytes).map_err(rejected)?;
        ep.write(WriteRequest::Create { kind, resource }, None)
            .await
    };
    match outcome.await {
        Ok(Some((_, change))) => resource_response(StatusCode::CREATED, &change, true),
        Ok(None) => unavailable("the create wrote nothing"),
        Err(response) => response,
    }
}

async fn update(
    State(ep): Shared,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let outcome = async {
        validate::check_type(&kind).map_err(rejected)?;
        validate::check_id(&id).map_err(rejected)?;
        let if_match = match headers.get(header::IF_MATCH) {
            None => None,
            Some(v) => {
                let text = v.to_str().map_err(|_| {
                    rejected(FhirError::invalid("If-Match is not text".to_string()))
                })?;
                Some(validate::parse_if_match(text).map_err(rejected)?)
            }
        };
        let bytes = fhir_body(&headers, body).await?;
        let resource = validate::parse_resource(&kind, Some(&id), &bytes).map_err(rejected)?;
        ep.write(
            WriteRequest::Update {
                kind,
                id,
                resource,
                if_match,
            },
            None,
        )
        .await
    };
    match outcome.await {
        Ok(Some((_, change))) => {
            let status = if change.version == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            resource_response(status, &change, true)
        }
        Ok(None) => unavailable("the update wrote nothing"),
        Err(response) => response,
    }
}

async fn delete(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Response {
    let outcome = async {
        validate::check_type(&kind).map_err(rejected)?;
        validate::check_id(&id).map_err(rejected)?;
        ep.write(WriteRequest::Delete { kind, id }, None).await
    };
    match outcome.await {
        Ok(Some((_, change))) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            version_headers(&mut response, &change, false);
            response
        }
        Ok(None) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(response) => response,
    }
}

async fn read_one(ep: &Endpoint, kind: String, id: String, version: Option<u64>) -> Response {
    if let Err(e) = validate::check_type(&kind).and_then(|()| validate::check_id(&id)) {
        return rejected(e);
    }
    match ep.read(kind, id, version, false).await {
        Ok(changes) => match changes.first() {
            Some(change) => resource_response(StatusCode::OK, change, false),
            None => rejected(FhirError::not_found("no such resource".to_string())),
        },
        Err(response) => response,
    }
}

async fn read(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Response {
    read_one(&ep, kind, id, None).await
}

async fn vread(
    State(ep): Shared,
    Path((kind, id, vid)): Path<(String, String, String)>,
) -> Response {
    match vid.parse::<u64>() {
        Ok(v) => read_one(&ep, kind, id, Some(v)).await,
        Err(_) => rejected(FhirError::invalid(format!(
            "version id {vid:?} is not a number"
        ))),
    }
}

async fn history(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Response {
    if let Err(e) = validate::check_type(&kind).and_then(|()| validate::check_id(&id)) {
        return rejected(e);
    }
    let changes = match ep.read(kind.clone(), id.clone(), None, true).await {
        Ok(changes) => changes,
        Err(response) => return response,
    };
    let entries: Vec<Value> = changes
        .iter()
        .map(|c| {
            let url = format!("{}/{}", c.kind, c.id);
            let (method, status) = if c.deleted {
                ("DELETE", "204")
            } else if c.version == 1 {
                ("POST", "201")
            } else {
                ("PUT", "200")
            };
            let mut entry = json!({
                "fullUrl": url,
                "request": { "method": method, "url": url },
                "response": {
                    "status": status,
                    "etag": format!("W/\"{}\"", c.version),
                    "lastModified": c.last_updated,
                },
            });
            if let Some(resource) = &c.resource {
                entry["resource"] = resource.clone();
            }
            entry
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "entry": entries,
    });
    json_response(StatusCode::OK, &bundle)
}

/// The CapabilityStatement: what this server really supports.
async fn metadata() -> Response {
    let statement = drcheck_fhir::capability_statement(unix_ms(), env!("CARGO_PKG_VERSION"));
    json_response(StatusCode::OK, &statement)
}

// ----- the DR operator and status API -----

/// Protocol milliseconds as protocol minutes, to a tenth.
fn minutes(ms: u64) -> f64 {
    (ms as f64 / 6_000.0).round() / 10.0
}

fn ok_json(body: Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn status(State(ep): Shared) -> Response {
    let control = match ep.control().await {
        Ok(c) => c,
        Err(response) => return response,
    };
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
                    "quarantined": s.quarantine.len(),
                    "resources": s.resources,
                    "loss_window_minutes": s.loss_window_ms.map(minutes),
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
    ok_json(json!({
        "routing": control.routing,
        "phase": control.phase,
        "failed": control.failed,
        "partitioned": ep.cfg.faults.as_ref().map(|f| f.partitioned()),
        "loss_window_minutes": loss_window.map(minutes),
        "regions": shown,
    }))
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
async fn operator_body<T: for<'de> Deserialize<'de>>(body: Body) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        rejected(FhirError::too_large(format!(
            "the body exceeds {BODY_LIMIT} bytes"
        )))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| rejected(FhirError::invalid(format!("request body: {e}"))))
}

fn refused(reason: String) -> Response {
    error_response(
        &FhirError {
            status: 409,
            code: "business-rule",
            diagnostics: reason,
        },
        None,
    )
}

async fn control_request(
    ep: &Endpoint,
    headers: &HeaderMap,
    body: Body,
    request: fn(u8) -> ControlInput,
) -> Response {
    if let Err(response) = ep.authorized(headers) {
        return response;
    }
    let target = match operator_body::<Target>(body).await {
        Ok(t) => t.target,
        Err(response) => return response,
    };
    let answer = call(ep.cfg.control, &request(target)).await;
    // Whatever the answer, the routing may be about to change.
    ep.cache_routing(None);
    match answer {
        Ok(ControlOutput::Operator(Ok(()))) => {
            ok_json(json!({ "accepted": true, "target": target }))
        }
        Ok(ControlOutput::Operator(Err(reason))) => refused(reason.to_string()),
        Ok(other) => unavailable(format!("the control plane answered {other:?}")),
        Err(response) => response,
    }
}

async fn failback(State(ep): Shared, headers: HeaderMap, body: Body) -> Response {
    control_request(&ep, &headers, body, |target| ControlInput::Failback {
        target,
    })
    .await
}

async fn force_failover(State(ep): Shared, headers: HeaderMap, body: Body) -> Response {
    control_request(&ep, &headers, body, |target| ControlInput::ForceFailover {
        target,
    })
    .await
}

async fn quarantine(State(ep): Shared, headers: HeaderMap) -> Response {
    if let Err(response) = ep.authorized(&headers) {
        return response;
    }
    let mut items = Vec::new();
    for (r, summary) in ep.regions().await.into_iter().enumerate() {
        for q in summary.map(|s| s.quarantine).unwrap_or_default() {
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
    ok_json(json!({ "quarantine": items }))
}

async fn reapply(State(ep): Shared, headers: HeaderMap, body: Body) -> Response {
    if let Err(response) = ep.authorized(&headers) {
        return response;
    }
    let original = match operator_body::<WriteRef>(body).await {
        Ok(w) => w.write,
        Err(response) => return response,
    };
    // Only running regions answer: their quarantines are the ones a re-apply can mark.
    let items: Vec<QuarantineItem> = ep
        .regions()
        .await
        .into_iter()
        .enumerate()
        .filter_map(|(r, s)| Some((r as u8, s.ok()?.quarantine)))
        .flat_map(|(region, held)| held.into_iter().map(move |q| quarantine_item(region, q)))
        .collect();
    let request = match operator::reapply_request(&items, original, |_| true) {
        Ok(request) => request,
        Err(refusal) => return refused(refusal.to_string()),
    };
    let written = match ep.write(request, Some(original)).await {
        Ok(w) => w,
        Err(response) => return response,
    };
    // Every region that quarantined it (with three regions, two may have).
    for addr in &ep.cfg.regions {
        let mark = RegionInput::MarkReapplied { write: original };
        let _ = ask_region(*addr, FhirInput::Protocol(mark)).await;
    }
    ok_json(json!({
        "reapplied": original,
        "write": written.as_ref().map(|(ack, _)| ack.write),
        "version": written.as_ref().map(|(_, c)| c.version),
    }))
}

async fn fault(State(ep): Shared, headers: HeaderMap, body: Body) -> Response {
    if let Err(response) = ep.authorized(&headers) {
        return response;
    }
    let Some(faults) = ep.cfg.faults.clone() else {
        return refused(
            "this endpoint does not run the processes; faults are injected by `drcheck serve`"
                .into(),
        );
    };
    let fault = match operator_body::<Fault>(body).await {
        Ok(f) => f,
        Err(response) => return response,
    };
    match faults.inject(fault).await {
        Ok(done) => ok_json(json!({ "done": done })),
        Err(reason) => refused(reason),
    }
}
