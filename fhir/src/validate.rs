//! Checks on what a client sends: types, ids, bodies and `If-Match`.
//!
//! Everything here runs before a write reaches the log, so the log only ever holds
//! resources that pass these checks; a region replaying its log never has to re-judge them.

use serde_json::{Map, Value};

use crate::outcome::FhirError;
use crate::types::is_resource_type;

/// The longest id FHIR allows.
const MAX_ID_LEN: usize = 64;

/// A known resource type, or 404 (FHIR answers an unknown type like an unknown URL).
pub fn check_type(kind: &str) -> Result<(), FhirError> {
    if is_resource_type(kind) {
        Ok(())
    } else {
        Err(FhirError::not_found(format!(
            "unknown resource type {kind}"
        )))
    }
}

/// FHIR id syntax, `[A-Za-z0-9\-\.]{1,64}`, or 400.
pub fn check_id(id: &str) -> Result<(), FhirError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(FhirError::invalid(format!(
            "invalid id {id:?}: an id is 1 to 64 of A-Z, a-z, 0-9, '-' and '.'"
        )))
    }
}

/// Parses a create (`url_id` None) or update (`url_id` Some) body of type `kind`.
pub fn parse_resource(
    kind: &str,
    url_id: Option<&str>,
    body: &[u8],
) -> Result<Map<String, Value>, FhirError> {
    check_type(kind)?;
    if let Some(id) = url_id {
        check_id(id)?;
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FhirError::invalid(format!("malformed JSON: {e}")))?;
    let Value::Object(resource) = value else {
        return Err(FhirError::invalid("the body is not a JSON object"));
    };
    check_resource(kind, url_id, &resource)?;
    Ok(resource)
}

/// The checks of [`parse_resource`] on an already parsed body. [`crate::index::prepare`]
/// repeats them, because a write request may come from another process.
///
/// On update the body's `id` must equal the URL's (FHIR requires it, so a client cannot
/// write one resource by addressing another). On create the server assigns the id, so a
/// body id is ignored, but it must still be well-formed.
pub fn check_resource(
    kind: &str,
    url_id: Option<&str>,
    resource: &Map<String, Value>,
) -> Result<(), FhirError> {
    match resource.get("resourceType") {
        Some(Value::String(t)) if t == kind => {}
        Some(Value::String(t)) => {
            return Err(FhirError::invalid(format!(
                "resourceType {t} does not match the URL's {kind}"
            )))
        }
        Some(_) => return Err(FhirError::invalid("resourceType must be a string")),
        None => return Err(FhirError::invalid("the body has no resourceType")),
    }
    let body_id = match resource.get("id") {
        None => None,
        Some(Value::String(id)) => {
            check_id(id)?;
            Some(id.as_str())
        }
        Some(_) => return Err(FhirError::invalid("id must be a string")),
    };
    if let Some(url_id) = url_id {
        match body_id {
            Some(id) if id == url_id => {}
            Some(id) => {
                return Err(FhirError::invalid(format!(
                    "the body's id {id} does not match the URL's {url_id}"
                )))
            }
            None => return Err(FhirError::invalid("an update's body must carry its id")),
        }
    }
    match resource.get("meta") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(FhirError::invalid("meta must be an object")),
    }
}

