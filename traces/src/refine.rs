//! Model → implementation: a model path replayed on the implementation, step by step.
//!
//! The implementation runs in controlled mode (virtual clock, in-memory transport, every
//! message held, a control plane that decides only when asked), and each model step becomes
//! the implementation operations that take it: a `Tick` advances the clock one minute, a
//! `DeliverHeartbeat` delivers that region's oldest heartbeat, a `Replicate` delivers the
//! entries in flight between the two regions and the confirmations back, a control-plane
//! decision is asked for by name. Commands of the control plane to a region are atomic in
//! the model, so they are delivered at once (but a fence, which is its own model step).
//! After every step the implementation's `abstract_view()` must equal the model's view.
//!
//! Time is urgent on both sides. A controlled control plane takes nothing by itself, so a
//! path that never asks for a decision would pass, and a bug that omits one would go unseen.
//! Before a `Tick`, the implementation is therefore asked what it has due by its own state
//! (`Deployment::pending`: enabled decisions, heartbeats past the delay, a fence in flight,
//! replication due), and the tick is refused while anything is, naming it. Decisions due
//! only on a stale report, which the model does not enable, are taken as the
//! implementation's own steps instead (as the running service would); they must not change
//! the view. After every matched step, the decisions the implementation has enabled and the
//! model does not are counted (`Coverage::implementation_only`).

use drcheck_impl::deployment::{
    DeployError, Deployment, DeploymentConfig, OperatorRequest, Pending,
};
use drcheck_impl::protocol::control::ControlStep;
use drcheck_impl::protocol::message::{Message, NodeId};
use drcheck_impl::protocol::mutant::Mutants;
use drcheck_impl::time::Timing;
use drcheck_model::protocol::apply;
use drcheck_model::{Action, Config, DrState};
use drcheck_properties::{describe_changes, View};

/// Where the implementation parted from the model.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// 1-based step number (0: the initial states differ).
    pub step: usize,
    /// The model step (`None` when the initial states differ).
    pub action: Option<Action>,
    /// How they parted.
    pub kind: DivergenceKind,
    /// The model's view after the step (before it, for a refusal that changed something).
    pub model: View,
    /// The implementation's abstract view at the same point.
    pub implementation: View,
    /// For a tick the implementation refused: what it had due, each with whether the model
    /// enables the same step (empty for any other divergence).
    pub due: Vec<Due>,
}

/// A step the implementation had due when it refused to let time pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// What was due.
    pub pending: Pending,
    /// The model step it stands for.
    pub action: Action,
    /// Does the model enable that step in the state the tick was asked in? (If it does, the
    /// model lets time pass over a step it could take; if not, the implementation sees a
    /// step the model does not.)
    pub in_model: bool,
    /// Why the implementation has it enabled where the model does not, when that is
    /// understood ([`known_implementation_only`]).
    pub cause: Option<&'static str>,
}

/// How the implementation parted from the model at a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The model takes the step; the implementation refuses it, for this reason.
    Refused(String),
    /// The implementation refused the step and yet its view changed.
    RefusedButChanged(String),
    /// Both took the step; the views differ afterwards.
    Views,
    /// Before a tick, the implementation took decisions of its own that the model does not
    /// enable, for an understood reason (a stale report; named here), and its view changed.
    OwnStep(String),
}

impl Divergence {
    /// What differs, model against implementation, one line each: every field of the views
    /// that differs, by its path (`regions[0].lease: 6 -> 5`).
    pub fn differences(&self) -> Vec<String> {
        let (Ok(model), Ok(implementation)) = (
            serde_json::to_value(&self.model),
            serde_json::to_value(&self.implementation),
        ) else {
            return describe_changes(&self.model, &self.implementation);
        };
        let mut out = Vec::new();
        field_diff("", &model, &implementation, &mut out);
        out
    }
}

