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
//! replication due), and the tick is refused while anything is, naming it. After every
//! matched step, the decisions the implementation has enabled and the model does not are
//! counted (`Coverage::implementation_only`): there should be none, as the model's control
//! plane decides, like the implementation's, on what the regions last reported.

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
    /// model did not, counted by decision (`rejoin`): the reverse of a refused step.
    pub implementation_only: std::collections::BTreeMap<String, usize>,
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
            *self.implementation_only.entry(kind).or_default() += 1;
        }
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
            Due {
                pending,
                in_model,
                action,
            }
        })
        .collect())
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
            // The keep-alives a primary sent with this tick's heartbeat arrive within it: the
            // model counts a secondary's contact with its primary from them.
            let keepalive = |_: NodeId, _: NodeId, msg: &Message| matches!(msg, Message::Append { entries, .. } if entries.is_empty());
            deliver_all(d, keepalive).await?;
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
        let due = if *action == Action::Tick {
            due(&d, cfg, &state).await?
        } else {
            Vec::new()
        };
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
