//! End to end with real processes on loopback, a client writing all along: the three
//! findings of outsiders who ran `drcheck serve` under load.
//!
//! - The control-plane process killed with SIGKILL from outside: `serve` restarts it by
//!   itself; writes go on, nothing fails over, every acknowledged write reads back, and the
//!   status API counts the restart. Then the operator's `fault crash --control` and
//!   `fault recover --control` do the same on request.
//! - An inter-region partition longer than the RTO: the primary throttles only until the
//!   control plane leaves the unreachable secondary out of sync (`--sync-timeout`), then
//!   writes unprotected; no spell without writes comes near the RTO.
//! - Data failback while the client keeps writing: accepted for the in-sync home region and
//!   completed, losing nothing.
//!
//! The measured times go to stderr (`--nocapture` shows them); the bounds asserted are
//! generous, in scaled protocol minutes, because the machine may be loaded.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use drcheck_impl::service::http;
use drcheck_properties::Timing;
use serde_json::{json, Value};
use support::serve::{Serve, MINUTE_MS};

fn minutes(n: u64) -> Duration {
    Duration::from_millis(n * MINUTE_MS)
}

/// The writer stops by itself after this long or this many requests, whatever the test does.
const WRITER_LIMIT: Duration = Duration::from_secs(120);
const WRITER_MAX_REQUESTS: usize = 20_000;
/// The pause between two requests.
const WRITER_PAUSE: Duration = Duration::from_millis(15);
/// The pause after a 503 or 429 before trying again. `Retry-After` is in whole seconds:
/// several scaled minutes here, far longer than the outage it announces.
const WRITER_BACKOFF: Duration = Duration::from_millis(100);

/// One create the writer sent, and how it was answered (status 0: no answer at all).
#[derive(Clone, Debug)]
struct Sent {
    sent: Instant,
    answered: Instant,
    status: u16,
    family: String,
    id: Option<String>,
}

/// A client thread that keeps creating Patients through the endpoint, retrying a refused
/// create (503, 429) after a short wait; everything it sent, in order, in `log`.
struct Writer {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    thread: JoinHandle<()>,
}

impl Writer {
    fn start(endpoint: SocketAddr) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (stop_flag, sink) = (stop.clone(), log.clone());
        let thread = std::thread::spawn(move || write_until(endpoint, &stop_flag, &sink));
        Writer { stop, log, thread }
    }

    fn log(&self) -> Vec<Sent> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn acked(&self) -> usize {
        self.log().iter().filter(|s| s.status == 201).count()
    }

    fn stop(self) -> Vec<Sent> {
        let Writer { stop, log, thread } = self;
        stop.store(true, Ordering::SeqCst);
        thread.join().expect("the writer thread ends");
        let sent = std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner));
        sent
    }
}

fn write_until(endpoint: SocketAddr, stop: &AtomicBool, log: &Mutex<Vec<Sent>>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let began = Instant::now();
    let mut n = 0;
    for _ in 0..WRITER_MAX_REQUESTS {
        if stop.load(Ordering::SeqCst) || began.elapsed() > WRITER_LIMIT {
            return;
        }
        let family = format!("Writer{n}");
        let body = json!({ "resourceType": "Patient", "name": [{ "family": family }] });
        let sent = Instant::now();
        let response = runtime.block_on(http::request(
            endpoint,
            "POST",
            "/Patient",
            &[("Content-Type", "application/fhir+json")],
            body.to_string().as_bytes(),
        ));
        let (status, id) = match &response {
            Ok(r) => (r.status, created_id(r)),
            Err(_) => (0, None),
        };
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Sent {
                sent,
                answered: Instant::now(),
                status,
                family,
                id,
            });
        if matches!(status, 503 | 429) {
            // Refused, nothing written: the same create again, after a short wait.
            std::thread::sleep(WRITER_BACKOFF);
        } else {
            n += 1;
            std::thread::sleep(WRITER_PAUSE);
        }
    }
}