/// Every leaf where `a` and `b` differ, as `path: a -> b`.
fn field_diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, va) in x {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                field_diff(&sub, va, y.get(key).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                field_diff(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = self
            .action
            .as_ref()
            .map_or("the initial state".to_string(), |a| a.to_string());
        match &self.kind {
            DivergenceKind::Refused(why) => writeln!(
                f,
                "step {} ({action}): enabled in the model, refused by the implementation: {why}",
                self.step
            )?,
            DivergenceKind::RefusedButChanged(why) => writeln!(
                f,
                "step {} ({action}): refused by the implementation ({why}), which changed its \
                 view all the same (model -> implementation):",
                self.step
            )?,
            DivergenceKind::Views => writeln!(
                f,
                "step {} ({action}): the views differ (model -> implementation):",
                self.step
            )?,
            DivergenceKind::OwnStep(what) => writeln!(
                f,
                "step {} ({action}): before time passes the implementation takes decisions \
                 the model does not enable ({what}), which changed its view (model -> \
                 implementation):",
                self.step
            )?,
        }
        // A refused tick: what the implementation had due, against the model's steps.
        for due in &self.due {
            let model = if due.in_model {
                "the model enables it too, and lets time pass"
            } else {
                "the model does not enable it"
            };
            writeln!(f, "  due: {} ({}: {model})", due.pending, due.action)?;
        }
        if matches!(self.kind, DivergenceKind::Refused(_)) && !self.due.is_empty() {
            writeln!(
                f,
                "the model's view after the tick -> the implementation's before:"
            )?;
        }
        for line in self.differences() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// How a replay went.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Steps the implementation took and matched.
    pub matched: usize,
    /// Where the implementation parted from the model, if it did.
    pub divergence: Option<Divergence>,
    /// What the matched steps covered.
    pub coverage: Coverage,
    /// The implementation's view at the end (after the diverging step, if any).
    pub last_view: View,
}

/// Which model steps a set of replays covered.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Steps by kind and the role of the region they name (`write [Primary]`).
    pub kinds: std::collections::BTreeMap<String, usize>,
    /// Distinct model transitions (state, step), by hash.
    pub transitions: std::collections::HashSet<u64>,
    /// Model steps matched, in all.
    pub steps: usize,
    /// Control-plane decisions the implementation had enabled after a matched step and the
    /// model did not, counted by decision and cause (`rejoin: rejoin on a stale report`; `…:
    /// not understood` for a decision [`known_implementation_only`] does not explain): the
    /// reverse of a refused step.
    pub implementation_only: std::collections::BTreeMap<String, usize>,
    /// Decisions the implementation took of its own before a tick, where the model has none
    /// (see `own_steps`), by the model step each stands for.
    pub own_steps: std::collections::BTreeMap<String, usize>,
}

impl Coverage {
    fn record(&mut self, state: &DrState, action: &Action) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        state.hash(&mut h);
        action.hash(&mut h);
        self.transitions.insert(h.finish());
        self.steps += 1;
        let kind = serde_json::to_value(action)
            .ok()
            .and_then(|v| v["step"].as_str().map(str::to_string))
            .unwrap_or_default();
        let role = action
            .region()
            .and_then(|r| state.view.regions.get(usize::from(r)))
            .map(|r| format!(" [{:?}]", r.role))
            .unwrap_or_default();
        *self.kinds.entry(format!("{kind}{role}")).or_default() += 1;
    }

    /// Adds another replay's coverage.
    pub fn merge(&mut self, other: &Coverage) {
        for (k, n) in &other.kinds {
            *self.kinds.entry(k.clone()).or_default() += n;
        }
        self.transitions.extend(&other.transitions);
        self.steps += other.steps;
        for (k, n) in &other.implementation_only {
            *self.implementation_only.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.own_steps {
            *self.own_steps.entry(k.clone()).or_default() += n;
        }
    }

    fn record_own(&mut self, own: &[Due]) {
        for x in own {
            let kind = serde_json::to_value(&x.action)
                .ok()
                .and_then(|v| v["step"].as_str().map(str::to_string))
                .unwrap_or_default();
            *self.own_steps.entry(kind).or_default() += 1;
        }
    }

    /// Decisions enabled on the implementation in model state `s`, which the model does not
    /// enable.
    fn record_implementation_only(&mut self, cfg: &Config, s: &DrState, enabled: &[ControlStep]) {
        for &step in enabled {
            let action = control_action(s, step);
            if apply(cfg, s, &action).is_some() {
                continue;
            }
            let kind = serde_json::to_value(&action)
                .ok()
                .and_then(|v| v["step"].as_str().map(str::to_string))
                .unwrap_or_default();
            let cause = known_implementation_only(cfg, s, step).unwrap_or("not understood");
            let cause = cause.split(':').next().unwrap_or(cause);
            *self
                .implementation_only
                .entry(format!("{kind}: {cause}"))
                .or_default() += 1;
        }
    }

    /// How many decisions the implementation had enabled where the model did not, and how
    /// many of them [`known_implementation_only`] does not explain.
    pub fn implementation_only_counts(&self) -> (usize, usize) {
        let unexplained = self
            .implementation_only
            .iter()
            .filter(|(k, _)| k.ends_with(": not understood"))
            .map(|(_, n)| n)
            .sum();
        (self.implementation_only.values().sum(), unexplained)
    }
}

/// Divergences understood and not yet resolved, with their cause: the control plane of the
/// implementation decides on what regions last reported; the model's reads their actual
/// state. `None`: a divergence nobody has explained (a test fails on it).
pub fn known_divergence(d: &Divergence) -> Option<&'static str> {
    let refused = matches!(d.kind, DivergenceKind::Refused(_));
    let only_choice = d.differences().iter().all(|line| {
        ["routing.compute", "ledger.rto_waived", "ledger.outage"]
            .iter()
            .any(|field| line.starts_with(field))
    });
    let reason = match &d.kind {
        DivergenceKind::Refused(why) => why.as_str(),
        _ => "",
    };
    // Refusals because of what the control plane last heard, not any other refusal.
    let on_reports = [
        "has not caught up",
        "not a secondary of epoch",
        "is not healthy",
        "not an in-sync secondary",
        "does not reach the data primary",
    ]
    .iter()
    .any(|r| reason.contains(r));
    // A data failback answered otherwise than in the model because of the reports: only the
    // ledger's record of the request differs.
    let failback_refused_on_reports = !refused
        && d.differences()
            .iter()
            .all(|line| line.starts_with("ledger.failback"));
    match d.action.as_ref()? {
        Action::Tick if refused || matches!(d.kind, DivergenceKind::OwnStep(_)) => known_due(d),
        Action::ComputeFailback if refused => Some(
            "compute failback: the implementation needs evidence (replication traffic, reported \
             in a heartbeat) that home reaches the primary; the model reads the connectivity",
        ),
        Action::RequestFailback { .. } if failback_refused_on_reports => Some(
            "data failback: the implementation judges 'in sync' and contact with the primary \
             on the regions' last heartbeats; the model on their state",
        ),
        Action::Promote { .. } if reason.contains("not the candidate") => Some(
            "candidate on promote: the implementation ranks the secondaries by their last \
             heartbeats; the model by their logs",
        ),
        Action::ComputeToPrimary if refused => Some(
            "compute to the primary: the implementation needs the compute region's report \
             that it lost contact (a heartbeat); the model reads the connectivity",
        ),
        Action::OutOfSync { .. } if refused => Some(
            "sync timeout: the implementation judges on the primary's last heartbeat; the \
             model on the primary's log",
        ),
        Action::RequestFailback { .. } | Action::AutoFailback { .. } if refused && on_reports => {
            Some(
                "data failback: the implementation judges 'caught up' on the regions' last \
             heartbeats; the model on their logs",
            )
        }
        Action::Declare { .. } if !refused && only_choice => Some(
            "candidate on declare: the implementation picks among the regions not declared \
             failed, by their last heartbeats; the model among the regions up, by their logs",
        ),
        _ => None,
    }
}

