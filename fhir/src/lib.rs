//! drcheck-fhir: FHIR R4 semantics on top of a region's replicated log, with no I/O.
//!
//! Each log entry's payload is a [`Change`]: a whole new version of one resource, or its
//! deletion. Everything a FHIR server needs follows from the log alone:
//!
//! - [`validate`]: what a client sends (types, ids, bodies, `If-Match`), checked before a
//!   write reaches the log, so the log only holds valid resources;
//! - [`index`]: where each version sits in the log ([`Index`], derived and rebuildable),
//!   write preparation at the primary ([`prepare`]: versions, If-Match, idempotent delete)
//!   and reads ([`read`], [`vread`], [`history`]) at any region;
//! - [`change`]: the payload format and the timestamps FHIR and HTTP want;
//! - [`outcome`]: errors as HTTP status plus `OperationOutcome`;
//! - [`types`]: the resource types of FHIR R4;
//! - [`capability`]: the CapabilityStatement;
//! - [`region`]: a region that serves FHIR: `drcheck-protocol`'s region machine and the
//!   index of its log, one state machine with typed inputs and outputs.
//!
//! Resources are kept as JSON (`serde_json::Value`) checked for the few things the server
//! relies on (type, id, meta), not as a generated model: the server stores and versions
//! resources, it does not interpret them.

#![warn(missing_docs)]

pub mod capability;
pub mod change;
pub mod index;
pub mod outcome;
pub mod region;
pub mod types;
pub mod validate;

pub use capability::capability_statement;
pub use change::{etag, http_date, rfc3339_millis, Change};
pub use index::{history, prepare, read, vread, Index, Version, WriteRequest};
pub use outcome::{information_outcome, FhirError};
pub use types::is_resource_type;
pub use validate::{check_id, check_type, parse_if_match, parse_resource};
