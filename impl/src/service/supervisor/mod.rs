//! `drcheck serve`: a whole deployment on this machine. It starts the control plane and each
//! region as child processes of the same executable, serves the endpoint itself, injects the
//! faults the operator asks for (a crash is SIGKILL, a recovery a restart from the same data
//! directory), restarts the control plane whenever it exits (the `control` submodule), and
//! stops everything on Ctrl-C.

mod control;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::{self, Keyring, Principal};
use crate::observe::Observer;
use crate::service::endpoint::limits::{self, Gate, Limits};
use crate::service::endpoint::{self, ControlProcess, EndpointConfig, Fault, Faults};
use crate::service::port::PortReservation;
use crate::service::private;
use crate::service::rpc::{self, RegionCall};
use crate::service::{io, Cluster, NodeAddrs, ServiceError};
use crate::time::{unix_ms, Clock, RealClock, Timing};
use control::ControlSlot;
use drcheck_fhir::region::FhirOutput;
use drcheck_properties::Role;
use drcheck_protocol::entry::Epoch;
use drcheck_protocol::event::{Event, FaultKind};
use drcheck_protocol::message::NodeId;
use drcheck_protocol::region::RegionOutput;

/// The faults `serve` injected, in its data directory (beside each process's
/// `events-region-N.jsonl` and `events-control.jsonl`).
pub const EVENT_LOG: &str = "events-serve.jsonl";

/// How `drcheck serve` was asked to run.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where the endpoint listens.
    pub listen: SocketAddr,
    /// Where the stores, logs and `cluster.json` go (a new temporary directory by default).
    pub data_dir: Option<PathBuf>,
    /// How many regions (2 or 3).
    pub regions: u8,
    /// Wall milliseconds per protocol minute.
    pub minute_ms: u64,
    /// The protocol's timing, in protocol milliseconds.
    pub timing: Timing,
    /// The operator token (when not given: the one in the data directory's
    /// `operator-token`, generated on the first run).
    pub token: Option<String>,
    /// The bearer token FHIR requests must show (`None`: FHIR access is open).
    pub fhir_token: Option<String>,
    /// The `drcheck` executable the child processes run.
    pub exe: PathBuf,
    /// The endpoint's connection, time and request-rate limits.
    pub limits: Limits,
}

#[derive(Default)]
struct Links {
    isolated: Vec<bool>,
    partitioned: bool,
}

