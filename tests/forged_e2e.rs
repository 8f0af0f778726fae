//! Forged messages against a running `drcheck serve` deployment, over real sockets, from
//! outside it: each of the attacks of issue 13 (a `promote` making a second primary, a
//! `new_epoch` stopping the primary, `rejoin` + `join_accept` emptying a log into the
//! quarantine, a planted `append`, and the RPC calls `set_links`, `failback`, `reapply` and
//! `mark_reapplied` that bypassed the operator token) is refused, logged in the process's log
//! and counted in the region's status, and changes nothing; then the same from an insider
//! holding a region's keys, which cannot speak for the control plane or the endpoint. The
//! genuine paths of the same messages are `serve_e2e`'s (failover, rejoin with quarantine,
//! re-apply, failback, faults), and the operator's fault injection here.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use drcheck_fhir::index::WriteRequest;
use drcheck_fhir::region::FhirInput;
use drcheck_impl::auth::{self, Keyring, Principal};
use drcheck_impl::protocol::control::ControlInput;
use drcheck_impl::protocol::message::{Envelope, Message, NodeId};
use drcheck_impl::protocol::region::RegionInput;
use drcheck_impl::service::rpc::{self, RegionCall};
use serde_json::{json, Value};
use support::serve::Serve;

/// What a process listens on, from the deployment's `cluster.json` (world-readable, as an
/// attacker on the machine would read it).
fn addr(data: &Path, node: Option<usize>, port: &str) -> SocketAddr {
    let text = std::fs::read_to_string(data.join("cluster.json")).expect("cluster.json");
    let cluster: Value = serde_json::from_str(&text).expect("cluster JSON");
    let addrs = match node {
        None => &cluster["control"],
        Some(r) => &cluster["region"][r],
    };
    addrs[port]
        .as_str()
        .expect("address")
        .parse()
        .expect("socket address")
}

/// Sends `line` (a JSON line, as the wire was before authentication) to `addr` and returns
/// everything the process sends back before it closes the connection.
fn send_raw(addr: SocketAddr, line: &Value) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("write");
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    String::from_utf8_lossy(&back).into_owned()
}

/// The deployment's state as far as these attacks could change it.
fn state(serve: &Serve) -> Value {
    let status = serve.status();
    let regions: Vec<Value> = (0..2)
        .map(|r| {
            let region = &status["regions"][r];
            json!({
                "role": region["role"],
                "epoch": region["epoch"],
                "quarantined": region["quarantined"],
                "status": region["status"],
            })
        })
        .collect();
    json!({ "routing": status["routing"], "phase": status["phase"], "regions": regions })
}

