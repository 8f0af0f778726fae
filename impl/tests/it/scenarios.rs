//! The DR behaviours of the reference implementation, each under the virtual clock, with
//! every `properties` invariant checked on `abstract_view()` along the way and at the end.

use crate::common::{assert_invariants, family, patient, run, run_until, start, TOKEN};
use drcheck_impl::deployment::{OperatorError, OperatorRequest, OperatorResponse};
use drcheck_impl::protocol::event::Refusal;
use drcheck_impl::protocol::refusal::OperatorRefusal;
use drcheck_properties::{FailoverKind, Fate, Role, Status};

#[tokio::test]
async fn steady_replication_keeps_the_secondary_caught_up() {
    let mut d = start(2).await;
    for n in 0..5 {
        let ack = d.write(patient(n)).await.unwrap().expect("acknowledged");
        assert_eq!((ack.epoch, ack.index), (1, u64::from(n)));
        run(&mut d, 1).await;
    }
    let view = assert_invariants(&mut d).await;
    assert_eq!(view.regions[0].log.len(), 5);
    assert_eq!(view.regions[1].log, view.regions[0].log);
    assert_eq!(view.regions[0].role, Role::Primary);
    assert!(view.regions[0].lease > 0, "the primary's lease is renewed");
    assert_eq!(view.regions[1].role, Role::Secondary);
    assert_eq!(view.ledger.writes.len(), 5);
    // Ten quiet minutes change nothing: no spurious failover, lease kept.
    run(&mut d, 10).await;
    let view = assert_invariants(&mut d).await;
    assert!(view.ledger.failovers.is_empty());
    assert_eq!(view.routing.primary, 0);
}

/// Writes one entry at the primary that never reaches the secondary (its replication is held
/// back, then lost with the crash), after some that did.
async fn crash_with_one_unreplicated_write(d: &mut drcheck_impl::deployment::Deployment) {
    for n in 0..3 {
        d.write(patient(n)).await.unwrap().expect("acknowledged");
        run(d, 1).await;
    }
    d.set_hold(true);
    d.write(patient(99)).await.unwrap().expect("acknowledged");
    d.crash(0).await.unwrap();
    d.set_hold(false);
    d.settle().await.unwrap();
}

#[tokio::test]
async fn a_primary_outage_fails_over_within_the_rto_losing_less_than_the_rpo() {
    let mut d = start(2).await;
    crash_with_one_unreplicated_write(&mut d).await;
    let minutes = run_until(&mut d, 60, "automatic failover", |v| {
        v.routing.primary == 1 && v.regions[1].can_acknowledge()
    })
    .await;
    // Detection (5) then the lease wait (lease 5 + skew 1 after the last grant).
    assert!(minutes <= 7, "failover took {minutes} minutes");
    let ack = d
        .write(patient(5))
        .await
        .unwrap()
        .expect("the endpoint takes writes again");
    assert_eq!(ack.epoch, 2);
    let view = assert_invariants(&mut d).await;
    let failover = &view.ledger.failovers[0];
    assert_eq!(failover.kind, FailoverKind::Automatic);
    assert_eq!(failover.lost, 1, "the unreplicated write is lost");
    assert!(failover.oldest_loss.is_some_and(|age| age < d.bounds().rpo));
    assert_eq!(
        view.routing.compute, 1,
        "compute moved off the failed region"
    );
}

#[tokio::test]
async fn the_old_primary_rejoins_with_its_divergent_suffix_in_the_quarantine() {
    let mut d = start(2).await;
    crash_with_one_unreplicated_write(&mut d).await;
    run_until(&mut d, 60, "failover", |v| v.routing.primary == 1).await;
    d.write(patient(7))
        .await
        .unwrap()
        .expect("acknowledged by region 1");
    d.recover(0).await.unwrap();
    run_until(&mut d, 10, "rejoin", |v| {
        v.regions[0].role == Role::Secondary
    })
    .await;
    run(&mut d, 2).await;
    let view = assert_invariants(&mut d).await;
    assert_eq!(view.regions[0].epoch, 2);
    assert_eq!(
        view.regions[0].log, view.regions[1].log,
        "caught up with the new primary"
    );
    assert_eq!(view.regions[0].quarantine.len(), 1);
    let lost = view.regions[0].quarantine[0];
    assert!(view.ledger.write(lost).is_some_and(|w| w.quarantined));

    let Ok(OperatorResponse::Quarantine { items }) = d
        .operator(TOKEN, OperatorRequest::ListQuarantine)
        .await
        .unwrap()
    else {
        panic!("the operator lists the quarantine");
    };
    assert_eq!(items.len(), 1);
    assert_eq!(family(&items[0].payload).as_deref(), Some("p99"));
    let original = items[0].write;
    let answer = d
        .operator(TOKEN, OperatorRequest::Reapply { write: original })
        .await
        .unwrap();
    let Ok(OperatorResponse::Reapplied { write, .. }) = answer else {
        panic!("re-apply accepted: {answer:?}");
    };
    assert_ne!(write, original, "a re-applied write is a new write");
    run(&mut d, 2).await;
    let again = d
        .operator(TOKEN, OperatorRequest::Reapply { write: original })
        .await
        .unwrap();
    assert!(matches!(again, Err(OperatorError::Refused(_))), "{again:?}");
    let view = assert_invariants(&mut d).await;
    let primary_log = &view.regions[1].log;
    assert_eq!(primary_log.len(), 5);
}

