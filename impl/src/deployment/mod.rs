//! A whole deployment in one process: N regions, the control plane and the global endpoint,
//! with the operator API, fault injection and the abstract view.
//!
//! Two modes. **Virtual**: the virtual clock and the in-memory transport; nothing moves
//! unless a test says so, and every step (a tick, a write, a delivery) runs to completion
//! before the next, so runs are deterministic. **Real**: the real (scaled) clock, TCP between
//! the nodes on loopback, and a ticker; the nodes run on their own.

mod clients;
mod config;
mod faults;
mod operator_api;
mod real;
mod stepping;
mod view;

pub use config::{DeploymentConfig, Mode, Storage};
pub use operator_api::{OperatorError, OperatorRequest, OperatorResponse};
pub use stepping::Pending;

use real::{set_mailbox, RealParts};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drcheck_properties::{Bounds, Role, Status};

use crate::boot::{self, RegionBoot};
use crate::ghost::Ghost;
use crate::node::{NodeHandle, Wiring};
use crate::observe::Observer;
use crate::store::{Durable, MemoryStore, RedbStore, Store, StoreError};
use crate::time::{Clock, Millis, RealClock, VirtualClock, MINUTE};
use crate::transport::memory::MemoryTransport;
use crate::transport::tcp::TcpTransport;
use crate::transport::{Links, Transport};
use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion};
use drcheck_protocol::control::{
    recover_routing, ControlInput, ControlMachine, ControlOutput, ControlSnapshot,
};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::{Event, Refusal};
use drcheck_protocol::message::NodeId;
use drcheck_protocol::region::{Ack, RegionInput, RegionOutput, RegionSnapshot};

/// Why a deployment could not be started, or could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The configuration asks for a number of regions other than 2 or 3 (holds it).
    #[error("a deployment has 2 or 3 regions, not {0}")]
    Regions(u8),
    /// The configuration's operator token is empty.
    #[error("the operator token must not be empty")]
    EmptyToken,
    /// A request names a region the deployment does not have (holds it).
    #[error("there is no region {0}")]
    NoSuchRegion(u8),
    /// A fault does not apply to the region's status (crashing a region that is down, say).
    #[error("region {region} is {status:?}; it must be {expected:?} for this")]
    Status {
        /// The region.
        region: u8,
        /// Its status.
        status: Status,
        /// The status the fault needs.
        expected: Status,
    },
    /// An operation only the virtual mode offers (advancing the clock) was asked of a
    /// deployment in real mode; holds the operation, in words.
    #[error("{0} needs the virtual mode")]
    NotVirtual(&'static str),
    /// A region's store failed to open or load.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An I/O operation failed (the event log, a listener).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A node's task stopped and no longer answers (holds the node).
    #[error("the {0} stopped")]
    Stopped(NodeId),
    /// A write the deployment was asked for is not a valid FHIR write.
    #[error("not a FHIR write: {0}")]
    Fhir(String),
}

enum StoreSlot {
    Memory(MemoryStore),
    Disk(PathBuf),
}

impl StoreSlot {
    fn open(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(match self {
            StoreSlot::Memory(m) => Box::new(m.clone()),
            StoreSlot::Disk(path) => Box::new(RedbStore::open(path)?),
        })
    }
}

struct RegionSlot {
    node: Option<NodeHandle<FhirRegion>>,
    status: Status,
    store: StoreSlot,
    /// How far this region's clock lags the control plane's (the full skew, as the model).
    lag: Millis,
}

/// A running deployment.
pub struct Deployment {
    cfg: DeploymentConfig,
    clock: Arc<dyn Clock>,
    virtual_clock: Option<Arc<VirtualClock>>,
    memory: Option<Arc<MemoryTransport>>,
    links: Links,
    observer: Arc<Observer>,
    regions: Vec<RegionSlot>,
    control: NodeHandle<ControlMachine>,
    ghost: Option<Ghost>,
    /// Protocol time up to which the ghost has counted ticks.
    ghost_time: Millis,
    /// Protocol time when the deployment started.
    started: Millis,
    next_write: WriteId,
    hold: bool,
    real: Option<RealParts>,
}

/// What the endpoint answers a write.
pub type WriteOutcome = Result<Ack, Refusal>;

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> DeployError {
    move |source| DeployError::Io { what, source }
}

