//! Every implementation mutant (named as the model's `--bug` it mirrors) is caught: in a
//! scenario built for it, the property the model's bug breaks fails on `abstract_view()`,
//! and the same scenario on the correct implementation keeps every invariant.
//!
//! Built only with the `mutants` feature (the workspace's tests switch it on through the root
//! package's dev-dependency); a normal build has no mutant code.

use crate::common::{patient, TOKEN};
use drcheck_impl::deployment::{Deployment, DeploymentConfig, OperatorRequest};
use drcheck_impl::protocol::message::{Message, NodeId};
use drcheck_impl::protocol::mutant::{Mutant, Mutants};

/// Runs a scenario, collecting every property violated after any of its steps.
struct Run {
    d: Deployment,
    broken: Vec<&'static str>,
}

impl Run {
    async fn start(
        mutant: Option<Mutant>,
        regions: u8,
        timing: Option<drcheck_properties::Timing>,
    ) -> Run {
        let defaults = DeploymentConfig::default();
        let cfg = DeploymentConfig {
            regions,
            operator_token: TOKEN.to_string(),
            mutants: mutant.map(Mutants::only).unwrap_or_default(),
            timing: timing.map_or(defaults.timing, |t| drcheck_impl::time::in_millis(&t)),
            ..defaults
        };
        Run {
            d: Deployment::start(cfg).await.expect("deployment"),
            broken: Vec::new(),
        }
    }

    async fn check(&mut self) {
        for v in self.d.violations().await.expect("view") {
            if !self.broken.contains(&v.property) {
                self.broken.push(v.property);
            }
        }
    }

    async fn minutes(&mut self, n: u32) {
        for _ in 0..n {
            self.d.advance(1).await.expect("advance");
            self.check().await;
        }
    }

    async fn write(&mut self) {
        let _ = self.d.write(patient(0)).await.expect("write");
        self.check().await;
    }

    /// Delivers every message in flight for which `pick` holds (and those it causes, while
    /// messages are held, only if `pick` holds for them too).
    async fn deliver_where(&mut self, pick: impl Fn(NodeId, NodeId, &Message) -> bool) {
        loop {
            let next = self
                .d
                .in_flight()
                .into_iter()
                .find(|m| pick(m.envelope.from, m.envelope.to, &m.envelope.msg));
            let Some(m) = next else { break };
            self.d.deliver(m.seq).await.expect("deliver");
            self.check().await;
        }
    }

    /// Loses every message in flight for which `lose` holds.
    async fn drop_where(&mut self, lose: impl Fn(NodeId, NodeId, &Message) -> bool) {
        let lost: Vec<u64> = self
            .d
            .in_flight()
            .into_iter()
            .filter(|m| lose(m.envelope.from, m.envelope.to, &m.envelope.msg))
            .map(|m| m.seq)
            .collect();
        for seq in lost {
            self.d.drop_message(seq).await.expect("drop");
        }
        self.check().await;
    }

    async fn operator(&mut self, request: OperatorRequest) {
        let _ = self.d.operator(TOKEN, request).await.expect("operator");
        self.check().await;
    }
}

/// Writes, then one more write whose replication is lost with the primary's crash; the
/// deployment fails over to region 1, which takes a write; region 0 recovers and rejoins.
async fn failover_and_rejoin(run: &mut Run) {
    run.write().await;
    run.minutes(1).await;
    run.d.set_hold(true);
    run.write().await;
    run.d.crash(0).await.expect("crash");
    run.d.set_hold(false);
    run.minutes(10).await;
    run.write().await;
    run.d.recover(0).await.expect("recover");
    run.minutes(5).await;
}

/// How many regions a mutant's scenario needs.
fn regions(mutant: Mutant) -> u8 {
    match mutant {
        // A third region that has not yet heard of the newest epoch.
        Mutant::CandidateAnyEpoch => 3,
        _ => 2,
    }
}

