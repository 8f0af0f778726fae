//! Every step of the model, named after the participant that takes it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who takes a step. Serialized as its name ("clock", "region 1", "control plane", …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The clock: lets a tick pass.
    Clock,
    /// A client writing through the endpoint.
    Client,
    /// Region `r`, shipping its log to a secondary.
    Region(u8),
    /// The control plane: heartbeats it takes, declarations, promotions, rejoins, compute
    /// routing and switchovers.
    ControlPlane,
    /// The operator: failback requests, forced failovers, re-applies.
    Operator,
    /// Faults: crashes, isolations, recoveries, partitions.
    Environment,
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Clock => f.write_str("clock"),
            Actor::Client => f.write_str("client"),
            Actor::Region(r) => write!(f, "region {r}"),
            Actor::ControlPlane => f.write_str("control plane"),
            Actor::Operator => f.write_str("operator"),
            Actor::Environment => f.write_str("environment"),
        }
    }
}

/// One step. Steps are atomic; the clock's `Tick` is the only one that lets time pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Action {
    /// One tick passes: ages, leases and silences move; due heartbeats are sent.
    Tick,
    /// A client write reaches `region`, which acknowledges it.
    Write {
        /// The region that acknowledges it.
        region: u8,
    },
    /// The oldest heartbeat in flight from `region` reaches the control plane (which renews the
    /// primary's lease, or tells a stale region about the new epoch).
    DeliverHeartbeat {
        /// The region that sent it.
        region: u8,
    },
    /// The oldest heartbeat in flight from `region` is lost.
    LoseHeartbeat {
        /// The region that sent it.
        region: u8,
    },
    /// The oldest heartbeat in flight from `region` reaches the control plane, and the
    /// answer (a lease grant, the news of a new epoch) is lost.
    LoseAnswer {
        /// The region that sent the heartbeat.
        region: u8,
    },
    /// The primary ships its missing entries to a secondary, which confirms them.
    Replicate {
        /// The shipping primary (or fenced primary).
        from: u8,
        /// The secondary.
        to: u8,
    },
    /// The control plane declares a silent region failed.
    Declare {
        /// The region declared failed.
        region: u8,
    },
    /// The control plane promotes `region` in an automatic failover.
    Promote {
        /// The candidate promoted.
        region: u8,
    },
    /// The control plane leaves a secondary that has not confirmed the primary's oldest
    /// unconfirmed write within the sync timeout out of the in-sync set.
    OutOfSync {
        /// The lagging secondary.
        region: u8,
    },
    /// A recovered region rejoins as secondary of the current epoch.
    Rejoin {
        /// The region that rejoins.
        region: u8,
    },
    /// Compute (the endpoint's routing) fails back to the home region.
    ComputeFailback,
    /// Compute moves to the data primary's region: the compute region cannot reach it.
    ComputeToPrimary,
    /// Switchover: the primary confirms it stopped writing and gave up its lease.
    Fence,
    /// Switchover: the drained target becomes primary under a new epoch.
    CompleteSwitchover,
    /// Switchover: the drain timed out; the primary is unfenced.
    AbortSwitchover,
    /// Under `--bug auto-data-failback`: the control plane starts a switchover by itself.
    AutoFailback {
        /// The home region.
        target: u8,
    },
    /// Region `region` crashes: its volatile state (lease, timers) is lost, its durable
    /// storage survives.
    Crash {
        /// The region that crashes.
        region: u8,
    },
    /// Region `region` is cut off from the control plane and the other regions, but keeps
    /// running and serving its in-region clients.
    Isolate {
        /// The region isolated.
        region: u8,
    },
    /// A crashed region restarts from its durable state.
    Recover {
        /// The region that restarts.
        region: u8,
    },
    /// An isolated region is reachable again.
    Reconnect {
        /// The region reconnected.
        region: u8,
    },
    /// The control plane crashes and is restarted at once: it loses its volatile state
    /// (silences, failed set, phase, last grant, the primary's report) and recovers the
    /// routing from the regions' durable state.
    RestartControl,
    /// The inter-region link is cut (the control plane still reaches every region).
    Partition,
    /// The inter-region link heals.
    Heal,
    /// The operator asks for manual data failback to `target`.
    RequestFailback {
        /// The region to fail the data back to.
        target: u8,
    },
    /// The operator forces a failover to `target` after the grace period.
    ForceFailover {
        /// The region to promote.
        target: u8,
    },
    /// The operator re-applies a quarantined write as a new write.
    Reapply {
        /// The quarantined write's id.
        write: u8,
    },
}

