//! How the endpoint and the supervisor talk to region and control-plane processes: one JSON
//! line asked and one answered per call. What travels *is* the machines' typed
//! inputs and outputs (`FhirInput`/`FhirOutput` to a region, `ControlInput`/`ControlOutput` to
//! the control plane), beside the few calls that belong to the process (a region's links, the
//! control plane's edge counts): nothing is translated on the way. Simple and debuggable with `nc`; the
//! protocol's own messages travel separately (`crate::transport::tcp`).
//!
//! Both lines are authenticated ([`crate::auth`]): the process challenges the caller, the
//! caller names itself with a MAC under their link's key, then each request is the caller's
//! next frame and each answer the process's next, MACed with both ends' fresh nonces and
//! their sequence numbers. The endpoint keeps its connections open between calls
//! ([`Client`]): a call is then one frame each way, with no new connection or handshake.
//! Only the endpoint (`serve`, also the supervisor) may call: anyone else, a bad MAC or a
//! replayed request is refused (logged, counted, the connection closed unanswered). The
//! caller believes only an answer MACed by the process it called on this very connection, so
//! a forged or replayed answer is an error ([`RpcError::Forged`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::{self, AuthError, EdgeStats, Keyring, Principal, Session};

use drcheck_fhir::region::FhirInput;
use drcheck_protocol::control::{ControlInput, ControlOutput};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest line either side accepts (a frame: the JSON plus the MAC and sequence number).
pub const MAX_LINE: u64 = 32 * 1024 * 1024;

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

/// What the control-plane process is asked: an input of its machine, or what its network
/// edge refused (which lives in the process, not in the machine).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", content = "value", rename_all = "snake_case")]
pub enum ControlCall {
    /// An input for the control plane's machine.
    Machine(ControlInput),
    /// What the process refused at its edge, and its largest frames.
    Edge,
}

/// What the control-plane process answers a [`ControlCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "answer", content = "value", rename_all = "snake_case")]
pub enum ControlAnswer {
    /// The machine's output.
    Machine(ControlOutput),
    /// The process's edge counts.
    Edge(crate::auth::EdgeCounts),
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
    /// The answer would be longer than an RPC line may be (ask for less: a page).
    #[error("{what}")]
    TooLarge {
        /// What was too large, in words.
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
    /// The answer is not authentic: not MACed by the process called, on this connection.
    #[error("{addr} answered with no proof it is {peer}: {reason}")]
    Forged {
        /// The address called.
        addr: SocketAddr,
        /// Who was called.
        peer: Principal,
        /// What was wrong.
        reason: String,
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

/// An authenticated RPC connection: its halves and its session.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    session: Session,
    /// When it was last used (an idle connection is kept only so long).
    used: Instant,
}

impl Conn {
    async fn open(addr: SocketAddr, keys: &Keyring, peer: Principal) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (read, mut writer) = stream.into_split();
        let mut reader = BufReader::new(read);
        let (session, hello) = auth::connect(&mut reader, keys, peer)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        writer.write_all(&hello).await.map_err(|e| e.to_string())?;
        Ok(Conn {
            reader,
            writer,
            session,
            used: Instant::now(),
        })
    }

    /// Can it take another call: kept for less than [`KEEP_IDLE`], and not closed by the
    /// process (which sends nothing between answers: anything readable is its end).
    fn reusable(&self) -> bool {
        let mut probe = [0u8; 1];
        self.used.elapsed() < KEEP_IDLE
            && self.reader.buffer().is_empty()
            && matches!(
                self.reader.get_ref().try_read(&mut probe),
                Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
            )
    }
}

/// How long a caller keeps an idle connection for another call (the process keeps it
/// [`SERVE_IDLE`], longer, so that it does not close one a caller is about to use).
const KEEP_IDLE: Duration = Duration::from_secs(10);
/// How long a process keeps a connection with no call before closing it.
const SERVE_IDLE: Duration = Duration::from_secs(60);
/// Most idle connections a caller keeps per process: as many as it has calls in flight to it
/// under load (a connection beyond the pool is closed after its call, and a later call pays a
/// new connection and handshake; with 16, 32 concurrent clients churned 16 connections).
const POOL: usize = 64;

/// A caller that keeps its authenticated connections open between calls (the endpoint's):
/// each call is then one frame each way, without a new connection and handshake.
pub struct Client {
    keys: Arc<Keyring>,
    idle: Mutex<HashMap<(SocketAddr, Principal), Vec<Conn>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("keys", &self.keys).finish()
    }
}

