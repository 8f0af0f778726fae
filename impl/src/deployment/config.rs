//! How a deployment is asked for: regions, timing, storage, mode and the switches tests use.

use std::path::PathBuf;

use crate::time::Timing;

/// Where regions keep their durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In memory (it survives a region's crash, not the process).
    Memory,
    /// A redb file per region under this directory.
    Disk(PathBuf),
}

/// How time passes and messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Virtual clock and in-memory transport, stepped by the caller.
    Virtual,
    /// Real clock (`minute_ms` wall milliseconds per protocol minute) and TCP on loopback.
    Real {
        /// Wall milliseconds per protocol minute.
        minute_ms: u64,
    },
}

/// What deployment to start: see [`crate::deployment::Deployment`].
#[derive(Clone, Debug)]
pub struct DeploymentConfig {
    /// 2 or 3 (region 0 starts as primary, compute region and home).
    pub regions: u8,
    /// The protocol's timing, in protocol milliseconds.
    pub timing: Timing,
    /// The operator credential the operator API demands.
    pub operator_token: String,
    /// Where regions keep their durable state.
    pub storage: Storage,
    /// Virtual time and in-memory transport, or real time and TCP.
    pub mode: Mode,
    /// Write every event as a JSON line to this file.
    pub event_log: Option<PathBuf>,
    /// Keep the ghost ledger for [`Deployment::abstract_view`] (off for benchmarks).
    pub ghost: bool,
    /// Implementation mutants switched on (none without the `mutants` feature).
    pub mutants: drcheck_protocol::mutant::Mutants,
    /// The control plane decides nothing by itself ([`Deployment::control_step`]) and every
    /// message waits to be delivered: a caller follows a model path step by step.
    pub controlled: bool,
    /// How far a primary ships ahead of its confirmations (the random schedules run a small
    /// one, so that a full window is met).
    pub window: drcheck_protocol::region::Window,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        DeploymentConfig {
            regions: 2,
            timing: crate::time::default_timing(),
            operator_token: String::new(),
            storage: Storage::Memory,
            mode: Mode::Virtual,
            event_log: None,
            ghost: true,
            mutants: drcheck_protocol::mutant::Mutants::default(),
            controlled: false,
            window: drcheck_protocol::region::Window::default(),
        }
    }
}
