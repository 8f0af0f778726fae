//! The endpoint's limits end to end, against `drcheck serve` (real processes, loopback):
//! the finding was that a request announcing a 500-byte body and sending 30 bytes was held
//! 95 s and more, and that two clients holding 10,010 of them ran the process out of file
//! descriptors, so that `/metadata` timed out for everyone.
//!
//! - 1,000 half-sent bodies and 100 half-sent heads held open: `/metadata` from a fresh
//!   connection still answers (its latency is printed: `--nocapture`), every held connection
//!   is closed at its timeout (the bodies with a 408 OperationOutcome), and `/_dr/status`
//!   counts them;
//! - connections over `--max-connections` are answered 503 and counted, and the endpoint
//!   serves again once the held ones close;
//! - a burst over `--rate-limit` is answered 429 with `Retry-After` and an OperationOutcome,
//!   and a request after `Retry-After` is served;
//! - bad limit flags are one line of error and exit 2, before anything starts.
//!
//! The in-process tests beside the server (`drcheck-impl`, `service::endpoint::limits`) show
//! each limit off lets the same requests through or hold on: that is what makes these able to
//! fail.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drcheck_impl::service::http::{self, Response};
use serde_json::Value;
use support::cli::drcheck;
use support::serve::{outcome_code, Serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A create that announces a 500-byte body and sends 30 bytes of it.
const HALF_BODY: &[u8] = b"POST /Patient HTTP/1.1\r\nHost: drcheck\r\n\
    Content-Type: application/fhir+json\r\nContent-Length: 500\r\n\r\n\
    {\"resourceType\":\"Patient\",\"id\":";
/// Half a request head.
const HALF_HEAD: &[u8] = b"GET /metadata HTTP/1.1\r\nHost: drcheck\r\nAcce";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One request on a new connection, within 30 s.
async fn ask(addr: SocketAddr, path: &str) -> Response {
    tokio::time::timeout(
        Duration::from_secs(30),
        http::request(addr, "GET", path, &[], b""),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path}: no answer within 30 s"))
    .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// `/_dr/status`'s `endpoint` section.
async fn endpoint_status(addr: SocketAddr) -> Value {
    let status = ask(addr, "/_dr/status").await;
    assert_eq!(status.status, 200, "{}", status.text());
    status.json().expect("status JSON")["endpoint"].clone()
}

/// A connection held open after sending `bytes`.
struct Held {
    stream: TcpStream,
    opened: Instant,
    body: bool,
}

/// How a held connection ended: what the server sent, and when it closed after `opened`
/// (`None`: still open at the deadline).
struct Ended {
    received: Vec<u8>,
    after: Option<Duration>,
    body: bool,
}

async fn until_closed(mut held: Held, deadline: Instant) -> Ended {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let after = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, held.stream.read(&mut buf)).await {
            Err(_) => break None,
            Ok(Ok(0)) | Ok(Err(_)) => break Some(held.opened.elapsed()),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    };
    Ended {
        received,
        after,
        body: held.body,
    }
}

/// The status code of a raw response and its body as JSON.
fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

const HELD_BODIES: usize = 1000;
const HELD_HEADS: usize = 100;
/// The timeouts of the slow-client test (seconds): long enough that every connection is
/// still held while `/metadata` is measured, short enough for a test.
const TIMEOUT: u64 = 8;

#[test]
fn a_thousand_half_sent_requests_do_not_hold_the_endpoint() {
    let timeout = TIMEOUT.to_string();
    let serve = Serve::start_with(
        "limits-slow-clients",
        &[
            "--header-timeout",
            &timeout,
            "--body-timeout",
            &timeout,
            "--max-connections",
            "1500",
        ],
    );
    let addr = serve.endpoint;
    let timeout = Duration::from_secs(TIMEOUT);
    runtime().block_on(async {
        let before = endpoint_status(addr).await;
        let started = Instant::now();
        let mut held = Vec::new();
        for i in 0..HELD_BODIES + HELD_HEADS {
            let body = i < HELD_BODIES;
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let opened = Instant::now();
            stream
                .write_all(if body { HALF_BODY } else { HALF_HEAD })
                .await
                .expect("send half a request");
            held.push(Held {
                stream,
                opened,
                body,
            });
        }
        let opening = started.elapsed();
        // `/metadata` from fresh connections while all of them are held.
        let mut latencies = Vec::new();
        for _ in 0..5 {
            let asked = Instant::now();
            let metadata = ask(addr, "/metadata").await;
            latencies.push(asked.elapsed());
            assert_eq!(metadata.status, 200, "{}", metadata.text());
            assert_eq!(
                metadata.json().expect("JSON")["resourceType"],
                "CapabilityStatement"
            );
        }
        let during = endpoint_status(addr).await;
        let measured = started.elapsed();
        assert!(
            measured < timeout,
            "the measurement took {measured:?}, longer than the timeouts ({timeout:?}): it was \
             not made while every connection was held (a very loaded machine?)"
        );
        let open = during["open_connections"]
            .as_u64()
            .expect("open_connections");
        assert!(
            open > (HELD_BODIES + HELD_HEADS) as u64,
            "the server holds {open} connections"
        );
        let worst = latencies.iter().max().copied().unwrap_or_default();
        assert!(
            worst < Duration::from_secs(5),
            "/metadata took {} with {} half-sent requests held",
            ms(worst),
            HELD_BODIES + HELD_HEADS
        );
        // Every held connection is closed at its timeout, with slack for a loaded machine.
        let deadline = Instant::now() + timeout + Duration::from_secs(15);
        let waits: Vec<_> = held
            .into_iter()
            .map(|h| tokio::spawn(until_closed(h, deadline)))
            .collect();
        let mut ended = Vec::new();
        for wait in waits {
            ended.push(wait.await.expect("reader"));
        }
        let (mut bodies, mut heads) = (Vec::new(), Vec::new());
        for e in &ended {
            let after = e.after.unwrap_or_else(|| {
                panic!(
                    "a half-sent {} still open {} after the timeout",
                    if e.body { "body" } else { "head" },
                    ms(Duration::from_secs(15))
                )
            });
            assert!(
                after + Duration::from_millis(100) >= timeout,
                "closed after only {}",
                ms(after)
            );
            if e.body {
                let (status, outcome) = parse(&e.received);
                assert_eq!(status, 408, "{}", String::from_utf8_lossy(&e.received));
                assert_eq!(outcome["resourceType"], "OperationOutcome");
                assert_eq!(outcome["issue"][0]["code"], "timeout");
                bodies.push(after);
            } else {
                assert!(
                    e.received.is_empty(),
                    "a half-sent head was answered: {}",
                    String::from_utf8_lossy(&e.received)
                );
                heads.push(after);
            }
        }
        let after = endpoint_status(addr).await;
        let counted = |reason: &str, status: &Value| status["refused"][reason].as_u64();
        let gained = |reason: &str| {
            counted(reason, &after).unwrap_or(0) - counted(reason, &before).unwrap_or(0)
        };
        assert_eq!(gained("body_timeout"), HELD_BODIES as u64, "{after}");
        assert_eq!(gained("header_timeout"), HELD_HEADS as u64, "{after}");
        let span = |v: &[Duration]| {
            format!(
                "{}–{}",
                ms(v.iter().min().copied().unwrap_or_default()),
                ms(v.iter().max().copied().unwrap_or_default())
            )
        };
        eprintln!(
            "slow clients: {HELD_BODIES} half-sent bodies and {HELD_HEADS} half-sent heads held \
             (opened in {}; the server held {open} connections); /metadata from a fresh \
             connection meanwhile: {} (worst {}); bodies answered 408 and closed after {}, \
             heads closed after {} (timeouts {} s); counted: {}",
            ms(opening),
            latencies
                .iter()
                .map(|d| ms(*d))
                .collect::<Vec<_>>()
                .join(", "),
            ms(worst),
            span(&bodies),
            span(&heads),
            TIMEOUT,
            after["refused"]
        );
    });
    serve.stop();
}

#[test]
fn connections_over_the_limit_are_refused_counted_and_served_again_once_they_close() {
    const LIMIT: usize = 16;
    const OVER: usize = 5;
    let serve = Serve::start_with("limits-connections", &["--max-connections", "16"]);
    let addr = serve.endpoint;
    runtime().block_on(async {
        let before = endpoint_status(addr).await;
        assert_eq!(before["max_connections"], LIMIT);
        // Let the server see the start-up's connections close.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut held = Vec::new();
        for _ in 0..LIMIT {
            held.push(TcpStream::connect(addr).await.expect("connect"));
        }
        for _ in 0..OVER {
            let refused = ask(addr, "/metadata").await;
            assert_eq!(refused.status, 503, "{}", refused.text());
            assert_eq!(refused.header("retry-after"), Some("1"));
            assert_eq!(outcome_code(&refused), "transient");
        }
        // The held connections were not answered: they hold their slots.
        for stream in &mut held {
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf));
            assert!(
                read.await.is_err(),
                "a held connection was answered or closed"
            );
        }
        drop(held);
        let closed = Instant::now();
        let served = loop {
            let r = ask(addr, "/metadata").await;
            if r.status == 200 {
                break closed.elapsed();
            }
            assert!(
                closed.elapsed() < Duration::from_secs(10),
                "not served again: {}",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let after = endpoint_status(addr).await;
        let refused = |s: &Value| s["refused"]["connection_limit"].as_u64().unwrap_or(0);
        assert_eq!(refused(&after) - refused(&before), OVER as u64, "{after}");
        eprintln!(
            "connection limit {LIMIT}: {OVER} more answered 503; served again {} after the \
             held ones closed; counted: {}",
            ms(served),
            after["refused"]
        );
    });
    serve.stop();
}

#[test]
fn a_burst_over_the_rate_limit_is_answered_429_then_served_after_retry_after() {
    const RATE: u64 = 5;
    const BURST: usize = 10;
    let serve = Serve::start_with("limits-rate", &["--rate-limit", "5", "--rate-burst", "10"]);
    let addr = serve.endpoint;
    runtime().block_on(async {
        // Start-up polled the endpoint: let the bucket fill up again.
        tokio::time::sleep(Duration::from_millis(BURST as u64 * 1000 / RATE + 500)).await;
        let mut conn = http::Connection::open(addr).await.expect("connect");
        let started = Instant::now();
        let mut answers = Vec::new();
        for _ in 0..BURST * 2 {
            answers.push(
                conn.send("GET", "/metadata", &[], b"")
                    .await
                    .expect("answer"),
            );
        }
        let took = started.elapsed();
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert!(
            statuses[..BURST].iter().all(|s| *s == 200),
            "the burst is served: {statuses:?}"
        );
        // A token comes back every 200 ms: the burst of 20 took `took`.
        let refills = (took.as_secs_f64() * RATE as f64).floor() as usize;
        let served = statuses.iter().filter(|s| **s == 200).count();
        assert!(
            served <= BURST + refills + 1,
            "{served} served in {took:?}: {statuses:?}"
        );
        let refused: Vec<&Response> = answers.iter().filter(|r| r.status == 429).collect();
        assert!(!refused.is_empty(), "{statuses:?}");
        for r in &refused {
            assert_eq!(outcome_code(r), "throttled");
        }
        let wait: u64 = refused[0]
            .header("retry-after")
            .and_then(|s| s.parse().ok())
            .expect("Retry-After in whole seconds");
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let again = conn
            .send("GET", "/metadata", &[], b"")
            .await
            .expect("answer");
        assert_eq!(again.status, 200, "after Retry-After: {}", again.text());
        let status = endpoint_status(addr).await;
        let counted = status["refused"]["rate_limited"].as_u64().unwrap_or(0);
        assert!(counted >= refused.len() as u64, "{status}");
        eprintln!(
            "rate limit {RATE}/s, bursts of {BURST}: of {} requests at once ({}), {served} \
             served and {} answered 429 (Retry-After {wait} s); served again after it; \
             counted: {counted}",
            BURST * 2,
            ms(took),
            refused.len()
        );
    });
    serve.stop();
}

#[test]
fn bad_limit_flags_are_one_line_of_error_and_exit_2_before_anything_starts() {
    let data = std::env::temp_dir().join(format!("drcheck-limits-flags-{}", std::process::id()));
    let dir = data.to_string_lossy().into_owned();
    for (flags, says) in [
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--max-connections", "many"], "--max-connections"),
        (&["--header-timeout", "-1"], "--header-timeout"),
        (&["--header-timeout", "NaN"], "--header-timeout"),
        (&["--body-timeout", "1e9"], "--body-timeout"),
        (&["--rate-limit", "0.001"], "--rate-limit"),
        (&["--rate-limit", "fast"], "--rate-limit"),
        (&["--rate-burst", "0"], "--rate-burst"),
        (&["--rate-limit", "0", "--rate-burst", "5"], "--rate-burst"),
    ] {
        let mut argv = vec!["serve", "--listen", "127.0.0.1:0", "--data", dir.as_str()];
        argv.extend_from_slice(flags);
        let what = argv.join(" ");
        let out = drcheck(&argv);
        assert_eq!(out.code, 2, "{what}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{what}: started: {}", out.stdout);
        assert_eq!(out.stderr.lines().count(), 1, "{what}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("error: ") && out.stderr.contains(says),
            "{what}: {}",
            out.stderr
        );
        assert!(
            !data.join("cluster.json").exists(),
            "{what}: wrote a cluster"
        );
    }
}
