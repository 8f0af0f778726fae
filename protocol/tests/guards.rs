//! Guards of the state machines whose mutants only the implementation's integration tests
//! used to catch (issue 18's sampled mutation run): each test here fails on its mutant, next
//! to the machine, without a deployment.

use drcheck_properties::Role;
use drcheck_protocol::control::{ControlMachine, Phase};
use drcheck_protocol::durable::Durable;
use drcheck_protocol::message::{Heartbeat, Message, NodeId};
use drcheck_protocol::region::RegionMachine;
use drcheck_protocol::time::{default_timing, Millis, MINUTE};
use drcheck_protocol::Effects;

fn heartbeat(epoch: u32, role: Role, log_len: u64, sent_at: Millis) -> Heartbeat {
    Heartbeat {
        epoch,
        role,
        log_len,
        last: (log_len > 0).then_some((epoch, log_len)),
        runs: Vec::new(),
        old_prefix: 0,
        primary_contact: true,
        in_sync: Vec::new(),
        unconfirmed_since: Vec::new(),
        fence: None,
        sent_at,
    }
}

fn hear(cm: &mut ControlMachine, now: Millis, from: u8, msg: Message) -> Effects {
    let mut fx = Effects::default();
    cm.receive(now, NodeId::Region(from), msg, &mut fx);
    fx
}

#[test]
fn a_rejoined_of_an_older_epoch_leaves_the_report_alone() {
    // Epoch 2, region 1 primary; region 0 reported as a secondary of epoch 2 holding 3
    // entries.
    let mut cm = ControlMachine::resume(2, default_timing(), 0, 2, 1);
    let now = MINUTE;
    hear(
        &mut cm,
        now,
        0,
        Message::Heartbeat(heartbeat(2, Role::Secondary, 3, now)),
    );
    assert_eq!(cm.snapshot(now).reported_len[0], Some(3));
    // A delayed `Rejoined` from its rejoin into epoch 1 arrives: it says nothing of now.
    let late = Message::Rejoined {
        epoch: 1,
        log_len: 0,
        last: None,
    };
    hear(&mut cm, now, 0, late);
    assert_eq!(cm.snapshot(now).reported_len[0], Some(3));
    // The same from the current epoch is taken.
    let current = Message::Rejoined {
        epoch: 2,
        log_len: 2,
        last: Some((2, 2)),
    };
    hear(&mut cm, now, 0, current);
    assert_eq!(cm.snapshot(now).reported_len[0], Some(2));
}

/// A switchover back home to region 0 from primary region 1 (epoch 2), with the fence sent:
/// the machine and when the fence was issued. The drain timeout (2 minutes) is shorter than
/// the detection time, so that a switchover times out before anyone is declared failed.
fn fencing() -> (ControlMachine, Millis) {
    let timing = drcheck_protocol::time::Timing {
        drain_timeout: 2 * MINUTE,
        ..default_timing()
    };
    let mut cm = ControlMachine::resume(2, timing, 0, 2, 1);
    let now = MINUTE;
    let primary = Heartbeat {
        in_sync: vec![0],
        ..heartbeat(2, Role::Primary, 3, now)
    };
    hear(&mut cm, now, 1, Message::Heartbeat(primary));
    hear(
        &mut cm,
        now,
        0,
        Message::Heartbeat(heartbeat(2, Role::Secondary, 3, now)),
    );
    let mut fx = Effects::default();
    cm.request_failback(now, 0, &mut fx)
        .expect("region 0 is in sync and linked");
    let issued = fx
        .send
        .iter()
        .find_map(|e| match e.msg {
            Message::Fence { issued, .. } => Some(issued),
            _ => None,
        })
        .expect("the primary is told to fence");
    (cm, issued)
}

fn fenced_at(cm: &ControlMachine, now: Millis) -> Option<Millis> {
    match cm.snapshot(now).phase {
        Phase::Switchover { fenced_at, .. } => fenced_at,
        other => panic!("not switching over: {other:?}"),
    }
}

#[test]
fn a_fenced_heartbeat_confirms_the_fence_when_its_reply_was_lost() {
    let (mut cm, issued) = fencing();
    let now = issued + MINUTE;
    assert_eq!(fenced_at(&cm, now), None);
    // The `Fenced` reply is lost; the primary's next heartbeat says it obeys the fence.
    let fenced = Heartbeat {
        fence: Some(issued),
        in_sync: vec![0],
        ..heartbeat(2, Role::Fenced, 3, now)
    };
    hear(&mut cm, now, 1, Message::Heartbeat(fenced));
    assert_eq!(fenced_at(&cm, now), Some(now));
}

