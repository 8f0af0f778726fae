//! How the endpoint and the supervisor talk to region and control-plane processes: one JSON
//! line asked and one answered per TCP connection. Simple and debuggable with `nc`; the
//! protocol's own messages travel separately (`crate::transport::tcp`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use drcheck_fhir::region::{Failure, RegionSummary};
use drcheck_fhir::{Change, WriteRequest};

use drcheck_protocol::control::ControlSnapshot;
use drcheck_protocol::entry::WriteId;
use drcheck_protocol::event::Refusal;
use drcheck_protocol::refusal::OperatorRefusal;
use drcheck_protocol::region::Ack;

/// Longest line either side accepts.
const MAX_LINE: u64 = 32 * 1024 * 1024;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "rpc", rename_all = "snake_case")]
pub enum Request {
    /// Region: a FHIR write at the data primary.
    FhirWrite {
        write: WriteId,
        request: WriteRequest,
        unix_ms: u64,
        /// The quarantined write an operator re-applies with this one.
        reapply_of: Option<WriteId>,
    },
    /// Region: read the current version, one version, or the history of a resource.
    FhirRead {
        kind: String,
        id: String,
        version: Option<u64>,
        history: bool,
    },
    /// Region: the operator re-applies a quarantined write's payload as a new write.
    Reapply {
        write: WriteId,
        payload: String,
        reapply_of: WriteId,
    },
    MarkReapplied {
        write: WriteId,
    },
    RegionState,
    /// Region: fault injection.
    SetLinks {
        isolated: bool,
        partitioned: bool,
    },
    ControlState,
    Failback {
        target: u8,
    },
    ForceFailover {
        target: u8,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    FhirWritten {
        result: Result<Option<(Ack, Change)>, Failure>,
    },
    FhirRead {
        result: Result<Vec<Change>, Failure>,
    },
    Reapplied {
        result: Result<Ack, Refusal>,
    },
    Marked {
        held: bool,
    },
    Region(Box<RegionSummary>),
    Control(Box<ControlSnapshot>),
    Operator {
        result: Result<(), OperatorRefusal>,
    },
    Done,
    /// The request was malformed, or the process could not handle it.
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No answer; `sent`: the request went out (it may have been carried out).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        addr: SocketAddr,
        reason: String,
        sent: bool,
    },
    #[error("{addr} answered something unreadable: {reason}")]
    Garbled { addr: SocketAddr, reason: String },
}

/// Asks `addr` and waits for the answer (at most `timeout`).
pub async fn call(
    addr: SocketAddr,
    request: &Request,
    timeout: Duration,
) -> Result<Reply, RpcError> {
    let sent = std::sync::atomic::AtomicBool::new(false);
    let unreachable = |reason: String| RpcError::Unreachable {
        addr,
        reason,
        sent: sent.load(std::sync::atomic::Ordering::Relaxed),
    };
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut line = serde_json::to_vec(request).map_err(|e| unreachable(e.to_string()))?;
        line.push(b'\n');
        sent.store(true, std::sync::atomic::Ordering::Relaxed);
        stream
            .write_all(&line)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut reader = BufReader::new(stream).take(MAX_LINE);
        let mut answer = Vec::new();
        reader
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if answer.is_empty() {
            return Err(unreachable(
                "the connection closed without an answer".into(),
            ));
        }
        serde_json::from_slice(&answer).map_err(|e| RpcError::Garbled {
            addr,
            reason: e.to_string(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}

/// Answers requests on `listener` with `handle`, one task per connection.
pub fn serve<F, Fut>(listener: TcpListener, handle: F) -> JoinHandle<()>
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read).take(MAX_LINE);
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line).await.is_err() || line.is_empty() {
                    return;
                }
                let reply = match serde_json::from_slice::<Request>(&line) {
                    Ok(request) => handle(request).await,
                    Err(e) => Reply::Error {
                        message: format!("malformed request: {e}"),
                    },
                };
                let mut out = serde_json::to_vec(&reply).unwrap_or_default();
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            });
        }
    })
}