/// The version in an `If-Match` header: `W/"3"`, `"3"` or `3`, or 400.
pub fn parse_if_match(value: &str) -> Result<u64, FhirError> {
    let invalid = || FhirError::invalid(format!("invalid If-Match {value:?}: expected W/\"n\""));
    let trimmed = value.trim();
    let (weak, rest) = match trimmed.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let digits = match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        // A weak tag is always quoted; only a bare number may go without quotes.
        None if !weak => rest,
        None => return Err(invalid()),
    };
    // `u64::from_str` would also take "+3"; a version is digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    digits.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status<T: std::fmt::Debug>(result: Result<T, FhirError>) -> u16 {
        result.expect_err("expected an error").status
    }

    #[test]
    fn unknown_types_are_not_found() {
        assert!(check_type("Patient").is_ok());
        assert_eq!(status(check_type("Foo")), 404);
        assert_eq!(status(check_type("patient")), 404);
        let error = check_type("Foo").expect_err("unknown");
        assert_eq!(error.code, "not-found");
        assert_eq!(error.diagnostics, "unknown resource type Foo");
    }

    #[test]
    fn ids_follow_the_fhir_syntax() {
        for id in ["1", "a-b.C", "x".repeat(64).as_str()] {
            assert!(check_id(id).is_ok(), "{id}");
        }
        for id in ["", "a b", "a/b", "a_b", "é", &"x".repeat(65)] {
            assert_eq!(status(check_id(id)), 400, "{id:?}");
        }
    }

    #[test]
    fn a_valid_create_body_parses() {
        let body = br#"{"resourceType":"Patient","active":true}"#;
        let resource = parse_resource("Patient", None, body).expect("valid");
        assert_eq!(resource["active"], Value::Bool(true));
        // The server owns ids, so a create may carry one; it is ignored later.
        let body = br#"{"resourceType":"Patient","id":"client-chosen"}"#;
        assert!(parse_resource("Patient", None, body).is_ok());
    }

    #[test]
    fn an_update_body_must_carry_the_urls_id() {
        let body = br#"{"resourceType":"Patient","id":"p1"}"#;
        assert!(parse_resource("Patient", Some("p1"), body).is_ok());
        assert_eq!(status(parse_resource("Patient", Some("p2"), body)), 400);
        let body = br#"{"resourceType":"Patient"}"#;
        assert_eq!(status(parse_resource("Patient", Some("p1"), body)), 400);
    }

    #[test]
    fn malformed_bodies_are_rejected_with_400() {
        let cases: [(&str, &[u8]); 9] = [
            ("not JSON", b"{"),
            ("empty", b""),
            ("an array", b"[]"),
            ("a string", br#""Patient""#),
            ("no resourceType", br#"{"id":"1"}"#),
            ("numeric resourceType", br#"{"resourceType":1}"#),
            ("bad body id", br#"{"resourceType":"Patient","id":"a b"}"#),
            ("numeric id", br#"{"resourceType":"Patient","id":1}"#),
            (
                "meta not an object",
                br#"{"resourceType":"Patient","meta":[]}"#,
            ),
        ];
        for (what, body) in cases {
            assert_eq!(status(parse_resource("Patient", None, body)), 400, "{what}");
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let error = parse_resource("Patient", None, b"{").expect_err("malformed");
        assert!(error.diagnostics.contains("EOF"), "{}", error.diagnostics);
        let body = br#"{"resourceType":"Observation"}"#;
        let error = parse_resource("Patient", None, body).expect_err("mismatch");
        assert_eq!(
            error.diagnostics,
            "resourceType Observation does not match the URL's Patient"
        );
    }

    #[test]
    fn the_url_is_checked_before_the_body() {
        let body = br#"{"resourceType":"Foo"}"#;
        assert_eq!(status(parse_resource("Foo", None, body)), 404);
        assert_eq!(status(parse_resource("Patient", Some("a b"), b"{")), 400);
    }

    #[test]
    fn if_match_accepts_weak_quoted_and_bare_versions() {
        assert_eq!(parse_if_match(r#"W/"3""#), Ok(3));
        assert_eq!(parse_if_match(r#""3""#), Ok(3));
        assert_eq!(parse_if_match("3"), Ok(3));
        assert_eq!(parse_if_match(" W/\"12\" "), Ok(12));
        for value in [
            "",
            "W/",
            "W/3",
            "\"\"",
            "\"3",
            "3\"",
            "+3",
            "-1",
            "x",
            "W/\"3 \"",
            "w/\"3\"",
            "99999999999999999999999",
        ] {
            assert_eq!(status(parse_if_match(value)), 400, "{value:?}");
        }
    }
}
