//! The global endpoint: FHIR R4 JSON over HTTP (axum) in front of whichever region the
//! control plane names, and the DR operator and status API under `/_dr/`.
//!
//! A FHIR request goes to the data primary of the routing the endpoint last heard from the
//! control plane (one round trip per request); the primary checks versions and appends in one
//! step. A region that refuses as no longer the writable primary, or cannot be reached, makes
//! the endpoint ask the control plane again and retry once. Every error is an
//! OperationOutcome with the right status; nothing is written unless the write is accepted.
//!
//! This file holds what the rest of the service sees (the configuration, the faults the
//! operator may inject, the router) and the state every handler shares. The parts:
//! [`client`] reaches the processes, [`fhir`] and [`dr_api`] are the handlers of the two
//! APIs, [`auth`] admits the operator, [`response`] builds what goes back, and [`limits`]
//! serves the router within its connection, time and rate limits.

// Handlers short-circuit with the finished HTTP response as the error: boxing it would only
// add an allocation to every error path.
#![allow(clippy::result_large_err)]

mod auth;
mod client;
mod dr_api;
mod fhir;
pub mod limits;
mod response;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::time::unix_ms;
use drcheck_fhir::outcome::FhirError;
use drcheck_protocol::control::Routing;
use response::Outcome;

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A fault the operator can inject into a running deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Kill the region's process (SIGKILL).
    Crash {
        /// The region.
        region: u8,
    },
    /// Start it again from its data directory.
    Recover {
        /// The region.
        region: u8,
    },
    /// Cut the region off from the control plane and the other regions.
    Isolate {
        /// The region.
        region: u8,
    },
    /// Restore an isolated region's links.
    Reconnect {
        /// The region.
        region: u8,
    },
    /// Cut the links between regions.
    Partition,
    /// Restore the links between regions.
    Heal,
    /// Kill the control plane's process (SIGKILL); `drcheck serve` restarts it by itself.
    CrashControl,
    /// Start the control plane's process now if it is down, without waiting out the
    /// supervisor's restart delay.
    RecoverControl,
}

/// The control plane's process, as the status API shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlProcess {
    /// Its process id while it runs (`None`: down, about to be restarted).
    pub pid: Option<u32>,
    /// How many times it was started again since the deployment started (after it exited,
    /// was killed, or on the operator's `RecoverControl`).
    pub restarts: u64,
}

/// What runs the processes: injects faults and tells which are up.
pub trait Faults: Send + Sync + 'static {
    /// Injects `fault`: what was done, in words, or why it was not.
    fn inject(
        &self,
        fault: Fault,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;
    /// Is region `r`'s process running?
    fn running(&self, region: u8) -> bool;
    /// Is the link between regions cut?
    fn partitioned(&self) -> bool;
    /// Is region `r` cut off (isolated)?
    fn isolated(&self, region: u8) -> bool;
    /// Process ids, for the status API.
    fn pids(&self) -> Vec<Option<u32>>;
    /// The control plane's process, for the status API.
    fn control(&self) -> ControlProcess;
}

/// What the endpoint needs: where the nodes answer, the operator token, fault injection.
pub struct EndpointConfig {
    /// The control plane's RPC address.
    pub control: SocketAddr,
    /// Region `r`'s RPC address at index `r`.
    pub regions: Vec<SocketAddr>,
    /// The operator token the DR API demands.
    pub token: String,
    /// The bearer token every FHIR request must show (`None`: FHIR access is open).
    pub fhir_token: Option<String>,
    /// What runs the processes, for fault injection and the status API (`None`: no fault
    /// injection, and every region is taken as running).
    pub faults: Option<Arc<dyn Faults>>,
    /// The endpoint's keys (see [`crate::auth`]): its calls and the answers are authenticated.
    pub keys: Arc<crate::auth::Keyring>,
}

/// The state every handler shares.
struct Endpoint {
    cfg: EndpointConfig,
    /// The endpoint's calls to the processes, on connections kept open between calls.
    rpc: crate::service::rpc::Client,
    next_write: AtomicU64,
    /// The routing last heard from the control plane: FHIR requests go by it without asking,
    /// until a region refuses (it is no longer the writable primary) or cannot be reached.
    routing: Mutex<Option<Routing>>,
    /// FHIR requests refused for want of the FHIR token.
    unauthorized: AtomicU64,
}

type Shared = State<Arc<Endpoint>>;

/// What a handler answers: the response, or the error response that cut it short.
type Answer = Result<Response, Response>;

/// The endpoint's router.
pub fn router(cfg: EndpointConfig) -> Router {
    let state = Arc::new(Endpoint {
        rpc: crate::service::rpc::Client::new(cfg.keys.clone()),
        cfg,
        // Unique across restarts of the endpoint: write ids start at the current time.
        next_write: AtomicU64::new(unix_ms().saturating_mul(1000)),
        routing: Mutex::new(None),
        unauthorized: AtomicU64::new(0),
    });
    Router::new()
        .route("/metadata", get(fhir::metadata).fallback(fhir::only_get))
        .route("/_dr/status", get(dr_api::status).fallback(fhir::only_get))
        .route(
            "/_dr/failback",
            post(dr_api::failback).fallback(fhir::only_post),
        )
        .route(
            "/_dr/force-failover",
            post(dr_api::force_failover).fallback(fhir::only_post),
        )
        .route(
            "/_dr/quarantine",
            get(dr_api::quarantine).fallback(fhir::only_get),
        )
        .route(
            "/_dr/reapply",
            post(dr_api::reapply).fallback(fhir::only_post),
        )
        .route("/_dr/fault", post(dr_api::fault).fallback(fhir::only_post))
        .route("/{kind}", post(fhir::create).fallback(fhir::only_post))
        .route(
            "/{kind}/{id}",
            get(fhir::read)
                .put(fhir::update)
                .delete(fhir::delete)
                .fallback(fhir::only_get_put_delete),
        )
        .route(
            "/{kind}/{id}/_history",
            get(fhir::history).fallback(fhir::only_get),
        )
        .route(
            "/{kind}/{id}/_history/{vid}",
            get(fhir::vread).fallback(fhir::only_get),
        )
        .fallback(fhir::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::fhir_access,
        ))
        .with_state(state)
}

/// A request body of at most [`BODY_LIMIT`] bytes, or 413.
async fn limited(body: Body) -> Result<Bytes, Outcome> {
    axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        Outcome(FhirError::too_large(format!(
            "the body exceeds {BODY_LIMIT} bytes"
        )))
    })
}
