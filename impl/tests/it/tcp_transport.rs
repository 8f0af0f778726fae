//! The TCP transport between real sockets on 127.0.0.1: order, fault injection on both ends,
//! reconnecting to a peer that starts late, surviving garbage on the wire, and refusing what
//! is not authenticated: a stranger, a wrong key, a sender claiming to be another, a replayed
//! frame; an `Append` over the frame limit is split, not dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use drcheck_impl::auth::{self, EdgeStats, Keyring, Principal, Secret, Session};
use drcheck_impl::protocol::message::{Envelope, Message, NodeId};
use drcheck_impl::service::port::PortReservation;
use drcheck_impl::transport::tcp::{listen, TcpTransport, MAX_LINE};
use drcheck_impl::transport::{Links, Transport};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

const R0: NodeId = NodeId::Region(0);
const R1: NodeId = NodeId::Region(1);
const CP: NodeId = NodeId::Control;

/// No test may take longer than this.
const TEST_LIMIT: Duration = Duration::from_secs(30);
/// How long to wait for a message that must arrive.
const ARRIVAL: Duration = Duration::from_secs(5);

async fn bounded(test: impl Future<Output = ()>) {
    timeout(TEST_LIMIT, test).await.expect("test timed out");
}

fn confirm(from: NodeId, to: NodeId, epoch: u32, log_len: u64) -> Envelope {
    Envelope {
        from,
        to,
        msg: Message::Confirm { epoch, log_len },
    }
}

/// The test deployment's secret.
fn secret() -> &'static Secret {
    static SECRET: std::sync::OnceLock<Secret> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| Secret::generate().expect("a secret"))
}

/// `node`'s keys in the test deployment.
fn keys(node: NodeId) -> Arc<Keyring> {
    Arc::new(secret().keyring(node.into(), 2))
}

/// A listening node: its address, its inbox, the listener task and what it refused.
struct Node {
    addr: SocketAddr,
    inbox: UnboundedReceiver<Envelope>,
    task: JoinHandle<()>,
    stats: EdgeStats,
}

async fn node(me: NodeId, links: &Links) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start(me, listener, links)
}

fn start(me: NodeId, listener: TcpListener, links: &Links) -> Node {
    let addr = listener.local_addr().unwrap();
    let (sink, inbox) = mpsc::unbounded_channel();
    let stats = EdgeStats::default();
    let task = listen(listener, links.clone(), keys(me), stats.clone(), sink);
    Node {
        addr,
        inbox,
        task,
        stats,
    }
}

/// A connection to `addr` authenticated as `from` (with `keys`) to `to`: the stream, with
/// the hello already sent, and its session.
async fn authed(addr: SocketAddr, keys: &Keyring, to: NodeId) -> (TcpStream, Session) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut reader = BufReader::new(&mut stream);
    let (session, hello) = auth::connect(&mut reader, keys, to.into())
        .await
        .expect("a challenge");
    stream.write_all(&hello).await.unwrap();
    (stream, session)
}

/// `envelope` as the session's next frame.
fn frame(session: &mut Session, envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::new();
    session.seal(&serde_json::to_vec(envelope).unwrap(), &mut out);
    out
}

