//! A region or control-plane process runs inside a test: `region::run` and `control::run`
//! take their shutdown as a future (as `drcheck region`/`control` pass Ctrl-C), so a whole
//! deployment can be started, asked and stopped in one runtime, and stops cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use drcheck_fhir::region::{FhirInput, FhirOutput};
use drcheck_impl::auth::{self, Keyring, Principal};
use drcheck_impl::protocol::message::NodeId;
use drcheck_impl::service::port::PortReservation;
use drcheck_impl::service::rpc::{self, RegionCall};
use drcheck_impl::service::{control, region, Cluster, NodeAddrs};
use tokio::sync::watch;

/// A node's addresses, on ports held in `held` for as long as the test runs.
fn addrs(held: &mut Vec<PortReservation>) -> NodeAddrs {
    let mut reserve = || {
        let port = PortReservation::new().expect("a free port");
        let addr = port.addr();
        held.push(port);
        addr
    };
    NodeAddrs {
        protocol: reserve(),
        rpc: reserve(),
    }
}

async fn summary(
    keys: &Keyring,
    r: u8,
    addr: SocketAddr,
) -> Option<drcheck_fhir::region::RegionSummary> {
    let call = RegionCall::Machine(FhirInput::Summary);
    let region = Principal::Region(r);
    match rpc::call(addr, keys, region, &call, Duration::from_secs(1)).await {
        Ok(FhirOutput::Summary(summary)) => Some(*summary),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_processes_runs_in_a_test_and_stops_on_its_shutdown() {
    let dir = std::env::temp_dir().join(format!("drcheck-processes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data directory");
    let mut ports = Vec::new();
    let cluster = Cluster {
        regions: 2,
        timing: drcheck_impl::time::default_timing(),
        minute_ms: 100,
        start_unix_ms: drcheck_impl::time::unix_ms(),
        control: addrs(&mut ports),
        region: vec![addrs(&mut ports), addrs(&mut ports)],
        data_dir: dir.clone(),
        resume: None,
    };
    // As `serve` does: the deployment's secret, and each process's keys.
    let secret = auth::provision(&dir, 2).expect("keys");
    let keys = secret.keyring(Principal::Endpoint, 2);
    let (stop, stopped) = watch::channel(false);
    let shutdown = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut tasks = Vec::new();
    let config = |node| cluster.process(node).expect("process config");
    tasks.push(tokio::spawn(control::run(
        config(NodeId::Control),
        shutdown(),
    )));
    for r in 0..2 {
        tasks.push(tokio::spawn(region::run(
            config(NodeId::Region(r)),
            shutdown(),
        )));
    }

    // Region 0 is primary and takes writes; region 1 follows.
    let primary = cluster.region[0].rpc;
    let mut writable = false;
    for _ in 0..100 {
        if summary(&keys, 0, primary)
            .await
            .is_some_and(|s| s.accepts_writes)
        {
            writable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(writable, "region 0 never accepted writes");
    assert!(summary(&keys, 1, cluster.region[1].rpc).await.is_some());

    stop.send(true).expect("the processes listen");
    for task in tasks {
        let ended = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("a process stops within 5 s of its shutdown")
            .expect("the task did not panic");
        assert!(ended.is_ok(), "{ended:?}");
    }
    // Stopped means stopped: nothing answers on the RPC ports any more.
    let after = summary(&keys, 0, primary).await;
    assert!(after.is_none(), "region 0 still answers: {after:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
