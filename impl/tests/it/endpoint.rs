//! The global endpoint in one process, in front of fake region and control-plane processes
//! (answering over the real RPC): which check answers first (the operator token before the
//! body, the body before the control plane), and how the routing cache is used, refreshed
//! and dropped (one retry on a stale routing, a fresh routing when the cached primary is
//! unreachable). `tests/fhir_errors.rs` and `tests/serve_e2e.rs` cover the same endpoint in
//! front of real processes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drcheck_fhir::region::{Failure, FhirInput, FhirOutput};
use drcheck_impl::auth::{EdgeStats, Keyring, Principal, Secret};
use drcheck_impl::protocol::control::Routing;
use drcheck_impl::protocol::control::{ControlInput, ControlOutput, ControlSnapshot, Phase};
use drcheck_impl::protocol::event::Refusal;
use drcheck_impl::service::endpoint::limits::{serve, Gate, Limits};
use drcheck_impl::service::endpoint::{router, ControlProcess, EndpointConfig, Fault, Faults};
use drcheck_impl::service::http::{self, Response};
use drcheck_impl::service::rpc::{self, Answer, ControlAnswer, ControlCall, RegionCall};
use tokio::net::TcpListener;

const TOKEN: &str = "the-token";

/// `who`'s keys in the one deployment of this file's fakes and endpoints.
fn keys(who: Principal) -> Arc<Keyring> {
    static SECRET: std::sync::OnceLock<Secret> = std::sync::OnceLock::new();
    let secret = SECRET.get_or_init(|| Secret::generate().expect("a secret"));
    Arc::new(secret.keyring(who, 3))
}
const TEST_LIMIT: Duration = Duration::from_secs(30);

/// An address nothing listens on.
async fn dead_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn serve_endpoint(cfg: EndpointConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Served as `drcheck serve` serves it: within the default limits.
    let gate = Gate::new(Limits::default()).expect("the default limits");
    tokio::spawn(serve(listener, router(cfg), gate, std::future::pending()));
    addr
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    tokio::time::timeout(TEST_LIMIT, http::request(addr, method, path, headers, body))
        .await
        .expect("the endpoint answers in time")
        .expect("the endpoint answers")
}

fn code(response: &Response) -> String {
    let body = response
        .json()
        .unwrap_or_else(|e| panic!("{e}: {}", response.text()));
    assert_eq!(
        body["resourceType"],
        "OperationOutcome",
        "{}",
        response.text()
    );
    body["issue"][0]["code"].as_str().unwrap().to_string()
}

fn assert_outcome(response: &Response, status: u16, expected: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.text());
    assert_eq!(code(response), expected, "{what}");
}

fn assert_unauthorized(response: &Response, what: &str) {
    assert_outcome(response, 401, "security", what);
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some("Bearer"),
        "{what}"
    );
    assert_eq!(
        response.header("Content-Type"),
        Some("application/fhir+json; charset=utf-8"),
        "{what}"
    );
}

/// Faults that only say which regions run.
struct Running(Vec<AtomicBool>);

impl Faults for Running {
    fn inject(
        &self,
        fault: Fault,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
        Box::pin(async move { Ok(format!("{fault:?}")) })
    }
    fn running(&self, region: u8) -> bool {
        self.0[usize::from(region)].load(Ordering::SeqCst)
    }
    fn partitioned(&self) -> bool {
        false
    }
    fn isolated(&self, _: u8) -> bool {
        false
    }
    fn pids(&self) -> Vec<Option<u32>> {
        vec![None; self.0.len()]
    }
    fn control(&self) -> ControlProcess {
        ControlProcess::default()
    }
}

