//! The state machines alone, for the message orders the deployments rarely produce: late,
//! duplicated and reordered commands, and a control plane that restarts.

use crate::common::{assert_invariants, patient, run, run_until, start};
use drcheck_impl::protocol::control::{recover_routing, ControlMachine, Phase};
use drcheck_impl::protocol::entry::{epoch_runs, LogEntry};
use drcheck_impl::protocol::event::Event;
use drcheck_impl::protocol::message::{Heartbeat, Message, NodeId};
use drcheck_impl::protocol::region::RegionMachine;
use drcheck_impl::protocol::Effects;
use drcheck_impl::store::Durable;
use drcheck_impl::time::{default_timing as timing_default, MINUTE};
use drcheck_properties::Role;

const CP: NodeId = NodeId::Control;

fn entry(epoch: u32, write: u64) -> LogEntry {
    LogEntry {
        epoch,
        write,
        acked_at: 0,
        reapply_of: None,
        payload: String::new(),
    }
}

fn region(id: u8, epoch: u32, role: Role, log: Vec<LogEntry>) -> RegionMachine {
    let durable = Durable {
        epoch,
        role,
        log,
        quarantine: Vec::new(),
    };
    RegionMachine::new(id, 3, timing_default(), durable, 0)
}

fn deliver(m: &mut RegionMachine, from: NodeId, msg: Message) -> Effects {
    let mut fx = Effects::default();
    m.receive(10 * MINUTE, from, msg, &mut fx);
    fx
}

#[test]
fn a_late_rejoin_for_an_older_epoch_truncates_nothing() {
    // Region 2 rejoined epoch 2 and holds its log; it then hears of epoch 3.
    let log = vec![entry(1, 1), entry(2, 2), entry(2, 3)];
    let mut r = region(2, 2, Role::Secondary, log.clone());
    deliver(&mut r, CP, Message::NewEpoch { epoch: 3 });
    assert_eq!(r.role(), Role::Stale);
    // A duplicate of the old rejoin into epoch 2, and a late answer of that epoch's primary.
    let fx = deliver(
        &mut r,
        CP,
        Message::Rejoin {
            epoch: 2,
            primary: 1,
        },
    );
    assert!(fx.send.is_empty() && fx.store.is_empty(), "{fx:?}");
    let late = Message::JoinAccept {
        epoch: 2,
        runs: epoch_runs(&[entry(1, 1)]),
    };
    let fx = deliver(&mut r, NodeId::Region(1), late);
    assert!(fx.store.is_empty(), "nothing persisted: {:?}", fx.store);
    assert_eq!(r.log(), &log[..]);
    assert!(r.quarantine().is_empty());
    // The rejoin into epoch 3 asks its primary, and truncates against its answer.
    let fx = deliver(
        &mut r,
        CP,
        Message::Rejoin {
            epoch: 3,
            primary: 1,
        },
    );
    assert!(matches!(fx.send[..], [ref m] if m.msg == Message::JoinRequest { epoch: 3 }));
    let answer = Message::JoinAccept {
        epoch: 3,
        runs: epoch_runs(&log),
    };
    deliver(&mut r, NodeId::Region(1), answer);
    assert_eq!((r.role(), r.epoch()), (Role::Secondary, 3));
}

#[test]
fn a_late_unfence_or_grant_does_not_revive_a_fenced_primary() {
    let mut p = region(0, 1, Role::Primary, vec![entry(1, 1)]);
    let grant = |issued| Message::Grant {
        epoch: 1,
        expiry: 30 * MINUTE,
        issued,
    };
    deliver(&mut p, CP, grant(9 * MINUTE));
    let fence = |issued| Message::Fence {
        epoch: 1,
        target: 1,
        issued,
    };
    deliver(&mut p, CP, fence(10 * MINUTE));
    assert_eq!(p.role(), Role::Fenced);
    // The unfence of an earlier, aborted switchover arrives late: ignored.
    deliver(
        &mut p,
        CP,
        Message::Unfence {
            epoch: 1,
            fence: 5 * MINUTE,
        },
    );
    assert_eq!(p.role(), Role::Fenced);
    // The unfence of this switchover is taken; a grant issued before the fence is not.
    deliver(
        &mut p,
        CP,
        Message::Unfence {
            epoch: 1,
            fence: 10 * MINUTE,
        },
    );
    assert_eq!(p.role(), Role::Primary);
    deliver(&mut p, CP, grant(9 * MINUTE));
    assert!(
        p.refusal(10 * MINUTE).is_some(),
        "no lease from a grant older than the fence"
    );
    deliver(&mut p, CP, grant(11 * MINUTE));
    assert!(p.refusal(10 * MINUTE).is_none());
}

