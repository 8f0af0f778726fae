//! `drcheck region`: one region as a process. Its store is a redb file in its data directory;
//! it talks the protocol over TCP and answers the endpoint over [`rpc`](super::rpc).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::auth::{EdgeStats, Keyring};
use crate::boot::{self, RegionBoot};
use crate::node::{Feed, Machine, NodeHandle, Wiring};
use crate::observe::Observer;
use crate::service::edge::Guard;
use crate::service::rpc::{self, Answer, CallFailure, RegionCall};
use crate::service::{io, ProcessConfig, ServiceError};
use crate::store::RedbStore;
use crate::time::{in_minutes, Clock, Millis, RealClock, MINUTE};
use crate::transport::tcp::{self, TcpTransport};
use crate::transport::Links;
use drcheck_fhir::region::{FhirInput, FhirOutput, FhirRegion};
use drcheck_protocol::event::Event;
use drcheck_protocol::message::{Envelope, NodeId};
use drcheck_protocol::mutant::Mutants;
use drcheck_protocol::region::{RegionInput, RegionOutput, Window};

/// How often a process ticks, in protocol time: a quarter minute.
pub const TICK: Millis = MINUTE / 4;

/// Everything a node process starts besides its machine: clock, observer, links, keys and
/// what its edges refused.
pub(crate) struct Common {
    pub clock: Arc<RealClock>,
    pub observer: Arc<Observer>,
    pub links: Links,
    pub keys: Arc<Keyring>,
    pub stats: EdgeStats,
}

impl Common {
    pub fn new(cfg: &ProcessConfig) -> Result<Common, ServiceError> {
        let observer = Arc::new(Observer::new(false));
        if let Some(path) = &cfg.event_log {
            let reopened = observer.append_to(path)?;
            reopened.log(cfg.node, path);
        }
        let keys = Keyring::load(&cfg.keys, cfg.node.into())?;
        let clock = Arc::new(RealClock::since_unix(cfg.start_unix_ms, cfg.minute_ms));
        // Each start of the process opens its part of the log with the deployment's
        // parameters: `drcheck validate` reads the model to explain it by from there.
        let started = Event::Started {
            regions: cfg.regions,
            timing: in_minutes(&cfg.timing),
            ticks_every: Some(TICK),
        };
        observer.emit(clock.now(), cfg.node, started);
        Ok(Common {
            clock,
            observer,
            links: Links::new(),
            keys: Arc::new(keys),
            stats: EdgeStats::default(),
        })
    }

    /// The transport this process sends the protocol with.
    pub fn transport(&self, cfg: &ProcessConfig) -> Arc<TcpTransport> {
        Arc::new(TcpTransport::new(
            cfg.node,
            self.keys.clone(),
            cfg.peers.clone(),
            self.links.clone(),
            self.stats.clone(),
        ))
    }

    /// Feeds protocol messages that `guard` admits and ticks to the node, and serves `handle`
    /// on the RPC address, until `shutdown` resolves or the node stops; then stops every task
    /// it started and the node (so that a process can also run inside a test).
    pub async fn run<M: Machine, Q, O, F, Fut>(
        &self,
        cfg: &ProcessConfig,
        node: Arc<NodeHandle<M>>,
        mut guard: Guard,
        handle: F,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServiceError>
    where
        Q: serde::de::DeserializeOwned + Send + 'static,
        O: serde::Serialize + Send + 'static,
        F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Answer<O>> + Send + 'static,
    {
        let me = cfg.node;
        let listen_at = *cfg
            .peers
            .get(&me)
            .ok_or_else(|| ServiceError::Config(format!("no protocol address for {me}")))?;
        let listener = TcpListener::bind(listen_at).await.map_err(io(format!(
            "listening for protocol messages on {listen_at}"
        )))?;
        let rpc_listener = TcpListener::bind(cfg.rpc)
            .await
            .map_err(io(format!("listening for the endpoint on {}", cfg.rpc)))?;
        let (sink, mut arrivals) = mpsc::unbounded_channel::<Envelope>();
        let mut tasks = Tasks(vec![tcp::listen(
            listener,
            self.links.clone(),
            self.keys.clone(),
            self.stats.clone(),
            sink,
        )]);
        let mailbox = node.mailbox();
        let feed = mailbox.clone();
        let clock = self.clock.clone();
        tasks.0.push(tokio::spawn(async move {
            while let Some(envelope) = arrivals.recv().await {
                if guard.admit(&envelope, clock.now()) {
                    feed.deliver(envelope);
                }
            }
        }));
        let ticker = mailbox.clone();
        // Every TICK of protocol time.
        let period = Duration::from_millis((cfg.minute_ms * TICK / MINUTE).max(1));
        tasks.0.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                ticker.tick();
            }
        }));
        tasks.0.push(rpc::serve(
            rpc_listener,
            self.keys.clone(),
            self.stats.clone(),
            handle,
        ));
        tokio::pin!(shutdown);
        let mut watch = tokio::time::interval(Duration::from_millis(100));
        let parent = std::os::unix::process::parent_id();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = watch.tick() => {
                    if !node.is_running() {
                        let _ = self.observer.flush();
                        return Err(ServiceError::Stopped(format!("{me} stopped (its store failed)")));
                    }
                    // Started by `serve`, which died without stopping us: stop too.
                    if parent != 1 && std::os::unix::process::parent_id() != parent {
                        break;
                    }
                }
            }
        }
        node.stop();
        tasks.stop().await;
        let _ = self.observer.flush();
        Ok(())
    }
}

