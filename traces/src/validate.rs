//! Implementation → model: is there a behaviour of the model that explains an
//! implementation's event log?
//!
//! Each protocol-significant event names a model step (a write accepted is `Write`, a
//! heartbeat received `DeliverHeartbeat`, a region declared failed `Declare`, …); events
//! that are consequences of another step (a lease granted, a region told it is stale) name
//! none. The search keeps every model state consistent with the log so far (a frontier)
//! and, for each event, lets time pass as the event's time says (the model's `Tick`, which
//! the log does not show) and takes the named step from each. An event no state of the
//! frontier can take is where the log stops being a behaviour of the model.

use std::collections::{HashMap, HashSet};

use drcheck_impl::protocol::entry::WriteId;
use drcheck_impl::protocol::event::{
    AbortReason, ComputeMove, Event, FailoverKind, FaultKind, Record,
};
use drcheck_impl::protocol::message::NodeId;
use drcheck_impl::time::{Millis, MINUTE};
use drcheck_model::protocol::apply;
use drcheck_model::{Action, Config, DrState, Params};

/// The model step an event is, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Observed {
    Step(Action),
    /// Replication observed: a model `Replicate`, or nothing if the model has already done
    /// it (the implementation may ship one catch-up in several pieces).
    Replicated {
        from: u8,
        to: u8,
    },
    /// The endpoint now routes to `to` (a consequence of the step before it).
    Compute {
        to: u8,
    },
    /// An event no model step is (an implementation doing what the protocol does not).
    Foreign,
}

/// Events that are consequences of a step the log shows next to them, or bookkeeping:
/// they name no model step of their own.
const CONSEQUENCES: &[&str] = &[
    "started",
    "write_refused",
    // A secondary refused an Append that would not extend its log: the model ships nothing
    // then (Replicate is disabled), so no step.
    "append_refused",
    "heartbeat_sent",
    "lease_granted",
    "lease_expired",
    "out_of_sync",
    "failover_started",
    "failover_blocked",
    "failover_cancelled",
    "promoted",
    "stale",
    "unfenced",
    "operator_refused",
    "reapplied",
    "store_failed",
];

/// Why an event log cannot be validated at all.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// A line is not an event record.
    #[error("line {line}: {reason}")]
    BadLine {
        /// The line's number, 1 first.
        line: usize,
        /// The JSON error.
        reason: String,
    },
    /// The log's first record is not a `started` event (which gives regions and timing).
    #[error("the log does not start with a `started` event")]
    NoStart,
    /// The deployment's parameters are not a valid model configuration; holds why.
    #[error("the log's parameters do not make a model: {0}")]
    Params(String),
    /// A later `started` event gives other parameters than the first: the log holds more
    /// than one deployment (`serve` restarted on its data directory with other flags).
    #[error(
        "event {}: a `started` with other parameters than the first ({regions} regions, \
         {timing:?}): the log holds more than one deployment",
        index + 1
    )]
    OtherStart {
        /// 0-based position in the log.
        index: usize,
        /// Its regions.
        regions: u8,
        /// Its timing, in minutes.
        timing: drcheck_properties::Timing,
    },
}

/// The first event no model behaviour explains.
#[derive(Clone, Debug)]
pub struct Unexplained {
    /// 0-based position in the log.
    pub index: usize,
    /// The event.
    pub record: Record,
    /// The model step it names.
    pub step: String,
    /// Some of the model states it was tried from (at most three).
    pub tried: Vec<DrState>,
}

/// The result of validating an event log against the model.
#[derive(Clone, Debug)]
pub struct Validation {
    /// Events in the log.
    pub events: usize,
    /// Model steps taken along one explaining behaviour (those the log names and ticks).
    pub model_steps: usize,
    /// The first event no model behaviour explains (`None`: the whole log is explained).
    pub unexplained: Option<Unexplained>,
}

