//! The implementation's integration tests, in one test binary (one link instead of one per
//! file: on two cores the links are most of the build).

mod common;
mod endpoint;
mod events;
mod machines;
#[cfg(feature = "mutants")]
mod mutants;
mod processes;
mod random_schedules;
mod real_mode;
mod scenarios;
mod store_crash;
mod tcp_transport;