/// Tasks a process started, stopped when it returns.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    /// Stops every task and waits until each is gone (and with it its listener).
    async fn stop(&mut self) {
        for task in self.0.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Runs region `cfg.node` until `shutdown` resolves.
pub async fn run(
    cfg: ProcessConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    let NodeId::Region(r) = cfg.node else {
        return Err(ServiceError::Config("`region` runs a region".into()));
    };
    let dir = cfg
        .data_dir
        .clone()
        .ok_or_else(|| ServiceError::Config("a region needs a data directory".into()))?;
    std::fs::create_dir_all(&dir).map_err(io(format!("data directory {}", dir.display())))?;
    let common = Common::new(&cfg)?;
    let mut store = RedbStore::open(&boot::store_file(&dir, r))?;
    let region = RegionBoot {
        region: r,
        regions: cfg.regions,
        timing: cfg.timing,
        mutants: Mutants::default(),
        window: Window::default(),
        now: common.clock.now(),
        // Protocol time 0 is the deployment's start, shared by every process.
        started: 0,
        lag: cfg.timing.skew,
        minute_ms: cfg.minute_ms,
    }
    .boot(&mut store)?;
    let guard = Guard::region(
        r,
        cfg.timing,
        region.summary(0).epoch,
        Some(dir.join("primaries.json")),
        common.stats.clone(),
    );
    let node = NodeHandle::spawn(
        region,
        Wiring {
            store: Some(Box::new(store)),
            transport: common.transport(&cfg),
            clock: common.clock.clone(),
            lag: cfg.timing.skew,
            observer: common.observer.clone(),
        },
    );
    let node = Arc::new(node);
    let links = common.links.clone();
    let stats = common.stats.clone();
    let handler_node = node.clone();
    let handle = move |request: RegionCall| {
        let node = handler_node.clone();
        let links = links.clone();
        let stats = stats.clone();
        async move { answer(&node, &links, &stats, r, request).await }
    };
    common.run(&cfg, node, guard, handle, shutdown).await
}

async fn answer(
    node: &NodeHandle<FhirRegion>,
    links: &Links,
    stats: &EdgeStats,
    r: u8,
    call: RegionCall,
) -> Answer<FhirOutput> {
    match call {
        RegionCall::Machine(FhirInput::Protocol(RegionInput::Tick | RegionInput::Message(_))) => {
            Err(CallFailure::NotOffered {
                what: "a tick or a protocol message (they come on the protocol port)".into(),
            })
        }
        RegionCall::Machine(input) => {
            let output = node.call(input).await.ok_or(CallFailure::Stopped {
                node: format!("region {r}"),
            })?;
            Ok(match output {
                FhirOutput::Summary(mut summary) => {
                    summary.edge = stats.counts();
                    FhirOutput::Summary(summary)
                }
                other => other,
            })
        }
        RegionCall::SetLinks {
            isolated,
            partitioned,
        } => {
            links.set_isolated(r, isolated);
            links.set_partitioned(partitioned);
            Ok(FhirOutput::Protocol(RegionOutput::Done))
        }
    }
}