/// Waits until `stats` counts a refusal for `reason`.
async fn refused(stats: &EdgeStats, reason: &str) {
    let deadline = Instant::now() + ARRIVAL;
    while stats.counts().refused.get(reason).copied().unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "no {reason} refusal: {:?}",
            stats.counts()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next(inbox: &mut UnboundedReceiver<Envelope>) -> Envelope {
    timeout(ARRIVAL, inbox.recv())
        .await
        .expect("no message arrived in time")
        .expect("listener closed the inbox")
}

fn transport(me: NodeId, peers: &[(NodeId, SocketAddr)], links: &Links) -> TcpTransport {
    TcpTransport::new(
        me,
        keys(me),
        peers.iter().copied().collect::<HashMap<_, _>>(),
        links.clone(),
        EdgeStats::default(),
    )
}

fn line(envelope: &Envelope) -> Vec<u8> {
    let mut line = serde_json::to_vec(envelope).unwrap();
    line.push(b'\n');
    line
}

/// Waits until the listener closes `stream` (EOF or a reset), discarding anything it sends.
async fn closed_by_peer(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match timeout(ARRIVAL, stream.read(&mut buf)).await {
            Err(_) => panic!("the listener did not close the connection"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_and_intact() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;
        let a = transport(R0, &[(R1, b.addr)], &links);
        for i in 0..1000 {
            a.send(confirm(R0, R1, 1, i));
        }
        for i in 0..1000 {
            assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, i));
        }
        // A bigger message, with text that needs escaping, comes through intact too.
        let entries = (0..50)
            .map(|i| drcheck_impl::protocol::entry::LogEntry {
                epoch: 1,
                write: i,
                acked_at: 1000 + i,
                reapply_of: (i % 2 == 0).then_some(i / 2),
                payload: format!(
                    "{{\"resourceType\":\"Patient\",\"note\":\"line\\n{i}\\u00e9\"}}\n"
                ),
            })
            .collect();
        let append = Envelope {
            from: R0,
            to: R1,
            msg: Message::Append {
                epoch: 1,
                start: 1000,
                entries,
                prev: Some((1, 999)),
            },
        };
        a.send(append.clone());
        assert_eq!(next(&mut b.inbox).await, append);

        // An unknown peer is a dropped message, not a panic.
        a.send(confirm(R0, CP, 1, 0));

        // `send` works from a thread outside the runtime.
        let a = std::sync::Arc::new(a);
        let from_thread = std::sync::Arc::clone(&a);
        std::thread::spawn(move || from_thread.send(confirm(R0, R1, 1, 1001)))
            .join()
            .unwrap();
        assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, 1001));

        // Closing the inbox ends the listener.
        drop(b.inbox);
        timeout(ARRIVAL, b.task)
            .await
            .expect("the listener did not end once its sink was closed")
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_partition_cuts_region_links_but_not_the_control_plane() {
    bounded(async {
        let links = Links::new();
        let mut r1 = node(R1, &links).await;
        let mut cp = node(CP, &links).await;
        let r0 = transport(R0, &[(R1, r1.addr), (CP, cp.addr)], &links);
        let control = transport(CP, &[(R1, r1.addr)], &links);

        links.set_partitioned(true);
        r0.send(confirm(R0, R1, 1, 1)); // cut
        r0.send(confirm(R0, CP, 1, 2));
        control.send(confirm(CP, R1, 1, 3));
        assert_eq!(next(&mut cp.inbox).await, confirm(R0, CP, 1, 2));
        assert_eq!(next(&mut r1.inbox).await, confirm(CP, R1, 1, 3));

        links.set_partitioned(false);
        r0.send(confirm(R0, R1, 1, 4));
        // The first region-to-region message R1 sees is the one sent after healing.
        assert_eq!(next(&mut r1.inbox).await, confirm(R0, R1, 1, 4));

        // A cut made while a message is in flight drops it on arrival: write straight to
        // R1's listener with the partition in place; only the control plane's line passes.
        links.set_partitioned(true);
        let (mut raw, mut session) = authed(r1.addr, &keys(R0), R1).await;
        raw.write_all(&frame(&mut session, &confirm(R0, R1, 1, 5)))
            .await
            .unwrap();
        raw.flush().await.unwrap();
        let (mut raw, mut session) = authed(r1.addr, &keys(CP), R1).await;
        raw.write_all(&frame(&mut session, &confirm(CP, R1, 1, 6)))
            .await
            .unwrap();
        raw.flush().await.unwrap();
        assert_eq!(next(&mut r1.inbox).await, confirm(CP, R1, 1, 6));

        // An isolated region reaches no one, the control plane included.
        links.set_partitioned(false);
        links.set_isolated(0, true);
        r0.send(confirm(R0, CP, 1, 7)); // cut
        links.set_isolated(0, false);
        r0.send(confirm(R0, CP, 1, 8));
        assert_eq!(next(&mut cp.inbox).await, confirm(R0, CP, 1, 8));
        assert!(r1.inbox.try_recv().is_err() && cp.inbox.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_starts_late_is_reached_once_it_listens() {
    bounded(async {
        let links = Links::new();
        // Hold a port that nothing listens on yet.
        let port = PortReservation::new().unwrap();
        let addr = port.addr();
        let a = transport(R0, &[(R1, addr)], &links);
        for i in 0..10 {
            a.send(confirm(R0, R1, 1, i)); // lost: connection refused
        }

        let mut b = start(R1, TcpListener::bind(addr).await.unwrap(), &links);
        // Keep sending until something gets through (the writer may be backing off).
        let deadline = Instant::now() + ARRIVAL;
        let mut i = 10;
        let first = loop {
            assert!(
                Instant::now() < deadline,
                "no message got through after the peer started"
            );
            a.send(confirm(R0, R1, 1, i));
            i += 1;
            if let Ok(got) = timeout(Duration::from_millis(20), b.inbox.recv()).await {
                break got.expect("listener closed the inbox");
            }
        };
        assert!(matches!(first.msg, Message::Confirm { epoch: 1, .. }));

        // Connected: from now on nothing is lost, and order holds.
        for j in 0..100 {
            a.send(confirm(R0, R1, 2, j));
        }
        let mut expected = 0;
        while expected < 100 {
            match next(&mut b.inbox).await.msg {
                Message::Confirm { epoch: 1, .. } => assert_eq!(expected, 0, "old after new"),
                Message::Confirm { epoch: 2, log_len } => {
                    assert_eq!(log_len, expected);
                    expected += 1;
                }
                other => panic!("unexpected message {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_restarted_peer_is_reached_again() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;
        let a = transport(R0, &[(R1, b.addr)], &links);
        a.send(confirm(R0, R1, 1, 0));
        assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, 0));

        // The peer dies (aborting the listener closes its connections) and comes back on
        // the same address; the writer still holds the dead connection.
        b.task.abort();
        assert!(b.task.await.unwrap_err().is_cancelled());
        let mut b = start(R1, TcpListener::bind(b.addr).await.unwrap(), &links);
        let deadline = Instant::now() + ARRIVAL;
        let mut i = 1;
        loop {
            assert!(
                Instant::now() < deadline,
                "no message got through after the restart"
            );
            a.send(confirm(R0, R1, 1, i));
            i += 1;
            if let Ok(got) = timeout(Duration::from_millis(20), b.inbox.recv()).await {
                let got = got.expect("listener closed the inbox");
                assert!(matches!(got.msg, Message::Confirm { log_len, .. } if log_len >= 1));
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_malformed_line_closes_its_connection_but_not_the_listener() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;

        // A good frame, then garbage: the good one is delivered, then the connection closes.
        let (mut raw, mut session) = authed(b.addr, &keys(R0), R1).await;
        raw.write_all(&frame(&mut session, &confirm(R0, R1, 1, 1)))
            .await
            .unwrap();
        raw.write_all(b"this is not a frame\n").await.unwrap();
        raw.flush().await.unwrap();
        assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, 1));
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "malformed").await;

        // An authenticated frame whose JSON is not an envelope is malformed too.
        let (mut raw, mut session) = authed(b.addr, &keys(CP), R1).await;
        let mut bad = Vec::new();
        session.seal(b"{\"from\":\"control\",\"to\":{\"region\":1}}", &mut bad);
        raw.write_all(&bad).await.unwrap();
        closed_by_peer(&mut raw).await;

        // A later connection still delivers.
        let a = transport(R0, &[(R1, b.addr)], &links);
        a.send(confirm(R0, R1, 1, 2));
        assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, 2));
        assert!(!b.task.is_finished());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_line_closes_its_connection_but_not_the_listener() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;

        let (mut raw, _) = authed(b.addr, &keys(R0), R1).await;
        let long = vec![b'x'; MAX_LINE + 1024];
        // The listener may close the connection before all is written: ignore write errors.
        let _ = raw.write_all(&long).await;
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "frame_over_limit").await;

        let (mut raw, mut session) = authed(b.addr, &keys(R0), R1).await;
        raw.write_all(&frame(&mut session, &confirm(R0, R1, 1, 1)))
            .await
            .unwrap();
        assert_eq!(next(&mut b.inbox).await, confirm(R0, R1, 1, 1));
        assert!(b.inbox.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn a_stranger_a_wrong_key_and_a_sender_claiming_another_name_are_refused() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;

        // Plain JSON, as before authentication: the listener's challenge is ignored, the
        // line is no hello.
        let mut raw = TcpStream::connect(b.addr).await.unwrap();
        let promote = Envelope {
            from: CP,
            to: R1,
            msg: Message::Promote {
                epoch: 50,
                expiry: 1 << 62,
            },
        };
        raw.write_all(&line(&promote)).await.unwrap();
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "malformed").await;

        // The right names, a key from another deployment.
        let stranger = Secret::generate().unwrap().keyring(Principal::Control, 2);
        let (mut raw, mut session) = authed(b.addr, &stranger, R1).await;
        raw.write_all(&frame(&mut session, &promote)).await.unwrap();
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "bad_mac").await;

        // Region 0, authenticated, claiming to be the control plane.
        let (mut raw, mut session) = authed(b.addr, &keys(R0), R1).await;
        raw.write_all(&frame(&mut session, &promote)).await.unwrap();
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "from_or_to_mismatch").await;

        // Nothing of it reached the node; the genuine control plane still does.
        assert!(b.inbox.try_recv().is_err());
        let cp = transport(CP, &[(R1, b.addr)], &links);
        cp.send(confirm(CP, R1, 1, 1));
        assert_eq!(next(&mut b.inbox).await, confirm(CP, R1, 1, 1));
    })
    .await;
}