fn refused(serve: &Serve, r: usize, reason: &str) -> u64 {
    serve.status()["regions"][r]["refused_frames"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// How many frames the control-plane process refused for `reason` (its edge counts, which
/// the status shows as `control_edge`).
fn refused_by_control(serve: &Serve, reason: &str) -> u64 {
    serve.status()["control_edge"]["refused_frames"][reason]
        .as_u64()
        .unwrap_or(0)
}

fn log_of(serve: &Serve, name: &str) -> String {
    std::fs::read_to_string(serve.data.join(format!("{name}.log"))).unwrap_or_default()
}

/// Every region holds the primary's whole log: replication (and so the links) work.
fn replicated(serve: &Serve) -> bool {
    let status = serve.status();
    let len = |r: usize| status["regions"][r]["log_len"].as_u64();
    len(0).is_some() && len(0) == len(1)
}

/// A write goes through and reaches the secondary: the deployment still works.
fn still_works(serve: &Serve, what: &str) {
    let created = serve.create("Patient", r#"{"resourceType":"Patient"}"#);
    assert_eq!(created.status, 201, "after {what}: {}", created.text());
    serve.eventually(Duration::from_secs(10), "replication", || replicated(serve));
}

fn to_json(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("JSON")
}

fn envelope(from: Value, to: usize, msg: Value) -> Value {
    json!({ "from": from, "to": { "region": to }, "msg": msg })
}

#[test]
fn forged_protocol_and_rpc_messages_from_outside_are_refused_logged_and_change_nothing() {
    let serve = Serve::start("forged");
    still_works(&serve, "the start");
    let before = state(&serve);
    assert_eq!(before["routing"]["primary"], 0, "{before}");
    let log_len = |serve: &Serve| serve.status()["regions"][0]["log_len"].as_u64();
    let protocol = |r| addr(&serve.data, Some(r), "protocol");
    let rpc_port = |r| addr(&serve.data, Some(r), "rpc");

    // Each forgery: where it goes, the line, and the region that counts it (None: the
    // control plane, which logs it).
    let huge_lease = 4_611_686_018_427_387_904u64;
    let forgeries: Vec<(&str, SocketAddr, Value, Option<usize>)> = vec![
        (
            "promote",
            protocol(1),
            envelope(
                json!("control"),
                1,
                json!({ "type": "promote", "epoch": 50, "expiry": huge_lease }),
            ),
            Some(1),
        ),
        (
            "new_epoch",
            protocol(0),
            envelope(
                json!("control"),
                0,
                json!({ "type": "new_epoch", "epoch": 2 }),
            ),
            Some(0),
        ),
        (
            "rejoin",
            protocol(1),
            envelope(
                json!("control"),
                1,
                json!({ "type": "rejoin", "epoch": 2, "primary": 0 }),
            ),
            Some(1),
        ),
        (
            "join_accept",
            protocol(1),
            envelope(
                json!({ "region": 0 }),
                1,
                json!({ "type": "join_accept", "epoch": 2, "runs": [] }),
            ),
            Some(1),
        ),
        (
            "append",
            protocol(1),
            envelope(
                json!({ "region": 0 }),
                1,
                json!({
                    "type": "append", "epoch": 1, "start": 0, "prev": null,
                    "entries": [{
                        "epoch": 1, "write": 7, "acked_at": 0, "reapply_of": null,
                        "payload": "{\"planted\":true}"
                    }]
                }),
            ),
            Some(1),
        ),
        (
            "set_links",
            rpc_port(0),
            to_json(&RegionCall::SetLinks {
                isolated: true,
                partitioned: true,
            }),
            Some(0),
        ),
        (
            "failback",
            addr(&serve.data, None, "rpc"),
            to_json(&ControlInput::Failback { target: 1 }),
            None,
        ),
        (
            "reapply",
            rpc_port(0),
            to_json(&RegionCall::Machine(FhirInput::Write {
                write: 99,
                request: WriteRequest::Create {
                    kind: "Patient".into(),
                    resource: json!({ "resourceType": "Patient", "note": "forged" })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                },
                unix_ms: 0,
                reapply_of: Some(1),
            })),
            Some(0),
        ),
        (
            "mark_reapplied",
            rpc_port(1),
            to_json(&RegionCall::Machine(FhirInput::Protocol(
                RegionInput::MarkReapplied { write: 1 },
            ))),
            Some(1),
        ),
    ];
    let mut counted = [0u64; 2];
    let mut control_counted = 0u64;
    for (what, to, line, counter) in forgeries {
        let before_len = log_len(&serve);
        let back = send_raw(to, &line);
        // The process sent its challenge and nothing else: no answer, no effect.
        assert!(
            back.starts_with("drcheck-auth-1 challenge ") && back.lines().count() == 1,
            "{what}: answered {back:?}"
        );
        match counter {
            Some(r) => {
                counted[r] += 1;
                serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
                    refused(&serve, r, "malformed") >= counted[r]
                });
                assert!(
                    log_of(&serve, &format!("region-{r}")).contains("refused (malformed)"),
                    "{what}: region {r}'s log says nothing"
                );
            }
            None => {
                serve.eventually(Duration::from_secs(5), "the refusal is logged", || {
                    log_of(&serve, "control").contains("refused (malformed)")
                });
                control_counted += 1;
                serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
                    refused_by_control(&serve, "malformed") >= control_counted
                });
            }
        }
        // A little time for anything that got through to act, then: nothing changed.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(state(&serve), before, "after a forged {what}");
        assert!(log_len(&serve) >= before_len, "{what}: the log shrank");
        still_works(&serve, what);
    }
    let quarantine = serve.operator("GET", "/_dr/quarantine", &json!({}));
    assert_eq!(quarantine.status, 200);
    assert_eq!(quarantine.json().unwrap()["quarantine"], json!([]));
    // The planted write is nowhere: write id 7 is no resource's.
    assert_eq!(serve.get("/Patient/7").status, 404);

    // The genuine operator's fault injection (set_links) still works.
    for fault in ["isolate", "reconnect"] {
        let done = serve.operator(
            "POST",
            "/_dr/fault",
            &json!({ "fault": fault, "region": 1 }),
        );
        assert_eq!(done.status, 200, "{fault}: {}", done.text());
    }
    still_works(&serve, "reconnect");
    serve.stop();
}

fn frame_of(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("JSON")
}

/// Sends `payloads` as frames to region `r` at `to`, authenticated with `keys`, each of them
/// `times` times (a replay on the same connection); returns every byte sent (the hello and
/// the frames) once the region has closed the connection or a second has passed.
async fn send_as(
    keys: &Keyring,
    r: u8,
    to: SocketAddr,
    payloads: &[Vec<u8>],
    times: usize,
) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(to).await.expect("connect");
    let mut reader = tokio::io::BufReader::new(&mut stream);
    let (mut session, mut out) = auth::connect(&mut reader, keys, Principal::Region(r))
        .await
        .expect("challenge");
    for payload in payloads {
        let mut frame = Vec::new();
        session.seal(payload, &mut frame);
        for _ in 0..times {
            out.extend_from_slice(&frame);
        }
    }
    stream.write_all(&out).await.expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await;
    out
}

/// Runs `call` with a keyring read from the deployment's key files.
fn as_insider<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(call)
}

