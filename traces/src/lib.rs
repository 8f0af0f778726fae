//! drcheck-traces: trace files.
//!
//! A trace file is a versioned JSON record of one model path: the model's parameters (with the
//! `--bug`, if any), what the path shows (a counterexample, an example, a worst case), and each
//! step with its minute, actor, action and the abstract view after it. Loading a file replays
//! it through the model: a step the model does not allow, or a recorded view the model does not
//! reproduce, is refused with the step and the reason.

#![warn(missing_docs)]

pub mod eventlog;
pub mod refine;
pub mod validate;
pub mod walk;

use std::fmt;
use std::path::{Path, PathBuf};

use drcheck_model::search;
use drcheck_model::{Action, DrModel, DrState, Params};
use drcheck_properties::{describe_changes, Check, View};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The schema version this build writes and reads.
pub const VERSION: u32 = 1;

/// What a path shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// Its last state violates an `always` property.
    Counterexample {
        /// The violated property's name.
        property: String,
    },
    /// Its last state shows a `sometimes` property.
    Example {
        /// The property's name.
        property: String,
    },
    /// Its last state has the worst value of a metric.
    Worst {
        /// The metric's name (`data_loss`, `outage_to_writes`, `forced_data_loss`).
        metric: String,
        /// The worst value, in minutes.
        minutes: u32,
    },
    /// A seeded random walk (`drcheck walk`), for replay.
    Walk {
        /// The walk's seed.
        seed: u64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Counterexample { property } => write!(f, "counterexample to {property}"),
            Finding::Example { property } => write!(f, "example of {property}"),
            Finding::Worst { metric, minutes } => write!(f, "worst {metric}: {minutes} min"),
            Finding::Walk { seed } => write!(f, "random walk, seed {seed}"),
        }
    }
}

/// One step of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Minutes since the start.
    pub minute: u32,
    /// Who took the step (for readers; replay goes by the action).
    pub actor: String,
    /// The model step taken.
    pub action: Action,
    /// The abstract view after the step.
    pub view: View,
}

/// A trace file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceFile {
    /// Schema version.
    pub drcheck_trace: u32,
    /// What the path shows.
    pub finding: Finding,
    /// The command that wrote it (to regenerate it).
    #[serde(default)]
    pub command: Option<String>,
    /// Model parameters, including the `--bug`.
    pub params: Params,
    /// Accept parameters that break the timing consistency rules.
    #[serde(default)]
    pub allow_inconsistent: bool,
    /// The path's steps, from the initial state.
    pub steps: Vec<TraceStep>,
}

/// Why a trace is refused.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The trace file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not JSON.
    #[error("{path}: not a drcheck trace: {source}")]
    Parse {
        /// The trace file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The JSON is not in the trace schema: `field` is where (`params.regions`,
    /// `steps[3].action`).
    #[error("{path}: not a drcheck trace: field `{field}`: {source}")]
    Schema {
        /// The trace file.
        path: PathBuf,
        /// The path to the field that is missing or wrong.
        field: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The file's schema version is not [`VERSION`].
    #[error(
        "{path}: trace version {found} is not supported (this drcheck reads version {VERSION})"
    )]
    Version {
        /// The trace file.
        path: PathBuf,
        /// The version the file states.
        found: u64,
    },
    /// The model refuses the file's parameters.
    #[error("{path}: parameters refused: {source}")]
    Params {
        /// The trace file.
        path: PathBuf,
        /// Why the model refuses them.
        source: drcheck_model::ConfigError,
    },
    /// A step is not enabled in the model state the steps before it reach.
    #[error("{path}: step {step} ({action}) is not enabled in the model there")]
    NotEnabled {
        /// The trace file.
        path: PathBuf,
        /// The step's number, 1 first.
        step: usize,
        /// The step.
        action: Action,
    },
    /// After a step, the view the file records is not the model's.
    #[error("{path}: step {step} ({action}): the recorded view differs from the model's: {diff}")]
    ViewMismatch {
        /// The trace file.
        path: PathBuf,
        /// The step's number, 1 first.
        step: usize,
        /// The step.
        action: Action,
        /// The differences, in words.
        diff: String,
    },
    /// The last state does not show what the file's finding says (or the file has no version
    /// field).
    #[error("{path}: {reason}")]
    Finding {
        /// The trace file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The file cannot be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The trace file.
        path: PathBuf,
        /// The I/O (or serialization) error.
        source: std::io::Error,
    },
}

/// A trace that replays in the model: the file and the model states along it.
pub struct Trace {
    /// The file as read.
    pub file: TraceFile,
    /// The model of the file's parameters.
    pub model: DrModel,
    /// The initial state, then the state after each step.
    pub states: Vec<DrState>,
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("finding", &self.file.finding)
            .field("steps", &self.file.steps.len())
            .finish()
    }
}

impl Trace {
    /// The trace's steps, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.file.steps.iter().map(|s| s.action.clone()).collect()
    }

    /// The violation the last state shows, for a counterexample.
    pub fn violation(&self) -> Option<drcheck_properties::Violation> {
        let Finding::Counterexample { property } = &self.file.finding else {
            return None;
        };
        let spec = drcheck_properties::property(property)?;
        let last = self.states.last()?;
        match spec.check {
            Check::Always(f) => f(&last.view, &self.model.bounds).err(),
            Check::Sometimes(_) => None,
        }
    }
}

