//! The deployment with the real ones: the real clock (scaled: 200 ms per protocol minute),
//! TCP between the nodes on loopback, redb stores on disk.

use std::time::{Duration, Instant};

use crate::common::{family, patient, TOKEN};
use drcheck_impl::deployment::{Deployment, DeploymentConfig, Mode, Storage};
use drcheck_properties::Role;

const MINUTE_MS: u64 = 200;

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("drcheck-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &std::path::Path) -> DeploymentConfig {
    DeploymentConfig {
        operator_token: TOKEN.to_string(),
        storage: Storage::Disk(dir.to_path_buf()),
        mode: Mode::Real {
            minute_ms: MINUTE_MS,
        },
        ..DeploymentConfig::default()
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_millis(n * MINUTE_MS)
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns the time it took.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_with_redb_a_crashed_primary_fails_over_within_the_rto() {
    let dir = data_dir("real-failover");
    let mut d = Deployment::start(config(&dir)).await.unwrap();
    for n in 0..10 {
        d.write(patient(n)).await.unwrap().expect("acknowledged");
    }
    // Replication over TCP catches the secondary up.
    let d = tokio::sync::Mutex::new(d);
    eventually(minutes(5), "replication", || async {
        let d = d.lock().await;
        d.region_state(1).await.unwrap().log.len() == 10
    })
    .await;
    let mut d = d.into_inner();
    d.crash(0).await.unwrap();
    let d = tokio::sync::Mutex::new(d);
    let took = eventually(minutes(60), "writes resume", || async {
        let mut d = d.lock().await;
        d.write(patient(100)).await.unwrap().is_ok()
    })
    .await;
    assert!(took < minutes(60), "RTO: {took:?}");
    let mut d = d.into_inner();
    let state = d.control_state().await.unwrap();
    assert_eq!((state.routing.epoch, state.routing.primary), (2, 1));
    let region1 = d.region_state(1).await.unwrap();
    assert!(
        region1.log.len() >= 11,
        "nothing acknowledged before the crash is lost"
    );

    // Region 0 restarts from its redb file and rejoins as secondary; compute follows it home.
    d.recover(0).await.unwrap();
    let d = tokio::sync::Mutex::new(d);
    eventually(minutes(20), "rejoin and compute failback", || async {
        let d = d.lock().await;
        let region0 = d.region_state(0).await.unwrap();
        let control = d.control_state().await.unwrap();
        region0.role == Role::Secondary
            && region0.epoch == 2
            && region0.log == d.region_state(1).await.unwrap().log
            && control.routing.compute == 0
    })
    .await;
    let mut d = d.into_inner();
    let violations = d.violations().await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    d.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_deployment_resumes_from_its_data_directory() {
    let dir = data_dir("real-restart");
    let mut d = Deployment::start(config(&dir)).await.unwrap();
    for n in 0..5 {
        d.write(patient(n)).await.unwrap().expect("acknowledged");
    }
    d.shutdown().await.unwrap();

    let d = Deployment::start(config(&dir)).await.unwrap();
    let region0 = d.region_state(0).await.unwrap();
    assert_eq!(
        region0.log.len(),
        5,
        "the primary's log survived the restart"
    );
    assert_eq!(family(&region0.log[4].payload).as_deref(), Some("p4"));
    // A restarted primary holds no lease until the control plane grants one.
    let d2 = tokio::sync::Mutex::new(d);
    eventually(minutes(10), "writes after restart", || async {
        let mut d = d2.lock().await;
        d.write(patient(9)).await.unwrap().is_ok()
    })
    .await;
    let d = d2.into_inner();
    d.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
