//! The limits on their own: the token bucket by the clock it is given, and the server over
//! real loopback sockets in front of a small router, each limit beside the same request with
//! the limit off (which is what makes its test able to fail).

use super::*;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::service::http;

/// A router that answers `GET /` and reads `POST /echo`'s whole body (400 if it cannot).
fn router() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/echo",
        post(|body: Body| async move {
            match axum::body::to_bytes(body, 1 << 20).await {
                Ok(bytes) => (StatusCode::OK, format!("{} bytes", bytes.len())).into_response(),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }),
    )
}

/// No limits but a connection count no test reaches.
fn off() -> Limits {
    Limits {
        max_connections: 64,
        header_timeout: None,
        body_timeout: None,
        rate: None,
    }
}

async fn start(limits: Limits) -> (SocketAddr, Arc<Gate>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let gate = Gate::new(limits).expect("limits in range");
    tokio::spawn(serve(
        listener,
        router(),
        gate.clone(),
        std::future::pending(),
    ));
    (addr, gate)
}

/// A connection that has sent `bytes` and nothing more.
async fn half_sent(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("send");
    stream
}

/// What the server sends until it closes the connection, and when it closed it; `None` if
/// it is still open after `wait`.
async fn until_closed(stream: &mut TcpStream, wait: Duration) -> Option<(Vec<u8>, Duration)> {
    let start = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| (received, start.elapsed()))
}

/// The status code of a raw response, and its body.
fn status_and_body(raw: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, body)
}