#[test]
fn a_primary_heartbeat_does_not_confirm_a_fence() {
    let (mut cm, issued) = fencing();
    let now = issued + MINUTE;
    // Sent before the fence arrived: the primary still writes.
    let unfenced = Heartbeat {
        in_sync: vec![0],
        ..heartbeat(2, Role::Primary, 4, now)
    };
    hear(&mut cm, now, 1, Message::Heartbeat(unfenced));
    assert_eq!(fenced_at(&cm, now), None);
}

/// The unfences `fx` sends to region 1.
fn unfences(fx: &Effects) -> Vec<Message> {
    fx.send
        .iter()
        .filter(|e| e.to == NodeId::Region(1) && matches!(e.msg, Message::Unfence { .. }))
        .map(|e| e.msg.clone())
        .collect()
}

#[test]
fn a_fenced_primary_heard_after_an_aborted_switchover_is_told_to_unfence() {
    let (mut cm, issued) = fencing();
    // The fence is never confirmed (the primary is unreachable): the switchover times out,
    // and the unfence it sends is lost with the primary's link.
    let timeout = issued + 2 * MINUTE;
    let mut fx = Effects::default();
    cm.tick(timeout, &mut fx);
    assert!(matches!(cm.snapshot(timeout).phase, Phase::Normal));
    assert_eq!(unfences(&fx).len(), 1, "the abort sends an unfence");
    // The primary, fenced all along, is heard again: it is told to lift its fence.
    let now = timeout + MINUTE;
    let fenced = Heartbeat {
        fence: Some(issued),
        ..heartbeat(2, Role::Fenced, 3, now)
    };
    let fx = hear(&mut cm, now, 1, Message::Heartbeat(fenced));
    assert_eq!(
        unfences(&fx),
        vec![Message::Unfence {
            epoch: 2,
            fence: issued
        }]
    );
    // A primary that is not fenced is told nothing of the kind.
    let fx = hear(
        &mut cm,
        now + 1,
        1,
        Message::Heartbeat(heartbeat(2, Role::Primary, 3, now + 1)),
    );
    assert!(unfences(&fx).is_empty());
}

#[test]
fn a_region_machine_knows_which_region_it_is() {
    for id in 0..3 {
        let machine =
            RegionMachine::new(id, 3, default_timing(), Durable::fresh(Role::Secondary), 0);
        assert_eq!(machine.id(), id);
    }
}

#[test]
fn a_new_epoch_of_the_current_or_an_older_epoch_leaves_a_region_as_it_is() {
    for role in [Role::Primary, Role::Secondary] {
        let durable = Durable {
            epoch: 2,
            ..Durable::fresh(role)
        };
        let mut region = RegionMachine::new(1, 3, default_timing(), durable, 0);
        for late in [1, 2] {
            let mut fx = Effects::default();
            region.receive(
                MINUTE,
                NodeId::Control,
                Message::NewEpoch { epoch: late },
                &mut fx,
            );
            assert_eq!(region.role(), role, "after new_epoch {late}");
        }
        let mut fx = Effects::default();
        region.receive(
            MINUTE,
            NodeId::Control,
            Message::NewEpoch { epoch: 3 },
            &mut fx,
        );
        assert_eq!(region.role(), Role::Stale, "a newer epoch makes it stale");
    }
}

#[test]
fn a_message_kind_is_its_name_on_the_wire() {
    let wire = [
        r#"{"type":"heartbeat","epoch":1,"role":"Primary","log_len":0,"last":null,"runs":[],"old_prefix":0,"primary_contact":true,"in_sync":[],"fence":null,"sent_at":0}"#,
        r#"{"type":"grant","epoch":1,"expiry":1,"issued":0}"#,
        r#"{"type":"new_epoch","epoch":2}"#,
        r#"{"type":"promote","epoch":2,"expiry":1}"#,
        r#"{"type":"promoted","epoch":2,"runs":[]}"#,
        r#"{"type":"rejoined","epoch":2,"log_len":0,"last":null}"#,
        r#"{"type":"rejoin","epoch":2,"primary":1}"#,
        r#"{"type":"join_request","epoch":2}"#,
        r#"{"type":"join_accept","epoch":2,"runs":[]}"#,
        r#"{"type":"fence","epoch":1,"target":1,"issued":0}"#,
        r#"{"type":"fenced","epoch":1,"log_len":0,"fence":0}"#,
        r#"{"type":"unfence","epoch":1,"fence":0}"#,
        r#"{"type":"drained","epoch":1,"target":1,"fence":0}"#,
        r#"{"type":"in_sync","epoch":1,"region":1}"#,
        r#"{"type":"out_of_sync","epoch":1,"region":1}"#,
        r#"{"type":"append","epoch":1,"start":0,"entries":[]}"#,
        r#"{"type":"confirm","epoch":1,"log_len":0}"#,
        r#"{"type":"merge","entries":[]}"#,
    ];
    for line in wire {
        let msg: Message = serde_json::from_str(line).expect(line);
        let tag = serde_json::to_value(&msg).expect("serializes")["type"].clone();
        assert_eq!(msg.kind(), tag, "{line}");
    }
}

