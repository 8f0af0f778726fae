//! Who may use the DR operator API: whoever shows the deployment's operator token as
//! `Authorization: Bearer <token>`. An extractor, so a handler that takes an [`Operator`]
//! cannot forget the check, and the check runs before the handler reads the body.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
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
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
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
