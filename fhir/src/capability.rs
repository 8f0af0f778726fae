//! The CapabilityStatement (`GET /metadata`): what this server really supports, and nothing
//! more.

use serde_json::{json, Value};

use crate::change::rfc3339_millis;
use crate::types::RESOURCE_TYPES;

/// The server's CapabilityStatement, dated `unix_ms`; `version` is the software's version.
pub fn capability_statement(unix_ms: u64, version: &str) -> Value {
    let interactions: Vec<Value> = [
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "create",
    ]
    .iter()
    .map(|code| json!({ "code": code }))
    .collect();
    let resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .map(|kind| {
            json!({
                "type": kind,
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": false,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": rfc3339_millis(unix_ms),
        "kind": "instance",
        "software": { "name": "drcheck reference implementation", "version": version },
        "implementation": { "description": "geo-replicated FHIR store with automatic failover (RPO 15 min, RTO 60 min) behind one endpoint" },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Reads and writes go to the data primary. No search, no transactions, no conditional operations, no _format other than JSON.",
            "resource": resources,
        }],
    })
}
