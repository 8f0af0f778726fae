//! Model parameters: timing assumptions in minutes, the bounds of the search, and their
//! conversion to ticks with DESIGN.md's consistency rules.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use drcheck_properties::{timing, Bug, Inconsistent, Timing};

/// Every parameter of the model, as a user states it (times in minutes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Minutes per tick of the model's clock.
    pub tick: u32,
    /// The protocol's timing, in minutes (flattened: a trace file lists each parameter).
    #[serde(flatten)]
    pub timing: Timing,
    /// Regions (region 0 starts as data primary and compute region).
    pub regions: u32,
    /// Client writes.
    pub writes: u32,
    /// Region outages (a crash or an isolation), each followed by a possible recovery.
    pub outages: u32,
    /// Inter-region partitions, each followed by a possible heal.
    pub partitions: u32,
    /// Manual data failback requests by the operator.
    pub failbacks: u32,
    /// Forced failovers by the operator.
    pub forced: u32,
    /// Quarantined writes the operator may re-apply.
    pub reapplies: u32,
    /// Control-plane crashes (each restarted at once, losing its volatile state).
    #[serde(default)]
    pub cp_restarts: u32,
    /// Lost messages: a heartbeat, or the control plane's answer to one (a lease grant, the
    /// news of a new epoch).
    #[serde(default)]
    pub losses: u32,
    /// Whether an outage may be an isolation (the region keeps running, cut off).
    pub isolation: bool,
    /// Time horizon in minutes (0: none; saturated ages keep the space finite without it).
    pub horizon: u32,
    /// A guard switched off.
    pub bug: Option<Bug>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            tick: 1,
            timing: Timing::default(),
            regions: 2,
            writes: 2,
            outages: 1,
            partitions: 1,
            failbacks: 1,
            forced: 1,
            reapplies: 0,
            // A restart multiplies the default state space by six (16.6 M states): checked in
            // its own tests and with `--cp-restarts 1`, not by default.
            cp_restarts: 0,
            losses: 0,
            isolation: true,
            horizon: 0,
            bug: None,
        }
    }
}

/// The parameters in ticks, checked: what the model runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The parameters as the user stated them (times in minutes).
    pub params: Params,
    /// The timing in ticks.
    pub timing: Timing<u8>,
    /// Number of regions (2 or 3).
    pub regions: u8,
    /// Client writes the search may make.
    pub writes: u8,
    /// Region outages (crash or isolation) the search may inject.
    pub outages: u8,
    /// Inter-region partitions the search may inject.
    pub partitions: u8,
    /// Manual data failback requests the operator may make.
    pub failbacks: u8,
    /// Forced failovers the operator may make.
    pub forced: u8,
    /// Quarantined writes the operator may re-apply.
    pub reapplies: u8,
    /// Control-plane restarts the search may inject.
    pub cp_restarts: u8,
    /// Messages the search may lose.
    pub losses: u8,
    /// Time horizon in ticks (`None`: unbounded).
    pub horizon: Option<u8>,
    /// Ages saturate here: no bound a property or the protocol compares them with is larger.
    pub age_cap: u8,
    /// States are put in canonical form before they are hashed (`crate::canonical`): fields
    /// no step will read are erased. Off only to compare the reduced search with the full
    /// one (`check --no-reduce`).
    #[serde(default = "reduce_by_default")]
    pub reduce: bool,
}

fn reduce_by_default() -> bool {
    true
}

/// Why a parameter set is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The timing, in ticks, breaks a consistency rule.
    #[error("inconsistent parameters: {0}")]
    Inconsistent(Inconsistent),
    /// A time is not a whole number of ticks.
    #[error("--{name} {value} is not a multiple of --tick {tick} (every time is in whole ticks)")]
    NotMultiple {
        /// The parameter.
        name: &'static str,
        /// Its value, in minutes.
        value: u32,
        /// Minutes per tick.
        tick: u32,
    },
    /// A parameter lies outside the range the model supports.
    #[error("--{name} {value} is out of range ({range})")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// Its value (in ticks for a time, except `tick` itself, in minutes).
        value: u32,
        /// The range allowed, in words.
        range: &'static str,
    },
}

fn in_range(
    name: &'static str,
    value: u32,
    lo: u32,
    hi: u32,
    range: &'static str,
) -> Result<u8, ConfigError> {
    if value < lo || value > hi {
        return Err(ConfigError::OutOfRange { name, value, range });
    }
    u8::try_from(value).map_err(|_| ConfigError::OutOfRange { name, value, range })
}

