//! drcheck-impl: the DR protocol of `../shared/DESIGN.md` as a real tokio service.
//!
//! - [`protocol`]: the region and control-plane state machines (no I/O, time passed in);
//! - the seams: [`time`] (the `Clock`), [`transport`] (in-memory and TCP), [`store`]
//!   (redb on disk, or in memory);
//! - [`node`]: the tokio task around a machine; [`deployment`]: regions, control plane and
//!   endpoint wired together in one process, with the operator API, fault injection and
//!   [`deployment::Deployment::abstract_view`], the `properties` view every invariant reads;
//! - [`event`] and [`observe`]: every protocol-significant step as a structured event.
//!
//! It never imports the model: the two meet only in `properties` (and in `traces`).

pub mod deployment;
pub mod entry;
pub mod event;
pub mod fhir;
pub mod ghost;
pub mod message;
pub mod mutant;
pub mod node;
pub mod observe;
pub mod protocol;
pub mod service;
pub mod store;
pub mod time;
pub mod transport;
