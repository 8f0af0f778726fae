//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use drcheck_model::{Bug, Config, Params};
use drcheck_properties::Timing;

use crate::UsageError;
use drcheck_impl::service::endpoint::limits::{self, Limits, RateLimit};

#[derive(Debug, Parser)]
#[command(
    name = "drcheck",
    version,
    about = "Proves and tests the disaster-recovery behaviour of a geo-replicated FHIR service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the DR model exhaustively against every property.
    Check(CheckArgs),
    /// Serve stateright's Explorer for the model, to step through its states in a browser.
    Explore(ExploreArgs),
    /// Print the timeline of a trace file (replaying it through the model first).
    Show(ShowArgs),
    /// Replay a trace file on the implementation, comparing its view with the model's after
    /// every step (exit 1 at the first difference).
    Replay(ShowArgs),
    /// Write a seeded random walk of the model as a trace file (for `replay`).
    Walk(WalkArgs),
    /// Judge every property along many seeded random walks of the model: for configurations
    /// too large to check exhaustively (a sample, with its coverage stated; exit 1 if a walk
    /// violates an `always` property).
    Simulate(SimulateArgs),
    /// Check that an implementation's JSON-lines event log is a behaviour of the model
    /// (exit 1 at the first event none explains).
    Validate(ValidateArgs),
    /// Run a whole local deployment: regions and control plane as processes, the FHIR
    /// endpoint on 127.0.0.1:8080; Ctrl-C stops it.
    Serve(ServeArgs),
    /// Run one region of a deployment described by a cluster file (as `serve` does).
    Region(RegionArgs),
    /// Run the control plane of a deployment described by a cluster file.
    Control(ControlArgs),
    /// Show a running deployment's DR status: regions, roles, epoch, lag, loss window.
    Status(EndpointArgs),
    /// Ask for manual data failback to the home region (a drained switchover).
    Failback(TargetArgs),
    /// Force a failover the RPO guard refused, after the grace period (records the loss).
    ForceFailover(TargetArgs),
    /// List the lost-writes quarantine.
    Quarantine(OperatorArgs),
    /// Re-apply a quarantined write as a new write.
    Reapply(ReapplyArgs),
    /// Inject a fault into a deployment run by `serve`.
    Fault(FaultArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the endpoint listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Data directory (stores, logs, cluster.json); a new temporary one by default.
    #[arg(long, value_name = "DIR")]
    pub data: Option<std::path::PathBuf>,
    /// 2 or 3 regions.
    #[arg(long, default_value_t = 2)]
    pub regions: u8,
    /// Wall milliseconds per protocol minute: 1000 makes the 60-minute RTO a minute long.
    #[arg(long, default_value_t = 60_000)]
    pub minute_ms: u64,
    /// A file holding the operator token (else `DRCHECK_TOKEN`; else the token in the data
    /// directory's `operator-token`, generated and printed on the first run). Never on the
    /// command line, where `ps` shows it.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// A file holding the bearer token every FHIR request must show (else
    /// `DRCHECK_FHIR_TOKEN`; else FHIR access is open). `/metadata` stays open.
    #[arg(long, value_name = "FILE")]
    pub fhir_token_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The endpoint's limits (taken as text, so that a bad value is one line of error; defaults
/// and ranges: `drcheck_impl::service::endpoint::limits`).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Connections the endpoint holds open at once; one more is answered 503 and closed.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "N",
        default_value_t = limits::DEFAULT_MAX_CONNECTIONS.to_string(),
    )]
    pub max_connections: String,
    /// Seconds a request's line and headers may take to arrive (and a kept-alive connection
    /// may stay idle); the connection is closed after. 0: no limit.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "SECONDS",
        default_value_t = limits::DEFAULT_HEADER_TIMEOUT.as_secs().to_string(),
    )]
    pub header_timeout: String,
    /// Seconds a request's whole body may take to arrive; 408 after. 0: no limit.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "SECONDS",
        default_value_t = limits::DEFAULT_BODY_TIMEOUT.as_secs().to_string(),
    )]
    pub body_timeout: String,
    /// Requests a second per client address (IPv6: per /64); 429 with Retry-After above.
    /// 0: no limit.
    #[arg(
        long,
        allow_negative_numbers = true,
        value_name = "PER_SECOND",
        default_value_t = limits::DEFAULT_RATE.to_string(),
    )]
    pub rate_limit: String,
    /// Requests a client may send at once after a quiet spell [default: twice the rate].
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
    pub rate_burst: Option<String>,
}

