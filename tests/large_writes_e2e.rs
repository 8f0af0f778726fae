//! Near-limit writes against a running `drcheck serve` deployment, over real sockets: 40
//! resources of ~900 KB (each under the endpoint's 1 MiB body limit) written while the
//! secondary is cut off add up to 36 MB to catch up, more than a protocol frame may carry
//! (16 MiB). The primary ships them in batches sized by bytes, so the secondary catches up,
//! with no frame over the limit, and the loss window returns to normal. Then the same writes
//! lost by a failover: the old primary's quarantine, 36 MB of payload, is listed whole (the
//! region answers it by pages under the RPC line's limit).
//!
//! The figures go to stderr (`--nocapture` shows them).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::serve::{Serve, MINUTE_MS};

const WRITES: usize = 40;
const SIZE: usize = 900_000;

fn minutes(n: u64) -> Duration {
    Duration::from_millis(n * MINUTE_MS)
}

fn fault(serve: &Serve, fault: &str, region: u8) {
    let done = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": fault, "region": region }),
    );
    assert_eq!(done.status, 200, "{fault} {region}: {}", done.text());
}

/// A Patient of about `SIZE` bytes.
fn big_patient(n: usize) -> String {
    let filler = "x".repeat(SIZE);
    json!({
        "resourceType": "Patient",
        "name": [{ "family": format!("Big{n}"), "given": [filler] }],
    })
    .to_string()
}

/// Writes `WRITES` near-limit Patients, retrying a throttled (429) or unavailable (503) one;
/// returns their ids.
fn write_big(serve: &Serve, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..WRITES {
        let body = big_patient(n);
        assert!(body.len() < 1024 * 1024);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let created = serve.create("Patient", &body);
            match created.status {
                201 => {
                    let id = created.json().unwrap()["id"].as_str().unwrap().to_string();
                    ids.push(id);
                    break;
                }
                429 | 503 if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => panic!("{tag} write {n}: {other} {}", created.text()),
            }
        }
    }
    ids
}

fn region(status: &Value, r: usize) -> &Value {
    &status["regions"][r]
}

#[test]
fn near_limit_writes_catch_up_after_a_cut_and_a_large_quarantine_is_listed_whole() {
    let serve = Serve::start("large");

    // Phase 1: the secondary is cut off while 36 MB are written, then reconnected.
    fault(&serve, "isolate", 1);
    let started = Instant::now();
    write_big(&serve, "cut off");
    let wrote = started.elapsed();
    let primary_len = region(&serve.status(), 0)["log_len"].as_u64().unwrap();
    fault(&serve, "reconnect", 1);
    let reconnected = Instant::now();
    serve.eventually(Duration::from_secs(60), "region 1 catches up", || {
        region(&serve.status(), 1)["log_len"].as_u64() == Some(primary_len)
    });
    let catch_up = reconnected.elapsed();
    // The loss window returns to normal (the primary's oldest write not confirmed by an
    // in-sync secondary): back under a few protocol minutes once it is in sync again.
    serve.eventually(minutes(20), "the loss window returns to normal", || {
        let status = serve.status();
        let in_sync = region(&status, 0)["in_sync"] == json!([1]);
        let window = status["loss_window_minutes"].as_f64().unwrap_or(0.0);
        in_sync && window < 2.0
    });
    let status = serve.status();
    let (sent, received) = (
        region(&status, 0)["largest_frame_sent"].as_u64().unwrap(),
        region(&status, 1)["largest_frame_received"]
            .as_u64()
            .unwrap(),
    );
    eprintln!(
        "large writes: {WRITES} x {SIZE} B written in {wrote:?} with region 1 cut off; \
         caught up {primary_len} entries in {catch_up:?} after the reconnect; largest frame \
         sent by region 0 {sent} B, received by region 1 {received} B; loss window after \
         catch-up {} min; frame errors {} / {}",
        status["loss_window_minutes"],
        region(&status, 0)["frame_errors"],
        region(&status, 1)["refused_frames"],
    );
    let limit = 16 * 1024 * 1024;
    assert!(sent < limit && received < limit, "{status}");
    assert!(
        sent > 2 * SIZE as u64,
        "batches carry several entries: {sent}"
    );
    assert_eq!(region(&status, 0)["frame_errors"], json!({}), "{status}");
    assert_eq!(region(&status, 1)["refused_frames"], json!({}), "{status}");

    // Phase 2: cut off again, 36 MB more, and the primary crashes: the failover loses them
    // (within the RPO: they are minutes old), and the old primary's rejoin quarantines them.
    fault(&serve, "isolate", 1);
    let lost = write_big(&serve, "to be lost");
    let crashed = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": "crash", "region": 0 }),
    );
    assert_eq!(crashed.status, 200, "{}", crashed.text());
    fault(&serve, "reconnect", 1);
    serve.eventually(minutes(60), "region 1 takes over", || {
        serve.status()["routing"]["primary"] == 1
    });
    let recovered = serve.operator(
        "POST",
        "/_dr/fault",
        &json!({ "fault": "recover", "region": 0 }),
    );
    assert_eq!(recovered.status, 200, "{}", recovered.text());
    serve.eventually(minutes(60), "region 0 rejoins with its quarantine", || {
        region(&serve.status(), 0)["quarantined"].as_u64() == Some(WRITES as u64)
    });
    let asked = Instant::now();
    let listing = serve.operator("GET", "/_dr/quarantine", &json!({}));
    let took = asked.elapsed();
    assert_eq!(listing.status, 200, "{}", listing.text());
    let body = listing.json().unwrap();
    let items = body["quarantine"].as_array().unwrap();
    let mut listed: Vec<String> = items
        .iter()
        .map(|i| {
            i["resource"]
                .as_str()
                .unwrap()
                .trim_start_matches("Patient/")
                .to_string()
        })
        .collect();
    let mut expected = lost;
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "the quarantine lists every lost write");
    assert_eq!(body["unanswered"], json!([]));
    eprintln!(
        "large quarantine: {} writes ({} MB of payload) listed in {took:?}",
        items.len(),
        WRITES * SIZE / 1_000_000
    );
    // A lost write can be re-applied from it.
    let write = items[0]["write"].as_u64().unwrap();
    let reapplied = serve.operator("POST", "/_dr/reapply", &json!({ "write": write }));
    assert_eq!(reapplied.status, 200, "{}", reapplied.text());
    serve.stop();
}