fn created_id(response: &http::Response) -> Option<String> {
    if response.status != 201 {
        return None;
    }
    Some(response.json().ok()?["id"].as_str()?.to_string())
}

/// The control plane's pid in a status answer.
fn control_pid(status: &Value) -> Option<u64> {
    status["control"]["pid"].as_u64()
}

/// The status API's answer once it answers again with a control plane other than `pid`:
/// the answer and when it came.
fn status_without(serve: &Serve, pid: u64, limit: Duration) -> (Value, Instant) {
    let mut answer = None;
    serve.eventually(limit, "the status API answers again", || {
        let response = serve.get("/_dr/status");
        let status = response.json().ok().filter(|_| response.status == 200);
        answer = status.filter(|s| control_pid(s).is_some_and(|p| p != pid));
        answer.is_some()
    });
    (answer.expect("a status"), Instant::now())
}

/// The routing and each region's role and epoch: what a failover would change.
fn placement(status: &Value) -> Value {
    let regions: Vec<Value> = status["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| json!([r["role"], r["epoch"]]))
        .collect();
    json!({
        "epoch": status["routing"]["epoch"],
        "primary": status["routing"]["primary"],
        "regions": regions,
    })
}

/// The longest time between two successive acknowledged writes among `log`.
fn longest_gap(log: &[Sent]) -> Duration {
    let acked: Vec<Instant> = log
        .iter()
        .filter(|s| s.status == 201)
        .map(|s| s.answered)
        .collect();
    acked
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

fn seconds(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

#[test]
fn a_killed_control_plane_is_restarted_and_writes_go_on_without_a_failover() {
    let serve = Serve::start("control-restart");
    let timing = Timing::default();
    let before = serve.status();
    let pid = control_pid(&before).expect("the control plane runs");
    assert_eq!(before["control"]["restarts"], 0, "{before}");
    assert_eq!(before["routing"]["primary"], 0, "{before}");

    let writer = Writer::start(serve.endpoint);
    serve.eventually(minutes(60), "the writer's first writes", || {
        writer.acked() >= 10
    });

    // kill -9 the control plane's process from outside, as anyone could.
    let killed_at = Instant::now();
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    let (status, status_back) = status_without(&serve, pid, minutes(60));
    assert!(
        status["control"]["restarts"].as_u64() >= Some(1),
        "{status}"
    );
    // A write sent once every lease the old control plane granted has surely expired was
    // acknowledged under a lease the restarted one granted.
    let old_leases_gone = status_back + minutes(u64::from(timing.lease + timing.skew));
    serve.eventually(minutes(60), "writes under a new lease", || {
        writer
            .log()
            .iter()
            .any(|s| s.status == 201 && s.sent > old_leases_gone)
    });
    let log = writer.stop();

    let after_kill: Vec<&Sent> = log.iter().filter(|s| s.sent >= killed_at).collect();
    let first_write = after_kill
        .iter()
        .find(|s| s.status == 201)
        .map(|s| s.answered.duration_since(killed_at))
        .expect("a write after the kill");
    let refused = after_kill.iter().filter(|s| s.status != 201).count();
    eprintln!(
        "control plane kill -9 -> first write acknowledged: {}; -> /_dr/status answering: {}; \
         longest gap between acknowledged writes: {}; {} of {} requests after the kill refused",
        seconds(first_write),
        seconds(status_back.duration_since(killed_at)),
        seconds(longest_gap(&log)),
        refused,
        after_kill.len()
    );
    assert!(
        first_write < minutes(60),
        "writes resumed after {first_write:?}"
    );
    let unexpected: Vec<u16> = log
        .iter()
        .map(|s| s.status)
        .filter(|s| !matches!(s, 201 | 503 | 429))
        .collect();
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");

    // No failover: the same epoch, primary and roles as before the kill.
    let end = serve.status();
    assert_eq!(placement(&end), placement(&before), "{end}");
    assert_eq!(end["failed"], json!([false, false]), "{end}");

    // Every acknowledged write reads back.
    let read = assert_all_read_back(&serve, &log);
    eprintln!("{read} acknowledged writes read back");

    // The operator's crash: the same, on request.
    let restarted = control_pid(&end).expect("the control plane runs");
    let crash = serve.verb(&["fault", "crash", "--control"]);
    assert_eq!(crash.code, 0, "{}", crash.stderr);
    assert!(crash.stdout.contains("killed"), "{}", crash.stdout);
    // Right after, it is down (serve waits a little before restarting it), unless the
    // machine was slow enough for serve to restart it first.
    let recover = serve.verb(&["fault", "recover", "--control"]);
    let recovered = if recover.code == 0 {
        "started it"
    } else {
        "found it restarted"
    };
    assert!(
        recover.code == 0 && recover.stdout.contains("started")
            || recover.code == 1 && recover.stderr.contains("is running"),
        "{recover:?}"
    );
    eprintln!("fault recover --control right after fault crash --control {recovered}");
    let (status, _) = status_without(&serve, restarted, minutes(60));
    assert!(
        status["control"]["restarts"].as_u64() >= Some(2),
        "{status}"
    );
    serve.eventually(minutes(60), "writes after the operator's crash", || {
        serve
            .create("Patient", r#"{"resourceType":"Patient"}"#)
            .status
            == 201
    });
    let again = serve.verb(&["fault", "recover", "--control"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("is running"), "{}", again.stderr);
    assert_eq!(placement(&serve.status()), placement(&before));

    let exit = serve.stop();
    assert!(exit.success(), "serve stops cleanly on Ctrl-C: {exit:?}");
}

/// Every write in `log` acknowledged with an id reads back with its family name.
fn assert_all_read_back(serve: &Serve, log: &[Sent]) -> usize {
    let acked: Vec<&Sent> = log.iter().filter(|s| s.status == 201).collect();
    for s in &acked {
        let id = s.id.as_deref().expect("a created write has an id");
        let read = serve.get(&format!("/Patient/{id}"));
        assert_eq!(read.status, 200, "{id}: {}", read.text());
        let body = read.json().expect("resource JSON");
        assert_eq!(body["name"][0]["family"], s.family.as_str(), "{id}");
    }
    acked.len()
}

/// The longest spell without an acknowledged write between `from` and `to` (counting from
/// `from` to the first acknowledgement, and from the last one to `to`).
fn longest_spell_without_writes(log: &[Sent], from: Instant, to: Instant) -> Duration {
    let mut marks = vec![from];
    marks.extend(
        log.iter()
            .filter(|s| s.status == 201 && s.answered > from && s.answered < to)
            .map(|s| s.answered),
    );
    marks.push(to);
    marks
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

#[test]
fn a_partition_longer_than_the_rto_stops_writes_only_until_the_sync_timeout() {
    let serve = Serve::start("partition-under-load");
    let timing = Timing::default();
    let before = serve.status();
    let writer = Writer::start(serve.endpoint);
    serve.eventually(minutes(60), "the writer's first writes", || {
        writer.acked() >= 10
    });

    let cut = serve.verb(&["fault", "partition"]);
    assert_eq!(cut.code, 0, "{}", cut.stderr);
    let cut_at = Instant::now();
    // Longer than the RTO: before the sync timeout, the primary throttled all along.
    let partition = minutes(u64::from(timing.rto) + 20);
    std::thread::sleep(partition);
    let healed_at = Instant::now();
    let heal = serve.verb(&["fault", "heal"]);
    assert_eq!(heal.code, 0, "{}", heal.stderr);
    serve.eventually(minutes(30), "region 1 back in sync after the heal", || {
        serve.status()["regions"][0]["in_sync"] == json!([1])
    });
    let log = writer.stop();

    let spell = longest_spell_without_writes(&log, cut_at, healed_at);
    let during: Vec<&Sent> = log
        .iter()
        .filter(|s| s.sent >= cut_at && s.sent < healed_at)
        .collect();
    let acked_during = during.iter().filter(|s| s.status == 201).count();
    let throttled = during.iter().filter(|s| s.status == 429).count();
    eprintln!(
        "partition of {} ({} protocol minutes): longest spell without writes {} ({:.1} protocol \
         minutes; sync timeout {}, RTO {}); {acked_during} writes acknowledged and {throttled} \
         throttled during it",
        seconds(partition),
        timing.rto + 20,
        seconds(spell),
        spell.as_secs_f64() * 1000.0 / MINUTE_MS as f64,
        timing.sync_timeout,
        timing.rto,
    );
    // Throttled from `throttle` to the sync timeout, plus the report's delay and slack for a
    // loaded machine: far below the RTO, and far below the partition.
    assert!(
        spell < minutes(u64::from(timing.rto) / 2),
        "no writes for {spell:?} during the partition"
    );
    assert!(acked_during > 10, "writes went on during the partition");

    // No failover, nothing lost: every acknowledged write reads back.
    let end = serve.status();
    assert_eq!(placement(&end), placement(&before), "{end}");
    let read = assert_all_read_back(&serve, &log);
    eprintln!("{read} acknowledged writes read back after the partition");
    let exit = serve.stop();
    assert!(exit.success(), "serve stops cleanly on Ctrl-C: {exit:?}");
}

#[test]
fn data_failback_succeeds_while_a_client_keeps_writing_and_loses_nothing() {
    let serve = Serve::start("failback-under-load");
    // Fail over first: the primary's process killed, region 1 takes over.
    let crash = serve.verb(&["fault", "crash", "--region", "0"]);
    assert_eq!(crash.code, 0, "{}", crash.stderr);
    serve.eventually(minutes(30), "region 1 promoted", || {
        serve.status()["routing"]["primary"] == 1
    });
    let recover = serve.verb(&["fault", "recover", "--region", "0"]);
    assert_eq!(recover.code, 0, "{}", recover.stderr);

    let writer = Writer::start(serve.endpoint);
    serve.eventually(minutes(30), "region 0 back in sync, compute home", || {
        let s = serve.status();
        s["regions"][1]["in_sync"] == json!([0]) && s["routing"]["compute"] == 0
    });
    serve.eventually(minutes(30), "writes at region 1", || writer.acked() >= 20);

    // The operator asks while the client writes: accepted at the first attempt, or after a
    // refusal whose reason is not "caught up" (the failback no longer requires it).
    let mut attempts = 0;
    let mut refusals = Vec::new();
    while attempts < 5 {
        attempts += 1;
        let failback = serve.verb(&["failback", "--target", "0"]);
        if failback.code == 0 {
            break;
        }
        assert!(
            !failback.stderr.contains("caught up"),
            "refused for not having caught up: {}",
            failback.stderr
        );
        refusals.push(failback.stderr);
        std::thread::sleep(minutes(2));
    }
    let asked_at = Instant::now();
    serve.eventually(minutes(30), "data fails back", || {
        let s = serve.status();
        s["routing"]["primary"] == 0 && s["routing"]["epoch"] == 3
    });
    let done = Instant::now().duration_since(asked_at);
    serve.eventually(minutes(30), "writes at region 0", || {
        writer
            .log()
            .iter()
            .any(|s| s.status == 201 && s.sent > asked_at + done)
    });
    let log = writer.stop();
    eprintln!(
        "data failback under load: accepted at attempt {attempts} ({} refused: {refusals:?}); \
         completed {} after the request; longest gap between acknowledged writes {}",
        refusals.len(),
        seconds(done),
        seconds(longest_gap(&log)),
    );
    assert_eq!(refusals.len(), attempts - 1);
    assert!(attempts < 5, "never accepted: {refusals:?}");

    // A switchover loses nothing: every write the client saw acknowledged reads back.
    let read = assert_all_read_back(&serve, &log);
    eprintln!("{read} acknowledged writes read back after the failback");
    let quarantine = serve.operator("GET", "/_dr/quarantine", &json!({}));
    assert_eq!(quarantine.status, 200, "{}", quarantine.text());
    let exit = serve.stop();
    assert!(exit.success(), "serve stops cleanly on Ctrl-C: {exit:?}");
}
