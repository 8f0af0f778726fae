//! A whole deployment in one process: N regions, the control plane and the global endpoint,
//! with the operator API, fault injection and the abstract view.
//!
//! Two modes. **Virtual**: the virtual clock and the in-memory transport; nothing moves
//! unless a test says so, and every step (a tick, a write, a delivery) runs to completion
//! before the next, so runs are deterministic. **Real**: the real (scaled) clock, TCP between
//! the nodes on loopback, and a ticker; the nodes run on their own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use drcheck_properties::{Bounds, Entry, RegionView, Role, Routing, Status, View, Violation};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::boot::{self, RegionBoot};
use crate::ghost::{ticks, Ghost, TICK};
use crate::node::{Feed, NodeHandle, Wiring};
use crate::observe::Observer;
use crate::operator::{self, QuarantineItem};
use crate::store::{Durable, MemoryStore, RedbStore, Store, StoreError};
use crate::time::{Clock, Millis, RealClock, Timing, VirtualClock, MINUTE};
use crate::transport::memory::{InFlight, MemoryTransport};
use crate::transport::tcp::{self, TcpTransport};
use crate::transport::{Links, Transport};
use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion, FhirWriteResult};
use drcheck_fhir::WriteRequest;
use drcheck_protocol::control::{
    recover_routing, ControlInput, ControlMachine, ControlOutput, ControlSnapshot, Phase,
};
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::{Event, Refusal};
use drcheck_protocol::message::{Envelope, Message, NodeId};
use drcheck_protocol::refusal::{OperatorRefusal, StepRefusal};
use drcheck_protocol::region::{Ack, RegionInput, RegionOutput, RegionSnapshot};

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
    Real { minute_ms: u64 },
}

#[derive(Clone, Debug)]
pub struct DeploymentConfig {
    /// 2 or 3 (region 0 starts as primary, compute region and home).
    pub regions: u8,
    pub timing: Timing,
    /// The operator credential the operator API demands.
    pub operator_token: String,
    pub storage: Storage,
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("a deployment has 2 or 3 regions, not {0}")]
    Regions(u8),
    #[error("the operator token must not be empty")]
    EmptyToken,
    #[error("there is no region {0}")]
    NoSuchRegion(u8),
    #[error("region {region} is {status:?}; it must be {expected:?} for this")]
    Status {
        region: u8,
        status: Status,
        expected: Status,
    },
    #[error("{0} needs the virtual mode")]
    NotVirtual(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("the {0} stopped")]
    Stopped(NodeId),
    /// A write the deployment was asked for is not a valid FHIR write.
    #[error("not a FHIR write: {0}")]
    Fhir(String),
}

/// An operator request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum OperatorRequest {
    /// Manual data failback to `target` (the home region), as a drained switchover.
    DataFailback {
        target: u8,
    },
    /// Fail over to `target` although the RPO guard refused, after the grace period.
    ForceFailover {
        target: u8,
    },
    ListQuarantine,
    /// Re-apply a quarantined write as a new write at the data primary.
    Reapply {
        write: WriteId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum OperatorResponse {
    Accepted,
    Quarantine { items: Vec<QuarantineItem> },
    Reapplied { original: WriteId, write: WriteId },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    #[error("the operator credential is missing or wrong")]
    Unauthorized,
    #[error("refused: {0}")]
    Refused(OperatorRefusal),
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

/// The real mode's plumbing: where each node listens and the tasks that feed them.
struct RealParts {
    peers: HashMap<NodeId, SocketAddr>,
    /// The current mailbox of each node (none while it is down): index `regions` is the
    /// control plane. The TCP listeners and the ticker post through these.
    mailboxes: Vec<FeedSlot>,
    tasks: Vec<JoinHandle<()>>,
}

/// A node's current mailbox, whatever its machine (none while it is down).
type FeedSlot = Arc<Mutex<Option<Box<dyn Feed>>>>;

fn with_feed(slot: &Mutex<Option<Box<dyn Feed>>>, f: impl FnOnce(&dyn Feed)) {
    if let Some(feed) = &*slot.lock().unwrap_or_else(PoisonError::into_inner) {
        f(feed.as_ref());
    }
}

fn set_mailbox(slot: &Mutex<Option<Box<dyn Feed>>>, feed: Option<Box<dyn Feed>>) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = feed;
}

impl RealParts {
    /// Binds a loopback listener per node and feeds what arrives to the node's mailbox.
    async fn bind(regions: u8, links: &Links) -> Result<RealParts, DeployError> {
        let mut peers = HashMap::new();
        let mut mailboxes = Vec::new();
        let mut tasks = Vec::new();
        let nodes = (0..regions).map(NodeId::Region).chain([NodeId::Control]);
        for node in nodes {
            let listener =
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| DeployError::Io {
                        what: format!("listening for {node}"),
                        source,
                    })?;
            let addr = listener.local_addr().map_err(|source| DeployError::Io {
                what: format!("address of {node}"),
                source,
            })?;
            peers.insert(node, addr);
            let slot: FeedSlot = Arc::default();
            let (sink, mut arrivals) = mpsc::unbounded_channel::<Envelope>();
            tasks.push(tcp::listen(listener, links.clone(), sink));
            let feed = slot.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(envelope) = arrivals.recv().await {
                    with_feed(&feed, |f| f.deliver(envelope));
                }
            }));
            mailboxes.push(slot);
        }
        Ok(RealParts {
            peers,
            mailboxes,
            tasks,
        })
    }

    /// Ticks every node a few times per protocol minute.
    fn start_ticker(&mut self, minute_ms: u64) {
        let mailboxes = self.mailboxes.clone();
        let period = std::time::Duration::from_millis((minute_ms / 4).max(1));
        self.tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                for slot in &mailboxes {
                    with_feed(slot, |f| f.tick());
                }
            }
        }));
    }
}

