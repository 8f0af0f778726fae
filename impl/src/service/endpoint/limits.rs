//! The endpoint's HTTP/1.1 server and its limits: what keeps slow or greedy clients from
//! holding the endpoint for everyone.
//!
//! - **Connections**: at most [`Limits::max_connections`] open at once. One more is answered
//!   503 with an OperationOutcome and `Retry-After`, and closed (a few such answers at a
//!   time; beyond those, closed at once). A held file descriptor per client is what let
//!   10,010 half-sent requests starve the process before.
//! - **Headers**: a request's line and headers must arrive within
//!   [`Limits::header_timeout`] of the connection opening or of the previous response (so a
//!   kept-alive connection idle that long is closed too). A connection whose request is cut
//!   off that way is closed without an answer: its request was never read.
//! - **Bodies**: a request's whole body must arrive within [`Limits::body_timeout`] of its
//!   headers, or the request is answered 408 with an OperationOutcome and the connection
//!   closed. The clock runs over the whole body, not between reads: a byte every few seconds
//!   does not keep it open.
//! - **Request rate**: each client address (IPv6 by its /64) has a token bucket of
//!   [`RateLimit::burst`] requests refilled at [`RateLimit::per_second`]; a request when it is
//!   empty is answered 429 with `Retry-After` (whole seconds until a token is back) and an
//!   OperationOutcome.
//!
//! Nothing is refused silently: every refusal is counted by reason ([`Gate::report`], shown
//! in `/_dr/status` under `endpoint`) and logged with `tracing`. A refused connection or
//! timed-out request is one log line each; connections over the limit and requests over the
//! rate are logged when the refusing starts and, with their count, when it stops, so that a
//! flood does not become a flood of log lines too.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::response::{retry_after, Outcome};
use drcheck_fhir::outcome::FhirError;

/// Connections open at once by default: well under the usual file-descriptor limits, with
/// room for the endpoint's own connections to the processes.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long a request's headers may take by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take by default (1 MiB, the largest, at 35 KB/s).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests a second per client address by default: far above what one well-behaved client
/// sends, well below what the endpoint can serve.
pub const DEFAULT_RATE: f64 = 1000.0;

/// The largest connection limit taken.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// The longest timeout taken.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The highest request rate taken, and the largest burst.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The lowest request rate taken (one request every 100 s).
pub const MIN_RATE: f64 = 0.01;

/// How many over-the-limit connections are answered 503 at once; the others are closed
/// without an answer (each answer holds a file descriptor for up to [`REFUSAL_TIME`]).
const REFUSING_AT_ONCE: usize = 64;
/// How long answering an over-the-limit connection may take.
const REFUSAL_TIME: Duration = Duration::from_secs(1);
/// How long a stopping server waits for its open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long the accept loop waits after an error other than a client giving up (out of
/// file descriptors, say) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The endpoint's limits (`drcheck serve --max-connections`, `--header-timeout`,
/// `--body-timeout`, `--rate-limit`, `--rate-burst`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A request's line and headers must arrive within this long of the connection opening
    /// or of the previous response, or the connection is closed (`None`: no limit).
    pub header_timeout: Option<Duration>,
    /// A request's whole body must arrive within this long of its headers, or it is
    /// answered 408 and the connection closed (`None`: no limit).
    pub body_timeout: Option<Duration>,
    /// Requests per client address (`None`: no limit).
    pub rate: Option<RateLimit>,
}

/// A token bucket per client address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests a second, sustained.
    pub per_second: f64,
    /// Requests at once after a quiet spell (the bucket's size).
    pub burst: u32,
}

impl RateLimit {
    /// `per_second`, with bursts of twice as many (at least 1).
    pub fn new(per_second: f64) -> RateLimit {
        let burst = (per_second * 2.0).ceil().clamp(1.0, MAX_RATE) as u32;
        RateLimit { per_second, burst }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Some(DEFAULT_HEADER_TIMEOUT),
            body_timeout: Some(DEFAULT_BODY_TIMEOUT),
            rate: Some(RateLimit::new(DEFAULT_RATE)),
        }
    }
}

