//! Who may use the endpoint. The DR operator API: whoever shows the deployment's operator
//! token as `Authorization: Bearer <token>` — an extractor, so a handler that takes an
//! [`Operator`] cannot forget the check, and the check runs before the handler reads the
//! body. The FHIR API, when `serve` was given a FHIR token: whoever shows that token, checked
//! by [`fhir_access`] in front of every route but `/metadata` (a client reads the server's
//! capabilities before it has credentials) and the DR API (which has its own).

use std::sync::Arc;

use std::sync::atomic::Ordering;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::Outcome;
use super::Endpoint;
use crate::operator;
use drcheck_fhir::outcome::FhirError;

/// The request carries the operator token.
pub(super) struct Operator;

impl FromRequestParts<Arc<Endpoint>> for Operator {
    /// 401, with `WWW-Authenticate: Bearer`.
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        ep: &Arc<Endpoint>,
    ) -> Result<Self, Self::Rejection> {
        let given = bearer(&parts.headers).unwrap_or("");
        if operator::same_secret(given, &ep.cfg.token) {
            return Ok(Operator);
        }
        let mut response = Outcome(FhirError::unauthorized(
            "the operator token is missing or wrong",
        ))
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(response)
    }
}

/// The bearer token of a request's `Authorization` header, if it has one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Is `path` open without the FHIR token?
fn open_without_fhir_token(path: &str) -> bool {
    path == "/metadata" || path.starts_with("/_dr/")
}

/// Lets a request through if FHIR access is open, if its path needs no FHIR token, or if it
/// shows the FHIR token; else 401 with a `WWW-Authenticate` challenge as RFC 6750 (and SMART
/// on FHIR after it) spells it, logged and counted.
pub(super) async fn fhir_access(
    State(ep): State<Arc<Endpoint>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = ep.cfg.fhir_token.as_deref() else {
        return next.run(request).await;
    };
    if open_without_fhir_token(request.uri().path()) {
        return next.run(request).await;
    }
    let given = bearer(request.headers());
    if given.is_some_and(|t| operator::same_secret(t, expected)) {
        return next.run(request).await;
    }
    ep.unauthorized.fetch_add(1, Ordering::Relaxed);
    let (challenge, why) = match given {
        None => (
            r#"Bearer realm="drcheck""#,
            "this server requires a bearer token (Authorization: Bearer <token>)",
        ),
        Some(_) => (
            r#"Bearer realm="drcheck", error="invalid_token", error_description="the bearer token is not this server's""#,
            "the bearer token is not this server's",
        ),
    };
    tracing::info!(
        method = %request.method(),
        path = request.uri().path(),
        token_given = given.is_some(),
        "FHIR request refused: no valid bearer token"
    );
    let mut response = Outcome(FhirError::unauthorized(why)).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metadata_and_the_dr_api_are_open_without_the_fhir_token() {
        assert!(open_without_fhir_token("/metadata"));
        assert!(open_without_fhir_token("/_dr/status"));
        assert!(open_without_fhir_token("/_dr/failback"));
        for path in [
            "/Patient",
            "/Patient/1",
            "/Patient/1/_history",
            "/",
            "/metadata2",
        ] {
            assert!(!open_without_fhir_token(path), "{path}");
        }
    }
}