impl Action {
    /// The region the step names first (the writer, the shipper, the one declared or
    /// promoted, a failback's target, …), if any.
    pub fn region(&self) -> Option<u8> {
        use Action::*;
        match *self {
            Write { region }
            | DeliverHeartbeat { region }
            | LoseHeartbeat { region }
            | LoseAnswer { region }
            | Declare { region }
            | Promote { region }
            | OutOfSync { region }
            | Rejoin { region }
            | Crash { region }
            | Isolate { region }
            | Recover { region }
            | Reconnect { region } => Some(region),
            Replicate { from, .. } => Some(from),
            AutoFailback { target } | RequestFailback { target } | ForceFailover { target } => {
                Some(target)
            }
            _ => None,
        }
    }

    /// The participant that takes the step.
    pub fn actor(&self) -> Actor {
        use Action::*;
        match self {
            Tick => Actor::Clock,
            Write { .. } => Actor::Client,
            DeliverHeartbeat { .. }
            | LoseAnswer { .. }
            | Declare { .. }
            | Promote { .. }
            | OutOfSync { .. }
            | Rejoin { .. }
            | ComputeFailback
            | ComputeToPrimary
            | Fence
            | CompleteSwitchover
            | AbortSwitchover
            | AutoFailback { .. } => Actor::ControlPlane,
            Replicate { from, .. } => Actor::Region(*from),
            Crash { .. }
            | Isolate { .. }
            | Recover { .. }
            | Reconnect { .. }
            | RestartControl
            | LoseHeartbeat { .. }
            | Partition
            | Heal => Actor::Environment,
            RequestFailback { .. } | ForceFailover { .. } | Reapply { .. } => Actor::Operator,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Action::*;
        match self {
            Tick => f.write_str("tick"),
            Write { region } => write!(f, "write at region {region}"),
            DeliverHeartbeat { region } => write!(f, "heartbeat from region {region} arrives"),
            LoseHeartbeat { region } => write!(f, "heartbeat from region {region} is lost"),
            LoseAnswer { region } => write!(
                f,
                "heartbeat from region {region} arrives; the answer to it is lost"
            ),
            Replicate { from, to } => write!(f, "replicate {from} -> {to}"),
            Declare { region } => write!(f, "declare region {region} failed"),
            Promote { region } => write!(f, "promote region {region} (automatic failover)"),
            OutOfSync { region } => write!(f, "region {region} left out of sync (sync timeout)"),
            Rejoin { region } => write!(f, "region {region} rejoins as secondary"),
            ComputeFailback => f.write_str("compute fails back home"),
            ComputeToPrimary => f.write_str("compute moves to the data primary (cut off from it)"),
            Fence => f.write_str("fence the primary"),
            CompleteSwitchover => f.write_str("complete switchover"),
            AbortSwitchover => f.write_str("abort switchover (drain timed out)"),
            AutoFailback { target } => write!(f, "automatic data failback to region {target}"),
            Crash { region } => write!(f, "region {region} crashes"),
            Isolate { region } => write!(f, "region {region} is isolated"),
            Recover { region } => write!(f, "region {region} recovers"),
            Reconnect { region } => write!(f, "region {region} reconnects"),
            RestartControl => f.write_str("the control plane crashes and restarts"),
            Partition => f.write_str("inter-region partition"),
            Heal => f.write_str("partition heals"),
            RequestFailback { target } => write!(f, "request data failback to region {target}"),
            ForceFailover { target } => write!(f, "force failover to region {target}"),
            Reapply { write } => write!(f, "re-apply quarantined w{write}"),
        }
    }
}