/// A limit out of range, named by `drcheck serve`'s flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitsError {
    /// The connection limit.
    #[error("--max-connections must be from 1 to {MAX_CONNECTIONS}, not {0}")]
    Connections(usize),
    /// A timeout (which one, and its value in seconds).
    #[error("{0} must be more than 0 s and at most {max} s (0 turns it off), not {1} s", max = MAX_TIMEOUT.as_secs())]
    Timeout(&'static str, f64),
    /// The request rate.
    #[error("--rate-limit must be from {MIN_RATE} to {MAX_RATE} requests a second (0 turns it off), not {0}")]
    Rate(f64),
    /// The burst.
    #[error("--rate-burst must be from 1 to {MAX_RATE}, not {0}")]
    Burst(u32),
}

impl Limits {
    /// Checks every limit is in range.
    pub fn check(&self) -> Result<(), LimitsError> {
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(LimitsError::Connections(self.max_connections));
        }
        for (flag, timeout) in [
            ("--header-timeout", self.header_timeout),
            ("--body-timeout", self.body_timeout),
        ] {
            if let Some(t) = timeout {
                if t.is_zero() || t > MAX_TIMEOUT {
                    return Err(LimitsError::Timeout(flag, t.as_secs_f64()));
                }
            }
        }
        if let Some(rate) = self.rate {
            if !rate.per_second.is_finite() || !(MIN_RATE..=MAX_RATE).contains(&rate.per_second) {
                return Err(LimitsError::Rate(rate.per_second));
            }
            if rate.burst == 0 || f64::from(rate.burst) > MAX_RATE {
                return Err(LimitsError::Burst(rate.burst));
            }
        }
        Ok(())
    }
}

/// `d` in seconds as a person writes them (`10`, `0.25`).
fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let within = |t: Option<Duration>| match t {
            Some(t) => format!("within {} s", seconds(t)),
            None => "without a time limit".to_string(),
        };
        write!(
            f,
            "{} connections; headers {}, bodies {}; ",
            self.max_connections,
            within(self.header_timeout),
            within(self.body_timeout)
        )?;
        match self.rate {
            Some(r) => write!(
                f,
                "{} requests/s per client address (bursts of {})",
                r.per_second, r.burst
            ),
            None => f.write_str("no request-rate limit"),
        }
    }
}

/// What the endpoint refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// Connections over the connection limit (answered 503 or closed).
    pub connection_limit: u64,
    /// Connections closed because a request's headers did not arrive in time.
    pub header_timeout: u64,
    /// Requests answered 408 because their body did not arrive in time.
    pub body_timeout: u64,
    /// Requests answered 429 because their client was over its rate.
    pub rate_limited: u64,
}

/// The endpoint's limits and what they refused, for the status API.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitReport {
    /// Connections open now.
    pub open_connections: usize,
    /// The connection limit.
    pub max_connections: usize,
    /// The header timeout in seconds (`None`: off).
    pub header_timeout_seconds: Option<f64>,
    /// The body timeout in seconds (`None`: off).
    pub body_timeout_seconds: Option<f64>,
    /// Requests a second per client address (`None`: off).
    pub rate_limit_per_second: Option<f64>,
    /// The burst per client address (`None`: off).
    pub rate_burst: Option<u32>,
    /// What was refused, by reason.
    pub refused: Refusals,
    /// Connections the listener could not accept (out of file descriptors, say).
    pub accept_errors: u64,
}