#[tokio::test]
async fn compute_fails_back_by_itself_and_data_waits_for_the_operator() {
    let mut d = start(2).await;
    crash_with_one_unreplicated_write(&mut d).await;
    run_until(&mut d, 60, "failover", |v| v.routing.primary == 1).await;
    d.recover(0).await.unwrap();
    run_until(&mut d, 10, "compute failback", |v| v.routing.compute == 0).await;
    // Data stays in region 1 however long we wait.
    run(&mut d, 30).await;
    let view = assert_invariants(&mut d).await;
    assert_eq!((view.routing.primary, view.routing.compute), (1, 0));
    assert_eq!(view.ledger.failovers.len(), 1);
    // Writes still work, across regions.
    for n in 10..13 {
        d.write(patient(n)).await.unwrap().expect("acknowledged");
    }
    let answer = d
        .operator(TOKEN, OperatorRequest::DataFailback { target: 0 })
        .await
        .unwrap();
    assert_eq!(answer, Ok(OperatorResponse::Accepted));
    run_until(&mut d, 10, "switchover", |v| v.routing.primary == 0).await;
    run(&mut d, 2).await;
    let view = assert_invariants(&mut d).await;
    let switchover = view.ledger.failovers.last().unwrap();
    assert_eq!(switchover.kind, FailoverKind::Switchover);
    assert_eq!(switchover.lost, 0, "a data failback loses nothing");
    assert!(view
        .ledger
        .writes
        .iter()
        .filter(|w| w.fate == Fate::Live)
        .all(|w| view.regions[0].holds(w.id)));
    let ack = d
        .write(patient(20))
        .await
        .unwrap()
        .expect("region 0 is primary again");
    assert_eq!(ack.epoch, 3);
    // The old primary rejoins the new epoch as a secondary.
    run_until(&mut d, 10, "old primary rejoins", |v| {
        v.regions[1].role == Role::Secondary && v.regions[1].epoch == 3
    })
    .await;
}

#[tokio::test]
async fn a_stalled_partition_throttles_blocks_failover_and_a_forced_one_records_its_loss() {
    let mut d = start(2).await;
    d.write(patient(0)).await.unwrap().expect("acknowledged");
    run(&mut d, 1).await;
    d.partition().await.unwrap();
    d.write(patient(1))
        .await
        .unwrap()
        .expect("acknowledged, not yet replicated");
    // Exactly the throttle's age: not older than it yet, so a write is still taken (and
    // acknowledged behind the partition too).
    run(&mut d, 5).await;
    d.write(patient(2))
        .await
        .unwrap()
        .expect("the oldest unconfirmed write is not older than the throttle yet");
    // One minute more: older than the throttle, new writes are refused with a retry hint.
    run(&mut d, 1).await;
    let refused = d.write(patient(3)).await.unwrap();
    assert!(matches!(refused, Err(Refusal::Throttled { retry_after }) if retry_after > 0));
    // Long enough for the RPO guard to count the stalled write as old, then the primary dies.
    run(&mut d, 9).await;
    d.crash(0).await.unwrap();
    run(&mut d, 10).await;
    let state = d.control_state().await.unwrap();
    assert_eq!(
        state.routing.primary, 0,
        "the RPO guard blocks the automatic failover"
    );
    let view = assert_invariants(&mut d).await;
    assert!(view.ledger.rto_waived);
    assert!(d.write(patient(3)).await.unwrap().is_err());

    // Too early: refused, and nothing changes.
    let before = d.abstract_view().await.unwrap();
    let early = d
        .operator(TOKEN, OperatorRequest::ForceFailover { target: 1 })
        .await
        .unwrap();
    let Err(OperatorError::Refused(reason)) = early else {
        panic!("a forced failover before the grace period is refused: {early:?}");
    };
    assert!(
        matches!(reason, OperatorRefusal::GraceNotPassed { .. }),
        "{reason}"
    );
    assert_eq!(d.abstract_view().await.unwrap(), before);

    run(&mut d, 25).await;
    let forced = d
        .operator(TOKEN, OperatorRequest::ForceFailover { target: 1 })
        .await
        .unwrap();
    assert_eq!(forced, Ok(OperatorResponse::Accepted));
    d.heal().await.unwrap();
    run(&mut d, 1).await;
    let view = assert_invariants(&mut d).await;
    let failover = &view.ledger.failovers[0];
    assert_eq!(failover.kind, FailoverKind::Forced);
    assert_eq!(
        failover.lost, 2,
        "the stalled writes are lost, and recorded"
    );
    assert!(failover
        .oldest_loss
        .is_some_and(|age| age >= d.bounds().rpo));
    d.write(patient(4))
        .await
        .unwrap()
        .expect("writes resume at region 1");
}

