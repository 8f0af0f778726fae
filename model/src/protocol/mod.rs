//! The DR protocol as plain step functions: each takes the current state and returns the next
//! one, or `None` when the step is not enabled (a refused operation changes nothing).

pub mod control;
pub mod environment;
pub mod region;
pub mod time;

use drcheck_properties::Status;

use crate::action::Action;
use crate::config::Config;
use crate::state::DrState;
use drcheck_properties::Bug;

/// Every step that might be enabled in `s`, in a fixed order. [`apply`] decides.
pub fn candidates(cfg: &Config, s: &DrState, out: &mut Vec<Action>) {
    let n = s.region_count();
    out.push(Action::Tick);
    for r in 0..n {
        out.push(Action::Write { region: r });
    }
    for r in 0..n {
        if s.heartbeats.iter().any(|h| h.from == r) {
            out.push(Action::DeliverHeartbeat { region: r });
            if s.budget.losses > 0 {
                out.push(Action::LoseHeartbeat { region: r });
                out.push(Action::LoseAnswer { region: r });
            }
        }
    }
    for from in 0..n {
        for to in 0..n {
            if from != to {
                out.push(Action::Replicate { from, to });
            }
        }
    }
    for r in 0..n {
        out.push(Action::Declare { region: r });
        out.push(Action::Promote { region: r });
        out.push(Action::OutOfSync { region: r });
        out.push(Action::Rejoin { region: r });
    }
    out.extend([
        Action::ComputeFailback,
        Action::ComputeToPrimary,
        Action::Fence,
        Action::CompleteSwitchover,
        Action::AbortSwitchover,
    ]);
    if cfg.has_bug(Bug::AutoDataFailback) {
        out.push(Action::AutoFailback {
            target: s.view.routing.home,
        });
    }
    for r in 0..n {
        out.push(Action::Crash { region: r });
        if cfg.params.isolation {
            out.push(Action::Isolate { region: r });
        }
        out.push(Action::Recover { region: r });
        out.push(Action::Reconnect { region: r });
    }
    out.extend([Action::RestartControl, Action::Partition, Action::Heal]);
    for r in 0..n {
        out.push(Action::RequestFailback { target: r });
        out.push(Action::ForceFailover { target: r });
    }
    for region in &s.view.regions {
        for &write in &region.quarantine {
            out.push(Action::Reapply { write });
        }
    }
}

/// The state after `action`, or `None` if it is not enabled in `s`.
pub fn apply(cfg: &Config, s: &DrState, action: &Action) -> Option<DrState> {
    if !in_range(s, action) {
        return None;
    }
    let mut next = match *action {
        Action::Tick => time::tick(cfg, s),
        Action::Write { region: r } => region::write(cfg, s, r),
        Action::DeliverHeartbeat { region: r } => control::deliver_heartbeat(cfg, s, r),
        Action::LoseHeartbeat { region: r } => environment::lose_heartbeat(s, r),
        Action::LoseAnswer { region: r } => control::lose_answer(cfg, s, r),
        Action::Replicate { from, to } => region::replicate(cfg, s, from, to),
        Action::Declare { region: r } => control::declare(cfg, s, r),
        Action::Promote { region: r } => control::promote(cfg, s, r),
        Action::OutOfSync { region: r } => control::leave_out_of_sync(cfg, s, r),
        Action::Rejoin { region: r } => control::rejoin(cfg, s, r),
        Action::ComputeFailback => control::compute_failback(cfg, s),
        Action::ComputeToPrimary => control::compute_to_primary(cfg, s),
        Action::Fence => control::fence(s),
        Action::CompleteSwitchover => control::complete_switchover(cfg, s),
        Action::AbortSwitchover => control::abort_switchover(cfg, s),
        Action::AutoFailback { target } => control::auto_failback(cfg, s, target),
        Action::Crash { region: r } => environment::outage(cfg, s, r, Status::Down),
        Action::Isolate { region: r } if cfg.params.isolation => {
            environment::outage(cfg, s, r, Status::Isolated)
        }
        Action::Isolate { .. } => None,
        Action::Recover { region: r } => environment::restore(s, r, Status::Down),
        Action::Reconnect { region: r } => environment::restore(s, r, Status::Isolated),
        Action::RestartControl => environment::restart_control(cfg, s),
        Action::Partition => environment::partition(s),
        Action::Heal => environment::heal(s),
        Action::RequestFailback { target } => control::request_failback(cfg, s, target),
        Action::ForceFailover { target } => control::force_failover(cfg, s, target),
        Action::Reapply { write } => region::reapply(cfg, s, write),
    }?;
    let writable = endpoint_writable(cfg, &next);
    let switching = matches!(next.control.phase, crate::state::Phase::Switchover { .. });
    let repaired = next.view.all_up();
    next.view.ledger.after_step(writable, repaired, switching);
    crate::canonical::canonicalize(cfg, &mut next);
    Some(next)
}

/// Region numbers in the action exist (a trace file may name any).
fn in_range(s: &DrState, action: &Action) -> bool {
    let n = s.region_count();
    let to_ok = !matches!(*action, Action::Replicate { to, .. } if to >= n);
    action.region().is_none_or(|r| r < n) && to_ok
}

/// Could a write through the global endpoint be acknowledged now? The compute region must be
/// up and reach a data primary that accepts writes.
pub fn endpoint_writable(cfg: &Config, s: &DrState) -> bool {
    let routing = &s.view.routing;
    let primary = s.region(routing.primary);
    s.region(routing.compute).status == Status::Up
        && primary.status == Status::Up
        && primary.epoch == routing.epoch
        && s.connected(routing.compute, routing.primary)
        && region::accepts_writes(cfg, s, routing.primary)
}