impl LimitArgs {
    /// The limits asked for, checked.
    pub fn limits(&self) -> Result<Limits, UsageError> {
        let max_connections = self.max_connections.trim().parse::<usize>().map_err(|_| {
            UsageError(format!(
                "--max-connections takes a whole number, not {:?}",
                self.max_connections
            ))
        })?;
        let per_second = number("--rate-limit", &self.rate_limit)?;
        let rate = (per_second > 0.0).then(|| RateLimit::new(per_second));
        let rate = match (&self.rate_burst, rate) {
            (None, rate) => rate,
            (Some(_), None) => {
                return Err(UsageError(
                    "--rate-burst needs a --rate-limit above 0".into(),
                ))
            }
            (Some(text), Some(rate)) => Some(RateLimit {
                burst: text.trim().parse::<u32>().map_err(|_| {
                    UsageError(format!(
                        "--rate-burst takes a whole number of requests, not {text:?}"
                    ))
                })?,
                ..rate
            }),
        };
        let limits = Limits {
            max_connections,
            header_timeout: timeout("--header-timeout", &self.header_timeout)?,
            body_timeout: timeout("--body-timeout", &self.body_timeout)?,
            rate,
        };
        limits.check().map_err(|e| UsageError(e.to_string()))?;
        Ok(limits)
    }
}

/// A flag's number: finite and not negative.
fn number(flag: &str, text: &str) -> Result<f64, UsageError> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(UsageError(format!(
            "{flag} takes a number of 0 or more, not {text:?}"
        ))),
    }
}

/// A timeout flag in seconds (0: none).
fn timeout(flag: &str, text: &str) -> Result<Option<std::time::Duration>, UsageError> {
    let seconds = number(flag, text)?;
    if seconds <= 0.0 {
        return Ok(None);
    }
    // Out-of-range values are refused by `Limits::check` with the range in words.
    let capped = seconds.min(limits::MAX_TIMEOUT.as_secs_f64() * 2.0);
    Ok(Some(std::time::Duration::from_secs_f64(capped)))
}

#[derive(Debug, Args)]
pub struct RegionArgs {
    /// The cluster file `serve` writes (cluster.json in its data directory).
    #[arg(long, value_name = "FILE")]
    pub cluster: std::path::PathBuf,
    /// Which region.
    #[arg(long)]
    pub id: u8,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    #[arg(long, value_name = "FILE")]
    pub cluster: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// The deployment's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub endpoint: String,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// A file holding the operator token (else `DRCHECK_TOKEN`): `serve` keeps the one it
    /// generated in its data directory's `operator-token`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// The region to move the data primary to.
    #[arg(long)]
    pub target: u8,
}

