//! drcheck-impl: the DR protocol (`drcheck-protocol`) as a real tokio service.
//!
//! - the seams: [`time`] (clocks), [`transport`] (in-memory and TCP), [`store`] (redb on disk,
//!   or in memory);
//! - [`node`]: the tokio task around a machine; [`deployment`]: regions, control plane and
//!   endpoint wired together in one process, with the operator API, fault injection and
//!   [`deployment::Deployment::abstract_view`], the `properties` view every invariant reads;
//! - [`boot`] and [`operator`]: region boot, store paths, operator authorisation, the
//!   endpoint's reachability rule and re-apply, written once for both;
//! - [`service`]: the same as real processes (`drcheck serve`), the FHIR endpoint in front;
//! - [`observe`] and [`ghost`]: every protocol-significant step as a structured event, and the
//!   ghost bookkeeping the invariants need.
//!
//! It never imports the model: the two meet only in `properties` (and in `traces`).

#![warn(missing_docs)]

/// The state machines this crate drives (`drcheck-protocol`), for the crates that reach them
/// through the implementation.
pub use drcheck_protocol as protocol;

pub mod auth;
pub mod boot;
pub mod deployment;
pub mod ghost;
pub mod node;
pub mod observe;
pub mod operator;
pub mod service;
pub mod store;
pub mod time;
pub mod transport;