impl Drop for RealParts {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
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
        deployment.observer.emit(
            deployment.clock.now(),
            NodeId::Control,
            Event::Started { regions: n, timing },
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

    pub fn config(&self) -> &DeploymentConfig {
        &self.cfg
    }

    /// Protocol time now, on the control plane's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The timing bounds the invariants need, in ticks of the abstract view.
    pub fn bounds(&self) -> Bounds {
        let t = &self.cfg.timing;
        Bounds {
            rpo: ticks(t.rpo),
            rto: ticks(t.rto),
            detection: ticks(t.detection),
        }
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

    // ----- the abstract view -----

    /// The `properties` view of the deployment now, and whether the endpoint would take a
    /// write.
    async fn base_view(&self) -> Result<(View, bool), DeployError> {
        let control = self.control_state().await?;
        let ghost = self.ghost.as_ref();
        let id = |w: WriteId| ghost.map_or(0, |g| g.view_id(w));
        let mut regions = Vec::new();
        let mut accepts = Vec::new();
        for r in 0..self.cfg.regions {
            let s = self.region_state(r).await?;
            let status = self.regions[usize::from(r)].status;
            regions.push(RegionView {
                status,
                role: s.role,
                epoch: u8::try_from(s.epoch).unwrap_or(u8::MAX),
                log: s
                    .log
                    .iter()
                    .map(|e| Entry {
                        epoch: u8::try_from(e.epoch).unwrap_or(u8::MAX),
                        write: id(e.write),
                    })
                    .collect(),
                lease: if status == Status::Down {
                    0
                } else if self.cfg.mutants.wrong_view() && s.lease_left > 0 {
                    ticks(s.lease_left) + 1
                } else {
                    ticks(s.lease_left)
                },
                quarantine: s.quarantine.iter().map(|q| id(q.entry.write)).collect(),
                down_for: None,
                dark: false,
            });
            accepts.push(s.accepts_writes && status != Status::Down);
        }
        let routing = control.routing;
        let view = View {
            regions,
            routing: Routing {
                epoch: u8::try_from(routing.epoch).unwrap_or(u8::MAX),
                primary: routing.primary,
                compute: routing.compute,
                home: routing.home,
            },
            partitioned: self.links.is_partitioned(),
            ledger: Default::default(),
        };
        let (c, p) = (usize::from(routing.compute), usize::from(routing.primary));
        let writable = view.regions[c].status == Status::Up
            && view.regions[p].status == Status::Up
            && view.regions[p].epoch == view.routing.epoch
            && view.connected(c, p)
            && accepts[p];
        Ok((view, writable))
    }

    /// The `properties` view of the deployment now: every invariant can be checked on it.
    pub async fn abstract_view(&mut self) -> Result<View, DeployError> {
        self.observe().await?;
        let (mut view, _) = self.base_view().await?;
        if let Some(ghost) = &self.ghost {
            ghost.fill(&mut view);
        }
        Ok(view)
    }

    /// Every `always` property the deployment violates now.
    pub async fn violations(&mut self) -> Result<Vec<Violation>, DeployError> {
        let view = self.abstract_view().await?;
        Ok(drcheck_properties::violations(&view, &self.bounds()))
    }

    /// Feeds the events emitted since the last call to the ghost bookkeeping.
    async fn observe(&mut self) -> Result<(), DeployError> {
        if self.ghost.is_none() {
            return Ok(());
        }
        let now = self.clock.now();
        let records = self.observer.drain();
        if let Some(g) = &mut self.ghost {
            while self.ghost_time + TICK <= now {
                self.ghost_time += TICK;
                g.tick();
            }
            g.acknowledge(&records);
        }
        let (mut view, writable) = self.base_view().await?;
        if let Some(g) = &mut self.ghost {
            g.fill(&mut view);
            g.observe(&records, &view);
            g.settle(&view.regions, writable);
        }
        Ok(())
    }

    // ----- stepping (virtual mode) -----

    /// Holds messages until [`Deployment::deliver`] or [`Deployment::drop_message`] (on), or
    /// delivers every message as soon as it is sent (off, the default).
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// Messages sent and not yet delivered (virtual mode).
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.memory
            .as_ref()
            .map_or_else(Vec::new, |m| m.in_flight())
    }

    /// Delivers message `seq` now, in any order; `false` if no such message is in flight.
    pub async fn deliver(&mut self, seq: u64) -> Result<bool, DeployError> {
        let Some(m) = self.memory.as_ref().and_then(|m| m.take(seq)) else {
            return Ok(false);
        };
        self.hand_over(m.envelope).await?;
        self.observe().await?;
        Ok(true)
    }

    /// Loses message `seq`. A lost heartbeat makes its region unreachable to the control
    /// plane at this instant, as far as the invariants are concerned.
    pub async fn drop_message(&mut self, seq: u64) -> Result<bool, DeployError> {
        let Some(m) = self.memory.as_ref().and_then(|m| m.take(seq)) else {
            return Ok(false);
        };
        if let (NodeId::Region(r), Message::Heartbeat(_)) = (m.envelope.from, &m.envelope.msg) {
            let view = self.abstract_view().await?;
            if let Some(g) = &mut self.ghost {
                g.unreachable(r, &view);
            }
        }
        Ok(true)
    }

    async fn hand_over(&mut self, envelope: Envelope) -> Result<(), DeployError> {
        if !self.links.allows(envelope.from, envelope.to) {
            return Ok(());
        }
        match envelope.to {
            NodeId::Control => {
                self.control
                    .call(ControlInput::Message(envelope))
                    .await
                    .ok_or(DeployError::Stopped(NodeId::Control))?;
            }
            NodeId::Region(r) => {
                // A region that is down loses what arrives.
                let _ = self.call_region(r, RegionInput::Message(envelope)).await;
            }
        }
        Ok(())
    }

    /// Controlled mode: the control plane takes `step` now, or says why it is not enabled.
    pub async fn control_step(
        &mut self,
        step: drcheck_protocol::control::ControlStep,
    ) -> Result<Result<(), StepRefusal>, DeployError> {
        let answer = match self.control.call(ControlInput::Step(step)).await {
            Some(ControlOutput::Stepped(answer)) => answer,
            _ => return Err(DeployError::Stopped(NodeId::Control)),
        };
        self.observe().await?;
        Ok(answer)
    }

    /// Region `from` retransmits to region `to` now (controlled stepping).
    pub async fn ship_now(&mut self, from: u8, to: u8) -> Result<(), DeployError> {
        let _ = self.call_region(from, RegionInput::ShipNow { to }).await;
        self.observe().await
    }

    /// The implementation's write id of the view's write `id` (1, 2, … in order of
    /// acknowledgement).
    pub fn write_id(&self, id: u8) -> Option<WriteId> {
        self.ghost.as_ref()?.write_id(id)
    }

    /// Delivers every message in flight, and those they cause, unless messages are held.
    pub async fn settle(&mut self) -> Result<(), DeployError> {
        self.observe().await?;
        if self.hold {
            return Ok(());
        }
        // Each delivery may send more; a run of them always ends (no message answers a
        // confirmation), the bound only guards against a protocol bug.
        for _ in 0..100_000 {
            let Some(m) = self.memory.as_ref().and_then(|m| m.pop()) else {
                return Ok(());
            };
            self.hand_over(m.envelope).await?;
            self.observe().await?;
        }
        Ok(())
    }

    /// Advances the virtual clock by `minutes`, one minute at a time: every region ticks,
    /// messages are delivered, then the control plane ticks.
    pub async fn advance(&mut self, minutes: u32) -> Result<(), DeployError> {
        let clock = self
            .virtual_clock
            .clone()
            .ok_or(DeployError::NotVirtual("advancing the clock"))?;
        for _ in 0..minutes {
            clock.advance(TICK);
            for r in 0..self.cfg.regions {
                let _ = self.call_region(r, RegionInput::Tick).await;
                self.settle().await?;
            }
            self.control
                .call(ControlInput::Tick)
                .await
                .ok_or(DeployError::Stopped(NodeId::Control))?;
            self.settle().await?;
        }
        Ok(())
    }

    // ----- clients -----

    fn next_write_id(&mut self) -> WriteId {
        let id = self.next_write;
        self.next_write += 1;
        id
    }

    /// A write through the global endpoint: to the compute region, which forwards it to the
    /// data primary.
    pub async fn write(&mut self, resource: String) -> Result<WriteOutcome, DeployError> {
        let request = create_request(&resource)?;
        let written = self.write_routed(request, None).await?;
        acknowledged(written)
    }

    async fn write_routed(
        &mut self,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, DeployError> {
        let routing = self.control_state().await?.routing;
        let status = |r: u8| self.status(r).unwrap_or(Status::Down);
        if operator::route(&routing, status, self.links.is_partitioned()).is_err() {
            return Ok(Err(unavailable()));
        }
        self.write_to(routing.primary, request, reapply_of).await
    }

    /// A client inside region `r` creates `resource` (it reaches `r` even while `r` is cut
    /// off).
    pub async fn write_at(&mut self, r: u8, resource: String) -> Result<WriteOutcome, DeployError> {
        self.slot(r)?;
        let request = create_request(&resource)?;
        let written = self.write_to(r, request, None).await?;
        acknowledged(written)
    }

    /// A FHIR write at region `r`: the same `FhirRegion` step `drcheck serve` runs.
    async fn write_to(
        &mut self,
        r: u8,
        request: WriteRequest,
        reapply_of: Option<WriteId>,
    ) -> Result<FhirWriteResult, DeployError> {
        let write = self.next_write_id();
        let input = FhirInput::Write {
            write,
            request,
            unix_ms: crate::time::unix_ms(),
            reapply_of,
        };
        let written = match self.ask_region(r, input).await {
            Some(FhirOutput::Written(written)) => written,
            _ => Err(unavailable()),
        };
        self.settle().await?;
        Ok(written)
    }

    // ----- the operator -----

    /// An operator request, refused unless `token` is the deployment's operator token; a
    /// refused request changes nothing.
    pub async fn operator(
        &mut self,
        token: &str,
        request: OperatorRequest,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        if !operator::same_secret(token, &self.cfg.operator_token) {
            self.observer.emit(
                self.clock.now(),
                NodeId::Control,
                Event::OperatorRefused {
                    request: format!("{request:?}"),
                    reason: "missing or wrong operator credential".to_string(),
                },
            );
            return Ok(Err(OperatorError::Unauthorized));
        }
        let answer = match request {
            OperatorRequest::DataFailback { target } => {
                self.control_request(ControlInput::Failback { target })
                    .await?
            }
            OperatorRequest::ForceFailover { target } => {
                self.control_request(ControlInput::ForceFailover { target })
                    .await?
            }
            OperatorRequest::ListQuarantine => Ok(OperatorResponse::Quarantine {
                items: self.quarantine().await?,
            }),
            OperatorRequest::Reapply { write } => self.reapply(write).await?,
        };
        self.settle().await?;
        Ok(answer)
    }

    async fn control_request(
        &mut self,
        input: ControlInput,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        match self.control.call(input).await {
            Some(ControlOutput::Operator(Ok(()))) => Ok(Ok(OperatorResponse::Accepted)),
            Some(ControlOutput::Operator(Err(reason))) => Ok(Err(OperatorError::Refused(reason))),
            _ => Err(DeployError::Stopped(NodeId::Control)),
        }
    }

    /// Every quarantined write of every region (a region that is down shows its store's).
    pub async fn quarantine(&self) -> Result<Vec<QuarantineItem>, DeployError> {
        let mut items = Vec::new();
        for r in 0..self.cfg.regions {
            for q in self.region_state(r).await?.quarantine {
                items.push(QuarantineItem {
                    region: r,
                    write: q.entry.write,
                    epoch: q.entry.epoch,
                    reapplied: q.reapplied,
                    payload: q.entry.payload,
                });
            }
        }
        Ok(items)
    }

    async fn reapply(
        &mut self,
        write: WriteId,
    ) -> Result<Result<OperatorResponse, OperatorError>, DeployError> {
        let refuse = |reason: OperatorRefusal| Ok(Err(OperatorError::Refused(reason)));
        let items = self.quarantine().await?;
        let up = |r: u8| self.status(r).is_some_and(|s| s != Status::Down);
        let request = match operator::reapply_request(&items, write, up) {
            Ok(request) => request,
            Err(refusal) => return refuse(refusal),
        };
        let written = self.write_routed(request, Some(write)).await?;
        let ack = match acknowledged(written)? {
            Ok(ack) => ack,
            Err(refusal) => return refuse(OperatorRefusal::WriteRefused { refusal }),
        };
        // Every region that quarantined it (with three regions, two may have).
        for r in 0..self.cfg.regions {
            let _ = self
                .call_region(r, RegionInput::MarkReapplied { write })
                .await;
        }
        self.observer.emit(
            self.clock.now(),
            NodeId::Control,
            Event::Reapplied {
                original: write,
                write: ack.write,
            },
        );
        Ok(Ok(OperatorResponse::Reapplied {
            original: write,
            write: ack.write,
        }))
    }

    // ----- faults -----

    /// The control plane restarts: it loses everything it knew and resumes with the routing
    /// recovered from the regions' durable states.
    pub async fn restart_control(&mut self) -> Result<(), DeployError> {
        self.observe().await?;
        let mut held = Vec::new();
        for r in 0..self.cfg.regions {
            let s = self.region_state(r).await?;
            held.push(Some((s.epoch, s.role)));
        }
        let n = self.cfg.regions;
        let now = self.clock.now();
        let machine = match recover_routing(&held) {
            Some((epoch, primary)) => {
                ControlMachine::resume(n, self.cfg.timing, now, epoch, primary)
            }
            None => ControlMachine::new(n, self.cfg.timing, now),
        }
        .with_mutants(self.cfg.mutants);
        let wiring = Wiring {
            store: None,
            transport: transport_for(&self.memory, &self.real, &self.links, NodeId::Control),
            clock: self.clock.clone(),
            lag: 0,
            observer: self.observer.clone(),
        };
        let old = std::mem::replace(&mut self.control, NodeHandle::spawn(machine, wiring));
        old.kill().await;
        if let Some(real) = &self.real {
            set_mailbox(
                &real.mailboxes[usize::from(n)],
                Some(Box::new(self.control.mailbox())),
            );
        }
        self.settle().await
    }

    fn fault_event(&self, fault: &str, region: Option<u8>) {
        let event = Event::Fault {
            fault: fault.to_string(),
            region,
        };
        self.observer.emit(self.clock.now(), NodeId::Control, event);
    }

    fn expect_status(&self, r: u8, expected: Status) -> Result<(), DeployError> {
        let status = self.slot(r)?.status;
        if status == expected {
            Ok(())
        } else {
            Err(DeployError::Status {
                region: r,
                status,
                expected,
            })
        }
    }

    fn guard_refused(control: &ControlSnapshot) -> bool {
        matches!(
            control.phase,
            Phase::FailingOver {
                guard_ok: false,
                ..
            }
        )
    }

    async fn before_outage(&mut self, r: u8) -> Result<(), DeployError> {
        let view = self.abstract_view().await?;
        let refused = Self::guard_refused(&self.control_state().await?);
        if let Some(g) = &mut self.ghost {
            g.outage(r, &view, refused);
        }
        Ok(())
    }

    /// Region `r` crashes: its task stops at once, volatile state (the lease) is lost, its
    /// store survives; messages it had sent and not delivered are lost.
    pub async fn crash(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Up)?;
        self.before_outage(r).await?;
        self.fault_event("crash", Some(r));
        if let Some(real) = &self.real {
            set_mailbox(&real.mailboxes[usize::from(r)], None);
        }
        if let Some(node) = self.regions[usize::from(r)].node.take() {
            node.kill().await;
        }
        if let Some(m) = &self.memory {
            m.drop_from(NodeId::Region(r));
        }
        self.regions[usize::from(r)].status = Status::Down;
        self.settle().await
    }

    /// Region `r` restarts from its store.
    pub async fn recover(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Down)?;
        self.fault_event("recover", Some(r));
        self.boot_region(r)?;
        self.regions[usize::from(r)].status = Status::Up;
        if let Some(g) = &mut self.ghost {
            g.restored(r);
        }
        self.settle().await
    }