#[test]
fn commands_from_a_region_or_naming_no_region_are_ignored() {
    let mut p = region(0, 1, Role::Primary, vec![]);
    let forged = Message::Fence {
        epoch: 1,
        target: 1,
        issued: 0,
    };
    deliver(&mut p, NodeId::Region(1), forged);
    assert_eq!(p.role(), Role::Primary, "only the control plane fences");
    let nowhere = Message::Fence {
        epoch: 1,
        target: 9,
        issued: 0,
    };
    deliver(&mut p, CP, nowhere);
    assert_eq!(
        p.role(),
        Role::Primary,
        "a fence toward no region is ignored"
    );
    let mut s = region(1, 1, Role::Secondary, vec![]);
    deliver(
        &mut s,
        NodeId::Region(2),
        Message::Promote {
            epoch: 2,
            expiry: MINUTE,
        },
    );
    assert_eq!(s.role(), Role::Secondary, "only the control plane promotes");
}

fn heartbeat(role: Role, len: u64, old_prefix: u64, sent_at: u64) -> Message {
    Message::Heartbeat(Heartbeat {
        epoch: 1,
        role,
        log_len: len,
        last: None,
        runs: Vec::new(),
        old_prefix,
        primary_contact: true,
        in_sync: Vec::new(),
        unconfirmed_since: Vec::new(),
        fence: None,
        sent_at,
    })
}

#[test]
fn the_control_plane_ignores_a_heartbeat_older_than_one_it_took() {
    let mut cp = ControlMachine::new(2, timing_default(), 0);
    let mut fx = Effects::default();
    cp.receive(
        2 * MINUTE,
        NodeId::Region(0),
        heartbeat(Role::Primary, 5, 3, 2 * MINUTE),
        &mut fx,
    );
    assert_eq!(cp.snapshot(2 * MINUTE).old_prefix, Some(3));
    // A reordered, older heartbeat would lower the RPO guard's count.
    cp.receive(
        2 * MINUTE,
        NodeId::Region(0),
        heartbeat(Role::Primary, 4, 1, MINUTE),
        &mut fx,
    );
    assert_eq!(cp.snapshot(2 * MINUTE).old_prefix, Some(3));
}

#[test]
fn a_restarted_control_plane_refuses_automatic_failover_until_it_hears_the_primary() {
    assert_eq!(
        recover_routing(&[Some((1, Role::Stale)), Some((2, Role::Primary)), None]),
        Some((2, 1))
    );
    assert_eq!(recover_routing(&[None, None]), None);
    let timing = timing_default();
    let mut cp = ControlMachine::resume(2, timing, 0, 2, 1);
    let mut fx = Effects::default();
    // Region 0 (a secondary of epoch 2) reports; the primary never does.
    for minute in 1..=10 {
        let now = minute * MINUTE;
        let hb = Message::Heartbeat(Heartbeat {
            epoch: 2,
            role: Role::Secondary,
            log_len: 7,
            last: None,
            runs: Vec::new(),
            old_prefix: 0,
            primary_contact: false,
            in_sync: Vec::new(),
            unconfirmed_since: Vec::new(),
            fence: None,
            sent_at: now,
        });
        cp.receive(now, NodeId::Region(0), hb, &mut fx);
        cp.tick(now, &mut fx);
    }
    let blocked = fx.events.iter().any(|e| {
        matches!(
            e,
            Event::FailoverStarted {
                guard_ok: false,
                ..
            }
        )
    });
    assert!(blocked, "{:?}", fx.events);
    assert!(matches!(
        cp.snapshot(10 * MINUTE).phase,
        Phase::FailingOver { .. }
    ));
    assert_eq!(
        cp.routing().primary,
        1,
        "no automatic failover on unknown data"
    );
}