impl Client {
    /// A caller with `keys`.
    pub fn new(keys: Arc<Keyring>) -> Client {
        Client {
            keys,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, addr: SocketAddr, peer: Principal) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let conns = idle.get_mut(&(addr, peer))?;
        while let Some(conn) = conns.pop() {
            if conn.reusable() {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, addr: SocketAddr, peer: Principal, mut conn: Conn) {
        conn.used = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let conns = idle.entry((addr, peer)).or_default();
        if conns.len() < POOL {
            conns.push(conn);
        }
    }

    /// Asks `peer` at `addr` and waits for the answer (at most `timeout`), on a kept
    /// connection if there is one.
    pub async fn call<Q: Serialize, O: DeserializeOwned>(
        &self,
        addr: SocketAddr,
        peer: Principal,
        request: &Q,
        timeout: Duration,
    ) -> Result<O, RpcError> {
        let conn = self.take(addr, peer);
        let keep = |conn| self.give_back(addr, peer, conn);
        exchange(addr, &self.keys, peer, conn, request, timeout, keep).await
    }
}

/// Asks `peer` at `addr`, as `keys`' owner, on a new connection, and waits for the answer (at
/// most `timeout`).
pub async fn call<Q: Serialize, O: DeserializeOwned>(
    addr: SocketAddr,
    keys: &Keyring,
    peer: Principal,
    request: &Q,
    timeout: Duration,
) -> Result<O, RpcError> {
    exchange(addr, keys, peer, None, request, timeout, drop).await
}

/// One call on `conn` (a new connection if `None`); the connection goes to `keep` after a
/// good answer.
async fn exchange<Q: Serialize, O: DeserializeOwned>(
    addr: SocketAddr,
    keys: &Keyring,
    peer: Principal,
    conn: Option<Conn>,
    request: &Q,
    timeout: Duration,
    keep: impl FnOnce(Conn),
) -> Result<O, RpcError> {
    let sent = std::sync::atomic::AtomicBool::new(false);
    let unreachable = |reason: String| RpcError::Unreachable {
        addr,
        reason,
        sent: sent.load(std::sync::atomic::Ordering::Relaxed),
    };
    let exchange = async {
        let payload = serde_json::to_vec(request).map_err(|e| unreachable(e.to_string()))?;
        let mut conn = match conn {
            Some(conn) => conn,
            None => Conn::open(addr, keys, peer).await.map_err(unreachable)?,
        };
        let mut out = Vec::with_capacity(payload.len() + 128);
        conn.session.seal(&payload, &mut out);
        sent.store(true, std::sync::atomic::Ordering::Relaxed);
        conn.writer
            .write_all(&out)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut answer = Vec::new();
        (&mut conn.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if answer.last() != Some(&b'\n') {
            return Err(unreachable(if answer.is_empty() {
                "the connection closed without an answer".into()
            } else {
                format!("the answer was cut after {} bytes", answer.len())
            }));
        }
        answer.pop();
        let payload = conn.session.open(&answer).map_err(|e| RpcError::Forged {
            addr,
            peer,
            reason: e.to_string(),
        })?;
        let answer: Answer<O> = serde_json::from_slice(payload).map_err(|e| RpcError::Garbled {
            addr,
            reason: e.to_string(),
        })?;
        keep(conn);
        answer.map_err(|failure| RpcError::Failed { addr, failure })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
    }
}

/// Answers requests on `listener` with `handle`, one task per connection (any number of calls
/// on it, one after the other), to the endpoint only (authenticated with `keys`); what it
/// refuses goes to `stats`. Aborting the returned task closes every connection.
pub fn serve<Q, O, F, Fut>(
    listener: TcpListener,
    keys: Arc<Keyring>,
    stats: EdgeStats,
    handle: F,
) -> JoinHandle<()>
where
    Q: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Q) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Answer<O>> + Send + 'static,
{
    tokio::spawn(async move {
        // The connections' tasks: aborting the server (dropping the set) ends them too.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let Ok((stream, addr)) = accepted else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let handle = handle.clone();
            let (keys, stats) = (keys.clone(), stats.clone());
            connections.spawn(async move {
                let me = keys.me();
                let _ = stream.set_nodelay(true);
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                let endpoint = |p: Principal| p == Principal::Endpoint;
                let mut session = match auth::accept(&mut reader, &mut write, &keys, endpoint).await
                {
                    Ok(session) => session,
                    Err(AuthError::Closed) => return,
                    Err(e) => {
                        stats.refuse(me, e.reason(), format!("an RPC call from {addr}: {e}"));
                        return;
                    }
                };
                // One call after another on the connection, until the caller closes it or
                // leaves it idle too long.
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let mut limited = (&mut reader).take(MAX_LINE);
                    let read = limited.read_until(b'\n', &mut line);
                    match tokio::time::timeout(SERVE_IDLE, read).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    if line.last() != Some(&b'\n') {
                        let detail = format!("an RPC request from {addr} over {MAX_LINE} bytes");
                        stats.refuse(me, "frame_over_limit", detail);
                        return;
                    }
                    line.pop();
                    let payload = match session.open(&line) {
                        Ok(payload) => payload,
                        Err(e) => {
                            let detail = format!("an RPC request from {addr}: {e}");
                            stats.refuse(me, e.reason(), detail);
                            return;
                        }
                    };
                    let reply = match serde_json::from_slice::<Q>(payload) {
                        Ok(request) => handle(request).await,
                        Err(e) => Err(CallFailure::Malformed {
                            reason: e.to_string(),
                        }),
                    };
                    let mut json = serde_json::to_vec(&reply).unwrap_or_default();
                    if json.len() as u64 + 128 > MAX_LINE {
                        let detail = format!(
                            "an answer of {} bytes is over the {MAX_LINE}-byte limit",
                            json.len()
                        );
                        stats.error(me, "answer_over_limit", &detail);
                        let failure: Answer<O> = Err(CallFailure::TooLarge { what: detail });
                        json = serde_json::to_vec(&failure).unwrap_or_default();
                    }
                    let mut out = Vec::with_capacity(json.len() + 128);
                    session.seal(&json, &mut out);
                    stats.sent(out.len() - 1);
                    if write.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}
