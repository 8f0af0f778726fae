//! Implementation → model: event logs of the implementation explained by the model.

use std::path::PathBuf;

use drcheck_impl::deployment::{Deployment, DeploymentConfig, OperatorRequest};
use drcheck_impl::protocol::mutant::Mutants;
use drcheck_properties::{Bug, Status};
use drcheck_traces::refine::replay_logged;
use drcheck_traces::validate::{confirmation_lag, model_for, parse_log, validate};
use drcheck_traces::walk::Rng;

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "drcheck-validate-{name}-{}.jsonl",
        std::process::id()
    ))
}

/// A random schedule of the implementation running by itself (virtual clock, messages
/// delivered at once): writes, time, outages, recoveries, partitions, failback requests.
async fn random_run(seed: u64, regions: u8, path: &std::path::Path) {
    let mut d = Deployment::start(DeploymentConfig {
        regions,
        operator_token: "t".to_string(),
        event_log: Some(path.to_path_buf()),
        ..DeploymentConfig::default()
    })
    .await
    .expect("deployment");
    let mut rng = Rng::new(seed);
    let mut outages = 0;
    for _ in 0..40 {
        let r = rng.below(usize::from(regions)) as u8;
        match rng.below(10) {
            0..=2 => {
                let patient = r#"{"resourceType":"Patient"}"#.to_string();
                let _ = d.write(patient).await.expect("write");
            }
            3..=5 => d.advance(1 + rng.below(6) as u32).await.expect("advance"),
            6 if outages < 2 && d.status(r) == Some(Status::Up) => {
                outages += 1;
                if rng.below(2) == 0 {
                    d.crash(r).await.expect("crash");
                } else {
                    d.isolate(r).await.expect("isolate");
                }
            }
            7 => match d.status(r) {
                Some(Status::Down) => d.recover(r).await.expect("recover"),
                Some(Status::Isolated) => d.reconnect(r).await.expect("reconnect"),
                _ => {}
            },
            8 => {
                if d.is_partitioned() {
                    d.heal().await.expect("heal");
                } else if outages < 2 {
                    outages += 1;
                    d.partition().await.expect("partition");
                }
            }
            _ => {
                let request = OperatorRequest::DataFailback { target: 0 };
                let _ = d.operator("t", request).await.expect("operator");
            }
        }
    }
    d.advance(10).await.expect("advance");
    d.shutdown().await.expect("shutdown");
}

/// Random runs whose logs are validated.
const RUNS: u64 = 200;

#[tokio::test]
async fn logs_of_random_runs_are_behaviours_of_the_model() {
    let mut events = 0;
    let mut steps = 0;
    let mut lagged = 0;
    for seed in 0..RUNS {
        let regions = if seed % 4 == 3 { 3 } else { 2 };
        let path = log_path(&format!("run{seed}"));
        random_run(seed, regions, &path).await;
        let text = std::fs::read_to_string(&path).expect("log");
        let _ = std::fs::remove_file(&path);
        let records = parse_log(&text).expect("the log parses");
        let cfg = model_for(&records).expect("a model for the log");
        let v = validate(&cfg, &records);
        if let Some(u) = &v.unexplained {
            if let Some(cause) = confirmation_lag(u) {
                println!("seed {seed}: stops at {cause}");
                lagged += 1;
                continue;
            }
            let tried: Vec<String> = u.tried.iter().map(|s| s.to_string()).collect();
            panic!(
                "seed {seed}: event {} ({}) at minute {} is no model step ({}) from any of:\n{}",
                u.index,
                u.record.event.kind(),
                u.record.at / 60_000,
                u.step,
                tried.join("\n---\n")
            );
        }
        events += v.events;
        steps += v.model_steps;
    }
    println!(
        "{} of {RUNS} logs valid: {events} events explained by {steps} model steps; {lagged} stop \
         at a confirmation in flight",
        RUNS - lagged
    );
    assert!(
        lagged * 50 <= RUNS,
        "{lagged} logs stop at a confirmation in flight"
    );
}

#[tokio::test]
async fn logs_of_a_mutant_are_rejected() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut rejected = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus") {
        let file = entry.expect("entry").path();
        if file.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let trace = drcheck_traces::load(&file).expect("corpus file");
        let bug = trace.model.cfg.params.bug.expect("a bug");
        if bug == Bug::FailbackNeedsCaughtUp {
            // An omission: the refused request leaves no step in the log, and a log without
            // the request is a behaviour of the correct model (the operator need not ask).
            // Validation cannot see it until refusals are checked against the model's
            // enabledness; replay on the mutant and the checker catch it.
            continue;
        }
        let path = log_path(bug.name());
        replay_logged(
            &trace.model.cfg,
            &trace.actions(),
            Mutants::only(bug),
            Some(path.clone()),
        )
        .await
        .expect("replay");
        let text = std::fs::read_to_string(&path).expect("log");
        let _ = std::fs::remove_file(&path);
        let records = parse_log(&text).expect("the log parses");
        let mut cfg = model_for(&records).expect("a model");
        cfg.params.bug = None;
        let v = validate(&cfg, &records);
        assert!(
            v.unexplained.is_some(),
            "--bug {}: the mutant's log is a behaviour of the correct model",
            bug.name()
        );
        rejected.push(bug.name());
    }
    println!("rejected: {rejected:?}");
}