impl Deployment {
    /// Starts a deployment in the current tokio runtime. A data directory that holds the
    /// stores of an earlier run is reopened: regions resume from what they persisted.
    pub async fn start(cfg: DeploymentConfig) -> Result<Deployment, DeployError> {
        if !(2..=3).contains(&cfg.regions) {
            return Err(DeployError::Regions(cfg.regions));
        }
        if cfg.operator_token.is_empty() {
            return Err(DeployError::EmptyToken);
        }
        let n = cfg.regions;
        let observer = Arc::new(Observer::new(cfg.ghost));
        if let Some(path) = &cfg.event_log {
            observer
                .log_to(path)
                .map_err(io_error(format!("event log {}", path.display())))?;
        }
        let links = Links::new();
        let (clock, virtual_clock): (Arc<dyn Clock>, _) = match cfg.mode {
            Mode::Virtual => {
                let v = Arc::new(VirtualClock::new());
                // Start a day in, so that regions' clocks, which lag by the skew, are never
                // before time 0.
                v.advance(24 * 60 * MINUTE);
                (v.clone(), Some(v))
            }
            Mode::Real { minute_ms } => (Arc::new(RealClock::new(minute_ms)), None),
        };
        let (memory, real) = match cfg.mode {
            Mode::Virtual => (Some(Arc::new(MemoryTransport::new(links.clone()))), None),
            Mode::Real { .. } => (None, Some(RealParts::bind(n, &links).await?)),
        };
        let mut regions = Vec::new();
        for r in 0..n {
            let store = match &cfg.storage {
                Storage::Memory => StoreSlot::Memory(MemoryStore::new()),
                Storage::Disk(dir) => {
                    let region_dir = boot::region_dir(dir, r);
                    std::fs::create_dir_all(&region_dir)
                        .map_err(io_error(format!("data directory {}", region_dir.display())))?;
                    StoreSlot::Disk(boot::store_file(&region_dir, r))
                }
            };
            regions.push(RegionSlot {
                node: None,
                status: Status::Up,
                store,
                lag: cfg.timing.skew,
            });
        }
        let wiring = Wiring {
            store: None,
            transport: transport_for(&memory, &real, &links, NodeId::Control),
            clock: clock.clone(),
            lag: 0,
            observer: observer.clone(),
        };
        // A data directory from an earlier run: the control plane resumes its routing.
        let mut held = Vec::new();
        for slot in &regions {
            held.push(slot.store.open()?.load()?.map(|d| (d.epoch, d.role)));
        }
        let machine = match recover_routing(&held) {
            Some((epoch, primary)) => {
                ControlMachine::resume(n, cfg.timing, clock.now(), epoch, primary)
            }
            None => ControlMachine::new(n, cfg.timing, clock.now()),
        }
        .with_mutants(cfg.mutants);
        let machine = if cfg.controlled {
            machine.controlled()
        } else {
            machine
        };
        let control = NodeHandle::spawn(machine, wiring);
        let hold = cfg.controlled;
        let ghost_time = clock.now();
        let mut deployment = Deployment {
            ghost: cfg.ghost.then(|| Ghost::new(n, &cfg.timing)),
            cfg,
            clock,
            virtual_clock,
            memory,
            links,
            observer,
            regions,
            control,
            ghost_time,
            started: ghost_time,
            next_write: 1,
            hold,
            real,
        };
        let timing = deployment
            .cfg
            .timing
            .map(|ms| u32::try_from(ms / MINUTE).unwrap_or(u32::MAX));
        // A running deployment's ticker (`RealParts::start_ticker`) ticks every quarter
        // minute.
        let ticks_every = match deployment.cfg.mode {
            Mode::Real { .. } => Some(MINUTE / 4),
            Mode::Virtual => None,
        };
        deployment.observer.emit(
            deployment.clock.now(),
            NodeId::Control,
            Event::Started {
                regions: n,
                timing,
                ticks_every,
            },
        );
        for r in 0..n {
            deployment.boot_region(r)?;
        }
        if let Some(real) = &mut deployment.real {
            set_mailbox(
                &real.mailboxes[usize::from(n)],
                Some(Box::new(deployment.control.mailbox())),
            );
            if let Mode::Real { minute_ms } = deployment.cfg.mode {
                real.start_ticker(minute_ms);
            }
        }
        Ok(deployment)
    }

    /// Starts region `r` from its store (a fresh store gets the initial role).
    fn boot_region(&mut self, r: u8) -> Result<(), DeployError> {
        let slot = &self.regions[usize::from(r)];
        let mut store = slot.store.open()?;
        let boot = RegionBoot {
            region: r,
            regions: self.cfg.regions,
            timing: self.cfg.timing,
            mutants: self.cfg.mutants,
            window: self.cfg.window,
            now: self.clock.now(),
            started: self.started,
            lag: slot.lag,
            minute_ms: match self.cfg.mode {
                Mode::Real { minute_ms } => minute_ms,
                Mode::Virtual => MINUTE,
            },
        };
        let region = boot.boot(store.as_mut())?;
        let node = NodeHandle::spawn(
            region,
            Wiring {
                store: Some(store),
                transport: transport_for(&self.memory, &self.real, &self.links, NodeId::Region(r)),
                clock: self.clock.clone(),
                lag: slot.lag,
                observer: self.observer.clone(),
            },
        );
        if let Some(real) = &self.real {
            set_mailbox(
                &real.mailboxes[usize::from(r)],
                Some(Box::new(node.mailbox())),
            );
        }
        self.regions[usize::from(r)].node = Some(node);
        Ok(())
    }

