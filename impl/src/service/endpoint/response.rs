//! What the endpoint sends back, built in one place: FHIR JSON, the DR API's plain JSON, and
//! errors as OperationOutcomes with their status and headers (`Retry-After`, `Allow`).

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::Failure;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

pub(super) fn error_response(e: &FhirError, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &e.operation_outcome());
    if let Some(seconds) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

pub(super) fn failure_response(f: &Failure) -> Response {
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

pub(super) fn unavailable(why: impl Into<String>) -> Response {
    error_response(&FhirError::unavailable(why.into()), Some(1))
}

pub(super) fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let mut response = error_response(
        &FhirError::method_not_allowed(format!("{method} is not supported here; use {allow}")),
        None,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub(super) fn ok_json(body: Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn rejected(e: FhirError) -> Response {
    error_response(&e, None)
}