#[test]
fn a_region_s_keys_cannot_speak_for_the_control_plane_or_the_endpoint() {
    let serve = Serve::start("insider");
    still_works(&serve, "the start");
    let before = state(&serve);
    let keys = Keyring::load(
        &drcheck_impl::auth::key_file(&serve.data, Principal::Region(0)),
        Principal::Region(0),
    )
    .expect("region 0's keys");

    // Region 0's keys on region 1's protocol port, claiming the control plane's promote.
    let promote = Envelope {
        from: NodeId::Control,
        to: NodeId::Region(1),
        msg: Message::Promote {
            epoch: 2,
            expiry: 1 << 62,
        },
    };
    let region1 = addr(&serve.data, Some(1), "protocol");
    as_insider(send_as(&keys, 1, region1, &[frame_of(&promote)], 1));
    serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
        refused(&serve, 1, "from_or_to_mismatch") == 1
    });

    // Region 0's keys on the RPC ports: region 1's set_links, the control plane's failback.
    let set_links = RegionCall::SetLinks {
        isolated: true,
        partitioned: true,
    };
    let region1_rpc = addr(&serve.data, Some(1), "rpc");
    let answer: Result<drcheck_fhir::region::FhirOutput, _> = as_insider(rpc::call(
        region1_rpc,
        &keys,
        Principal::Region(1),
        &set_links,
        Duration::from_secs(5),
    ));
    assert!(answer.is_err(), "{answer:?}");
    serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
        refused(&serve, 1, "unknown_sender") == 1
    });
    let control = addr(&serve.data, None, "rpc");
    let answer: Result<drcheck_impl::protocol::control::ControlOutput, _> = as_insider(rpc::call(
        control,
        &keys,
        Principal::Control,
        &ControlInput::Failback { target: 1 },
        Duration::from_secs(5),
    ));
    assert!(answer.is_err(), "{answer:?}");
    serve.eventually(Duration::from_secs(5), "the refusal is logged", || {
        log_of(&serve, "control").contains("refused (unknown_sender)")
    });
    serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
        refused_by_control(&serve, "unknown_sender") == 1
    });

    // Region 0's own new_epoch to region 1: authenticated, but not the control plane's to
    // give.
    let new_epoch = Envelope {
        from: NodeId::Region(0),
        to: NodeId::Region(1),
        msg: Message::NewEpoch { epoch: 2 },
    };
    as_insider(send_as(&keys, 1, region1, &[frame_of(&new_epoch)], 1));
    serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
        refused(&serve, 1, "not_from_control") == 1
    });

    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&serve), before);
    still_works(&serve, "the insider's attempts");
    serve.stop();
}

#[test]
fn the_control_plane_s_own_frames_replayed_or_past_its_rules_are_refused() {
    let serve = Serve::start("replay");
    still_works(&serve, "the start");
    let before = state(&serve);
    let keys = Keyring::load(
        &auth::key_file(&serve.data, Principal::Control),
        Principal::Control,
    )
    .expect("the control plane's keys");
    let region1 = addr(&serve.data, Some(1), "protocol");
    let envelope = |msg| Envelope {
        from: NodeId::Control,
        to: NodeId::Region(1),
        msg,
    };

    // A genuine, harmless frame (the epoch region 1 is in), sent twice on its connection:
    // the copy is refused.
    let harmless = frame_of(&envelope(Message::NewEpoch { epoch: 1 }));
    let captured = as_insider(send_as(&keys, 1, region1, &[harmless], 2));
    serve.eventually(Duration::from_secs(5), "the copy is refused", || {
        refused(&serve, 1, "out_of_sequence") == 1
    });
    // The whole capture (hello and frame) replayed on a new connection: refused.
    let mut stream = TcpStream::connect(region1).expect("connect");
    stream.write_all(&captured).expect("write");
    serve.eventually(Duration::from_secs(5), "the replay is refused", || {
        refused(&serve, 1, "bad_mac") == 1
    });

    // Even the control plane's key does not carry the issue's promote (an epoch 49 ahead,
    // a lease of 146,000 years), nor a promote with a lease it never grants.
    let forged = [
        (
            Message::Promote {
                epoch: 50,
                expiry: 1 << 62,
            },
            "epoch_jump",
        ),
        (
            Message::Promote {
                epoch: 2,
                expiry: 1 << 62,
            },
            "lease_too_long",
        ),
    ];
    for (msg, reason) in forged {
        as_insider(send_as(&keys, 1, region1, &[frame_of(&envelope(msg))], 1));
        serve.eventually(Duration::from_secs(5), "the refusal is counted", || {
            refused(&serve, 1, reason) == 1
        });
    }
    let log = log_of(&serve, "region-1");
    for reason in ["out_of_sequence", "bad_mac", "epoch_jump", "lease_too_long"] {
        assert!(
            log.contains(&format!("refused ({reason})")),
            "{reason}: {log}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(&serve), before);
    still_works(&serve, "the replays");
    serve.stop();
}