#[derive(Debug, Args)]
pub struct ReapplyArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,
    /// The quarantined write's id (see `drcheck quarantine`).
    #[arg(long)]
    pub write: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FaultKind {
    Crash,
    Recover,
    Isolate,
    Reconnect,
    Partition,
    Heal,
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,
    pub fault: FaultKind,
    /// The region (for crash, recover, isolate, reconnect).
    #[arg(long)]
    pub region: Option<u8>,
    /// The control plane instead of a region (for crash and recover; `serve` restarts a
    /// crashed control plane by itself, recover starts it at once).
    #[arg(long)]
    pub control: bool,
}

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Address to serve on (loopback unless you ask otherwise).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
    /// Open at the last step of this trace file (its parameters replace the model flags).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    /// Skip the consistency rules of the timing parameters.
    #[arg(long)]
    pub allow_inconsistent: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct WalkArgs {
    /// The walk's seed: the same seed and parameters give the same walk.
    #[arg(long)]
    pub seed: u64,
    /// Steps (at most 100,000: a trace file holds every step, and replay retraces them).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub depth: u64,
    /// Directory to write the trace file to.
    #[arg(long, value_name = "DIR")]
    pub trace_out: std::path::PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many walks.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub walks: u64,
    /// The most steps a walk takes.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub depth: u64,
    /// Walk i uses seed SEED + i (`drcheck walk --seed SEED+i` writes it out).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Threads (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Stop starting walks after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Skip the consistency rules of the timing parameters.
    #[arg(long)]
    pub allow_inconsistent: bool,
    /// Write a trace file per violated property into DIR.
    #[arg(long, value_name = "DIR")]
    pub trace_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A deployment's event log (JSON lines, as `DeploymentConfig::event_log` writes it), or
    /// a `drcheck serve` data directory (its `events-*.jsonl`, merged by time).
    pub log: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A trace file written by `check --trace-out`.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Explore depth-first with stateright's checker, then find the shortest paths in a
    /// second, breadth-first pass.
    #[arg(long, conflicts_with = "bfs")]
    pub dfs: bool,
    /// Explore breadth-first, in one pass that also gives the shortest paths (the default).
    #[arg(long)]
    pub bfs: bool,
    /// Checker threads (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Check only this property (see the README for the names).
    #[arg(long, value_name = "NAME")]
    pub property: Option<String>,
    /// Print the bugs `--bug` can switch on, each with the property that catches it.
    #[arg(long)]
    pub list_bugs: bool,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Stop exploring after this many seconds (the report then says incomplete).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Stop exploring once the process holds this many MiB (the report then says
    /// incomplete); default three quarters of the machine's memory, 0 for no limit.
    #[arg(long, value_name = "MIB")]
    pub max_memory: Option<u64>,
    /// Explore only the states within N steps of the start (breadth first; the report then
    /// says incomplete if any state lies beyond). For spaces too large to exhaust; see also
    /// `drcheck simulate`.
    #[arg(long, value_name = "N", conflicts_with = "dfs")]
    pub depth: Option<usize>,
    /// Skip the consistency rules of the timing parameters (to explore their boundaries).
    #[arg(long)]
    pub allow_inconsistent: bool,
    /// Hash every state as it is, without erasing the fields no step reads (more states, the
    /// same verdicts: to compare with the reduced search).
    #[arg(long)]
    pub no_reduce: bool,
    /// Write a trace file per failed property and per worst case into DIR.
    #[arg(long, value_name = "DIR")]
    pub trace_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The model's parameters; times in minutes.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Switch one protocol guard off (see --list-bugs).
    #[arg(long, value_name = "NAME")]
    pub bug: Option<Bug>,
    /// Regions (2 or 3).
    #[arg(long, default_value_t = Params::default().regions)]
    pub regions: u32,
    /// Client writes.
    #[arg(long, default_value_t = Params::default().writes)]
    pub writes: u32,
    /// Region outages (each a crash or an isolation).
    #[arg(long, default_value_t = Params::default().outages)]
    pub outages: u32,
    /// Inter-region partitions.
    #[arg(long, default_value_t = Params::default().partitions)]
    pub partitions: u32,
    /// Manual data failback requests.
    #[arg(long, default_value_t = Params::default().failbacks)]
    pub failbacks: u32,
    /// Forced failovers by the operator.
    #[arg(long, default_value_t = Params::default().forced)]
    pub forced: u32,
    /// Quarantined writes the operator may re-apply.
    #[arg(long, default_value_t = Params::default().reapplies)]
    pub reapplies: u32,
    /// Control-plane crashes, each restarted at once.
    #[arg(long, default_value_t = Params::default().cp_restarts)]
    pub cp_restarts: u32,
    /// Messages lost: heartbeats, or the control plane's answers to them.
    #[arg(long, default_value_t = Params::default().losses)]
    pub losses: u32,
    /// Outages are crashes only (no isolated region that keeps serving).
    #[arg(long)]
    pub no_isolation: bool,
    /// Time horizon in minutes (0: none).
    #[arg(long, default_value_t = Params::default().horizon)]
    pub horizon: u32,
    /// Minutes per tick of the model's clock.
    #[arg(long, default_value_t = Params::default().tick)]
    pub tick: u32,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// The protocol's timing, in minutes (defaults and consistency rules: `drcheck_properties::Timing`).
#[derive(Debug, Args)]
pub struct TimingArgs {
    /// Heartbeat interval (minutes).
    #[arg(long, default_value_t = Timing::default().heartbeat)]
    pub heartbeat: u32,
    /// Maximum message delay (minutes).
    #[arg(long, default_value_t = Timing::default().delay)]
    pub delay: u32,
    /// Failure-detection time (minutes).
    #[arg(long, default_value_t = Timing::default().detection)]
    pub detection: u32,
    /// Lease length (minutes).
    #[arg(long, default_value_t = Timing::default().lease)]
    pub lease: u32,
    /// Maximum clock skew between regions and the control plane (minutes).
    #[arg(long, default_value_t = Timing::default().skew)]
    pub skew: u32,
    /// Bounded-staleness throttle threshold (minutes).
    #[arg(long, default_value_t = Timing::default().throttle)]
    pub throttle: u32,
    /// Recovery point objective (minutes).
    #[arg(long, default_value_t = Timing::default().rpo)]
    pub rpo: u32,
    /// Recovery time objective (minutes).
    #[arg(long, default_value_t = Timing::default().rto)]
    pub rto: u32,
    /// Grace period before the operator may force a failover (minutes).
    #[arg(long, default_value_t = Timing::default().grace)]
    pub grace: u32,
    /// How long a switchover's drain may take before it aborts (minutes).
    #[arg(long, default_value_t = Timing::default().drain_timeout)]
    pub drain_timeout: u32,
    /// How long an in-sync secondary may leave the primary's oldest write unconfirmed before
    /// it is left out of sync and the primary writes unprotected (minutes).
    #[arg(long, default_value_t = Timing::default().sync_timeout)]
    pub sync_timeout: u32,
}

impl TimingArgs {
    pub fn timing(&self) -> Timing {
        Timing {
            heartbeat: self.heartbeat,
            delay: self.delay,
            detection: self.detection,
            lease: self.lease,
            skew: self.skew,
            throttle: self.throttle,
            rpo: self.rpo,
            rto: self.rto,
            grace: self.grace,
            drain_timeout: self.drain_timeout,
            sync_timeout: self.sync_timeout,
        }
    }
}

impl ModelArgs {
    /// The checked configuration (consistency rules skipped on request).
    pub fn config(&self, allow_inconsistent: bool) -> Result<Config, UsageError> {
        let params = self.params();
        let config = if allow_inconsistent {
            params.to_ticks()
        } else {
            params.validate()
        };
        config.map_err(|e| UsageError(e.to_string()))
    }

    pub fn params(&self) -> Params {
        Params {
            tick: self.tick,
            timing: self.timing.timing(),
            regions: self.regions,
            writes: self.writes,
            outages: self.outages,
            partitions: self.partitions,
            failbacks: self.failbacks,
            forced: self.forced,
            reapplies: self.reapplies,
            cp_restarts: self.cp_restarts,
            losses: self.losses,
            isolation: !self.no_isolation,
            horizon: self.horizon,
            bug: self.bug,
        }
    }
}