    /// The configuration the deployment was started with.
    pub fn config(&self) -> &DeploymentConfig {
        &self.cfg
    }

    /// Protocol time now, on the control plane's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The timing bounds the invariants need, in ticks of the abstract view.
    pub fn bounds(&self) -> Bounds {
        crate::ghost::bounds(&self.cfg.timing)
    }

    fn slot(&self, r: u8) -> Result<&RegionSlot, DeployError> {
        self.regions
            .get(usize::from(r))
            .ok_or(DeployError::NoSuchRegion(r))
    }

    /// Is the inter-region link cut?
    pub fn is_partitioned(&self) -> bool {
        self.links.is_partitioned()
    }

    /// Region `r`'s status as the faults injected left it (`None`: no such region).
    pub fn status(&self, r: u8) -> Option<Status> {
        self.regions.get(usize::from(r)).map(|s| s.status)
    }

    async fn ask_region(&self, r: u8, input: FhirInput) -> Option<FhirOutput> {
        self.regions
            .get(usize::from(r))?
            .node
            .as_ref()?
            .call(input)
            .await
    }

    /// Hands a protocol input to region `r`'s machine.
    async fn call_region(&self, r: u8, input: RegionInput) -> Option<RegionOutput> {
        match self.ask_region(r, FhirInput::Protocol(input)).await? {
            FhirOutput::Protocol(output) => Some(output),
            _ => None,
        }
    }

    /// The control plane's state (routing, phase, what it heard).
    pub async fn control_state(&self) -> Result<ControlSnapshot, DeployError> {
        match self.control.call(ControlInput::Snapshot).await {
            Some(ControlOutput::Snapshot(s)) => Ok(*s),
            _ => Err(DeployError::Stopped(NodeId::Control)),
        }
    }

    /// Region `r`'s state: from the running region, or from its store while it is down.
    pub async fn region_state(&self, r: u8) -> Result<RegionSnapshot, DeployError> {
        let slot = self.slot(r)?;
        if let Some(RegionOutput::Snapshot(s)) = self.call_region(r, RegionInput::Snapshot).await {
            return Ok(*s);
        }
        let durable = slot
            .store
            .open()?
            .load()?
            .unwrap_or_else(|| Durable::fresh(Role::Secondary));
        Ok(RegionSnapshot {
            role: durable.role,
            epoch: durable.epoch,
            log: durable.log,
            quarantine: durable.quarantine,
            lease_left: 0,
            accepts_writes: false,
            in_sync: Vec::new(),
        })
    }

    /// Writes out what the event log holds so far.
    pub fn flush_events(&self) -> Result<(), DeployError> {
        self.observer.flush().map_err(|e| DeployError::Io {
            what: "event log".to_string(),
            source: std::io::Error::other(e),
        })
    }

    /// Flushes the event log and stops every node.
    pub async fn shutdown(mut self) -> Result<(), DeployError> {
        self.real = None;
        for slot in &mut self.regions {
            if let Some(node) = slot.node.take() {
                node.kill().await;
            }
        }
        self.observer.flush().map_err(|e| DeployError::Io {
            what: "event log".to_string(),
            source: std::io::Error::other(e),
        })
    }

    /// Where the data directory's region stores are, if on disk.
    pub fn store_path(&self, r: u8) -> Option<&Path> {
        match &self.regions.get(usize::from(r))?.store {
            StoreSlot::Disk(path) => Some(path),
            StoreSlot::Memory(_) => None,
        }
    }
}

fn transport_for(
    memory: &Option<Arc<MemoryTransport>>,
    real: &Option<RealParts>,
    links: &Links,
    me: NodeId,
) -> Arc<dyn Transport> {
    match (memory, real) {
        (Some(m), _) => m.clone(),
        (None, Some(parts)) => Arc::new(TcpTransport::new(
            me,
            parts.keys(me),
            parts.peers.clone(),
            links.clone(),
            parts.stats.clone(),
        )),
        // A deployment is built with one or the other; an unconnected node loses everything.
        (None, None) => Arc::new(MemoryTransport::new(links.clone())),
    }
}