impl Params {
    /// Converts to ticks and checks the timing's consistency rules.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let config = self.to_ticks()?;
        config.check_consistency()?;
        Ok(config)
    }

    /// Converts to ticks and checks ranges only: for exploring inconsistent parameter sets on
    /// purpose (the timing-boundary tests do).
    pub fn to_ticks(&self) -> Result<Config, ConfigError> {
        let tick = self.tick;
        if tick == 0 || tick > 60 {
            return Err(ConfigError::OutOfRange {
                name: "tick",
                value: tick,
                range: "1..=60 minutes",
            });
        }
        let ticks = |name: &'static str, value: u32, lo: u32| -> Result<u8, ConfigError> {
            if !value.is_multiple_of(tick) {
                return Err(ConfigError::NotMultiple { name, value, tick });
            }
            in_range(
                name,
                value / tick,
                lo,
                120,
                "0..=120 ticks, 1 at least where a zero makes no sense",
            )
        };
        let timing = self
            .timing
            .zip(&timing::MAY_BE_ZERO)
            .try_map(|name, (value, may_be_zero)| ticks(name, value, u32::from(!may_be_zero)))?;
        let horizon = match self.horizon {
            0 => None,
            h => Some(ticks("horizon", h, 1)?),
        };
        // Beyond the largest bound an age is compared with, ages need not grow (the state
        // space stays small).
        let age_cap = drcheck_properties::age_cap(timing.rpo, timing.throttle, timing.sync_timeout);
        Ok(Config {
            params: self.clone(),
            timing,
            regions: in_range("regions", self.regions, 2, 3, "2..=3")?,
            writes: in_range("writes", self.writes, 0, 6, "0..=6")?,
            outages: in_range("outages", self.outages, 0, 3, "0..=3")?,
            partitions: in_range("partitions", self.partitions, 0, 3, "0..=3")?,
            failbacks: in_range("failbacks", self.failbacks, 0, 3, "0..=3")?,
            forced: in_range("forced", self.forced, 0, 3, "0..=3")?,
            reapplies: in_range("reapplies", self.reapplies, 0, 3, "0..=3")?,
            cp_restarts: in_range("cp-restarts", self.cp_restarts, 0, 3, "0..=3")?,
            losses: in_range("losses", self.losses, 0, 3, "0..=3")?,
            horizon,
            age_cap,
            reduce: true,
        })
    }
}

impl Config {
    /// The timing's consistency rules (`drcheck_properties::timing::RULES`), in ticks. The
    /// error names the broken inequality and what it endangers.
    pub fn check_consistency(&self) -> Result<(), ConfigError> {
        self.timing.check().map_err(|mut e| {
            e.detail = format!("{}, in ticks of {} min", e.detail, self.params.tick);
            ConfigError::Inconsistent(e)
        })
    }

    /// The guard switched off, if any.
    pub fn bug(&self) -> Option<Bug> {
        self.params.bug
    }

    /// Is `bug` the guard switched off?
    pub fn has_bug(&self, bug: Bug) -> bool {
        self.params.bug == Some(bug)
    }

    /// Where a region's ticks since it heard its primary saturate: one past the longest
    /// silence after which it still reports contact (`Timing::contact_window`; at most 241
    /// ticks, each parameter being at most 120).
    pub fn contact_cap(&self) -> u8 {
        self.timing.contact_window() + 1
    }

    /// The lease wait: the control plane promotes no earlier than this many ticks after its
    /// last grant to the old primary.
    pub fn lease_wait(&self) -> u8 {
        // At most 240: each parameter is at most 120 ticks.
        self.timing.lease_wait()
    }

    /// Ticks of silence after which the control plane declares a region failed.
    pub fn detection_threshold(&self) -> u8 {
        if self.has_bug(Bug::HastyDetection) {
            self.timing.heartbeat
        } else {
            self.timing.detection
        }
    }

    /// Entries acknowledged at least this many ticks ago count in `old_prefix_len`.
    pub fn old_prefix_age(&self) -> u8 {
        if self.has_bug(Bug::RpoGuardNoMargin) {
            self.timing.rpo
        } else {
            // At most the RPO, which is a u8.
            u8::try_from(self.timing.old_prefix_age()).unwrap_or(u8::MAX)
        }
    }

    /// The bounds the properties judge against, in ticks (the true detection time, even
    /// under `hasty-detection`).
    pub fn bounds(&self) -> drcheck_properties::Bounds {
        drcheck_properties::Bounds {
            rpo: self.timing.rpo,
            rto: self.timing.rto,
            detection: self.timing.detection,
            drain_timeout: self.timing.drain_timeout,
        }
    }

    /// The largest epoch the checker admits. Every promotion starts an epoch, and with
    /// consistent timing each one is paid for from the search's budgets: an automatic or
    /// forced failover by an outage of the primary, a switchover by a failback request (forced
    /// counted too, for margin). Each paid promotion may be followed by one unpaid one, the
    /// switchover home of `--bug auto-data-failback`. So epochs never pass
    /// `FIRST_EPOCH + 2 × (outages + failbacks + forced)`. Past it failovers repeat without
    /// bound (every heartbeat late, say), and the state space with them: the checker stops
    /// there and reports it ([`crate::Report::epochs_exceeded`]). Under a horizon the clock
    /// bounds the failovers instead, and only the epoch's type does.
    pub fn max_epoch(&self) -> u8 {
        if self.horizon.is_some() {
            return u8::MAX - 1;
        }
        let paid = [self.outages, self.failbacks, self.forced]
            .into_iter()
            .fold(0, u8::saturating_add);
        drcheck_properties::FIRST_EPOCH
            .saturating_add(paid.saturating_mul(2))
            .min(u8::MAX - 1)
    }

    /// Minutes of `ticks`.
    pub fn minutes(&self, ticks: u32) -> u32 {
        ticks * self.params.tick
    }
}
