//! What the endpoint sends back, built in one place: FHIR JSON, the DR API's plain JSON, and
//! errors as OperationOutcomes with their status and headers (`Retry-After`, `Allow`).
//! [`FhirError`] lives in `drcheck-fhir`, which knows nothing of HTTP servers; [`Outcome`] is
//! the response it makes here.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::region::Failure;

pub(super) const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A FHIR error as a response: its status and its OperationOutcome.
pub(super) struct Outcome(pub(super) FhirError);

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.0.operation_outcome())
    }
}

/// So that `?` takes an [`Outcome`] where a handler's error is a finished response.
impl From<Outcome> for Response {
    fn from(outcome: Outcome) -> Response {
        outcome.into_response()
    }
}

/// `body` as FHIR JSON.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

/// `body` as plain JSON, 200: the DR API's answers.
pub(super) fn ok_json(body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `response` with a header (left out if `value` cannot be one).
pub(super) fn with_header(
    mut response: Response,
    name: header::HeaderName,
    value: &str,
) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
    response
}

/// An error the client may retry after `seconds`.
pub(super) fn retry_after(e: FhirError, seconds: u64) -> Response {
    with_header(
        Outcome(e).into_response(),
        header::RETRY_AFTER,
        &seconds.to_string(),
    )
}

/// A region's failure, as the client gets it.
pub(super) fn failure_response(f: &Failure) -> Response {
    let e = FhirError {
        status: f.status,
        code: code_of(&f.code),
        diagnostics: f.diagnostics.clone(),
    };
    match f.retry_after {
        Some(seconds) => retry_after(e, seconds),
        None => Outcome(e).into_response(),
    }
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

/// 503: no process could answer now; retry in a second.
pub(super) fn unavailable(why: impl Into<String>) -> Response {
    retry_after(FhirError::unavailable(why.into()), 1)
}

/// 405, with the methods the URL takes in `Allow`.
pub(super) fn method_not_allowed(method: &Method, allow: &'static str) -> Response {
    let e = FhirError::method_not_allowed(format!("{method} is not supported here; use {allow}"));
    let mut response = Outcome(e).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