/// What a log records, counted (as `drcheck validate` reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Client writes acknowledged (re-applies included).
    pub writes: usize,
    /// Failovers decided: automatic and forced.
    pub failovers: usize,
    /// Switchovers (data failbacks) completed.
    pub switchovers: usize,
    /// Faults injected (control-plane restarts included).
    pub faults: usize,
    /// Process starts (`started` events).
    pub starts: usize,
}

impl Counts {
    /// The counts of `records`.
    pub fn of(records: &[Record]) -> Counts {
        let mut c = Counts::default();
        for r in records {
            match &r.event {
                Event::WriteAccepted { .. } => c.writes += 1,
                Event::FailoverDecided {
                    kind: FailoverKind::Switchover,
                    ..
                } => c.switchovers += 1,
                Event::FailoverDecided { .. } => c.failovers += 1,
                Event::Fault { .. } => c.faults += 1,
                Event::Started { .. } => c.starts += 1,
                _ => {}
            }
        }
        c
    }
}

/// The one gap left between the model and the logs of a running deployment, when `u` is of
/// it: the model ships and confirms in one `Replicate` step, while a running primary learns of
/// a confirmation a message later. So the primary's report can show a secondary lagging that
/// already holds the entries (a sync timeout the model would not take yet), and a fenced
/// primary can wait out the drain for a confirmation in flight (an abort the model would not
/// take). Replay (`crate::refine`) delivers confirmations with their entries and has no gap.
pub fn confirmation_lag(u: &Unexplained) -> Option<&'static str> {
    match &u.record.event {
        Event::SyncTimedOut { .. }
        | Event::SwitchoverAborted {
            reason: AbortReason::DrainTimedOut,
            ..
        } => Some(
            "confirmation lag: the model's replication confirms at once, the running primary \
             a message later",
        ),
        _ => None,
    }
}