/// The child processes of `drcheck serve` (control plane and regions) and their links: what
/// injects faults for the endpoint, and keeps the control plane running.
pub struct Supervisor {
    exe: PathBuf,
    cluster_file: PathBuf,
    cluster: Cluster,
    control: Mutex<ControlSlot>,
    /// How many times the control plane was started again.
    control_restarts: AtomicU64,
    regions: Mutex<Vec<Option<Child>>>,
    links: Mutex<Links>,
    /// One start or stop of a process at a time: the control plane's restart reads the
    /// stores of regions that are down, which a region starting meanwhile would hold.
    ops: tokio::sync::Mutex<()>,
    /// Set on shutdown: nothing is restarted any more.
    stopping: AtomicBool,
    /// Wakes the control plane's watcher (to stop).
    wake: Notify,
    /// The task that restarts the control plane when it exits.
    watcher: Mutex<Option<JoinHandle<()>>>,
    /// The children's ports, held for them.
    _ports: Vec<PortReservation>,
    /// The endpoint's keys: the supervisor calls the regions as the endpoint does.
    keys: Arc<Keyring>,
    /// The faults it injects and the control plane's restarts, as events
    /// (`<data>/events-serve.jsonl`) on the deployment's clock.
    events: Observer,
    clock: RealClock,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A port for a child process, held for the whole life of `serve` (see [`PortReservation`]).
fn reserve_port(held: &mut Vec<PortReservation>) -> Result<SocketAddr, ServiceError> {
    let port = PortReservation::new().map_err(io("reserving a loopback port"))?;
    let addr = port.addr();
    held.push(port);
    Ok(addr)
}

fn node_addrs(held: &mut Vec<PortReservation>) -> Result<NodeAddrs, ServiceError> {
    Ok(NodeAddrs {
        protocol: reserve_port(held)?,
        rpc: reserve_port(held)?,
    })
}

/// A random hex token from the standard library's randomly keyed hasher.
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..2)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(unix_ms() ^ (u64::from(std::process::id()) << 20) ^ i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

impl Supervisor {
    /// Where a child's stdout and stderr go.
    fn log_path(&self, node: NodeId) -> PathBuf {
        let name = match node {
            NodeId::Control => "control".to_string(),
            NodeId::Region(r) => format!("region-{r}"),
        };
        self.cluster.data_dir.join(format!("{name}.log"))
    }

    /// `: <the last line of the node's log>`, or nothing: why a child that exited did. A
    /// JSON log line tells its message if it is an error (the process's last words), else
    /// nothing (the process was stopped from outside while it went about its work).
    fn last_log_line(&self, node: NodeId) -> String {
        use std::io::{Read, Seek, SeekFrom};
        // Only the end of the log: it grows for as long as the deployment runs.
        let mut tail = Vec::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path(node)) {
            let len = file.metadata().map_or(0, |m| m.len());
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let _ = file.read_to_end(&mut tail);
        }
        String::from_utf8_lossy(&tail)
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .and_then(
                |line| match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(json) if json["level"] == "ERROR" => {
                        json["message"].as_str().map(str::to_string)
                    }
                    Ok(_) => None,
                    Err(_) => Some(line.trim().to_string()),
                },
            )
            .map(|said| format!(": {said}"))
            .unwrap_or_default()
    }

    fn spawn(&self, node: NodeId) -> Result<Child, ServiceError> {
        let verb = match node {
            NodeId::Control => "control",
            NodeId::Region(_) => "region",
        };
        let log_path = self.log_path(node);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("log {}", log_path.display())))?;
        let err = log.try_clone().map_err(io("log file"))?;
        let mut command = Command::new(&self.exe);
        command.arg(verb).arg("--cluster").arg(&self.cluster_file);
        if let NodeId::Region(r) = node {
            command.arg("--id").arg(r.to_string());
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("starting {} {verb}", self.exe.display())))
    }

    /// Starts the control plane and every region, and the task that restarts the control
    /// plane whenever it exits (so it must be called within a tokio runtime).
    pub fn start(
        cluster: Cluster,
        cluster_file: PathBuf,
        exe: PathBuf,
        ports: Vec<PortReservation>,
        keys: Arc<Keyring>,
    ) -> Result<Arc<Supervisor>, ServiceError> {
        let n = usize::from(cluster.regions);
        let events = Observer::new(false);
        let path = cluster.data_dir.join(EVENT_LOG);
        events.append_to(&path)?.log(NodeId::Control, &path);
        let clock = RealClock::since_unix(cluster.start_unix_ms, cluster.minute_ms);
        let supervisor = Arc::new(Supervisor {
            exe,
            cluster_file,
            cluster,
            control: Mutex::new(ControlSlot::default()),
            control_restarts: AtomicU64::new(0),
            regions: Mutex::new((0..n).map(|_| None).collect()),
            links: Mutex::new(Links {
                isolated: vec![false; n],
                partitioned: false,
            }),
            ops: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
            watcher: Mutex::new(None),
            _ports: ports,
            keys,
            events,
            clock,
        });
        lock(&supervisor.control).started(supervisor.spawn(NodeId::Control)?);
        for r in 0..supervisor.cluster.regions {
            let child = supervisor.spawn(NodeId::Region(r))?;
            lock(&supervisor.regions)[usize::from(r)] = Some(child);
        }
        supervisor.watch_control();
        Ok(supervisor)
    }

    /// From now on nothing is restarted: the deployment is stopping (Ctrl-C). A process that
    /// exits on the same Ctrl-C is then not taken for a crash.
    pub fn stop_restarting(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops every process (and first the control plane's watcher, which would restart it).
    pub async fn shutdown(&self) {
        self.stop_restarting();
        let watcher = lock(&self.watcher).take();
        if let Some(watcher) = watcher {
            // It holds no process between two awaits: cancelling it loses nothing.
            watcher.abort();
            let _ = watcher.await;
        }
        let _ops = self.ops.lock().await;
        let mut children: Vec<Child> = lock(&self.regions)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        children.extend(lock(&self.control).take());
        for child in &mut children {
            let _ = child.start_kill();
        }
        for mut child in children {
            let _ = child.wait().await;
        }
    }

    /// Tells region `r`'s process which of its links are cut (it may have just started).
    async fn apply_links(&self, r: u8) -> Result<(), String> {
        let (isolated, partitioned) = {
            let links = lock(&self.links);
            (links.isolated[usize::from(r)], links.partitioned)
        };
        let addr = self.cluster.region[usize::from(r)].rpc;
        let request = RegionCall::SetLinks {
            isolated,
            partitioned,
        };
        let mut last = String::new();
        // A restarted region may take a while to open its store on a loaded machine: wait for
        // it by the clock, not by a count of quick refusals.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let region = Principal::Region(r);
            let answer = rpc::call(addr, &self.keys, region, &request, Duration::from_secs(1));
            match answer.await {
                Ok(FhirOutput::Protocol(RegionOutput::Done)) => return Ok(()),
                Ok(other) => last = format!("answered {other:?} to its links"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("region {r} did not take the link settings: {last}"))
    }

    fn check_region(&self, r: u8) -> Result<(), String> {
        if r < self.cluster.regions {
            Ok(())
        } else {
            Err(format!("there is no region {r}"))
        }
    }

    /// Records a fault in `events-serve.jsonl` (on the control plane's node, as an
    /// in-process deployment does).
    fn fault_event(&self, fault: FaultKind, region: Option<u8>) {
        let event = Event::Fault { fault, region };
        self.events.emit(self.clock.now(), NodeId::Control, event);
    }

    async fn inject_fault(&self, fault: Fault) -> Result<String, String> {
        // A fault that starts or stops a process waits for any other such change.
        let _ops = match fault {
            Fault::Crash { .. } | Fault::Recover { .. } => Some(self.ops.lock().await),
            // `RecoverControl` takes it itself; `CrashControl` only sends a signal.
            _ => None,
        };
        match fault {
            Fault::Crash { region } => {
                self.check_region(region)?;
                let child = lock(&self.regions)[usize::from(region)].take();
                let Some(mut child) = child else {
                    return Err(format!("region {region} is already down"));
                };
                let pid = child.id();
                child.start_kill().map_err(|e| e.to_string())?;
                let _ = child.wait().await;
                // Once it is dead: no event of the region comes after its crash.
                self.fault_event(FaultKind::Crash, Some(region));
                Ok(format!("region {region} killed (pid {})", pid.unwrap_or(0)))
            }
            Fault::Recover { region } => {
                self.check_region(region)?;
                if self.running(region) {
                    return Err(format!("region {region} is running"));
                }
                // Before it starts: its first event comes after its recovery.
                self.fault_event(FaultKind::Recover, Some(region));
                let child = self
                    .spawn(NodeId::Region(region))
                    .map_err(|e| e.to_string())?;
                let pid = child.id();
                lock(&self.regions)[usize::from(region)] = Some(child);
                self.apply_links(region).await?;
                Ok(format!(
                    "region {region} restarted (pid {})",
                    pid.unwrap_or(0)
                ))
            }
            Fault::Isolate { region } | Fault::Reconnect { region } => {
                self.check_region(region)?;
                let isolate = matches!(fault, Fault::Isolate { .. });
                let changed = self.isolated(region) != isolate;
                // A cut is recorded once in place, a reconnection before it is.
                if changed && !isolate {
                    self.fault_event(FaultKind::Reconnect, Some(region));
                }
                lock(&self.links).isolated[usize::from(region)] = isolate;
                if self.running(region) {
                    self.apply_links(region).await?;
                }
                if changed && isolate {
                    self.fault_event(FaultKind::Isolate, Some(region));
                }
                Ok(format!(
                    "region {region} {}",
                    if isolate { "isolated" } else { "reconnected" }
                ))
            }
            Fault::Partition | Fault::Heal => {
                let cut = matches!(fault, Fault::Partition);
                let changed = self.partitioned() != cut;
                if changed && !cut {
                    self.fault_event(FaultKind::Heal, None);
                }
                lock(&self.links).partitioned = cut;
                for r in 0..self.cluster.regions {
                    if self.running(r) {
                        self.apply_links(r).await?;
                    }
                }
                if changed && cut {
                    self.fault_event(FaultKind::Partition, None);
                }
                Ok(if cut {
                    "regions partitioned"
                } else {
                    "partition healed"
                }
                .to_string())
            }
            Fault::CrashControl => self.crash_control().await,
            Fault::RecoverControl => self.recover_control().await,
        }
    }
}

impl Faults for Supervisor {
    fn inject(
        &self,
        fault: Fault,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(self.inject_fault(fault))
    }

    fn running(&self, region: u8) -> bool {
        let mut regions = lock(&self.regions);
        match regions.get_mut(usize::from(region)) {
            Some(Some(child)) => matches!(child.try_wait(), Ok(None)),
            _ => false,
        }
    }

    fn partitioned(&self) -> bool {
        lock(&self.links).partitioned
    }

    fn isolated(&self, region: u8) -> bool {
        lock(&self.links)
            .isolated
            .get(usize::from(region))
            .copied()
            .unwrap_or(false)
    }

    fn pids(&self) -> Vec<Option<u32>> {
        lock(&self.regions)
            .iter()
            .map(|c| c.as_ref().and_then(Child::id))
            .collect()
    }

    fn control(&self) -> ControlProcess {
        ControlProcess {
            pid: self.control_pid(),
            restarts: self.control_restarts.load(Ordering::SeqCst),
        }
    }
}

/// Region `r`'s durable (epoch, role), read from its store (`None`: it has none yet). Its
/// process must not run: it would hold the store.
fn stored_role(data_dir: &std::path::Path, r: u8) -> Result<Option<(Epoch, Role)>, ServiceError> {
    use crate::store::Store as _;
    let path = crate::boot::store_file(&crate::boot::region_dir(data_dir, r), r);
    let durable = if path.exists() {
        crate::store::RedbStore::open(&path)?.load()?
    } else {
        None
    };
    Ok(durable.map(|d| (d.epoch, d.role)))
}

/// The routing the control plane resumes with, read from the regions' stores (closed now:
/// no region process runs yet).
fn recover_from_stores(cluster: &Cluster) -> Result<Option<(Epoch, u8)>, ServiceError> {
    let held = (0..cluster.regions)
        .map(|r| stored_role(&cluster.data_dir, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(drcheck_protocol::control::recover_routing(&held))
}

/// Writes `cluster` to `path` whole or not at all (a process starting meanwhile reads the
/// old file or the new one, never half of one).
fn write_cluster(path: &std::path::Path, cluster: &Cluster) -> Result<(), ServiceError> {
    let text =
        serde_json::to_string_pretty(cluster).map_err(|e| ServiceError::Config(e.to_string()))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(io(format!("writing {}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(io(format!("writing {}", path.display())))
}

/// Where `serve` keeps the operator token it generated, in the data directory.
pub fn token_file(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("operator-token")
}

/// The operator token, and what `serve` prints of it.
struct OperatorToken {
    value: String,
    shown: String,
}

/// The operator token: the one given, else the one kept in the data directory, else a new
/// one kept there. Its value is printed only when it is new: once.
fn operator_token(
    data_dir: &std::path::Path,
    given: Option<String>,
) -> Result<OperatorToken, ServiceError> {
    let file = token_file(data_dir);
    if let Some(value) = given {
        return Ok(OperatorToken {
            value,
            shown: "as given".to_string(),
        });
    }
    if file.exists() {
        let text =
            std::fs::read_to_string(&file).map_err(io(format!("reading {}", file.display())))?;
        let value = text.trim().to_string();
        if value.is_empty() {
            return Err(ServiceError::Config(format!(
                "{} is empty: delete it for a new token",
                file.display()
            )));
        }
        return Ok(OperatorToken {
            value,
            shown: format!("in {}", file.display()),
        });
    }
    let value = random_token();
    private::write_private(&file, &format!("{value}\n"))?;
    Ok(OperatorToken {
        shown: format!("{value} (kept in {})", file.display()),
        value,
    })
}

/// A new directory's path for a deployment started without `--data`.
pub fn default_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "drcheck-serve-{}-{}",
        std::process::id(),
        unix_ms()
    ))
}

/// Runs a whole deployment until Ctrl-C. Prints where the endpoint listens, the data
/// directory and the operator token.
pub async fn serve(opts: ServeOptions) -> Result<(), ServiceError> {
    if !(2..=3).contains(&opts.regions) {
        return Err(ServiceError::Config(format!(
            "a deployment has 2 or 3 regions, not {}",
            opts.regions
        )));
    }
    let data_dir = opts.data_dir.clone().unwrap_or_else(default_data_dir);
    // Before anything is written: the stores hold patient data, `secret` the links' keys.
    private::prepare_data_dir(&data_dir)?;
    let cluster_file = data_dir.join("cluster.json");
    // A data directory from an earlier run keeps its layout and its protocol clock.
    let mut ports = Vec::new();
    let region = (0..opts.regions)
        .map(|_| node_addrs(&mut ports))
        .collect::<Result<_, _>>()?;
    let control = node_addrs(&mut ports)?;
    let earlier = cluster_file
        .exists()
        .then(|| Cluster::load(&cluster_file))
        .transpose()?;
    let mut cluster = match earlier {
        Some(c) => {
            // Protocol time must not jump: the run keeps its start and its minute.
            if c.regions != opts.regions || c.minute_ms != opts.minute_ms {
                return Err(ServiceError::Config(format!(
                    "{} holds a deployment of {} regions with a {} ms minute; start it with \
                     --regions {} --minute-ms {}, or use another --data directory",
                    data_dir.display(),
                    c.regions,
                    c.minute_ms,
                    c.regions,
                    c.minute_ms
                )));
            }
            Cluster {
                timing: opts.timing,
                control,
                region,
                ..c
            }
        }
        None => Cluster {
            regions: opts.regions,
            timing: opts.timing,
            minute_ms: opts.minute_ms,
            start_unix_ms: unix_ms(),
            control,
            region,
            data_dir: data_dir.clone(),
            resume: None,
        },
    };
    cluster.resume = recover_from_stores(&cluster)?;
    write_cluster(&cluster_file, &cluster)?;
    let secret = auth::provision(&data_dir, cluster.regions)?;
    let keys = Arc::new(secret.keyring(Principal::Endpoint, cluster.regions));
    let token = operator_token(&data_dir, opts.token.clone())?;
    let gate = Gate::new(opts.limits).map_err(|e| ServiceError::Config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(io(format!("listening on {}", opts.listen)))?;
    let endpoint_addr = listener.local_addr().map_err(io("endpoint address"))?;
    let supervisor = Supervisor::start(
        cluster.clone(),
        cluster_file,
        opts.exe.clone(),
        ports,
        keys.clone(),
    )?;
    let router = endpoint::router(EndpointConfig {
        control: cluster.control.rpc,
        regions: cluster.region.iter().map(|a| a.rpc).collect(),
        token: token.value,
        fhir_token: opts.fhir_token.clone(),
        faults: Some(supervisor.clone()),
        keys,
    });
    println!(
        "drcheck serve: {} regions and a control plane as processes; a protocol minute is {} ms",
        cluster.regions, cluster.minute_ms
    );
    println!("endpoint: http://{endpoint_addr}");
    println!("endpoint limits: {}", gate.limits());
    println!("data: {}", data_dir.display());
    println!("operator token: {}", token.shown);
    if opts.fhir_token.is_some() {
        println!("FHIR access: a bearer token is required (/metadata stays open)");
    }
    println!("stop with Ctrl-C");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let stopping = supervisor.clone();
    limits::serve(listener, router, gate, async move {
        let _ = tokio::signal::ctrl_c().await;
        // A Ctrl-C at a terminal reaches the children too: their exits are no crashes.
        stopping.stop_restarting();
    })
    .await;
    supervisor.shutdown().await;
    println!("drcheck serve: stopped");
    Ok(())
}
