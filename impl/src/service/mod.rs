//! The service as real processes: a region or the control plane per process, talking the
//! protocol over TCP; the global endpoint (FHIR over HTTP, the operator and status API) in
//! front; a supervisor that starts them all for `drcheck serve`, injects faults and restarts
//! the control plane when it exits.
//!
//! Processes agree on protocol time through a shared start instant (Unix milliseconds) and
//! the minute scale. The endpoint reaches the processes through [`rpc`]: one JSON line asked,
//! one answered, per call, on authenticated connections it keeps open ([`crate::auth`]).

pub mod control;
pub mod edge;
pub mod endpoint;
pub mod http;
pub mod port;
pub mod private;
pub mod region;
pub mod rpc;
pub mod supervisor;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::time::Timing;
use drcheck_protocol::message::NodeId;

/// Everything a region or control-plane process needs to know at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessConfig {
    /// The node this process runs.
    pub node: NodeId,
    /// How many regions the deployment has.
    pub regions: u8,
    /// The protocol's timing, in protocol milliseconds.
    pub timing: Timing,
    /// Wall milliseconds per protocol minute.
    pub minute_ms: u64,
    /// Protocol time 0, in Unix milliseconds, shared by every process of the deployment.
    pub start_unix_ms: u64,
    /// Where every node listens for protocol messages.
    pub peers: HashMap<NodeId, SocketAddr>,
    /// Where this process answers the endpoint.
    pub rpc: SocketAddr,
    /// A region's data directory (its redb file lives there).
    pub data_dir: Option<PathBuf>,
    /// Write this process's events as JSON lines here.
    pub event_log: Option<PathBuf>,
    /// Control plane: the routing to resume with (see [`Cluster::resume`]).
    pub resume: Option<(drcheck_protocol::entry::Epoch, u8)>,
    /// This process's keys (see [`crate::auth`]): `serve` writes them to
    /// `<data>/keys/<name>.key`.
    pub keys: PathBuf,
}

/// Where one node listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddrs {
    /// Protocol messages from the other nodes.
    pub protocol: SocketAddr,
    /// Requests from the endpoint.
    pub rpc: SocketAddr,
}

/// A whole deployment's layout: written by `drcheck serve` to `cluster.json` in its data
/// directory, read by every process it starts (and usable by hand with `drcheck region` and
/// `drcheck control`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    /// How many regions (2 or 3).
    pub regions: u8,
    /// The protocol's timing, in protocol milliseconds.
    pub timing: Timing,
    /// Wall milliseconds per protocol minute.
    pub minute_ms: u64,
    /// Protocol time 0, in Unix milliseconds.
    pub start_unix_ms: u64,
    /// Where the control plane listens.
    pub control: NodeAddrs,
    /// Region `r` at index `r`.
    pub region: Vec<NodeAddrs>,
    /// Region `r` keeps its store in `data_dir/region-r`.
    pub data_dir: PathBuf,
    /// The routing the control plane resumes with when the regions' stores hold an earlier
    /// run (epoch, data primary); `None` for a new deployment.
    #[serde(default)]
    pub resume: Option<(drcheck_protocol::entry::Epoch, u8)>,
}

impl Cluster {
    /// Reads a `cluster.json`, checking its region count and timing.
    pub fn load(path: &std::path::Path) -> Result<Cluster, ServiceError> {
        let text =
            std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        let cluster = Cluster::from_json(&text)
            .map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))?;
        if !(2..=3).contains(&cluster.regions)
            || cluster.region.len() != usize::from(cluster.regions)
        {
            return Err(ServiceError::Config(format!(
                "{}: field `region`: {} regions listed for a deployment of {}",
                path.display(),
                cluster.region.len(),
                cluster.regions
            )));
        }
        if let Some((_, primary)) = cluster.resume {
            if primary >= cluster.regions {
                return Err(ServiceError::Config(format!(
                    "{}: field `resume`: data primary {primary} is not one of the {} regions",
                    path.display(),
                    cluster.regions
                )));
            }
        }
        if cluster.minute_ms == 0 {
            return Err(ServiceError::Config(format!(
                "{}: field `minute_ms`: a protocol minute lasts at least 1 ms",
                path.display()
            )));
        }
        // Protocol milliseconds, judged as the model judges ticks of one protocol minute.
        cluster
            .timing
            .check_with_tick(crate::time::MINUTE)
            .map_err(|e| {
                ServiceError::Config(format!("{}: inconsistent timing: {e}", path.display()))
            })?;
        Ok(cluster)
    }

    /// Parses a cluster file's text, naming the field that is missing or wrong (serde's own
    /// message names the type it expected, not the field).
    fn from_json(text: &str) -> Result<Cluster, String> {
        let mut json = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut json).map_err(|e| match e.path().to_string() {
            // `.` is the root: a syntax error, or not an object.
            root if root == "." => e.into_inner().to_string(),
            field => format!("field `{field}`: {}", e.into_inner()),
        })
    }

    /// Where `node` listens (`None`: no such region).
    pub fn addrs(&self, node: NodeId) -> Option<NodeAddrs> {
        match node {
            NodeId::Control => Some(self.control),
            NodeId::Region(r) => self.region.get(usize::from(r)).copied(),
        }
    }

    /// The configuration of one of its processes.
    pub fn process(&self, node: NodeId) -> Result<ProcessConfig, ServiceError> {
        let addrs = self
            .addrs(node)
            .ok_or_else(|| ServiceError::Config(format!("the cluster has no {node}")))?;
        let mut peers = HashMap::new();
        peers.insert(NodeId::Control, self.control.protocol);
        for (r, a) in self.region.iter().enumerate() {
            peers.insert(NodeId::Region(r as u8), a.protocol);
        }
        let dir = match node {
            NodeId::Region(r) => Some(crate::boot::region_dir(&self.data_dir, r)),
            NodeId::Control => None,
        };
        let name = match node {
            NodeId::Region(r) => format!("events-region-{r}.jsonl"),
            NodeId::Control => "events-control.jsonl".to_string(),
        };
        Ok(ProcessConfig {
            node,
            regions: self.regions,
            timing: self.timing,
            minute_ms: self.minute_ms,
            start_unix_ms: self.start_unix_ms,
            peers,
            rpc: addrs.rpc,
            data_dir: dir,
            event_log: Some(self.data_dir.join(name)),
            resume: self.resume,
            keys: crate::auth::key_file(&self.data_dir, node.into()),
        })
    }
}

/// Why a service process (or `drcheck serve`) could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The region's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The configuration (`cluster.json`, options) is unusable; holds why.
    #[error("{0}")]
    Config(String),
    /// A node stopped (its store failed, say); holds what stopped and why.
    #[error("{0}")]
    Stopped(String),
    /// The process's event log cannot be opened to append to.
    #[error(transparent)]
    EventLog(#[from] crate::observe::ReopenError),
    /// A key file is missing or unusable.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServiceError {
    let what = what.into();
    move |source| ServiceError::Io { what, source }
}