#[derive(Default)]
struct Counts {
    connection_limit: AtomicU64,
    header_timeout: AtomicU64,
    body_timeout: AtomicU64,
    rate_limited: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump(count: &AtomicU64) {
    count.fetch_add(1, Ordering::Relaxed);
}

/// The limits at work: the connection slots, the clients' token buckets, the counts.
pub struct Gate {
    limits: Limits,
    connections: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    rate: Option<TokenBuckets>,
    counts: Counts,
    /// Connections refused since one was last admitted.
    refused_run: AtomicU64,
    /// The 503 sent to a connection over the limit, whole.
    over_limit_answer: Bytes,
}

impl Gate {
    /// The gate of an endpoint with `limits`.
    pub fn new(limits: Limits) -> Result<Arc<Gate>, LimitsError> {
        limits.check()?;
        let outcome = FhirError::unavailable(format!(
            "the endpoint is serving its limit of {} connections; retry later",
            limits.max_connections
        ))
        .operation_outcome()
        .to_string();
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{outcome}",
            super::response::FHIR_JSON,
            outcome.len()
        );
        Ok(Arc::new(Gate {
            limits,
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            refusing: Arc::new(Semaphore::new(REFUSING_AT_ONCE)),
            rate: limits.rate.map(TokenBuckets::new),
            counts: Counts::default(),
            refused_run: AtomicU64::new(0),
            over_limit_answer: Bytes::from(answer),
        }))
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The limits, the connections open and what was refused so far.
    pub fn report(&self) -> LimitReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LimitReport {
            open_connections: self
                .limits
                .max_connections
                .saturating_sub(self.connections.available_permits()),
            max_connections: self.limits.max_connections,
            header_timeout_seconds: self.limits.header_timeout.map(seconds),
            body_timeout_seconds: self.limits.body_timeout.map(seconds),
            rate_limit_per_second: self.limits.rate.map(|r| r.per_second),
            rate_burst: self.limits.rate.map(|r| r.burst),
            refused: Refusals {
                connection_limit: load(&self.counts.connection_limit),
                header_timeout: load(&self.counts.header_timeout),
                body_timeout: load(&self.counts.body_timeout),
                rate_limited: load(&self.counts.rate_limited),
            },
            accept_errors: load(&self.counts.accept_errors),
        }
    }

    /// An error from `accept`: a client that gave up first is nothing; anything else (out
    /// of file descriptors, say) is logged and counted, and the loop waits a little.
    async fn accept_failed(&self, e: &std::io::Error) {
        use std::io::ErrorKind as K;
        if matches!(
            e.kind(),
            K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
        ) {
            return;
        }
        bump(&self.counts.accept_errors);
        tracing::error!(error = %e, "endpoint: cannot accept a connection; trying again shortly");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }

