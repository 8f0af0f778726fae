//! The FHIR REST handlers: create, read, vread, update, delete, history and the
//! CapabilityStatement, and the 404/405 answers around them. Each checks the type, the id and
//! the body before it asks a process, so nothing malformed reaches the data primary.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::response::{json_response, method_not_allowed, unavailable, with_header, Outcome};
use super::{limited, Answer, Endpoint, Shared};
use crate::time::unix_ms;
use drcheck_fhir::change::{http_date, Change};
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::validate;

pub(super) async fn not_found() -> Response {
    Outcome(FhirError::not_found("no such endpoint".to_string())).into_response()
}

pub(super) async fn only_post(method: Method) -> Response {
    method_not_allowed(&method, "POST")
}

pub(super) async fn only_get(method: Method) -> Response {
    method_not_allowed(&method, "GET")
}

pub(super) async fn only_get_put_delete(method: Method) -> Response {
    method_not_allowed(&method, "GET, PUT, DELETE")
}

/// `ETag` and `Last-Modified` of a version.
fn versioned(response: Response, change: &Change) -> Response {
    let response = with_header(response, header::ETAG, &format!("W/\"{}\"", change.version));
    with_header(
        response,
        header::LAST_MODIFIED,
        &http_date(change.last_updated_ms),
    )
}

/// A version's resource, with its `ETag` and `Last-Modified`.
fn resource_response(status: StatusCode, change: &Change) -> Response {
    let body = change.resource.clone().unwrap_or(Value::Null);
    versioned(json_response(status, &body), change)
}

/// A version just written: its resource, and where it is (`Location`).
fn written_response(status: StatusCode, change: &Change) -> Response {
    let url = format!("/{}/{}/_history/{}", change.kind, change.id, change.version);
    with_header(resource_response(status, change), header::LOCATION, &url)
}

/// 204: deleted (`change`: the deletion, if there was anything to delete).
fn deleted_response(change: Option<&Change>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    match change {
        Some(change) => versioned(response, change),
        None => response,
    }
}

/// The request body, checked for media type and size, as bytes.
async fn fhir_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Outcome> {
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
        return Err(Outcome(FhirError::unsupported_media_type(format!(
            "Content-Type {shown}: send application/fhir+json"
        ))));
    }
    limited(body).await
}

/// The resource type and id of a URL, checked.
fn check_url(kind: &str, id: &str) -> Result<(), Outcome> {
    validate::check_type(kind)
        .and_then(|()| validate::check_id(id))
        .map_err(Outcome)
}

pub(super) async fn create(
    State(ep): Shared,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    validate::check_type(&kind).map_err(Outcome)?;
    let bytes = fhir_body(&headers, body).await?;
    let resource = validate::parse_resource(&kind, None, &bytes).map_err(Outcome)?;
    match ep
        .write(WriteRequest::Create { kind, resource }, None)
        .await?
    {
        Some((_, change)) => Ok(written_response(StatusCode::CREATED, &change)),
        None => Err(unavailable("the create wrote nothing")),
    }
}

pub(super) async fn update(
    State(ep): Shared,
    Path((kind, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_url(&kind, &id)?;
    let if_match = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| Outcome(FhirError::invalid("If-Match is not text".to_string())))?;
            Some(validate::parse_if_match(text).map_err(Outcome)?)
        }
    };
    let bytes = fhir_body(&headers, body).await?;
    let resource = validate::parse_resource(&kind, Some(&id), &bytes).map_err(Outcome)?;
    let request = WriteRequest::Update {
        kind,
        id,
        resource,
        if_match,
    };
    match ep.write(request, None).await? {
        Some((_, change)) => {
            let status = if change.version == 1 {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written_response(status, &change))
        }
        None => Err(unavailable("the update wrote nothing")),
    }
}

pub(super) async fn delete(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Answer {
    check_url(&kind, &id)?;
    let written = ep.write(WriteRequest::Delete { kind, id }, None).await?;
    Ok(deleted_response(written.as_ref().map(|(_, change)| change)))
}

/// One version of a resource (the current one if `version` is `None`).
async fn read_one(ep: &Endpoint, kind: String, id: String, version: Option<u64>) -> Answer {
    check_url(&kind, &id)?;
    let changes = ep.read(&kind, &id, version).await?;
    match changes.first() {
        Some(change) => Ok(resource_response(StatusCode::OK, change)),
        None => Err(Outcome(FhirError::not_found("no such resource".to_string())).into()),
    }
}

pub(super) async fn read(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Answer {
    read_one(&ep, kind, id, None).await
}

pub(super) async fn vread(
    State(ep): Shared,
    Path((kind, id, vid)): Path<(String, String, String)>,
) -> Answer {
    let version = vid.parse::<u64>().map_err(|_| {
        Outcome(FhirError::invalid(format!(
            "version id {vid:?} is not a number"
        )))
    })?;
    read_one(&ep, kind, id, Some(version)).await
}

pub(super) async fn history(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Answer {
    check_url(&kind, &id)?;
    let changes = ep.history(&kind, &id).await?;
    let entries: Vec<Value> = changes.iter().map(history_entry).collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "entry": entries,
    });
    Ok(json_response(StatusCode::OK, &bundle))
}

/// A version as an entry of a history Bundle.
fn history_entry(c: &Change) -> Value {
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
}

/// The CapabilityStatement: what this server really supports.
pub(super) async fn metadata() -> Response {
    let statement = drcheck_fhir::capability_statement(unix_ms(), env!("CARGO_PKG_VERSION"));
    json_response(StatusCode::OK, &statement)
}