#[tokio::test]
async fn the_operator_token_is_checked_before_the_body_and_the_body_before_the_control_plane() {
    let endpoint = serve_endpoint(EndpointConfig {
        control: dead_address().await,
        regions: vec![],
        token: TOKEN.to_string(),
        fhir_token: None,
        faults: None,
        keys: keys(Principal::Endpoint),
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let json = ("Content-Type", "application/json");
    let good = ("Authorization", bearer.as_str());
    let garbage = b"{not json";

    for (method, path) in [
        ("POST", "/_dr/failback"),
        ("POST", "/_dr/force-failover"),
        ("POST", "/_dr/reapply"),
        ("POST", "/_dr/fault"),
        ("GET", "/_dr/quarantine"),
    ] {
        let what = format!("{method} {path}");
        let none = send(endpoint, method, path, &[json], garbage).await;
        assert_unauthorized(&none, &format!("{what} without a token, malformed body"));
        for wrong in [
            "Bearer nope",
            "bearer the-token",
            "the-token",
            "Bearer  the-token",
        ] {
            let response = send(
                endpoint,
                method,
                path,
                &[json, ("Authorization", wrong)],
                garbage,
            )
            .await;
            assert_unauthorized(&response, &format!("{what} with {wrong:?}"));
        }
    }

    // With the token: the body is read before the control plane is asked.
    for path in ["/_dr/failback", "/_dr/force-failover", "/_dr/reapply"] {
        let response = send(endpoint, "POST", path, &[json, good], garbage).await;
        assert_outcome(&response, 400, "invalid", path);
    }
    let refused = send(
        endpoint,
        "POST",
        "/_dr/failback",
        &[json, good],
        br#"{"target":1}"#,
    )
    .await;
    assert_outcome(&refused, 503, "transient", "failback with no control plane");
    assert_eq!(refused.header("Retry-After"), Some("1"));

    // An endpoint that runs no processes refuses faults before it reads the body.
    let fault = send(endpoint, "POST", "/_dr/fault", &[json, good], garbage).await;
    assert_outcome(&fault, 409, "business-rule", "fault without processes");

    let quarantine = send(endpoint, "GET", "/_dr/quarantine", &[good], b"").await;
    assert_eq!(quarantine.status, 200, "{}", quarantine.text());
    assert_eq!(quarantine.header("Content-Type"), Some("application/json"));
    assert_eq!(
        quarantine.json().unwrap(),
        serde_json::json!({ "quarantine": [], "unanswered": [] })
    );

    // The status API needs no token.
    let status = send(endpoint, "GET", "/_dr/status", &[], b"").await;
    assert_outcome(&status, 503, "transient", "status with no control plane");

    // FHIR: the type, id and body are checked before any process is asked.
    let fhir = ("Content-Type", "application/fhir+json");
    let patient = br#"{"resourceType":"Patient"}"#;
    for (what, method, path, headers, body, status, expected) in [
        (
            "unknown type",
            "POST",
            "/Nope",
            vec![fhir],
            &garbage[..],
            404,
            "not-found",
        ),
        (
            "no media type",
            "POST",
            "/Patient",
            vec![],
            &patient[..],
            415,
            "not-supported",
        ),
        (
            "wrong media type",
            "POST",
            "/Patient",
            vec![("Content-Type", "text/plain")],
            &patient[..],
            415,
            "not-supported",
        ),
        (
            "malformed JSON",
            "POST",
            "/Patient",
            vec![fhir],
            &garbage[..],
            400,
            "invalid",
        ),
        (
            "bad id",
            "GET",
            "/Patient/a$b",
            vec![],
            &b""[..],
            400,
            "invalid",
        ),
        (
            "bad If-Match",
            "PUT",
            "/Patient/a",
            vec![("If-Match", "W/7")],
            &patient[..],
            400,
            "invalid",
        ),
        (
            "bad version id",
            "GET",
            "/Patient/a/_history/x",
            vec![],
            &b""[..],
            400,
            "invalid",
        ),
        (
            "no such endpoint",
            "GET",
            "/a/b/c/d/e",
            vec![],
            &b""[..],
            404,
            "not-found",
        ),
        (
            "no process to ask",
            "POST",
            "/Patient",
            vec![fhir],
            &patient[..],
            503,
            "transient",
        ),
        (
            "no process to read",
            "GET",
            "/Patient/a",
            vec![],
            &b""[..],
            503,
            "transient",
        ),
    ] {
        let response = send(endpoint, method, path, &headers, body).await;
        assert_outcome(&response, status, expected, what);
    }
    for (path, allow) in [
        ("/Patient", "POST"),
        ("/Patient/a", "GET, PUT, DELETE"),
        ("/Patient/a/_history", "GET"),
        ("/Patient/a/_history/1", "GET"),
        ("/metadata", "GET"),
        ("/_dr/status", "GET"),
        ("/_dr/quarantine", "GET"),
        ("/_dr/failback", "POST"),
        ("/_dr/force-failover", "POST"),
        ("/_dr/reapply", "POST"),
        ("/_dr/fault", "POST"),
    ] {
        let response = send(endpoint, "PATCH", path, &[fhir], b"{}").await;
        assert_outcome(&response, 405, "not-supported", path);
        assert_eq!(response.header("Allow"), Some(allow), "{path}");
    }
    let metadata = send(endpoint, "GET", "/metadata", &[], b"").await;
    assert_eq!(metadata.status, 200);
    assert_eq!(
        metadata.json().unwrap()["resourceType"],
        "CapabilityStatement"
    );
}

/// A fake control plane: every snapshot routes to `primary` (compute there too).
struct FakeControl {
    primary: AtomicU8,
    snapshots: AtomicUsize,
}

/// A fake region: reads find nothing and writes conflict, or, while `stale`, both are
/// refused as not the data primary.
struct FakeRegion {
    stale: AtomicBool,
    calls: AtomicUsize,
}

fn failure(status: u16, code: &str, refusal: Option<Refusal>) -> Failure {
    Failure {
        status,
        code: code.to_string(),
        diagnostics: format!("fake {code}"),
        retry_after: Some(7),
        refusal,
    }
}

async fn fake_control(control: Arc<FakeControl>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = EdgeStats::default();
    rpc::serve(
        listener,
        keys(Principal::Control),
        stats,
        move |call: ControlCall| {
            let control = control.clone();
            async move {
                let input = match call {
                    ControlCall::Machine(input) => input,
                    ControlCall::Edge => return Ok(ControlAnswer::Edge(Default::default())),
                };
                let answer: Answer<ControlOutput> = Ok(match input {
                    ControlInput::Snapshot => {
                        control.snapshots.fetch_add(1, Ordering::SeqCst);
                        let primary = control.primary.load(Ordering::SeqCst);
                        ControlOutput::Snapshot(Box::new(ControlSnapshot {
                            routing: Routing {
                                epoch: 1,
                                primary,
                                compute: primary,
                                home: 0,
                            },
                            phase: Phase::Normal,
                            failed: vec![false; 3],
                            silence: vec![0; 3],
                            reported_len: vec![None; 3],
                            primary_in_sync: Vec::new(),
                            old_prefix: None,
                            grant_age: 0,
                        }))
                    }
                    _ => ControlOutput::Operator(Ok(())),
                });
                answer.map(ControlAnswer::Machine)
            }
        },
    );
    addr
}

async fn fake_region(r: u8, region: Arc<FakeRegion>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = EdgeStats::default();
    rpc::serve(
        listener,
        keys(Principal::Region(r)),
        stats,
        move |call: RegionCall| {
            let region = region.clone();
            async move {
                region.calls.fetch_add(1, Ordering::SeqCst);
                let stale = region.stale.load(Ordering::SeqCst);
                let refused = || failure(503, "transient", Some(Refusal::NotPrimary));
                let answer: Answer<FhirOutput> = Ok(match call {
                    RegionCall::Machine(FhirInput::Read { .. }) if stale => {
                        FhirOutput::Read(Err(refused()))
                    }
                    RegionCall::Machine(FhirInput::Read { .. }) => FhirOutput::Read(Ok(vec![])),
                    RegionCall::Machine(FhirInput::Write { .. }) if stale => {
                        FhirOutput::Written(Err(refused()))
                    }
                    RegionCall::Machine(FhirInput::Write { .. }) => {
                        FhirOutput::Written(Err(failure(409, "conflict", None)))
                    }
                    other => panic!("the endpoint asked a fake region {other:?}"),
                });
                answer
            }
        },
    );
    addr
}

#[tokio::test]
async fn the_routing_is_cached_refreshed_once_on_a_stale_primary_and_dropped_when_unreachable() {
    let control = Arc::new(FakeControl {
        primary: AtomicU8::new(0),
        snapshots: AtomicUsize::new(0),
    });
    let regions: Vec<Arc<FakeRegion>> = (0..2)
        .map(|_| {
            Arc::new(FakeRegion {
                stale: AtomicBool::new(false),
                calls: AtomicUsize::new(0),
            })
        })
        .collect();
    let running = Arc::new(Running((0..3).map(|_| AtomicBool::new(true)).collect()));
    let mut addrs = Vec::new();
    for (r, region) in regions.iter().enumerate() {
        addrs.push(fake_region(r as u8, region.clone()).await);
    }
    // Region 2 is "running" but nothing answers there.
    addrs.push(dead_address().await);
    let endpoint = serve_endpoint(EndpointConfig {
        control: fake_control(control.clone()).await,
        regions: addrs,
        token: TOKEN.to_string(),
        fhir_token: None,
        faults: Some(running.clone()),
        keys: keys(Principal::Endpoint),
    })
    .await;

    let snapshots = || control.snapshots.load(Ordering::SeqCst);
    let calls = |r: usize| regions[r].calls.load(Ordering::SeqCst);
    let route_to = |r: u8| control.primary.store(r, Ordering::SeqCst);
    let stale = |r: usize, on: bool| regions[r].stale.store(on, Ordering::SeqCst);
    let up = |r: usize, on: bool| running.0[r].store(on, Ordering::SeqCst);
    let read = || send(endpoint, "GET", "/Patient/a", &[], b"");
    let fhir = [("Content-Type", "application/fhir+json")];
    let create = || {
        send(
            endpoint,
            "POST",
            "/Patient",
            &fhir,
            br#"{"resourceType":"Patient"}"#,
        )
    };
    let not_found =
        |response: &Response, what: &str| assert_outcome(response, 404, "not-found", what);

    // Nothing cached: the control plane is asked once, then the routing is kept.
    not_found(&read().await, "first read");
    not_found(&read().await, "second read");
    assert_eq!((snapshots(), calls(0)), (1, 2));

    // The cached primary refuses as stale: asked again, and sent once more.
    stale(0, true);
    let refused = read().await;
    assert_outcome(&refused, 503, "transient", "a read refused twice");
    assert_eq!(refused.header("Retry-After"), Some("7"));
    assert_eq!((snapshots(), calls(0)), (2, 4));
    // A read refused twice keeps the routing it was refused by.
    let _ = read().await;
    assert_eq!((snapshots(), calls(0)), (3, 6));

    // The control plane moved the primary: one retry reaches it, and it is cached.
    route_to(1);
    not_found(&read().await, "a read after the primary moved");
    assert_eq!((snapshots(), calls(0), calls(1)), (4, 7, 1));
    not_found(&read().await, "a read by the new routing");
    assert_eq!((snapshots(), calls(1)), (4, 2));

    // Writes: a non-stale failure is answered as it is, with its Retry-After.
    let conflict = create().await;
    assert_outcome(&conflict, 409, "conflict", "a conflicting write");
    assert_eq!(conflict.header("Retry-After"), Some("7"));
    assert_eq!((snapshots(), calls(1)), (4, 3));
    // A write refused twice drops the routing: the next request asks the control plane.
    stale(1, true);
    assert_outcome(&create().await, 503, "transient", "a write refused twice");
    assert_eq!((snapshots(), calls(1)), (5, 5));
    stale(1, false);
    not_found(&read().await, "a read after the routing was dropped");
    assert_eq!((snapshots(), calls(1)), (6, 6));

    // The cached primary is down (by the processes): a fresh routing without asking it.
    up(1, false);
    route_to(0);
    stale(0, false);
    not_found(&read().await, "a read with the cached primary down");
    assert_eq!((snapshots(), calls(0), calls(1)), (7, 8, 6));
    // Down in the fresh routing too: 503, and nothing asked.
    up(0, false);
    let down = read().await;
    assert_outcome(&down, 503, "transient", "every primary down");
    assert_eq!(down.header("Retry-After"), Some("1"));
    assert_eq!((snapshots(), calls(0), calls(1)), (8, 8, 6));
    up(0, true);
    up(1, true);

    // A primary that cannot be reached drops the routing, for reads and writes.
    route_to(2);
    not_found(&read().await, "a read by the cached routing");
    assert_eq!(snapshots(), 8);
    stale(0, true);
    let unreachable = create().await;
    assert_outcome(
        &unreachable,
        503,
        "transient",
        "a write to an unreachable primary",
    );
    assert_eq!(unreachable.header("Retry-After"), Some("1"));
    assert_eq!(snapshots(), 9);
    assert_outcome(
        &read().await,
        503,
        "transient",
        "a read of an unreachable primary",
    );
    assert_eq!(snapshots(), 10);
    assert_outcome(
        &read().await,
        503,
        "transient",
        "a read of an unreachable primary",
    );
    assert_eq!(snapshots(), 11);

    // An operator request drops the routing whatever the answer.
    route_to(1);
    stale(0, false);
    not_found(&read().await, "a read after the primary moved back");
    assert_eq!(snapshots(), 12);
    let bearer = format!("Bearer {TOKEN}");
    let failback = send(
        endpoint,
        "POST",
        "/_dr/failback",
        &[("Authorization", &bearer)],
        br#"{"target":1}"#,
    )
    .await;
    assert_eq!(failback.status, 200, "{}", failback.text());
    assert_eq!(
        failback.json().unwrap(),
        serde_json::json!({ "accepted": true, "target": 1 })
    );
    not_found(&read().await, "a read after an operator request");
    assert_eq!(snapshots(), 13);
}

#[tokio::test]
async fn the_endpoint_s_kept_rpc_connections_survive_a_restart_of_the_process() {
    let counter = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = |listener: TcpListener, counter: Arc<AtomicUsize>| {
        rpc::serve(
            listener,
            keys(Principal::Control),
            EdgeStats::default(),
            move |_: ControlInput| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, rpc::CallFailure>(n) }
            },
        )
    };
    let server = serve(listener, counter.clone());
    let client = rpc::Client::new(keys(Principal::Endpoint));
    let ask = || {
        client.call::<_, usize>(
            addr,
            Principal::Control,
            &ControlInput::Snapshot,
            TEST_LIMIT,
        )
    };
    // Several calls, on one kept connection.
    for n in 0..5 {
        assert_eq!(ask().await.unwrap(), n);
    }
    // The process stops (its connections close) and starts again on the same port: the
    // kept connection is seen closed, and the next call goes on a new one.
    server.abort();
    let _ = server.await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let _server = serve(listener, counter.clone());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(ask().await.unwrap(), 5);
    // A caller with another deployment's keys is refused; the answer is never believed.
    let stranger = rpc::Client::new(Arc::new(
        Secret::generate().unwrap().keyring(Principal::Endpoint, 3),
    ));
    let refused = stranger
        .call::<_, usize>(
            addr,
            Principal::Control,
            &ControlInput::Snapshot,
            TEST_LIMIT,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(counter.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn with_a_fhir_token_every_fhir_request_must_show_it_but_metadata_and_the_dr_api() {
    let fhir_token = "the-fhir-token";
    let endpoint = serve_endpoint(EndpointConfig {
        control: dead_address().await,
        regions: vec![],
        token: TOKEN.to_string(),
        fhir_token: Some(fhir_token.to_string()),
        faults: None,
        keys: keys(Principal::Endpoint),
    })
    .await;
    let json = ("Content-Type", "application/fhir+json");
    let patient = br#"{"resourceType":"Patient"}"#;
    let requests: [(&str, &str, &[u8]); 5] = [
        ("GET", "/Patient/1", b""),
        ("POST", "/Patient", patient),
        ("PUT", "/Patient/1", patient),
        ("DELETE", "/Patient/1", b""),
        ("GET", "/Patient/1/_history", b""),
    ];
    let operator = format!("Bearer {TOKEN}");
    for (method, path, body) in requests {
        let what = format!("{method} {path}");
        let none = send(endpoint, method, path, &[json], body).await;
        assert_outcome(&none, 401, "security", &format!("{what} without a token"));
        assert_eq!(
            none.header("WWW-Authenticate"),
            Some(r#"Bearer realm="drcheck""#),
            "{what}"
        );
        // Neither a wrong token nor the operator's opens the FHIR API.
        for wrong in ["Bearer nope", operator.as_str()] {
            let response = send(
                endpoint,
                method,
                path,
                &[json, ("Authorization", wrong)],
                body,
            )
            .await;
            assert_outcome(
                &response,
                401,
                "security",
                &format!("{what} with {wrong:?}"),
            );
            let challenge = response.header("WWW-Authenticate").unwrap_or_default();
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{what}: {challenge}"
            );
        }
        // With the token the request gets past the check (to the dead control plane).
        let bearer = format!("Bearer {fhir_token}");
        let response = send(
            endpoint,
            method,
            path,
            &[json, ("Authorization", &bearer)],
            body,
        )
        .await;
        assert_ne!(
            response.status,
            401,
            "{what} with the token: {}",
            response.text()
        );
    }
    let metadata = send(endpoint, "GET", "/metadata", &[], b"").await;
    assert_eq!(metadata.status, 200, "{}", metadata.text());
    // The DR API keeps its own check: the operator token, not the FHIR one.
    let quarantine = send(
        endpoint,
        "GET",
        "/_dr/quarantine",
        &[("Authorization", &format!("Bearer {fhir_token}"))],
        b"",
    )
    .await;
    assert_unauthorized(&quarantine, "the quarantine with the FHIR token");
}