    /// A connection over the limit: answered 503 and closed, or closed at once while many
    /// such answers are under way.
    fn refuse_connection(&self, mut stream: TcpStream, peer: SocketAddr) {
        bump(&self.counts.connection_limit);
        if self.refused_run.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                %peer,
                max_connections = self.limits.max_connections,
                "endpoint: refused (connection_limit): at the connection limit, new connections \
                 are answered 503 and closed"
            );
        }
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // dropping the stream closes it
        };
        let answer = self.over_limit_answer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_TIME, async {
                stream.write_all(&answer).await?;
                stream.shutdown().await?;
                // Read what the client sent until it closes: closing with its request unread
                // would reset the connection, and the client could lose the answer.
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<(), std::io::Error>(())
            })
            .await;
        });
    }

    /// A connection was admitted: the end of a run of refusals, if there was one.
    fn connection_admitted(&self) {
        let refused = self.refused_run.swap(0, Ordering::Relaxed);
        if refused > 0 {
            tracing::warn!(
                refused,
                "endpoint: below the connection limit again; {refused} connection(s) were \
                 refused (503) meanwhile"
            );
        }
    }

    fn header_timed_out(&self, peer: SocketAddr) {
        bump(&self.counts.header_timeout);
        let timeout = self.limits.header_timeout.map_or(0.0, seconds);
        tracing::warn!(
            %peer,
            timeout_seconds = timeout,
            "endpoint: refused (header_timeout): no whole request head within {timeout} s; \
             connection closed"
        );
    }

    /// 429 if `peer`'s bucket is empty.
    fn over_rate(&self, peer: SocketAddr) -> Option<Response<Body>> {
        let rate = self.rate.as_ref()?;
        let client = client_key(peer.ip());
        match rate.take(client, Instant::now()) {
            Verdict::Allowed { refused_before } => {
                if refused_before > 0 {
                    tracing::warn!(
                        %client,
                        refused = refused_before,
                        "endpoint: client back under its rate; {refused_before} request(s) were \
                         refused (429) meanwhile"
                    );
                }
                None
            }
            Verdict::Refused { wait, first } => {
                bump(&self.counts.rate_limited);
                let limit = rate.limit;
                if first {
                    tracing::warn!(
                        %client,
                        per_second = limit.per_second,
                        burst = limit.burst,
                        "endpoint: refused (rate_limited): client over its rate; its requests \
                         are answered 429 until it slows down"
                    );
                }
                let wait_seconds = wait
                    .as_secs_f64()
                    .ceil()
                    .clamp(1.0, MAX_TIMEOUT.as_secs_f64());
                let e = FhirError::throttled(format!(
                    "more than {} requests a second (bursts of {}) from {client}; retry after {} s",
                    limit.per_second, limit.burst, wait_seconds
                ));
                Some(retry_after(e, wait_seconds as u64))
            }
        }
    }

    fn body_timed_out(&self, peer: SocketAddr, limit: Duration, what: &str) -> Response<Body> {
        bump(&self.counts.body_timeout);
        let timeout = seconds(limit);
        tracing::warn!(
            %peer,
            request = what,
            timeout_seconds = timeout,
            "endpoint: refused (body_timeout): the body did not arrive within {timeout} s; \
             answered 408, connection closed"
        );
        let e = FhirError::new(
            408,
            "timeout",
            format!("the request body did not arrive within {timeout} s"),
        );
        let mut response = Outcome(e).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// One request: the rate limit, then the router with the body on the clock.
    async fn handle(
        self: Arc<Self>,
        router: TowerToHyperService<Router>,
        peer: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        if let Some(refused) = self.over_rate(peer) {
            return Ok(refused);
        }
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(self.clone());
        let limit = match self.limits.body_timeout {
            Some(limit) if !body.is_end_stream() => limit,
            _ => {
                return router
                    .call(Request::from_parts(parts, Body::new(body)))
                    .await
            }
        };
        let what = format!("{} {}", parts.method, parts.uri.path());
        let expired = Arc::new(AtomicBool::new(false));
        let body = Deadline {
            inner: body,
            timer: Box::pin(tokio::time::sleep(limit)),
            expired: expired.clone(),
        };
        let response = router
            .call(Request::from_parts(parts, Body::new(body)))
            .await?;
        if expired.load(Ordering::Relaxed) {
            // Whatever the handler made of the missing body, the client gets why.
            return Ok(self.body_timed_out(peer, limit, &what));
        }
        Ok(response)
    }
}

/// The key of a client's bucket: its IPv4 address, or its IPv6 /64 (one host may hold a
/// whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why the request body failed: it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

/// A request body that must arrive whole before its timer runs out; after that it fails
/// with [`BodyTimedOut`] and says so in `expired`.
struct Deadline<B> {
    inner: B,
    timer: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = &mut *self;
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a client's bucket says of one more request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    /// Served; `refused_before` requests of this client were refused since the last one
    /// served.
    Allowed { refused_before: u64 },
    /// Refused: a token is back after `wait`; `first` of a run of refusals.
    Refused { wait: Duration, first: bool },
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Requests refused since the last one served.
    refused: u64,
}

/// A token bucket per client, forgotten once full again (a full bucket is the same as none).
struct TokenBuckets {
    limit: RateLimit,
    state: Mutex<BucketMap>,
}

struct BucketMap {
    buckets: HashMap<IpAddr, Bucket>,
    /// Full buckets are dropped when the map reaches this size.
    prune_at: usize,
}

/// The map is pruned no sooner than at this size.
const MIN_PRUNE: usize = 4096;

impl TokenBuckets {
    fn new(limit: RateLimit) -> TokenBuckets {
        TokenBuckets {
            limit,
            state: Mutex::new(BucketMap {
                buckets: HashMap::new(),
                prune_at: MIN_PRUNE,
            }),
        }
    }