    /// Region `r` is cut off from the control plane and the other regions; it keeps running
    /// and serving its own clients.
    pub async fn isolate(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Up)?;
        self.before_outage(r).await?;
        self.fault_event("isolate", Some(r));
        self.links.set_isolated(r, true);
        if let Some(m) = &self.memory {
            m.drop_from(NodeId::Region(r));
        }
        self.regions[usize::from(r)].status = Status::Isolated;
        self.settle().await
    }

    pub async fn reconnect(&mut self, r: u8) -> Result<(), DeployError> {
        self.expect_status(r, Status::Isolated)?;
        self.fault_event("reconnect", Some(r));
        self.links.set_isolated(r, false);
        self.regions[usize::from(r)].status = Status::Up;
        if let Some(g) = &mut self.ghost {
            g.restored(r);
        }
        self.settle().await
    }

    /// Cuts the links between regions (the control plane still reaches every region).
    pub async fn partition(&mut self) -> Result<(), DeployError> {
        if !self.links.is_partitioned() {
            self.observe().await?;
            self.fault_event("partition", None);
            self.links.set_partitioned(true);
            if let Some(g) = &mut self.ghost {
                g.partition();
            }
        }
        self.settle().await
    }

    pub async fn heal(&mut self) -> Result<(), DeployError> {
        if self.links.is_partitioned() {
            self.fault_event("heal", None);
        }
        self.links.set_partitioned(false);
        self.settle().await
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

/// A client's create of `resource` (FHIR JSON), validated as the endpoint validates it.
fn create_request(resource: &str) -> Result<WriteRequest, DeployError> {
    let kind = serde_json::from_str::<serde_json::Value>(resource)
        .ok()
        .and_then(|v| v.get("resourceType")?.as_str().map(str::to_string))
        .ok_or_else(|| DeployError::Fhir(format!("no resourceType in {resource}")))?;
    let resource = drcheck_fhir::validate::parse_resource(&kind, None, resource.as_bytes())
        .map_err(|e| DeployError::Fhir(e.to_string()))?;
    Ok(WriteRequest::Create { kind, resource })
}

/// The answer when no writable primary is reachable (or it stopped mid-request).
fn unavailable() -> drcheck_fhir::region::Failure {
    drcheck_fhir::region::Failure {
        status: 503,
        code: "transient".to_string(),
        diagnostics: Refusal::Unavailable.to_string(),
        retry_after: Some(1),
        refusal: Some(Refusal::Unavailable),
    }
}

/// A FHIR write's result as the protocol sees it: acknowledged, or refused by the protocol.
/// A failure of the content (the deployment's callers write valid resources) is an error.
fn acknowledged(written: FhirWriteResult) -> Result<WriteOutcome, DeployError> {
    match written {
        Ok(Some((ack, _))) => Ok(Ok(ack)),
        Ok(None) => Err(DeployError::Fhir("the write changed nothing".into())),
        Err(failure) => match failure.refusal {
            Some(refusal) => Ok(Err(refusal)),
            None => Err(DeployError::Fhir(failure.diagnostics)),
        },
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
        (None, Some(parts)) => Arc::new(TcpTransport::new(me, parts.peers.clone(), links.clone())),
        // A deployment is built with one or the other; an unconnected node loses everything.
        (None, None) => Arc::new(MemoryTransport::new(links.clone())),
    }
}
