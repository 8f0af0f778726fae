//! drcheck-model: the geo-replicated FHIR DR protocol as a stateright model with explicit
//! discrete time, checked against the invariants of `drcheck-properties`.
//!
//! - [`config`]: parameters in minutes, converted to ticks and checked for consistency;
//! - [`state`], [`action`]: what a state holds and the steps between states;
//! - [`protocol`]: the steps as plain functions (regions, control plane, environment, clock);
//! - [`model`]: the stateright `Model`;
//! - [`check`]: the exhaustive check and its report; [`explore`]: the breadth-first
//!   exploration on several threads that remembers how it reached every state;
//!   [`fingerprint`]: how states are told apart; [`search`]: shortest paths and timelines;
//! - [`simulate`]: seeded random walks judging every property, for spaces too large to
//!   exhaust; [`walk`]: the seeded choice of a step they and `drcheck walk` share;
//! - [`svg`]: the Explorer's sequence diagram of a path;
//! - [`sweep`]: checks of many timing parameter sets, what the consistency rules are measured
//!   against.

#![warn(missing_docs)]

pub mod action;
pub mod canonical;
pub mod check;
pub mod config;
pub mod explore;
pub mod fingerprint;
pub mod model;
pub mod protocol;
pub mod search;
pub mod simulate;
pub mod state;
pub mod svg;
pub mod sweep;
pub mod walk;

pub use action::{Action, Actor};
pub use check::{check, CheckOptions, Progress, Report, Strategy, UnboundedFailovers};
pub use config::{Config, ConfigError, Params};
pub use drcheck_properties::Bug;
pub use model::{DrModel, Metric};
pub use state::DrState;