#[tokio::test]
async fn an_isolated_primary_stops_writing_before_the_new_one_starts() {
    let mut d = start(2).await;
    d.write(patient(0)).await.unwrap().expect("acknowledged");
    run(&mut d, 1).await;
    d.isolate(0).await.unwrap();
    // Its own clients still reach it while its lease lasts; those writes diverge.
    d.write_at(0, patient(1))
        .await
        .unwrap()
        .expect("acknowledged in region 0");
    let mut refused_for_lease = false;
    for _ in 0..15 {
        run(&mut d, 1).await; // single_writer is checked every minute
        if let Err(Refusal::NoLease) = d.write_at(0, patient(2)).await.unwrap() {
            refused_for_lease = true;
        }
    }
    assert!(refused_for_lease, "the isolated primary's lease ran out");
    let view = assert_invariants(&mut d).await;
    assert_eq!(view.routing.primary, 1);
    d.reconnect(0).await.unwrap();
    run_until(&mut d, 10, "rejoin", |v| {
        v.regions[0].role == Role::Secondary
    })
    .await;
    let view = assert_invariants(&mut d).await;
    assert!(
        !view.regions[0].quarantine.is_empty(),
        "its divergent writes are quarantined"
    );
    assert_eq!(view.regions[0].status, Status::Up);
}

#[tokio::test]
async fn refused_operator_requests_change_nothing() {
    let mut d = start(2).await;
    d.write(patient(0)).await.unwrap().expect("acknowledged");
    run(&mut d, 2).await;
    let before = d.abstract_view().await.unwrap();
    let requests = [
        OperatorRequest::DataFailback { target: 0 },
        OperatorRequest::ForceFailover { target: 1 },
        OperatorRequest::ListQuarantine,
        OperatorRequest::Reapply { write: 1 },
    ];
    for request in &requests {
        for token in ["", "wrong", "s3cret-operator-tokeN"] {
            let answer = d.operator(token, request.clone()).await.unwrap();
            assert_eq!(
                answer,
                Err(OperatorError::Unauthorized),
                "{request:?} with {token:?}"
            );
        }
    }
    let refusals = [
        (
            OperatorRequest::DataFailback { target: 1 },
            OperatorRefusal::NotHome { home: 0 },
        ),
        (
            OperatorRequest::DataFailback { target: 0 },
            OperatorRefusal::AlreadyPrimary { region: 0 },
        ),
        (
            OperatorRequest::DataFailback { target: 7 },
            OperatorRefusal::NoSuchRegion { region: 7 },
        ),
        (
            OperatorRequest::ForceFailover { target: 1 },
            OperatorRefusal::NoFailoverPending,
        ),
        (
            OperatorRequest::Reapply { write: 1 },
            OperatorRefusal::NotQuarantined { write: 1 },
        ),
    ];
    for (request, why) in refusals {
        let answer = d.operator(TOKEN, request.clone()).await.unwrap();
        assert_eq!(answer, Err(OperatorError::Refused(why)), "{request:?}");
    }
    assert_eq!(d.abstract_view().await.unwrap(), before);
}