    /// `bucket`'s tokens at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst))
    }

    /// Takes a token from `client`'s bucket at `now`, if it holds one.
    fn take(&self, client: IpAddr, now: Instant) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.buckets.len() >= state.prune_at {
            self.prune(&mut state.buckets, now);
            state.prune_at = (state.buckets.len() * 2).max(MIN_PRUNE);
        }
        let burst = f64::from(self.limit.burst);
        let bucket = state.buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
            refused: 0,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            let refused_before = std::mem::take(&mut bucket.refused);
            Verdict::Allowed { refused_before }
        } else {
            bucket.refused += 1;
            Verdict::Refused {
                wait: Duration::from_secs_f64((1.0 - bucket.tokens) / self.limit.per_second),
                first: bucket.refused == 1,
            }
        }
    }

    /// Forgets the buckets that are full again.
    fn prune(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let burst = f64::from(self.limit.burst);
        buckets.retain(|client, bucket| {
            let keep = self.refilled(bucket, now) < burst;
            if !keep && bucket.refused > 0 {
                tracing::warn!(
                    %client,
                    refused = bucket.refused,
                    "endpoint: client quiet again; {} request(s) were refused (429) before",
                    bucket.refused
                );
            }
            keep
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .buckets
            .len()
    }
}

/// Serves `router` on `listener` within `gate`'s limits until `shutdown` resolves; then
/// stops accepting, lets open connections finish their request (for up to
/// [`SHUTDOWN_GRACE`]) and returns. Requests carry the gate as an extension (the status API
/// shows its [`Gate::report`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(gate.limits.header_timeout);
    let router = TowerToHyperService::new(router);
    let (stop, stopping) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                gate.accept_failed(&e).await;
                continue;
            }
        };
        let Ok(permit) = gate.connections.clone().try_acquire_owned() else {
            gate.refuse_connection(stream, peer);
            continue;
        };
        gate.connection_admitted();
        tokio::spawn(connection(
            gate.clone(),
            router.clone(),
            builder.clone(),
            (stream, peer),
            permit,
            stopping.clone(),
        ));
    }
    drop(listener);
    stop.send_replace(());
    let all = u32::try_from(gate.limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, gate.connections.acquire_many(all)).await;
}

/// Serves one connection, holding its slot until it closes.
async fn connection(
    gate: Arc<Gate>,
    router: TowerToHyperService<Router>,
    builder: http1::Builder,
    (stream, peer): (TcpStream, SocketAddr),
    _slot: OwnedSemaphorePermit,
    mut stopping: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let service = {
        let gate = gate.clone();
        hyper::service::service_fn(move |request| {
            gate.clone().handle(router.clone(), peer, request)
        })
    };
    let watched = Watched::new(stream);
    let traffic = watched.traffic.clone();
    let conn = builder.serve_connection(TokioIo::new(watched), service);
    let mut conn = std::pin::pin!(conn);
    let mut asked_to_stop = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = stopping.changed(), if !asked_to_stop => {
                asked_to_stop = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    match result {
        Ok(()) => {}
        // hyper's header timer also closes a kept-alive connection that sends no next
        // request: that is no refusal.
        Err(e) if e.is_timeout() && traffic.idle() => {}
        Err(e) if e.is_timeout() => gate.header_timed_out(peer),
        Err(e) => tracing::debug!(%peer, error = %e, "endpoint: connection ended with an error"),
    }
}

/// What went over a connection, as far as telling an idle one from a slow one goes.
#[derive(Default)]
struct Traffic {
    /// Bytes went out (a response).
    wrote: AtomicBool,
    /// Bytes came in since bytes last went out.
    read_since_write: AtomicBool,
}

impl Traffic {
    /// Idle: it was answered, and nothing came in since.
    fn idle(&self) -> bool {
        self.wrote.load(Ordering::Relaxed) && !self.read_since_write.load(Ordering::Relaxed)
    }
}

/// A connection's socket, keeping its [`Traffic`].
struct Watched {
    stream: TcpStream,
    traffic: Arc<Traffic>,
}

impl Watched {
    fn new(stream: TcpStream) -> Watched {
        Watched {
            stream,
            traffic: Arc::default(),
        }
    }

    fn wrote(&self, result: &Poll<std::io::Result<usize>>) {
        if matches!(result, Poll::Ready(Ok(n)) if *n > 0) {
            self.traffic.wrote.store(true, Ordering::Relaxed);
            self.traffic
                .read_since_write
                .store(false, Ordering::Relaxed);
        }
    }
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.traffic.read_since_write.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