/// The timing a mutant's scenario needs, if not the default.
fn timing(mutant: Mutant) -> Option<drcheck_properties::Timing> {
    match mutant {
        // The throttle bounds the window of writes a failover to an in-sync secondary loses;
        // with a sync timeout at the RPO (the default), the secondary leaves the in-sync set
        // just as two stalled writes could be RPO apart. A longer one leaves the throttle
        // the only bound, as in the model's counterexample.
        Mutant::NoThrottle => Some(drcheck_properties::Timing {
            sync_timeout: 30,
            ..drcheck_properties::Timing::default()
        }),
        _ => None,
    }
}

async fn scenario(run: &mut Run, mutant: Mutant) {
    match mutant {
        Mutant::NoThrottle => {
            // Two writes 15 minutes apart while replication is stalled, then a forced
            // failover loses both: the throttle would have refused the second.
            run.write().await;
            run.minutes(1).await;
            run.d.partition().await.expect("partition");
            run.write().await;
            run.minutes(15).await;
            run.write().await;
            run.d.crash(0).await.expect("crash");
            run.minutes(40).await;
            run.operator(OperatorRequest::ForceFailover { target: 1 })
                .await;
            run.minutes(1).await;
        }
        Mutant::NoLeaseWait => {
            run.write().await;
            run.minutes(1).await;
            run.d.isolate(0).await.expect("isolate");
            run.minutes(10).await;
        }
        Mutant::NoRpoGuard => {
            run.d.partition().await.expect("partition");
            run.write().await;
            run.minutes(15).await;
            run.d.crash(0).await.expect("crash");
            run.minutes(10).await;
        }
        Mutant::RpoGuardNoMargin => {
            // The last heartbeat that arrives reports the write 14 minutes old; the next is
            // lost and the primary crashes when the write is 15 minutes old.
            run.d.partition().await.expect("partition");
            run.write().await;
            run.minutes(14).await;
            run.d.set_hold(true);
            run.d.advance(1).await.expect("advance");
            let heartbeat = run.d.in_flight().into_iter().find(|m| {
                m.envelope.from == NodeId::Region(0)
                    && matches!(m.envelope.msg, Message::Heartbeat(_))
            });
            if let Some(m) = heartbeat {
                run.d.drop_message(m.seq).await.expect("drop");
            }
            run.d.crash(0).await.expect("crash");
            run.d.set_hold(false);
            run.minutes(10).await;
        }
        Mutant::RejoinNoTruncate | Mutant::RejoinNoQuarantine | Mutant::RejoinMerge => {
            failover_and_rejoin(run).await;
        }
        // The write's replication is held back past the fence: the correct control plane
        // waits for the fenced primary to report it drained; `failback-stale-last-entry`
        // promotes the target on the reports, which show both at the log end before the write.
        Mutant::FailbackNoDrain | Mutant::FailbackStaleLastEntry => {
            failover_and_rejoin(run).await;
            run.minutes(3).await;
            // A write whose replication to region 0 is held back, then the failback request:
            // everything but the write's replication is delivered.
            run.d.set_hold(true);
            run.write().await;
            run.operator(OperatorRequest::DataFailback { target: 0 })
                .await;
            let not_the_write = |_: NodeId, to: NodeId, msg: &Message| {
                !(to == NodeId::Region(0) && matches!(msg, Message::Append { .. }))
            };
            run.deliver_where(not_the_write).await;
            run.d.set_hold(false);
            run.minutes(10).await;
        }
        Mutant::AutoDataFailback => {
            failover_and_rejoin(run).await;
            run.minutes(30).await;
        }
        Mutant::HastyDetection => {
            // A heartbeat held for less than the maximum delay.
            run.minutes(2).await;
            run.d.set_hold(true);
            run.d.advance(1).await.expect("advance");
            run.check().await;
            run.d.set_hold(false);
            run.d.settle().await.expect("settle");
            run.minutes(3).await;
        }
        Mutant::NoComputeFailover => {
            run.write().await;
            run.d.crash(0).await.expect("crash");
            run.minutes(15).await;
        }
        Mutant::NoAutoFailover => {
            run.write().await;
            run.minutes(1).await;
            run.d.crash(0).await.expect("crash");
            run.minutes(65).await;
        }
        Mutant::NoSyncTimeout => {
            // A write behind a partition that lasts longer than the RTO.
            run.d.partition().await.expect("partition");
            run.write().await;
            run.minutes(70).await;
        }
        Mutant::FailbackUnfenced => {
            failover_and_rejoin(run).await;
            run.minutes(3).await;
            // The fence is slow to arrive; everything else goes on (heartbeats that make the
            // control plane look at the switchover again).
            run.d.set_hold(true);
            run.operator(OperatorRequest::DataFailback { target: 0 })
                .await;
            run.d.advance(1).await.expect("advance");
            let not_the_fence =
                |_: NodeId, _: NodeId, msg: &Message| !matches!(msg, Message::Fence { .. });
            run.deliver_where(not_the_fence).await;
            run.d.set_hold(false);
            run.minutes(5).await;
        }
        Mutant::ComputeIgnoresData => {
            // Compute is back home, data in region 1; then a partition longer than the RTO.
            failover_and_rejoin(run).await;
            run.minutes(5).await;
            run.d.partition().await.expect("partition");
            run.minutes(70).await;
        }
        Mutant::CpRestartHasty => {
            run.write().await;
            run.minutes(2).await;
            run.d
                .restart_control()
                .await
                .expect("restart the control plane");
            run.check().await;
            run.minutes(10).await;
        }
        Mutant::CandidateAnyEpoch => {
            // Region 0 crashes; region 1's heartbeats are lost from minute 4, so that it is
            // declared failed a minute after it is promoted (minute 7), and it crashes as soon
            // as it has taken office. Region 2 last reported as a secondary of epoch 1 (it
            // has not heard of epoch 2 yet), and by the time the lease wait is over it has
            // learned it and stepped down: no region can take over. The correct control
            // plane sees no candidate of epoch 2 and waits for region 1 (the RPO guard
            // refuses, the RTO is waived); the mutant counts region 2 as a candidate,
            // promises a failover and never makes it.
            run.minutes(1).await;
            run.d.crash(0).await.expect("crash");
            run.minutes(2).await;
            run.d.set_hold(true);
            let region_1_heartbeat = |from: NodeId, _: NodeId, msg: &Message| {
                from == NodeId::Region(1) && matches!(msg, Message::Heartbeat(_))
            };
            for _ in 0..4 {
                run.d.advance(1).await.expect("advance");
                run.check().await;
                run.drop_where(region_1_heartbeat).await;
                run.deliver_where(|_, _, _| true).await;
            }
            let routing = run.d.control_state().await.expect("control").routing;
            assert_eq!(
                (routing.epoch, routing.primary),
                (2, 1),
                "region 1 promoted"
            );
            run.d.recover(0).await.expect("recover");
            run.d.crash(1).await.expect("crash");
            run.d.set_hold(false);
            run.minutes(70).await;
        }
        Mutant::FailbackNeedsCaughtUp => {
            failover_and_rejoin(run).await;
            run.minutes(3).await;
            // The failback request arrives while a write is on its way to the target (its
            // replication held back a minute, long enough for the primary to report it).
            run.d.set_hold(true);
            run.write().await;
            run.d.advance(1).await.expect("advance");
            let not_to_the_target = |_: NodeId, to: NodeId, msg: &Message| {
                !(to == NodeId::Region(0) && matches!(msg, Message::Append { .. }))
            };
            run.deliver_where(not_to_the_target).await;
            run.operator(OperatorRequest::DataFailback { target: 0 })
                .await;
            run.d.set_hold(false);
            run.minutes(10).await;
        }
    }
}

#[tokio::test]
async fn every_mutant_breaks_the_property_its_model_bug_breaks() {
    let mut report = Vec::new();
    for &mutant in Mutant::ALL {
        let mut broken = Run::start(Some(mutant), regions(mutant), timing(mutant)).await;
        scenario(&mut broken, mutant).await;
        let mut sound = Run::start(None, regions(mutant), timing(mutant)).await;
        scenario(&mut sound, mutant).await;
        report.push(format!(
            "{:<22} mutant breaks {:?}; correct implementation breaks {:?}",
            mutant.name(),
            broken.broken,
            sound.broken
        ));
        assert!(
            broken.broken.contains(&mutant.caught_by()) && sound.broken.is_empty(),
            "{}",
            report.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}
