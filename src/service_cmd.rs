//! The service verbs: `serve`, `region`, `control`, and the operator's client verbs against a
//! running deployment's endpoint.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{Context, Result};
use drcheck_impl::protocol::message::NodeId;
use drcheck_impl::service::endpoint::Fault;
use drcheck_impl::service::supervisor::{self, ServeOptions};
use drcheck_impl::service::{control, http, private, region, Cluster};

use crate::args::{
    ControlArgs, EndpointArgs, FaultArgs, FaultKind, OperatorArgs, ReapplyArgs, RegionArgs,
    ServeArgs, TargetArgs,
};
use crate::UsageError;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn socket_addr(text: &str, what: &str) -> Result<SocketAddr> {
    let bare = text.trim_start_matches("http://").trim_end_matches('/');
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| UsageError(format!("{what} {text:?} is not host:port")).into())
}

pub fn serve(args: &ServeArgs) -> Result<ExitCode> {
    if !(2..=3).contains(&args.regions) {
        return Err(UsageError(format!("--regions must be 2 or 3, not {}", args.regions)).into());
    }
    if args.minute_ms == 0 {
        return Err(UsageError("--minute-ms must be at least 1".into()).into());
    }
    let timing = args.timing.timing();
    timing
        .check()
        .map_err(|e| UsageError(format!("inconsistent timing: {e}")))?;
    let limits = args.limits.limits()?;
    let listen = socket_addr(&args.listen, "--listen")?;
    // A bad RUST_LOG is refused before anything is created.
    let filter = crate::logs::filter()?;
    let data_dir = args
        .data
        .clone()
        .unwrap_or_else(supervisor::default_data_dir);
    // Private before the first file (serve's own log) is written in it.
    private::prepare_data_dir(&data_dir).map_err(|e| UsageError(e.to_string()))?;
    crate::logs::to_file(&data_dir, filter)?;
    let opts = ServeOptions {
        listen,
        data_dir: Some(data_dir),
        regions: args.regions,
        minute_ms: args.minute_ms,
        timing: drcheck_impl::time::in_millis(&timing),
        token: secret(args.token_file.as_deref(), TOKEN_ENV, "operator token")?,
        fhir_token: secret(
            args.fhir_token_file.as_deref(),
            FHIR_TOKEN_ENV,
            "FHIR token",
        )?,
        exe: std::env::current_exe().context("finding the drcheck executable")?,
        limits,
    };
    runtime()?.block_on(supervisor::serve(opts))?;
    Ok(ExitCode::SUCCESS)
}

/// Where the operator token may come from besides `--token-file`.
const TOKEN_ENV: &str = "DRCHECK_TOKEN";
/// Where the FHIR bearer token may come from besides `--fhir-token-file`.
const FHIR_TOKEN_ENV: &str = "DRCHECK_FHIR_TOKEN";

/// A secret from `file` (its first line) or else from the environment variable `env`; never
/// from the command line, where any local user's `ps` would show it. An empty or unreadable
/// one is refused, naming where it came from.
fn secret(file: Option<&std::path::Path>, env: &str, what: &str) -> Result<Option<String>> {
    let (text, source) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                UsageError(format!(
                    "cannot read the {what} from {}: {e}",
                    path.display()
                ))
            })?;
            (text, path.display().to_string())
        }
        None => match std::env::var(env) {
            Ok(text) => (text, env.to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(UsageError(format!("{env} is not valid UTF-8")).into())
            }
        },
    };
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(UsageError(format!("the {what} in {source} is empty")).into());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(UsageError(format!(
            "the {what} in {source} holds a space or a control character (it goes in an \
             HTTP header)"
        ))
        .into());
    }
    Ok(Some(token.to_string()))
}

/// Resolves on Ctrl-C (or never, if the signal cannot be watched).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn load_cluster(path: &std::path::Path) -> Result<Cluster> {
    Cluster::load(path).map_err(|e| UsageError(e.to_string()).into())
}

pub fn region(args: &RegionArgs) -> Result<ExitCode> {
    // A bad RUST_LOG or cluster file is a plain one-line error, as any bad input on the
    // command line; from then on the process logs JSON lines on stderr.
    let filter = crate::logs::filter()?;
    let cluster = load_cluster(&args.cluster)?;
    let cfg = cluster
        .process(NodeId::Region(args.id))
        .map_err(|e| UsageError(e.to_string()))?;
    crate::logs::to_stderr(filter)?;
    runtime()?.block_on(region::run(cfg, ctrl_c()))?;
    Ok(ExitCode::SUCCESS)
}

pub fn control(args: &ControlArgs) -> Result<ExitCode> {
    // A bad RUST_LOG or cluster file is a plain one-line error, as any bad input on the
    // command line; from then on the process logs JSON lines on stderr.
    let filter = crate::logs::filter()?;
    let cluster = load_cluster(&args.cluster)?;
    let cfg = cluster
        .process(NodeId::Control)
        .map_err(|e| UsageError(e.to_string()))?;
    crate::logs::to_stderr(filter)?;
    runtime()?.block_on(control::run(cfg, ctrl_c()))?;
    Ok(ExitCode::SUCCESS)
}

