//! The FHIR REST handlers: create, read, vread, update, delete, history and the
//! CapabilityStatement, and the 404/405 answers around them.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::response::{error_response, json_response, method_not_allowed, rejected, unavailable};
use super::{Endpoint, Shared, BODY_LIMIT};
use crate::time::unix_ms;
use drcheck_fhir::change::{http_date, Change};
use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::outcome::FhirError;
use drcheck_fhir::validate;

pub(super) async fn not_found() -> Response {
    error_response(&FhirError::not_found("no such endpoint".to_string()), None)
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

pub(super) async fn create(
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

pub(super) async fn update(
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

pub(super) async fn delete(
    State(ep): Shared,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
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

pub(super) async fn read(State(ep): Shared, Path((kind, id)): Path<(String, String)>) -> Response {
    read_one(&ep, kind, id, None).await
}

pub(super) async fn vread(
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

pub(super) async fn history(
    State(ep): Shared,
    Path((kind, id)): Path<(String, String)>,
) -> Response {
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
pub(super) async fn metadata() -> Response {
    let statement = drcheck_fhir::capability_statement(unix_ms(), env!("CARGO_PKG_VERSION"));
    json_response(StatusCode::OK, &statement)
}