#[test]
fn a_bad_log_line_is_reported_with_its_number() {
    let err = parse_log("{\"seq\":0}\nnot json\n").expect_err("bad lines");
    assert!(err.to_string().starts_with("line 1:"), "{err}");
}

/// The records of a virtual deployment's log: two writes, the primary crashes, a failover.
async fn failover_records(name: &str) -> Vec<drcheck_impl::protocol::event::Record> {
    let path = log_path(name);
    let mut d = Deployment::start(DeploymentConfig {
        operator_token: "t".to_string(),
        event_log: Some(path.clone()),
        ..DeploymentConfig::default()
    })
    .await
    .expect("deployment");
    for _ in 0..2 {
        let patient = r#"{"resourceType":"Patient"}"#.to_string();
        d.write(patient)
            .await
            .expect("write")
            .expect("acknowledged");
    }
    d.crash(0).await.expect("crash");
    d.advance(12).await.expect("advance");
    d.shutdown().await.expect("shutdown");
    let text = std::fs::read_to_string(&path).expect("log");
    let _ = std::fs::remove_file(&path);
    let records = parse_log(&text).expect("the log parses");
    let cfg = model_for(&records).expect("a model");
    assert!(validate(&cfg, &records).unexplained.is_none(), "as written");
    records
}

/// The log as processes on wall time, ticking every quarter minute, would have written it
/// (`ticks_every` in its `started`), or as a virtual clock did.
fn on_wall_time(records: &mut [drcheck_impl::protocol::event::Record], wall: bool) {
    use drcheck_impl::protocol::event::Event;
    for r in records.iter_mut() {
        if let Event::Started { ticks_every, .. } = &mut r.event {
            *ticks_every = wall.then_some(15_000);
        }
    }
}

fn valid(records: &[drcheck_impl::protocol::event::Record]) -> bool {
    let cfg = model_for(records).expect("a model");
    validate(&cfg, records).unexplained.is_none()
}

/// A running control plane declares a silent region failed at its first tick after the
/// detection time, up to a quarter minute after the minute in which the model must: a log on
/// wall time is explained with that lateness, a virtual one is not.
#[tokio::test]
async fn an_action_a_tick_late_is_explained_only_on_wall_time() {
    let mut records = failover_records("late").await;
    let declared = records
        .iter()
        .position(|r| r.event.kind() == "region_declared_failed")
        .expect("a declaration");
    // The declaration and everything after it, a minute and 5 s later.
    for r in &mut records[declared..] {
        r.at += 60_000 + 5_000;
    }
    on_wall_time(&mut records, true);
    assert!(valid(&records), "a tick late on wall time");
    on_wall_time(&mut records, false);
    assert!(!valid(&records), "a minute late on a virtual clock");
}

/// What the primary shipped before it crashed may arrive after the crash's record on a real
/// network: a log on wall time is explained with the crash taking effect after the arrival,
/// a virtual one (whose transport drops what a crashed region sent) is not.
#[tokio::test]
async fn a_message_on_the_wire_at_a_crash_arrives_after_it_only_on_wall_time() {
    use drcheck_impl::protocol::event::{Event, FaultKind};
    let mut records = failover_records("wire").await;
    let crash = records
        .iter()
        .position(|r| {
            matches!(
                r.event,
                Event::Fault {
                    fault: FaultKind::Crash,
                    ..
                }
            )
        })
        .expect("a crash");
    let shipped = records[..crash]
        .iter()
        .rposition(|r| r.event.kind() == "replicated")
        .expect("a replication before the crash");
    // It arrives just after the crash's record.
    let mut moved = records.remove(shipped);
    moved.at = records[crash - 1].at;
    records.insert(crash, moved);
    for (seq, r) in records.iter_mut().enumerate() {
        r.seq = seq as u64;
    }
    on_wall_time(&mut records, true);
    assert!(
        valid(&records),
        "delivered after the crash on a real network"
    );
    on_wall_time(&mut records, false);
    assert!(
        !valid(&records),
        "delivered by a crashed region on a virtual clock"
    );
}

/// A process's event log numbers on across its restarts, and the merged run of a deployment's
/// logs is validated like one log; a region that starts again with no recovery in the log is
/// where validation stops.
#[tokio::test]
async fn a_region_started_again_without_a_recovery_is_no_model_step() {
    use drcheck_impl::protocol::event::{Event, Record};
    use drcheck_impl::protocol::message::NodeId;
    let records = failover_records("boots").await;
    let first = records[0].clone();
    let Event::Started {
        regions, timing, ..
    } = first.event.clone()
    else {
        panic!("the log starts with `started`");
    };
    let boot = |at: u64, node: NodeId| Record {
        seq: 0,
        at,
        node,
        event: Event::Started {
            regions,
            timing,
            ticks_every: None,
        },
    };
    // Region 1 starts once, at the start: fine.
    let mut once = records.clone();
    once.insert(1, boot(first.at, NodeId::Region(1)));
    assert!(valid(&once));
    // Region 1 starts again later, nothing having restarted it.
    let mut again = once.clone();
    let at = again.last().expect("records").at;
    again.push(boot(at, NodeId::Region(1)));
    let cfg = model_for(&again).expect("a model");
    let u = validate(&cfg, &again).unexplained.expect("unexplained");
    assert_eq!(u.index, again.len() - 1);
    assert!(u.step.contains("started again"), "{}", u.step);
}