/// A tick refused for steps the implementation had due, when every one of them is a
/// decision the model does not enable for an understood reason (the first one's).
fn known_due(d: &Divergence) -> Option<&'static str> {
    let causes: Option<Vec<&'static str>> = d.due.iter().map(|due| due.cause).collect();
    causes?.first().copied()
}

/// Why the implementation's control plane has `step` enabled in model state `s` where the
/// model does not, when that is understood. All of one kind: the implementation decides on
/// what regions last reported, the model reads their state. `None`: not understood (or the
/// model enables the step too).
pub fn known_implementation_only(
    cfg: &Config,
    s: &DrState,
    step: ControlStep,
) -> Option<&'static str> {
    let view = &s.view;
    let routing = &view.routing;
    let region = |r: u8| view.regions.get(usize::from(r));
    match step {
        // A heartbeat sent before the region rejoined (or learnt the epoch in a switchover)
        // arrived after the control plane had heard it rejoined.
        ControlStep::Rejoin(r)
            if region(r).is_some_and(|x| {
                x.role == drcheck_properties::Role::Secondary && x.epoch == routing.epoch
            }) =>
        {
            Some(
                "rejoin on a stale report: a heartbeat the region sent before it rejoined \
                 arrived after, so the implementation's control plane takes it for behind the \
                 epoch again; the model reads its epoch (a rejoin would change nothing)",
            )
        }
        // The region's last heartbeat showed it behind the epoch, but it has since gone down
        // or been cut off from the primary (the rejoin it would be offered cannot arrive or
        // cannot reach the primary).
        ControlStep::Rejoin(r)
            if region(r).is_some_and(|x| {
                let behind = x.role == drcheck_properties::Role::Stale || x.epoch < routing.epoch;
                let linked = view.connected(usize::from(r), usize::from(routing.primary));
                behind && (x.status != drcheck_properties::Status::Up || !linked)
            }) =>
        {
            Some(
                "rejoin on a stale report: the region's last heartbeat showed it behind the \
                 epoch; it has since gone down or been cut off from the primary, which the \
                 implementation's control plane cannot see yet; the model can",
            )
        }
        // The primary's last heartbeat is still fresh, but the primary is down or cut off.
        ControlStep::OutOfSync(_)
            if region(routing.primary)
                .is_some_and(|p| p.status != drcheck_properties::Status::Up) =>
        {
            Some(
                "sync timeout on a stale report: the implementation's control plane judges on \
                 the primary's last heartbeat, still fresh though the primary has since gone \
                 down or been cut off (the command it would send is lost); the model leaves \
                 nobody out of the set of a primary that is not up",
            )
        }
        // The compute region's last heartbeat reported no contact with the primary, sent
        // before the contact came back.
        ControlStep::ComputeToPrimary
            if view.connected(usize::from(routing.compute), usize::from(routing.primary)) =>
        {
            Some(
                "compute to the primary on a stale report: the compute region's last heartbeat \
                 reported no contact with the primary, which it has again; the model reads the \
                 connectivity",
            )
        }
        // The model promotes another candidate: the most caught-up by the logs, where the
        // implementation goes by the last heartbeats.
        ControlStep::Promote(r)
            if (0..s.region_count())
                .any(|x| x != r && apply(cfg, s, &Action::Promote { region: x }).is_some()) =>
        {
            Some(
                "candidate on promotion: the implementation picks the most caught-up region by \
                 the last heartbeats; the model by the logs",
            )
        }
        _ => None,
    }
}