#[test]
fn leaving_a_secondary_out_is_due_only_once_the_write_surely_waited_the_sync_timeout() {
    use drcheck_protocol::control::ControlStep;
    let timing = default_timing();
    let mut cm = ControlMachine::resume(2, timing, 0, 2, 1).controlled();
    let acked = MINUTE;
    // The primary's fresh report: region 0 in sync, lacking a write acknowledged at `acked`
    // (on the primary's clock, which may lag the control plane's by the skew).
    let report_at = |cm: &mut ControlMachine, now: Millis| {
        let primary = Heartbeat {
            in_sync: vec![0],
            unconfirmed_since: vec![(0, acked)],
            ..heartbeat(2, Role::Primary, 3, now)
        };
        hear(cm, now, 1, Message::Heartbeat(primary));
    };
    let timeout = acked + timing.sync_timeout;
    report_at(&mut cm, timeout);
    assert!(cm
        .enabled_steps(timeout)
        .contains(&ControlStep::OutOfSync(0)));
    assert!(
        !cm.pending_steps(timeout)
            .contains(&ControlStep::OutOfSync(0)),
        "the primary's clock may lag: not due yet"
    );
    let surely = timeout + timing.skew;
    report_at(&mut cm, surely);
    assert!(cm
        .pending_steps(surely)
        .contains(&ControlStep::OutOfSync(0)));
}

#[test]
fn a_secondary_back_in_sync_is_no_longer_lagging_and_the_others_still_are() {
    use drcheck_protocol::control::ControlStep;
    let timing = default_timing();
    // Three regions, region 1 primary of epoch 2; regions 0 and 2 both lag since `acked`.
    let mut cm = ControlMachine::resume(3, timing, 0, 2, 1).controlled();
    let acked = MINUTE;
    let now = acked + timing.sync_timeout + timing.skew;
    let primary = Heartbeat {
        in_sync: vec![0, 2],
        unconfirmed_since: vec![(0, acked), (2, acked)],
        ..heartbeat(2, Role::Primary, 3, now)
    };
    hear(&mut cm, now, 1, Message::Heartbeat(primary));
    let lagging = |cm: &ControlMachine| -> Vec<ControlStep> {
        cm.pending_steps(now)
            .into_iter()
            .filter(|s| matches!(s, ControlStep::OutOfSync(_)))
            .collect()
    };
    assert_eq!(
        lagging(&cm),
        vec![ControlStep::OutOfSync(0), ControlStep::OutOfSync(2)]
    );
    // Region 0 catches up: the primary says so.
    hear(
        &mut cm,
        now,
        1,
        Message::InSync {
            epoch: 2,
            region: 0,
        },
    );
    assert_eq!(lagging(&cm), vec![ControlStep::OutOfSync(2)]);
}

fn entry(epoch: u32, write: u64) -> drcheck_protocol::entry::LogEntry {
    drcheck_protocol::entry::LogEntry {
        epoch,
        write,
        acked_at: 0,
        reapply_of: None,
        payload: String::new(),
    }
}

#[test]
fn a_batch_that_overlaps_what_a_secondary_holds_extends_its_log() {
    // Region 1 follows region 0 in epoch 1 and holds two entries; a batch is sent again from
    // index 1 (its confirmation was lost) with one entry more.
    let durable = Durable {
        log: vec![entry(1, 1), entry(1, 2)],
        ..Durable::fresh(Role::Secondary)
    };
    let mut region = RegionMachine::new(1, 2, default_timing(), durable, 0);
    let batch = Message::Append {
        epoch: 1,
        start: 1,
        entries: vec![entry(1, 2), entry(1, 3)],
        prev: Some((1, 1)),
    };
    let mut fx = Effects::default();
    region.receive(MINUTE, NodeId::Region(0), batch, &mut fx);
    let writes: Vec<u64> = region.log().iter().map(|e| e.write).collect();
    assert_eq!(writes, [1, 2, 3]);
    assert!(fx.send.iter().any(|e| e.msg
        == Message::Confirm {
            epoch: 1,
            log_len: 3
        }));
    // The same index with another write, or the same write of another epoch, is not the same
    // entry.
    assert!(entry(1, 2).same_as(&entry(1, 2)));
    assert!(!entry(1, 2).same_as(&entry(2, 2)));
    assert!(!entry(1, 2).same_as(&entry(1, 3)));
}

#[test]
fn a_node_is_named_in_words() {
    assert_eq!(NodeId::Region(2).to_string(), "region 2");
    assert_eq!(NodeId::Control.to_string(), "control plane");
}
