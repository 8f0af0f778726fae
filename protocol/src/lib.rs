//! drcheck-protocol: the implementation's DR protocol as plain state machines.
//!
//! Each machine takes typed inputs and the time (`now`, passed in: no machine reads a clock),
//! changes its state, and answers with a typed output and the [`Effects`] the shell must carry
//! out, in order: persist, record events, send messages. Nothing here does I/O; this crate
//! depends on neither tokio nor redb nor axum, so Cargo keeps it that way.
//!
//! - [`region`]: a region (data primary or secondary): writes under a lease, replication,
//!   the throttle, heartbeats, fencing, rejoin with quarantine;
//! - [`control`]: the control plane: health, leases, failover with the lease wait and the RPO
//!   guard, compute failback, the operator's switchover and forced failover;
//! - [`message`], [`entry`], [`event`]: what the machines say to each other, what a log holds,
//!   and every protocol-significant step as a structured event (a stable schema);
//! - [`refusal`]: why the control plane refused an operator's request or a step, typed;
//! - [`durable`]: a region's durable state and the operations that change it;
//! - [`time`]: protocol time, the timing in milliseconds, the `Clock` interface;
//! - [`mutant`]: the guards the tests switch off (`drcheck_properties::Bug`).
//!
//! The model (`drcheck-model`) is an independent rendering of the same protocol; the two
//! share only `drcheck-properties` and meet in `drcheck-traces`.

#![warn(missing_docs)]

pub mod control;
pub mod durable;
pub mod effects;
pub mod entry;
pub mod event;
pub mod message;
pub mod mutant;
pub mod refusal;
pub mod region;
pub mod time;

pub use effects::{Effects, Inbound};