/// A TCP proxy from a new port to `target` that records what the client sends and, when
/// `duplicate` is set, sends the client's first frame (its second line) twice.
async fn recording_proxy(
    target: SocketAddr,
    duplicate: bool,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = recorded.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut lines = BufReader::new(client_read);
        let mut n = 0;
        loop {
            let mut line = Vec::new();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            record.lock().unwrap().extend_from_slice(&line);
            let times = if duplicate && n == 1 { 2 } else { 1 };
            for _ in 0..times {
                if server_write.write_all(&line).await.is_err() {
                    return;
                }
            }
            n += 1;
        }
    });
    (addr, recorded)
}

#[tokio::test]
async fn a_captured_frame_replayed_on_its_connection_or_another_is_refused() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;

        // The genuine control plane's frames pass through a proxy that sends the first one
        // twice: the copy is refused as out of sequence, and the connection closed.
        let (proxy, recorded) = recording_proxy(b.addr, true).await;
        let cp = transport(CP, &[(R1, proxy)], &links);
        cp.send(confirm(CP, R1, 1, 1));
        assert_eq!(next(&mut b.inbox).await, confirm(CP, R1, 1, 1));
        refused(&b.stats, "out_of_sequence").await;
        assert!(
            b.inbox.try_recv().is_err(),
            "the replayed copy was delivered"
        );

        // Everything the control plane sent (its hello and frame), replayed byte for byte
        // on a new connection: the listener's new challenge makes the hello's MAC wrong.
        let captured = recorded.lock().unwrap().clone();
        assert!(!captured.is_empty());
        let mut raw = TcpStream::connect(b.addr).await.unwrap();
        raw.write_all(&captured).await.unwrap();
        closed_by_peer(&mut raw).await;
        refused(&b.stats, "bad_mac").await;
        assert!(
            b.inbox.try_recv().is_err(),
            "a replayed frame was delivered"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_over_the_frame_limit_is_split_and_arrives_whole() {
    bounded(async {
        let links = Links::new();
        let mut b = node(R1, &links).await;
        let stats = EdgeStats::default();
        let a = TcpTransport::new(
            R0,
            keys(R0),
            [(R1, b.addr)].into_iter().collect(),
            links.clone(),
            stats.clone(),
        );
        // 40 entries of ~900 KB: about 36 MB of JSON, over the 16 MiB limit.
        let entries: Vec<_> = (0..40u64)
            .map(|i| drcheck_impl::protocol::entry::LogEntry {
                epoch: 1,
                write: i,
                acked_at: i,
                reapply_of: None,
                payload: "p".repeat(900_000),
            })
            .collect();
        a.send(Envelope {
            from: R0,
            to: R1,
            msg: Message::Append {
                epoch: 1,
                start: 0,
                entries: entries.clone(),
                prev: None,
            },
        });
        let mut got = Vec::new();
        while got.len() < entries.len() {
            match next(&mut b.inbox).await.msg {
                Message::Append {
                    start,
                    entries: part,
                    prev,
                    ..
                } => {
                    assert_eq!(start, got.len() as u64);
                    let before = got
                        .last()
                        .map(|e: &drcheck_impl::protocol::entry::LogEntry| (e.epoch, e.write));
                    assert_eq!(prev, before);
                    got.extend(part);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, entries);
        let counts = stats.counts();
        assert!(counts.errors["frame_split"] >= 2, "{counts:?}");
        assert!(counts.largest_sent <= (MAX_LINE + 100) as u64, "{counts:?}");
    })
    .await;
}