const HALF_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nAcc";
const HALF_BODY: &[u8] = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n\
    {\"resourceType\":\"Patient\",\"i";

// --- The token bucket, by the clock it is given --------------------------------------------

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

#[test]
fn a_bucket_serves_its_burst_then_refuses_until_a_token_is_back() {
    let buckets = TokenBuckets::new(RateLimit {
        per_second: 10.0,
        burst: 3,
    });
    let t0 = Instant::now();
    let client = ip("192.0.2.1");
    for _ in 0..3 {
        assert_eq!(
            buckets.take(client, t0),
            Verdict::Allowed { refused_before: 0 }
        );
    }
    match buckets.take(client, t0) {
        Verdict::Refused { wait, first } => {
            assert!(first);
            assert!(
                (wait.as_secs_f64() - 0.1).abs() < 1e-9,
                "a token is back in 1/10 s, not {wait:?}"
            );
        }
        other => panic!("the fourth request at once: {other:?}"),
    }
    assert!(matches!(
        buckets.take(client, t0 + Duration::from_millis(50)),
        Verdict::Refused { first: false, .. }
    ));
    // Another client has its own bucket.
    assert_eq!(
        buckets.take(ip("192.0.2.2"), t0),
        Verdict::Allowed { refused_before: 0 }
    );
    // 100 ms after the first refusal, a token is back; the refusals meanwhile are told.
    assert_eq!(
        buckets.take(client, t0 + Duration::from_millis(100)),
        Verdict::Allowed { refused_before: 2 }
    );
    // The sustained rate is the refill: 10 more over a second, not 11.
    let t1 = t0 + Duration::from_millis(100);
    let served = (1..=20)
        .filter(|i| {
            let at = t1 + Duration::from_millis(50 * i);
            matches!(buckets.take(client, at), Verdict::Allowed { .. })
        })
        .count();
    assert_eq!(served, 10, "20 requests over a second at 10/s");
}

#[test]
fn a_bucket_never_holds_more_than_its_burst() {
    let buckets = TokenBuckets::new(RateLimit {
        per_second: 100.0,
        burst: 5,
    });
    let client = ip("192.0.2.1");
    let later = Instant::now() + Duration::from_secs(3600);
    let served = (0..50)
        .filter(|_| matches!(buckets.take(client, later), Verdict::Allowed { .. }))
        .count();
    assert_eq!(served, 5, "an hour of quiet refills the burst, no more");
}

#[test]
fn clients_are_told_apart_by_ipv4_address_and_ipv6_slash_64() {
    assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    assert_eq!(
        client_key(ip("2001:db8:1:2:aaaa::1")),
        client_key(ip("2001:db8:1:2:bbbb::9"))
    );
    assert_ne!(
        client_key(ip("2001:db8:1:2::1")),
        client_key(ip("2001:db8:1:3::1"))
    );
    assert_ne!(client_key(ip("192.0.2.7")), client_key(ip("192.0.2.8")));
}

#[test]
fn buckets_full_again_are_forgotten() {
    let buckets = TokenBuckets::new(RateLimit {
        per_second: 1.0,
        burst: 2,
    });
    let t0 = Instant::now();
    for i in 0..MIN_PRUNE as u32 {
        buckets.take(IpAddr::V4(i.into()), t0);
    }
    assert_eq!(buckets.len(), MIN_PRUNE);
    // One second on, every bucket is full again: the next client's request prunes them.
    buckets.take(ip("::1"), t0 + Duration::from_secs(1));
    assert_eq!(buckets.len(), 1, "only the new client's bucket is kept");
}

#[test]
fn limits_out_of_range_are_refused_with_the_flag() {
    assert_eq!(Limits::default().check(), Ok(()));
    let bad = [
        Limits {
            max_connections: 0,
            ..Limits::default()
        },
        Limits {
            header_timeout: Some(Duration::ZERO),
            ..Limits::default()
        },
        Limits {
            body_timeout: Some(MAX_TIMEOUT * 2),
            ..Limits::default()
        },
        Limits {
            rate: Some(RateLimit {
                per_second: f64::NAN,
                burst: 1,
            }),
            ..Limits::default()
        },
        Limits {
            rate: Some(RateLimit {
                per_second: 1.0,
                burst: 0,
            }),
            ..Limits::default()
        },
    ];
    let flags = [
        "--max-connections",
        "--header-timeout",
        "--body-timeout",
        "--rate-limit",
        "--rate-burst",
    ];
    for (limits, flag) in bad.iter().zip(flags) {
        let e = limits.check().expect_err(flag);
        assert!(e.to_string().starts_with(flag), "{e}");
    }
    assert_eq!(RateLimit::new(1000.0).burst, 2000);
    assert_eq!(RateLimit::new(0.2).burst, 1);
}

// --- The server, over loopback sockets ------------------------------------------------------

#[tokio::test]
async fn a_half_sent_head_is_closed_at_the_header_timeout_and_counted() {
    let limit = Duration::from_millis(300);
    let (addr, gate) = start(Limits {
        header_timeout: Some(limit),
        ..off()
    })
    .await;
    let opened = Instant::now();
    let mut half = half_sent(addr, HALF_HEAD).await;
    let mut silent = half_sent(addr, b"").await;
    for (what, stream) in [("half a head", &mut half), ("nothing", &mut silent)] {
        let (received, _) = until_closed(stream, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{what}: still open after 10 s"));
        assert!(received.is_empty(), "{what}: answered {received:?}");
        let after = opened.elapsed();
        assert!(after >= limit / 2, "{what}: closed after only {after:?}");
    }
    assert_eq!(gate.report().refused.header_timeout, 2);
    // A whole request is still served.
    let ok = http::request(addr, "GET", "/", &[], b"")
        .await
        .expect("GET");
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn without_a_header_timeout_a_half_sent_head_stays_open() {
    let (addr, gate) = start(off()).await;
    let mut half = half_sent(addr, HALF_HEAD).await;
    assert_eq!(
        until_closed(&mut half, Duration::from_secs(1)).await,
        None,
        "closed with no header timeout"
    );
    assert_eq!(gate.report().refused.header_timeout, 0);
}

#[tokio::test]
async fn a_kept_alive_connection_idle_past_the_header_timeout_is_closed_uncounted() {
    let (addr, gate) = start(Limits {
        header_timeout: Some(Duration::from_millis(200)),
        ..off()
    })
    .await;
    let mut conn = http::Connection::open(addr).await.expect("connect");
    let first = conn
        .send("GET", "/", &[], b"")
        .await
        .expect("first request");
    assert_eq!(first.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        conn.send("GET", "/", &[], b"").await.is_err(),
        "an idle kept-alive connection is closed"
    );
    assert_eq!(
        gate.report().refused.header_timeout,
        0,
        "closing an idle connection refuses nothing"
    );
}

#[tokio::test]
async fn a_half_sent_body_is_answered_408_at_the_body_timeout_and_counted() {
    let limit = Duration::from_millis(300);
    let (addr, gate) = start(Limits {
        body_timeout: Some(limit),
        ..off()
    })
    .await;
    let mut half = half_sent(addr, HALF_BODY).await;
    let (received, after) = until_closed(&mut half, Duration::from_secs(10))
        .await
        .expect("closed within 10 s");
    assert!(after >= limit / 2, "answered after only {after:?}");
    let (status, body) = status_and_body(&received);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&received));
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "timeout");
    assert_eq!(gate.report().refused.body_timeout, 1);
    // A whole body within the time is read as before.
    let echo = http::request(addr, "POST", "/echo", &[], &[b'x'; 500])
        .await
        .expect("POST");
    assert_eq!((echo.status, echo.text()), (200, "500 bytes".to_string()));
    assert_eq!(gate.report().refused.body_timeout, 1);
}