#[tokio::test]
async fn a_control_plane_restart_after_a_failover_keeps_one_writer_and_recovers() {
    let mut d = start(2).await;
    d.write(patient(0)).await.unwrap().expect("acknowledged");
    run(&mut d, 1).await;
    d.isolate(0).await.unwrap();
    run_until(&mut d, 20, "failover", |v| v.routing.primary == 1).await;
    d.write(patient(1))
        .await
        .unwrap()
        .expect("region 1 takes writes");
    d.reconnect(0).await.unwrap();
    d.restart_control().await.unwrap();
    let view = assert_invariants(&mut d).await;
    assert_eq!(
        (view.routing.epoch, view.routing.primary),
        (2, 1),
        "routing recovered"
    );
    run_until(&mut d, 20, "region 0 rejoins", |v| {
        v.regions[0].role == Role::Secondary && v.regions[0].epoch == 2
    })
    .await;
    run_until(&mut d, 20, "writes resume", |v| {
        v.regions[1].can_acknowledge()
    })
    .await;
    d.write(patient(2))
        .await
        .unwrap()
        .expect("writes after the restart");
    run(&mut d, 5).await;
}

#[test]
fn a_secondary_with_a_divergent_entry_refuses_an_append_that_would_extend_it() {
    // Region 1, a secondary of epoch 2, holds 1:w9 where primary 0 holds 2:w2 (it kept a
    // divergent entry, as under rejoin-no-truncate). The primary ships 2:w2 2:w3 from index 1:
    // appending 2:w3 after 1:w9 would make a log the primary never had.
    let mut s = region(1, 2, Role::Secondary, vec![entry(1, 1), entry(1, 9)]);
    let fx = deliver(
        &mut s,
        NodeId::Region(0),
        Message::Append {
            epoch: 2,
            start: 1,
            entries: vec![entry(2, 2), entry(2, 3)],
            prev: Some((1, 1)),
        },
    );
    assert_eq!(s.log(), &[entry(1, 1), entry(1, 9)][..], "log unchanged");
    assert!(fx.store.is_empty(), "nothing persisted: {:?}", fx.store);
    // It answers with the length it shares with the primary, not its own.
    let confirms: Vec<u64> = fx
        .send
        .iter()
        .filter_map(|e| match e.msg {
            Message::Confirm { log_len, .. } => Some(log_len),
            _ => None,
        })
        .collect();
    assert_eq!(confirms, [1]);
    assert!(
        fx.events.iter().any(|e| matches!(
            e,
            Event::AppendRefused {
                region: 1,
                from: 0,
                ..
            }
        )),
        "the refusal is an event: {:?}",
        fx.events
    );
}

#[test]
fn a_secondary_refuses_an_append_whose_previous_entry_it_does_not_hold() {
    // The batch starts after the divergent entry: only the previous entry tells.
    let mut s = region(1, 2, Role::Secondary, vec![entry(1, 1), entry(1, 9)]);
    let append = |prev| Message::Append {
        epoch: 2,
        start: 2,
        entries: vec![entry(2, 3)],
        prev,
    };
    let fx = deliver(&mut s, NodeId::Region(0), append(Some((2, 2))));
    assert_eq!(s.log().len(), 2, "nothing appended: {:?}", s.log());
    assert!(fx.store.is_empty());
    assert!(fx.send.iter().any(|e| e.msg
        == Message::Confirm {
            epoch: 2,
            log_len: 1
        }));
    assert!(fx.events.iter().any(|e| matches!(
        e,
        Event::AppendRefused {
            start: 2,
            log_len: 2,
            matched: 1,
            ..
        }
    )));
    // The same batch after the entry it does hold extends its log.
    let fx = deliver(&mut s, NodeId::Region(0), append(Some((1, 9))));
    assert_eq!(s.log().len(), 3);
    assert!(fx.events.iter().any(|e| e.kind() == "replicated"));
}

#[test]
fn an_append_without_its_previous_entry_still_parses() {
    // A primary that predates the check sends no `prev`: the message still parses.
    let json = r#"{"type":"append","epoch":2,"start":0,"entries":[]}"#;
    let msg: Message = serde_json::from_str(json).expect("an old Append parses");
    assert_eq!(
        msg,
        Message::Append {
            epoch: 2,
            start: 0,
            entries: Vec::new(),
            prev: None
        }
    );
}