/// Sends one request to the endpoint; prints the answer; exit 0 on success, 1 otherwise.
fn ask(
    endpoint: &EndpointArgs,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<ExitCode> {
    let addr = socket_addr(&endpoint.endpoint, "--endpoint")?;
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    if !bytes.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let response = runtime()?
        .block_on(http::request(
            addr,
            method,
            path,
            &headers,
            bytes.as_bytes(),
        ))
        .with_context(|| format!("cannot reach the endpoint at {addr}"))?;
    let shown = match response.json() {
        Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
        Err(_) => response.text(),
    };
    if (200..300).contains(&response.status) {
        println!("{shown}");
        Ok(ExitCode::SUCCESS)
    } else {
        let diagnostics = response
            .json()
            .ok()
            .and_then(|j| j["issue"][0]["diagnostics"].as_str().map(str::to_string))
            .unwrap_or(shown);
        eprintln!("refused ({}): {diagnostics}", response.status);
        Ok(ExitCode::from(1))
    }
}

pub fn status(args: &EndpointArgs) -> Result<ExitCode> {
    ask(args, "GET", "/_dr/status", None, None)
}

fn operator(
    args: &OperatorArgs,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<ExitCode> {
    let token =
        secret(args.token_file.as_deref(), TOKEN_ENV, "operator token")?.ok_or_else(|| {
            UsageError(format!(
            "no operator token: set {TOKEN_ENV} or give --token-file (serve keeps the token it \
             generated in its data directory's operator-token)"
        ))
        })?;
    ask(&args.endpoint, method, path, Some(&token), body)
}

pub fn failback(args: &TargetArgs) -> Result<ExitCode> {
    operator(
        &args.operator,
        "POST",
        "/_dr/failback",
        Some(serde_json::json!({ "target": args.target })),
    )
}

pub fn force_failover(args: &TargetArgs) -> Result<ExitCode> {
    operator(
        &args.operator,
        "POST",
        "/_dr/force-failover",
        Some(serde_json::json!({ "target": args.target })),
    )
}

pub fn quarantine(args: &OperatorArgs) -> Result<ExitCode> {
    operator(args, "GET", "/_dr/quarantine", None)
}

pub fn reapply(args: &ReapplyArgs) -> Result<ExitCode> {
    operator(
        &args.operator,
        "POST",
        "/_dr/reapply",
        Some(serde_json::json!({ "write": args.write })),
    )
}

pub fn fault(args: &FaultArgs) -> Result<ExitCode> {
    let fault = fault_of(args)?;
    let body = serde_json::to_value(fault).context("encoding the fault")?;
    operator(&args.operator, "POST", "/_dr/fault", Some(body))
}

/// What a fault is injected into.
enum Target {
    Region(u8),
    Control,
    Nothing,
}

/// The fault `args` ask for, or why they ask for none: `crash` and `recover` take `--region N`
/// or `--control`, `isolate` and `reconnect` take `--region N`, `partition` and `heal`
/// neither.
fn fault_of(args: &FaultArgs) -> Result<Fault, UsageError> {
    let name = format!("{:?}", args.fault).to_lowercase();
    let usage = |what: &str| Err(UsageError(format!("fault {name} {what}")));
    let target = match (args.region, args.control) {
        (Some(_), true) => return usage("takes --region N or --control, not both"),
        (Some(region), false) => Target::Region(region),
        (None, true) => Target::Control,
        (None, false) => Target::Nothing,
    };
    use FaultKind as K;
    match (args.fault, target) {
        (K::Crash, Target::Region(region)) => Ok(Fault::Crash { region }),
        (K::Crash, Target::Control) => Ok(Fault::CrashControl),
        (K::Recover, Target::Region(region)) => Ok(Fault::Recover { region }),
        (K::Recover, Target::Control) => Ok(Fault::RecoverControl),
        (K::Isolate, Target::Region(region)) => Ok(Fault::Isolate { region }),
        (K::Reconnect, Target::Region(region)) => Ok(Fault::Reconnect { region }),
        (K::Partition, Target::Nothing) => Ok(Fault::Partition),
        (K::Heal, Target::Nothing) => Ok(Fault::Heal),
        (K::Crash | K::Recover, Target::Nothing) => usage("needs --region N or --control"),
        (K::Isolate | K::Reconnect, Target::Nothing) => usage("needs --region N"),
        (K::Isolate | K::Reconnect, Target::Control) => {
            usage("takes --region N: the control plane is not isolated, only crashed")
        }
        (K::Partition | K::Heal, _) => {
            usage("is between the regions: it takes neither --region nor --control")
        }
    }
}