#[tokio::test]
async fn without_a_body_timeout_a_half_sent_body_stays_open() {
    let (addr, gate) = start(off()).await;
    let mut half = half_sent(addr, HALF_BODY).await;
    assert_eq!(
        until_closed(&mut half, Duration::from_secs(1)).await,
        None,
        "closed with no body timeout"
    );
    assert_eq!(gate.report().refused.body_timeout, 0);
}

#[tokio::test]
async fn connections_over_the_limit_are_answered_503_and_counted_until_one_closes() {
    let (addr, gate) = start(Limits {
        max_connections: 3,
        ..off()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(half_sent(addr, b"").await);
    }
    // Wait until the server holds all three (it accepts them in its own time).
    let deadline = Instant::now() + Duration::from_secs(10);
    while gate.report().open_connections < 3 {
        assert!(Instant::now() < deadline, "{:?}", gate.report());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..2 {
        let over = http::request(addr, "GET", "/", &[], b"")
            .await
            .expect("an answer");
        assert_eq!(over.status, 503, "{}", over.text());
        assert_eq!(over.header("retry-after"), Some("1"));
        let body = over.json().expect("JSON");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "transient");
    }
    assert_eq!(gate.report().refused.connection_limit, 2);
    // One held connection closes: the next client is served.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http::request(addr, "GET", "/", &[], b"")
            .await
            .expect("GET");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not served again: {}", r.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same three connections under a limit of four: the fourth is served.
    let (addr, gate) = start(Limits {
        max_connections: 4,
        ..off()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(half_sent(addr, b"").await);
    }
    let r = http::request(addr, "GET", "/", &[], b"")
        .await
        .expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(gate.report().refused.connection_limit, 0);
}

#[tokio::test]
async fn a_burst_over_the_rate_is_answered_429_with_retry_after_then_served_after_it() {
    let (addr, gate) = start(Limits {
        rate: Some(RateLimit {
            per_second: 2.0,
            burst: 3,
        }),
        ..off()
    })
    .await;
    let mut conn = http::Connection::open(addr).await.expect("connect");
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..6 {
        let r = conn.send("GET", "/", &[], b"").await.expect("an answer");
        statuses.push(r.status);
        if r.status == 429 {
            refused.get_or_insert(r);
        }
    }
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let refused = refused.expect("a 429");
    let wait: u64 = refused
        .header("retry-after")
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in whole seconds");
    assert_eq!(wait, 1, "a token is back within half a second");
    let body = refused.json().expect("JSON");
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "throttled");
    let counted = gate.report().refused.rate_limited;
    assert_eq!(
        counted,
        statuses.iter().filter(|s| **s == 429).count() as u64
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let after = conn.send("GET", "/", &[], b"").await.expect("an answer");
    assert_eq!(after.status, 200, "served after Retry-After");
    // Without a rate limit, the same burst is served whole.
    let (addr, gate) = start(off()).await;
    let mut conn = http::Connection::open(addr).await.expect("connect");
    for _ in 0..6 {
        assert_eq!(
            conn.send("GET", "/", &[], b"").await.expect("GET").status,
            200
        );
    }
    assert_eq!(gate.report().refused.rate_limited, 0);
}

#[tokio::test]
async fn serve_returns_on_shutdown_and_closes_idle_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let gate = Gate::new(off()).expect("limits");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router(), gate, async move {
        let _ = stopped.await;
    }));
    let mut conn = http::Connection::open(addr).await.expect("connect");
    assert_eq!(
        conn.send("GET", "/", &[], b"").await.expect("GET").status,
        200
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns")
        .expect("no panic");
    assert!(conn.send("GET", "/", &[], b"").await.is_err());
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