/// Reads a JSON-lines event log.
pub fn parse_log(text: &str) -> Result<Vec<Record>, ValidateError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| ValidateError::BadLine {
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The model the log is to be explained by: the deployment's regions and timing, and
/// budgets as large as the log uses.
pub fn model_for(records: &[Record]) -> Result<Config, ValidateError> {
    let Some(Event::Started {
        regions, timing, ..
    }) = records.first().map(|r| &r.event)
    else {
        return Err(ValidateError::NoStart);
    };
    // Every process of a deployment starts with its parameters.
    for (index, record) in records.iter().enumerate() {
        if let Event::Started {
            regions: r,
            timing: t,
            ..
        } = &record.event
        {
            if (r, t) != (regions, timing) {
                return Err(ValidateError::OtherStart {
                    index,
                    regions: *r,
                    timing: *t,
                });
            }
        }
    }
    let count = |pred: &dyn Fn(&Event) -> bool| {
        records.iter().filter(|r| pred(&r.event)).count().min(200) as u32
    };
    // Budgets within the checker's ranges here, set to the log's counts below: a path is
    // followed, not explored, so large budgets cost nothing.
    let within = |n: u32| n.min(1);
    let params = Params {
        regions: u32::from(*regions),
        timing: *timing,
        writes: count(&|e| {
            matches!(
                e,
                Event::WriteAccepted {
                    reapply_of: None,
                    ..
                }
            )
        }),
        reapplies: count(&|e| {
            matches!(
                e,
                Event::WriteAccepted {
                    reapply_of: Some(_),
                    ..
                }
            )
        }),
        outages: count(&|e| {
            matches!(
                e,
                Event::Fault {
                    fault: FaultKind::Crash | FaultKind::Isolate,
                    ..
                }
            )
        }),
        cp_restarts: count(&|e| {
            matches!(
                e,
                Event::Fault {
                    fault: FaultKind::ControlRestart,
                    ..
                }
            )
        }),
        partitions: count(&|e| {
            matches!(
                e,
                Event::Fault {
                    fault: FaultKind::Partition,
                    ..
                }
            )
        }),
        failbacks: count(&|e| {
            matches!(
                e,
                Event::SwitchoverStarted {
                    requested: true,
                    ..
                }
            )
        }),
        forced: count(&|e| {
            matches!(
                e,
                Event::FailoverDecided {
                    kind: FailoverKind::Forced,
                    ..
                }
            )
        }),
        isolation: true,
        ..Params::default()
    };
    let capped = Params {
        writes: within(params.writes),
        reapplies: within(params.reapplies),
        cp_restarts: within(params.cp_restarts),
        outages: within(params.outages),
        partitions: within(params.partitions),
        failbacks: within(params.failbacks),
        forced: within(params.forced),
        ..params.clone()
    };
    let mut cfg = capped
        .validate()
        .map_err(|e| ValidateError::Params(e.to_string()))?;
    let budget = |n: u32| u8::try_from(n).unwrap_or(u8::MAX);
    cfg.writes = budget(params.writes);
    cfg.reapplies = budget(params.reapplies);
    cfg.cp_restarts = budget(params.cp_restarts);
    cfg.outages = budget(params.outages);
    cfg.partitions = budget(params.partitions);
    cfg.failbacks = budget(params.failbacks);
    cfg.forced = budget(params.forced);
    cfg.params = params;
    Ok(cfg)
}

/// The model step `event` names (`writes`: the implementation's write ids in order of
/// acknowledgement, for re-applies).
fn observed(event: &Event, writes: &[WriteId]) -> Option<Observed> {
    let view_id = |w: WriteId| writes.iter().position(|&x| x == w).map(|i| (i + 1) as u8);
    Some(Observed::Step(match *event {
        Event::WriteAccepted {
            region,
            reapply_of: None,
            ..
        } => Action::Write { region },
        Event::WriteAccepted {
            reapply_of: Some(original),
            ..
        } => match view_id(original) {
            Some(write) => Action::Reapply { write },
            None => return Some(Observed::Foreign),
        },
        Event::HeartbeatReceived { region, .. } => Action::DeliverHeartbeat { region },
        Event::Replicated { from, to, .. } => return Some(Observed::Replicated { from, to }),
        Event::InSync { primary, region } => {
            return Some(Observed::Replicated {
                from: primary,
                to: region,
            })
        }
        Event::RegionDeclaredFailed { region, .. } => Action::Declare { region },
        Event::SyncTimedOut { region, .. } => Action::OutOfSync { region },
        Event::FailoverDecided { kind, to, .. } => match kind {
            FailoverKind::Automatic => Action::Promote { region: to },
            FailoverKind::Forced => Action::ForceFailover { target: to },
            FailoverKind::Switchover => Action::CompleteSwitchover,
        },
        Event::Rejoined { region, .. } => Action::Rejoin { region },
        Event::ComputeMoved { reason, to, .. } => match reason {
            ComputeMove::Failback => Action::ComputeFailback,
            ComputeMove::PrimaryUnreachable => Action::ComputeToPrimary,
            // Announced before the promotion it belongs to: nothing to check yet.
            ComputeMove::PrimaryPromoted => return None,
            ComputeMove::RegionDeclaredFailed | ComputeMove::FirstHealthyHeard => {
                return Some(Observed::Compute { to })
            }
        },
        Event::SwitchoverStarted { target, requested } => {
            if requested {
                Action::RequestFailback { target }
            } else {
                Action::AutoFailback { target }
            }
        }
        Event::Fenced { .. } => Action::Fence,
        // Aborted because the target was declared failed: part of that declaration.
        Event::SwitchoverAborted {
            reason: AbortReason::TargetDeclaredFailed,
            ..
        } => return None,
        Event::SwitchoverAborted { .. } => Action::AbortSwitchover,
        Event::Fault { fault, region } => match (fault, region) {
            (FaultKind::Crash, Some(region)) => Action::Crash { region },
            (FaultKind::Isolate, Some(region)) => Action::Isolate { region },
            (FaultKind::Recover, Some(region)) => Action::Recover { region },
            (FaultKind::Reconnect, Some(region)) => Action::Reconnect { region },
            (FaultKind::Partition, _) => Action::Partition,
            (FaultKind::Heal, _) => Action::Heal,
            (FaultKind::ControlRestart, _) => Action::RestartControl,
            // A region fault that names no region.
            (_, None) => return Some(Observed::Foreign),
        },
        ref other if CONSEQUENCES.contains(&other.kind()) => return None,
        _ => return Some(Observed::Foreign),
    }))
}

/// Did the model move compute in a declaration that the log does not follow with the move?
fn moved_unannounced(
    before: &DrState,
    after: &DrState,
    action: &Action,
    next: Option<&Record>,
) -> bool {
    let to = after.view.routing.compute;
    if !matches!(action, Action::Declare { .. }) || before.view.routing.compute == to {
        return false;
    }
    !matches!(next.map(|r| &r.event), Some(Event::ComputeMoved { to: t, .. }) if *t == to)
}

/// Does the model's rejoin keep as many entries and quarantine as many writes as the
/// implementation's event says?
fn rejoined_alike(before: &DrState, after: &DrState, event: &Event) -> bool {
    let Event::Rejoined {
        region,
        kept,
        quarantined,
        ..
    } = event
    else {
        return true;
    };
    let r = usize::from(*region);
    let (b, a) = (&before.view.regions[r], &after.view.regions[r]);
    a.log.len() as u64 == *kept
        && a.quarantine.len().saturating_sub(b.quarantine.len()) == quarantined.len()
}

/// Ticks `s` until `minutes` have passed, if the model lets time pass (nothing urgent).
fn advance(cfg: &Config, s: &DrState, minutes: u64) -> Option<DrState> {
    let mut s = s.clone();
    for _ in 0..minutes {
        s = match apply(cfg, &s, &Action::Tick) {
            Some(next) => next,
            // The model does not let time pass while a rejoin or a replication is due; the
            // implementation takes them at its next tick, so the log shows them just after.
            None => apply(cfg, &catch_up(cfg, &s)?, &Action::Tick)?,
        };
    }
    Some(s)
}

/// `s` after every rejoin, replication and compute failback that is due (`None` if there
/// is none): steps the implementation takes on its next heartbeat or tick.
fn catch_up(cfg: &Config, s: &DrState) -> Option<DrState> {
    let n = s.region_count();
    let mut s = s.clone();
    let mut moved = false;
    for r in 0..n {
        if let Some(next) = apply(cfg, &s, &Action::Rejoin { region: r }) {
            s = next;
            moved = true;
        }
    }
    for from in 0..n {
        for to in 0..n {
            if drcheck_model::protocol::region::replication_due(cfg, &s, from, to) {
                s = apply(cfg, &s, &Action::Replicate { from, to })?;
                moved = true;
            }
        }
    }
    if let Some(next) = apply(cfg, &s, &Action::ComputeFailback) {
        s = next;
        moved = true;
    }
    moved.then_some(s)
}

/// Has the model already taken this step (a rejoin it had to take before time passed)?
fn already(now: &DrState, action: &Action) -> bool {
    match *action {
        Action::Rejoin { region } => now
            .view
            .regions
            .get(usize::from(region))
            .is_some_and(|r| r.is_member_of(now.view.routing.epoch)),
        Action::ComputeFailback => now.view.routing.compute == now.view.routing.home,
        _ => false,
    }
}

/// The processes that started, and those the log restarted since (a region's recovery, the
/// control plane's restart): a process that starts again must have been restarted, else it
/// went down and up where the log does not say (`serve` itself restarted, say).
#[derive(Default)]
struct Boots {
    started: HashSet<NodeId>,
    restarted: HashSet<NodeId>,
}

impl Boots {
    /// Notes `record`; the step it would take if it is a start nothing explains.
    fn unexplained(&mut self, record: &Record) -> Option<String> {
        match record.event {
            Event::Started { .. } => {
                let first = self.started.insert(record.node);
                let restarted = self.restarted.remove(&record.node);
                (!first && !restarted).then(|| {
                    format!(
                        "none: {} started again, and the log shows no {} since it last did",
                        record.node,
                        match record.node {
                            NodeId::Control => "restart of it",
                            NodeId::Region(_) => "recovery of it",
                        }
                    )
                })
            }
            Event::Fault {
                fault: FaultKind::Recover,
                region: Some(r),
            } => {
                self.restarted.insert(NodeId::Region(r));
                None
            }
            Event::Fault {
                fault: FaultKind::ControlRestart,
                ..
            } => {
                self.restarted.insert(NodeId::Control);
                None
            }
            _ => None,
        }
    }
}

/// How late a process of the log may act on a deadline: the longest time between its
/// looks at the clock (`started`'s `ticks_every`; 0 for a virtual clock, which acts on the
/// minute).
fn lateness(records: &[Record]) -> Millis {
    records
        .iter()
        .filter_map(|r| match r.event {
            Event::Started { ticks_every, .. } => ticks_every,
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// A fault step that cuts a region's messages off (a crash, an isolation, the partition),
/// which a log of processes on a real network may show taking effect later than recorded.
fn cuts_off(obs: &Observed) -> Option<&Action> {
    match obs {
        Observed::Step(a @ (Action::Crash { .. } | Action::Isolate { .. } | Action::Partition)) => {
            Some(a)
        }
        _ => None,
    }
}

/// One model state consistent with the log so far: the state, its minute, and the faults
/// the log showed that it has yet to take (each with the last minute it may take it in).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    state: DrState,
    minute: u64,
    owed: Vec<(Action, u64)>,
}

/// The verdict on `records` when the one at `index` has no explanation: `step` is what the
/// model would have had to take, `tried` the states it could have been in, `model_steps` the
/// fewest steps that explained the records before it.
fn unexplained_at(
    records: &[Record],
    index: usize,
    step: String,
    tried: Vec<DrState>,
    model_steps: usize,
) -> Validation {
    Validation {
        events: records.len(),
        model_steps,
        unexplained: Some(Unexplained {
            index,
            record: records[index].clone(),
            step,
            tried,
        }),
    }
}

/// Searches the model `cfg` for a behaviour that explains `records`.
///
/// An event's minute is its time's, counted from the first event. A process that runs on wall
/// time looks at its clock only every so often (`lateness`), so an event may answer a deadline
/// of the minute before when it comes that little after the minute turned: its minute may then
/// be either. On a real network, what a region sent before it crashed or was cut off (or
/// before the regions were cut apart) still arrives, within the delay: in such a log the
/// model's fault may come after those arrivals, up to `delay` after the fault's record. The
/// frontier holds each model state with its minute and the faults it owes (and the fewest
/// model steps that reach it).
pub fn validate(cfg: &Config, records: &[Record]) -> Validation {
    let start = records.first().map_or(0, |r| r.at);
    let late = lateness(records);
    let initial = Entry {
        state: DrState::initial(cfg),
        minute: 0,
        owed: Vec::new(),
    };
    let mut frontier: HashMap<Entry, usize> = HashMap::from([(initial, 0)]);
    let fewest = |frontier: &HashMap<Entry, usize>| frontier.values().copied().min().unwrap_or(0);
    let mut writes: Vec<WriteId> = Vec::new();
    let mut boots = Boots::default();
    for (index, record) in records.iter().enumerate() {
        if let Some(step) = boots.unexplained(record) {
            let tried = frontier.keys().take(3).map(|e| e.state.clone()).collect();
            return unexplained_at(records, index, step, tried, fewest(&frontier));
        }
        let Some(obs) = observed(&record.event, &writes) else {
            continue;
        };
        if let Event::WriteAccepted { write, .. } = record.event {
            writes.push(write);
        }
        let since = record.at.saturating_sub(start);
        let (earliest, latest) = (since.saturating_sub(late) / MINUTE, since / MINUTE);
        let mut next: HashMap<Entry, usize> = HashMap::new();
        let mut tried = Vec::new();
        for (entry, &steps) in &frontier {
            // Time does not go back (none of these minutes is before the state's).
            for at in earliest.max(entry.minute)..=latest {
                // The faults owed past their last minute are taken now; any others may be.
                let due = entry.owed.iter().take_while(|(_, by)| *by < at).count();
                for paid in due..=entry.owed.len() {
                    let mut state = Some(entry.state.clone());
                    for (fault, _) in &entry.owed[..paid] {
                        state = state.and_then(|s| apply(cfg, &s, fault));
                    }
                    let Some(state) = state else {
                        tried.push(entry.state.clone());
                        continue;
                    };
                    let owed = &entry.owed[paid..];
                    let wait = at - entry.minute;
                    let Some(now) = advance(cfg, &state, wait) else {
                        tried.push(state);
                        continue;
                    };
                    let steps = steps + paid + wait as usize + 1;
                    let mut reach = |state: DrState, owed: Vec<(Action, u64)>| {
                        let key = Entry {
                            state,
                            minute: at,
                            owed,
                        };
                        let fewest = next.entry(key).or_insert(steps);
                        *fewest = (*fewest).min(steps);
                    };
                    if let Some(fault) = cuts_off(&obs).filter(|_| late > 0) {
                        let mut later = owed.to_vec();
                        later.push((fault.clone(), at + u64::from(cfg.timing.delay)));
                        reach(now.clone(), later);
                    }
                    match &obs {
                        Observed::Step(action) => match apply(cfg, &now, action) {
                            // A declaration that moves compute is followed by the move's event.
                            Some(n)
                                if moved_unannounced(&now, &n, action, records.get(index + 1)) =>
                            {
                                tried.push(now)
                            }
                            // A rejoin keeps and quarantines what the model's does.
                            Some(n) if !rejoined_alike(&now, &n, &record.event) => tried.push(now),
                            Some(n) => reach(n, owed.to_vec()),
                            None if already(&now, action) => reach(now, owed.to_vec()),
                            None => tried.push(now),
                        },
                        Observed::Foreign => tried.push(now),
                        Observed::Compute { to } => {
                            if now.view.routing.compute == *to {
                                reach(now, owed.to_vec());
                            } else {
                                tried.push(now);
                            }
                        }
                        Observed::Replicated { from, to } => {
                            let action = Action::Replicate {
                                from: *from,
                                to: *to,
                            };
                            let done = {
                                let (f, t) = (usize::from(*from), usize::from(*to));
                                let regions = &now.view.regions;
                                f < regions.len()
                                    && t < regions.len()
                                    && regions[t].log == regions[f].log
                            };
                            match apply(cfg, &now, &action) {
                                Some(n) => reach(n, owed.to_vec()),
                                // The model replicated it already (in one catch-up).
                                None if done => reach(now, owed.to_vec()),
                                None => tried.push(now),
                            }
                        }
                    }
                }
            }
        }
        if next.is_empty() {
            tried.truncate(3);
            let step = match &obs {
                Observed::Step(a) => a.to_string(),
                Observed::Replicated { from, to } => format!("replicate {from} -> {to}"),
                Observed::Compute { to } => format!("the endpoint routes to region {to}"),
                Observed::Foreign => format!("none: no model step is a {}", record.event.kind()),
            };
            return unexplained_at(records, index, step, tried, fewest(&frontier));
        }
        frontier = next;
    }
    Validation {
        events: records.len(),
        model_steps: fewest(&frontier),
        unexplained: None,
    }
}
