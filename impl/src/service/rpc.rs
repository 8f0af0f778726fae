//! How the endpoint and the supervisor talk to region and control-plane processes: one JSON
//! line asked and one answered per TCP connection. What travels *is* the machines' typed
//! inputs and outputs (`FhirInput`/`FhirOutput` to a region, `ControlInput`/`ControlOutput` to
//! the control plane): nothing is translated on the way. Simple and debuggable with `nc`; the
//! protocol's own messages travel separately (`crate::transport::tcp`).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use drcheck_fhir::region::FhirInput;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest line either side accepts.
const MAX_LINE: u64 = 32 * 1024 * 1024;

/// What a region process is asked: an input of its machine (`FhirRegion`), or a change of its
/// links (fault injection belongs to the process, not to the machine).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", content = "value", rename_all = "snake_case")]
pub enum RegionCall {
    /// An input for the region's machine.
    Machine(FhirInput),
    /// Set the process's links (fault injection by the supervisor).
    SetLinks {
        /// The region is cut off from the control plane and the other regions.
        isolated: bool,
        /// The links between regions are cut.
        partitioned: bool,
    },
}

/// Why a process answered no machine output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum CallFailure {
    /// The request line is not a request of this process.
    #[error("malformed request: {reason}")]
    Malformed {
        /// The parse error.
        reason: String,
    },
    /// The request is valid but not served over RPC.
    #[error("{what} is not offered over RPC")]
    NotOffered {
        /// The request, in words.
        what: String,
    },
    /// The node behind the process stopped.
    #[error("{node} stopped")]
    Stopped {
        /// The node, in words.
        node: String,
    },
}

/// What travels back: the machine's output, or why there is none.
pub type Answer<O> = Result<O, CallFailure>;

/// Why a call got no machine output.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No answer; `sent`: the request went out (it may have been carried out).
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address called.
        addr: SocketAddr,
        /// What went wrong, in words.
        reason: String,
        /// The request was written out before the failure.
        sent: bool,
    },
    /// The answer is not the expected JSON.
    #[error("{addr} answered something unreadable: {reason}")]
    Garbled {
        /// The address called.
        addr: SocketAddr,
        /// The parse error.
        reason: String,
    },
    /// The process answered that it has no output for the request.
    #[error("{addr}: {failure}")]
    Failed {
        /// The address called.
        addr: SocketAddr,
        /// Why.
        failure: CallFailure,
    },
}

/// Asks `addr` and waits for the answer (at most `timeout`).
pub async fn call<Q: Serialize, O: DeserializeOwned>(
    addr: SocketAddr,
    request: &Q,
    timeout: Duration,
) -> Result<O, RpcError> {
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
        let answer: Answer<O> = serde_json::from_slice(&answer).map_err(|e| RpcError::Garbled {
            addr,
            reason: e.to_string(),
        })?;
        answer.map_err(|failure| RpcError::Failed { addr, failure })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}

/// Answers requests on `listener` with `handle`, one task per connection.
pub fn serve<Q, O, F, Fut>(listener: TcpListener, handle: F) -> JoinHandle<()>
where
    Q: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Answer<O>> + Send + 'static,
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
                let reply = match serde_json::from_slice::<Q>(&line) {
                    Ok(request) => handle(request).await,
                    Err(e) => Err(CallFailure::Malformed {
                        reason: e.to_string(),
                    }),
                };
                let mut out = serde_json::to_vec(&reply).unwrap_or_default();
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            });
        }
    })
}