impl TraceFile {
    /// Records a path of the model with these parameters.
    pub fn record(
        params: &Params,
        allow_inconsistent: bool,
        finding: Finding,
        actions: &[Action],
        command: Option<String>,
    ) -> Result<TraceFile, TraceError> {
        let path = PathBuf::from("<new trace>");
        let model = model_for(&path, params, allow_inconsistent)?;
        // One replay gives the views; the minute is the number of ticks so far.
        let states = search::replay(&model, actions).map_err(|i| TraceError::NotEnabled {
            path,
            step: i + 1,
            action: actions[i].clone(),
        })?;
        let mut minute = 0;
        let steps = actions
            .iter()
            .zip(states.into_iter().skip(1))
            .map(|(action, state)| {
                if *action == Action::Tick {
                    minute += params.tick;
                }
                TraceStep {
                    minute,
                    actor: action.actor().to_string(),
                    action: action.clone(),
                    view: state.view,
                }
            })
            .collect();
        Ok(TraceFile {
            drcheck_trace: VERSION,
            finding,
            command,
            params: params.clone(),
            allow_inconsistent,
            steps,
        })
    }

    /// Writes the file as pretty JSON.
    pub fn write(&self, path: &Path) -> Result<(), TraceError> {
        let json = serde_json::to_string_pretty(self).map_err(|e| TraceError::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(path, json + "\n").map_err(|source| TraceError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn model_for(
    path: &Path,
    params: &Params,
    allow_inconsistent: bool,
) -> Result<DrModel, TraceError> {
    let config = if allow_inconsistent {
        params.to_ticks()
    } else {
        params.validate()
    }
    .map_err(|source| TraceError::Params {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(DrModel::new(config))
}

/// Reads a trace file and replays it through the model, step by step.
pub fn load(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and replays trace text (`path` names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Trace, TraceError> {
    // The version first, so that a future schema is refused for what it is.
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|source| TraceError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
    let found = value.get("drcheck_trace").and_then(|v| v.as_u64());
    match found {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(TraceError::Version {
                path: path.to_path_buf(),
                found: v,
            })
        }
        None => {
            return Err(TraceError::Finding {
                path: path.to_path_buf(),
                reason: "not a drcheck trace: no \"drcheck_trace\" version field".to_string(),
            })
        }
    }
    let file: TraceFile =
        serde_path_to_error::deserialize(value).map_err(|e| TraceError::Schema {
            path: path.to_path_buf(),
            field: e.path().to_string(),
            source: e.into_inner(),
        })?;
    replay(path, file)
}

/// Replays a parsed trace file through the model.
pub fn replay(path: &Path, file: TraceFile) -> Result<Trace, TraceError> {
    let model = model_for(path, &file.params, file.allow_inconsistent)?;
    let mut states = vec![model.initial()];
    for (i, step) in file.steps.iter().enumerate() {
        let number = i + 1;
        let last = states.last().expect("the initial state is there");
        let next =
            drcheck_model::protocol::apply(&model.cfg, last, &step.action).ok_or_else(|| {
                TraceError::NotEnabled {
                    path: path.to_path_buf(),
                    step: number,
                    action: step.action.clone(),
                }
            })?;
        if next.view != step.view {
            let mut diff = describe_changes(&step.view, &next.view);
            if diff.is_empty() {
                diff.push("ages or clocks differ".to_string());
            }
            return Err(TraceError::ViewMismatch {
                path: path.to_path_buf(),
                step: number,
                action: step.action.clone(),
                diff: format!("from the recorded view to the model's: {}", diff.join("; ")),
            });
        }
        states.push(next);
    }
    let trace = Trace {
        file,
        model,
        states,
    };
    check_finding(path, &trace)?;
    Ok(trace)
}

/// The last state must show what the file says it shows.
fn check_finding(path: &Path, trace: &Trace) -> Result<(), TraceError> {
    let refuse = |reason: String| TraceError::Finding {
        path: path.to_path_buf(),
        reason,
    };
    let last = trace.states.last().expect("the initial state is there");
    match &trace.file.finding {
        Finding::Counterexample { property } | Finding::Example { property } => {
            let spec = drcheck_properties::property(property)
                .ok_or_else(|| refuse(format!("unknown property '{property}'")))?;
            let shows = match spec.check {
                Check::Always(f) => f(&last.view, &trace.model.bounds).is_err(),
                Check::Sometimes(f) => f(&last.view, &trace.model.bounds),
            };
            let counter = matches!(trace.file.finding, Finding::Counterexample { .. });
            if counter != matches!(spec.check, Check::Always(_)) {
                return Err(refuse(format!(
                    "{property} is not an {} property",
                    if counter { "always" } else { "sometimes" }
                )));
            }
            if !shows {
                return Err(refuse(format!(
                    "the last state does not show the {}",
                    trace.file.finding
                )));
            }
        }
        Finding::Walk { .. } => {}
        Finding::Worst { metric, .. } => {
            if !drcheck_model::Metric::ALL
                .iter()
                .any(|m| m.name() == metric)
            {
                return Err(refuse(format!("unknown metric '{metric}'")));
            }
        }
    }
    Ok(())
}

/// The file name `check --trace-out` gives a finding: `<bug or model>.<what>.json`.
pub fn file_name(params: &Params, finding: &Finding) -> String {
    let prefix = params
        .bug
        .map_or("model".to_string(), |b| b.name().to_string());
    let what = match finding {
        Finding::Counterexample { property } | Finding::Example { property } => property.clone(),
        Finding::Worst { metric, .. } => format!("worst-{}", metric.replace('_', "-")),
        Finding::Walk { seed } => format!("walk-{seed}"),
    };
    format!("{prefix}.{what}.json")
}
