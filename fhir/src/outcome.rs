//! Errors as FHIR reports them: an HTTP status and an `OperationOutcome`.
//!
//! One error type carries both, so the layer that turns it into a response never has to
//! guess a status from a message, and tests can assert on the status a client would see.

use serde_json::{json, Value};

/// A failed FHIR interaction: what the client gets back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {diagnostics}")]
pub struct FhirError {
    /// The HTTP status code.
    pub status: u16,
    /// The `OperationOutcome.issue.code` (the FHIR issue type): "invalid", "not-found",
    /// "deleted", "conflict", "not-supported", "too-long", "throttled", "transient",
    /// "security", "processing" or "exception".
    pub code: &'static str,
    /// Human-readable detail, for `OperationOutcome.issue.diagnostics`.
    pub diagnostics: String,
}

impl FhirError {
    /// An error with HTTP `status`, issue type `code` and `diagnostics` (see the fields).
    pub fn new(status: u16, code: &'static str, diagnostics: impl Into<String>) -> Self {
        FhirError {
            status,
            code,
            diagnostics: diagnostics.into(),
        }
    }

    /// 400: the request (body, id, header) is malformed.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(400, "invalid", msg)
    }

    /// 401: the client is not authenticated.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::new(401, "security", msg)
    }

    /// 404: no such resource (or resource type).
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(404, "not-found", msg)
    }

    /// 405: the interaction is not supported on this URL.
    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(405, "not-supported", msg)
    }

    /// 409: the request conflicts with the resource's state.
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(409, "conflict", msg)
    }

    /// 410: the resource existed and was deleted.
    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, "deleted", msg)
    }

    /// 412: an `If-Match` version did not match the current one (a lost update avoided).
    pub fn precondition_failed(msg: impl Into<String>) -> Self {
        Self::new(412, "conflict", msg)
    }

    /// 413: the body is larger than the server accepts.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(413, "too-long", msg)
    }

    /// 415: the body is not FHIR JSON.
    pub fn unsupported_media_type(msg: impl Into<String>) -> Self {
        Self::new(415, "not-supported", msg)
    }

    /// 429: the client must slow down.
    pub fn throttled(msg: impl Into<String>) -> Self {
        Self::new(429, "throttled", msg)
    }

    /// 500: the server's own data or logic is at fault (a corrupt log entry, say).
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(500, "exception", msg)
    }

    /// 503: the region cannot serve this now (not the primary, fenced, ...); retry later.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(503, "transient", msg)
    }

    /// The `OperationOutcome` resource to send as the response body.
    pub fn operation_outcome(&self) -> Value {
        outcome("error", self.code, &self.diagnostics)
    }
}

/// An `OperationOutcome` that reports success (the body of a successful delete, say).
pub fn information_outcome(msg: &str) -> Value {
    outcome("information", "informational", msg)
}

fn outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_pair_statuses_with_issue_types() {
        let cases = [
            (FhirError::invalid("x"), 400, "invalid"),
            (FhirError::unauthorized("x"), 401, "security"),
            (FhirError::not_found("x"), 404, "not-found"),
            (FhirError::method_not_allowed("x"), 405, "not-supported"),
            (FhirError::conflict("x"), 409, "conflict"),
            (FhirError::gone("x"), 410, "deleted"),
            (FhirError::precondition_failed("x"), 412, "conflict"),
            (FhirError::too_large("x"), 413, "too-long"),
            (FhirError::unsupported_media_type("x"), 415, "not-supported"),
            (FhirError::throttled("x"), 429, "throttled"),
            (FhirError::internal("x"), 500, "exception"),
            (FhirError::unavailable("x"), 503, "transient"),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status, error.code), (status, code), "{error}");
        }
    }

    #[test]
    fn an_error_renders_as_an_operation_outcome() {
        let error = FhirError::gone("Patient/1 was deleted");
        assert_eq!(error.to_string(), "410 deleted: Patient/1 was deleted");
        assert_eq!(
            error.operation_outcome(),
            json!({
                "resourceType": "OperationOutcome",
                "issue": [{
                    "severity": "error",
                    "code": "deleted",
                    "diagnostics": "Patient/1 was deleted",
                }],
            })
        );
    }

    #[test]
    fn an_information_outcome_is_not_an_error() {
        let outcome = information_outcome("deleted Patient/1");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["severity"], "information");
        assert_eq!(outcome["issue"][0]["code"], "informational");
        assert_eq!(outcome["issue"][0]["diagnostics"], "deleted Patient/1");
    }
}