/// Why a path cannot be replayed on the implementation at all.
#[derive(Debug, thiserror::Error)]
pub enum RefineError {
    /// The model's tick is not one minute (the implementation's step of time); holds the
    /// tick, in minutes.
    #[error("the implementation runs in minutes: replay needs --tick 1, not {0}")]
    Tick(u32),
    /// A step of the path is not enabled in the model.
    #[error("step {step} ({action}) is not enabled in the model")]
    NotInModel {
        /// The step's number, 1 first.
        step: usize,
        /// The step.
        action: Action,
    },
    /// The controlled deployment could not be started or driven.
    #[error(transparent)]
    Deploy(#[from] DeployError),
}

const TOKEN: &str = "replay";

/// The implementation's timing for the model's parameters.
fn timing(cfg: &Config) -> Timing {
    drcheck_impl::time::in_millis(&cfg.params.timing)
}

/// Delivers every message in flight that `pick` chooses, oldest first, including those the
/// deliveries cause.
async fn deliver_all(
    d: &mut Deployment,
    pick: impl Fn(NodeId, NodeId, &Message) -> bool,
) -> Result<usize, DeployError> {
    let mut delivered = 0;
    while let Some(m) = d
        .in_flight()
        .into_iter()
        .find(|m| pick(m.envelope.from, m.envelope.to, &m.envelope.msg))
    {
        d.deliver(m.seq).await?;
        delivered += 1;
    }
    Ok(delivered)
}

/// The control plane's commands are atomic in the model: deliver them, and the answers of a
/// promoted or rejoined region (a fence waits for its own step).
async fn commands(d: &mut Deployment) -> Result<(), DeployError> {
    deliver_all(d, |from, to, msg| {
        (from == NodeId::Control && !matches!(msg, Message::Fence { .. }))
            || matches!(
                msg,
                Message::Promoted { .. }
                    | Message::Rejoined { .. }
                    | Message::Merge { .. }
                    | Message::JoinRequest { .. }
                    | Message::JoinAccept { .. }
            )
            || (to == NodeId::Control && matches!(msg, Message::Fenced { .. }))
    })
    .await
    .map(|_| ())
}

/// What is in flight from `from` to `to` (entries, confirmations, a drained notice), then
/// retransmissions, until nothing moves: the model's replication is one atomic catch-up.
async fn replicate(d: &mut Deployment, from: u8, to: u8) -> Result<usize, DeployError> {
    let (src, dst) = (NodeId::Region(from), NodeId::Region(to));
    let exchange = |f: NodeId, t: NodeId, msg: &Message| {
        (f == src && t == dst && matches!(msg, Message::Append { .. }))
            || (f == dst && t == src && matches!(msg, Message::Confirm { .. }))
            || (f == src
                && t == NodeId::Control
                && matches!(msg, Message::Drained { .. } | Message::InSync { .. }))
    };
    let mut moved = deliver_all(d, exchange).await?;
    for _ in 0..3 {
        d.ship_now(from, to).await?;
        moved += deliver_all(d, exchange).await?;
    }
    Ok(moved)
}

fn refused(why: impl Into<String>) -> Result<Result<(), String>, DeployError> {
    Ok(Err(why.into()))
}

/// The control plane takes `step`, or the reason it is not enabled, worded.
async fn control_step(
    d: &mut Deployment,
    step: ControlStep,
) -> Result<Result<(), String>, DeployError> {
    Ok(d.control_step(step)
        .await?
        .map_err(|refusal| format!("{step:?}: {refusal}")))
}

/// The oldest heartbeat in flight from `region`, if any.
fn oldest_heartbeat(d: &Deployment, region: u8) -> Option<u64> {
    d.in_flight()
        .into_iter()
        .find(|m| {
            m.envelope.from == NodeId::Region(region)
                && matches!(m.envelope.msg, Message::Heartbeat(_))
        })
        .map(|m| m.seq)
}

/// The model step a control-plane decision stands for (in state `s`).
fn control_action(s: &DrState, step: ControlStep) -> Action {
    match step {
        ControlStep::Declare(region) => Action::Declare { region },
        ControlStep::Promote(region) => Action::Promote { region },
        ControlStep::OutOfSync(region) => Action::OutOfSync { region },
        ControlStep::Rejoin(region) => Action::Rejoin { region },
        ControlStep::ComputeFailback => Action::ComputeFailback,
        ControlStep::ComputeToPrimary => Action::ComputeToPrimary,
        ControlStep::CompleteSwitchover => Action::CompleteSwitchover,
        ControlStep::AbortSwitchover => Action::AbortSwitchover,
        ControlStep::AutoFailback => Action::AutoFailback {
            target: s.view.routing.home,
        },
    }
}

/// The model step a pending step of the implementation stands for (in state `s`).
fn pending_action(s: &DrState, pending: Pending) -> Action {
    match pending {
        Pending::Control(step) => control_action(s, step),
        Pending::Heartbeat { region } => Action::DeliverHeartbeat { region },
        Pending::Fence { .. } => Action::Fence,
        Pending::Replication { from, to, .. } => Action::Replicate { from, to },
    }
}

/// What the implementation has due before time may pass in model state `s` (empty: the tick
/// may be taken).
async fn due(d: &Deployment, cfg: &Config, s: &DrState) -> Result<Vec<Due>, DeployError> {
    Ok(d.pending()
        .await?
        .into_iter()
        .map(|pending| {
            let action = pending_action(s, pending);
            let in_model = apply(cfg, s, &action).is_some();
            let cause = match pending {
                Pending::Control(step) if !in_model => known_implementation_only(cfg, s, step),
                _ => None,
            };
            Due {
                pending,
                in_model,
                action,
                cause,
            }
        })
        .collect())
}

/// Before a tick: the decisions the implementation has due where the model has none, for an
/// understood reason ([`known_implementation_only`]: a stale report), are taken on the
/// implementation, as the running service would take them by this tick; they are its own
/// steps, which the model does not see, so they must leave the view as it was. Returns what
/// is still due then (the tick is refused unless that is empty) and the decisions taken.
async fn own_steps(
    d: &mut Deployment,
    cfg: &Config,
    s: &DrState,
) -> Result<(Vec<Due>, Vec<Due>), DeployError> {
    let mut own: Vec<Due> = Vec::new();
    let mut pending = due(d, cfg, s).await?;
    // Each round takes what is newly due. A decision still due after it was taken is not
    // taken again: it changed nothing, and waits for news as in the running service (which
    // sends a rejoin once, on the heartbeat that shows the region behind, say).
    for _ in 0..3 {
        pending.retain(|x| !own.contains(x));
        let understood = !pending.is_empty() && pending.iter().all(|x| x.cause.is_some());
        if !understood {
            break;
        }
        for x in &pending {
            if let Pending::Control(step) = x.pending {
                // Enabled a moment ago, so taken; a refusal would change nothing either.
                let _taken = d.control_step(step).await?;
            }
        }
        commands(d).await?;
        own.append(&mut pending);
        pending = due(d, cfg, s).await?;
    }
    pending.retain(|x| !own.contains(x));
    Ok((pending, own))
}

/// Why time may not pass: the first step due, and the others.
fn time_refused(due: &[Due]) -> Option<String> {
    let (first, rest) = due.split_first()?;
    let more = match rest.len() {
        0 => String::new(),
        n => {
            let others: Vec<String> = rest.iter().map(|d| d.pending.to_string()).collect();
            format!(" (and {n} more: {})", others.join("; "))
        }
    };
    Some(format!("time may not pass: {} first{more}", first.pending))
}

/// Takes one model step on the implementation; `Err` says why the implementation refused.
async fn take(d: &mut Deployment, action: &Action) -> Result<Result<(), String>, DeployError> {
    let payload = || r#"{"resourceType":"Patient"}"#.to_string();
    let outcome = match *action {
        // Whether time may pass is asked before (see `replay_logged`).
        Action::Tick => {
            d.advance(1).await?;
            Ok(())
        }
        Action::Write { region } => d
            .write_at(region, payload())
            .await?
            .map(|_| ())
            .map_err(|refusal| refusal.to_string()),
        Action::DeliverHeartbeat { region } => {
            let Some(seq) = oldest_heartbeat(d, region) else {
                return refused(format!("no heartbeat from region {region} is in flight"));
            };
            d.deliver(seq).await?;
            Ok(())
        }
        Action::LoseHeartbeat { region } => {
            let Some(seq) = oldest_heartbeat(d, region) else {
                return refused(format!("no heartbeat from region {region} is in flight"));
            };
            d.drop_message(seq).await?;
            Ok(())
        }
        Action::LoseAnswer { region } => {
            let Some(seq) = oldest_heartbeat(d, region) else {
                return refused(format!("no heartbeat from region {region} is in flight"));
            };
            d.deliver(seq).await?;
            // Whatever the control plane answered (a fence waits for its own step).
            let answers: Vec<u64> = d
                .in_flight()
                .into_iter()
                .filter(|m| {
                    m.envelope.from == NodeId::Control
                        && m.envelope.to == NodeId::Region(region)
                        && !matches!(m.envelope.msg, Message::Fence { .. })
                })
                .map(|m| m.seq)
                .collect();
            for seq in answers {
                d.drop_message(seq).await?;
            }
            Ok(())
        }
        Action::Replicate { from, to } => {
            if replicate(d, from, to).await? == 0 {
                return refused(format!("region {from} ships nothing to region {to}"));
            }
            Ok(())
        }
        Action::Declare { region } => control_step(d, ControlStep::Declare(region)).await?,
        Action::Promote { region } => control_step(d, ControlStep::Promote(region)).await?,
        Action::OutOfSync { region } => control_step(d, ControlStep::OutOfSync(region)).await?,
        Action::Rejoin { region } => control_step(d, ControlStep::Rejoin(region)).await?,
        Action::ComputeFailback => control_step(d, ControlStep::ComputeFailback).await?,
        Action::ComputeToPrimary => control_step(d, ControlStep::ComputeToPrimary).await?,
        Action::CompleteSwitchover => {
            // The fenced primary tells the control plane the target holds its whole log: a
            // keep-alive and its confirmation, which change nothing in the views.
            let control = d.control_state().await?;
            if let drcheck_impl::protocol::control::Phase::Switchover { target, .. } = control.phase
            {
                let primary = control.routing.primary;
                let same = d.region_state(target).await?.log == d.region_state(primary).await?.log;
                if same {
                    replicate(d, primary, target).await?;
                }
            }
            control_step(d, ControlStep::CompleteSwitchover).await?
        }
        Action::AbortSwitchover => control_step(d, ControlStep::AbortSwitchover).await?,
        Action::AutoFailback { .. } => control_step(d, ControlStep::AutoFailback).await?,
        Action::Fence => {
            let fences = deliver_all(d, |from, _, msg| {
                from == NodeId::Control && matches!(msg, Message::Fence { .. })
            })
            .await?;
            if fences == 0 {
                return refused("no fence is in flight");
            }
            deliver_all(d, |_, to, msg| {
                to == NodeId::Control
                    && matches!(msg, Message::Fenced { .. } | Message::Drained { .. })
            })
            .await?;
            Ok(())
        }
        Action::Crash { region } => d.crash(region).await.map_err(|e| e.to_string()),
        Action::Isolate { region } => d.isolate(region).await.map_err(|e| e.to_string()),
        Action::Recover { region } => d.recover(region).await.map_err(|e| e.to_string()),
        Action::Reconnect { region } => d.reconnect(region).await.map_err(|e| e.to_string()),
        Action::Partition => {
            d.partition().await?;
            Ok(())
        }
        Action::RestartControl => {
            d.restart_control().await?;
            Ok(())
        }
        Action::Heal => {
            d.heal().await?;
            Ok(())
        }
        // The operator asks: that is the step. Whether the control plane accepts is part of
        // the state that follows (the ghost records a refused request for an eligible
        // target, as the model records it), so the views, not the answer, are compared.
        Action::RequestFailback { target } => {
            let _answer = d
                .operator(TOKEN, OperatorRequest::DataFailback { target })
                .await?;
            Ok(())
        }
        Action::ForceFailover { target } => d
            .operator(TOKEN, OperatorRequest::ForceFailover { target })
            .await?
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Action::Reapply { write } => {
            let Some(id) = d.write_id(write) else {
                return refused(format!("the implementation has no write w{write}"));
            };
            d.operator(TOKEN, OperatorRequest::Reapply { write: id })
                .await?
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    commands(d).await?;
    Ok(outcome)
}

/// The replay's result when it stops at `divergence`, after `matched` steps (the events
/// logged so far are written out first).
fn stopped(
    d: &mut Deployment,
    matched: usize,
    divergence: Divergence,
    coverage: Coverage,
) -> Result<Replay, RefineError> {
    d.flush_events()?;
    Ok(Replay {
        matched,
        last_view: divergence.implementation.clone(),
        divergence: Some(divergence),
        coverage,
    })
}

/// Replays `actions` (a path of the model `cfg`) on the implementation, with `mutants`
/// switched on (none without the `mutants` feature), comparing views after every step.
pub async fn replay(
    cfg: &Config,
    actions: &[Action],
    mutants: Mutants,
) -> Result<Replay, RefineError> {
    replay_logged(cfg, actions, mutants, None).await
}

/// [`replay`], writing the implementation's events as JSON lines to `event_log`.
pub async fn replay_logged(
    cfg: &Config,
    actions: &[Action],
    mutants: Mutants,
    event_log: Option<std::path::PathBuf>,
) -> Result<Replay, RefineError> {
    if cfg.params.tick != 1 {
        return Err(RefineError::Tick(cfg.params.tick));
    }
    let mut d = Deployment::start(DeploymentConfig {
        regions: cfg.regions,
        timing: timing(cfg),
        operator_token: TOKEN.to_string(),
        mutants,
        controlled: true,
        event_log: event_log.clone(),
        ..DeploymentConfig::default()
    })
    .await?;
    let mut state = DrState::initial(cfg);
    let mut coverage = Coverage::default();
    let diverged = |step, action: Option<&Action>, kind, model: &View, implementation| Divergence {
        step,
        action: action.cloned(),
        kind,
        model: model.clone(),
        implementation,
        due: Vec::new(),
    };
    let view = d.abstract_view().await?;
    if view != state.view {
        let divergence = diverged(0, None, DivergenceKind::Views, &state.view, view);
        return stopped(&mut d, 0, divergence, coverage);
    }
    for (i, action) in actions.iter().enumerate() {
        let next = apply(cfg, &state, action).ok_or_else(|| RefineError::NotInModel {
            step: i + 1,
            action: action.clone(),
        })?;
        // Time is urgent in the implementation as in the model: a tick over a step the
        // running service would take first would let a path omit that step unseen.
        let (due, own) = if *action == Action::Tick {
            own_steps(&mut d, cfg, &state).await?
        } else {
            (Vec::new(), Vec::new())
        };
        if !own.is_empty() {
            coverage.record_own(&own);
            let view = d.abstract_view().await?;
            if view != state.view {
                let why = own
                    .iter()
                    .map(|x| x.pending.to_string())
                    .collect::<Vec<_>>();
                let kind = DivergenceKind::OwnStep(why.join("; "));
                let mut divergence = diverged(i + 1, Some(action), kind, &state.view, view);
                divergence.due = own;
                return stopped(&mut d, i, divergence, coverage);
            }
        }
        let outcome = match time_refused(&due) {
            Some(why) => Err(why),
            None => take(&mut d, action).await?,
        };
        let view = d.abstract_view().await?;
        let kind = match outcome {
            // A refusal must leave the implementation as it was (a stutter step).
            Err(why) if view != state.view => Some(DivergenceKind::RefusedButChanged(why)),
            Err(why) => Some(DivergenceKind::Refused(why)),
            Ok(()) if view != next.view => Some(DivergenceKind::Views),
            Ok(()) => None,
        };
        if let Some(kind) = kind {
            // A refusal is compared with the state before it, the rest with the one after.
            let expected = match kind {
                DivergenceKind::RefusedButChanged(_) => &state.view,
                _ => &next.view,
            };
            let mut divergence = diverged(i + 1, Some(action), kind, expected, view);
            divergence.due = due;
            return stopped(&mut d, i, divergence, coverage);
        }
        coverage.record(&state, action);
        let (enabled, _) = d.control_steps_enabled().await?;
        coverage.record_implementation_only(cfg, &next, &enabled);
        state = next;
    }
    d.flush_events()?;
    Ok(Replay {
        matched: actions.len(),
        divergence: None,
        coverage,
        last_view: state.view,
    })
}
