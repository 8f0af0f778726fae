//! Implementation mutants: each switches off one guard of the protocol, named as the model's
//! `--bug` variant that does the same, so that tests can show the implementation's invariant
//! checks catch it. They exist only in a build with the `mutants` feature; otherwise
//! [`Mutants::has`] is always false and compiles away.

/// One switched-off guard (same names as the model's `--bug` variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutant {
    NoThrottle,
    NoLeaseWait,
    NoRpoGuard,
    RpoGuardNoMargin,
    RejoinNoTruncate,
    RejoinNoQuarantine,
    RejoinMerge,
    FailbackNoDrain,
    AutoDataFailback,
    HastyDetection,
    NoComputeFailover,
    NoAutoFailover,
}

impl Mutant {
    pub const ALL: [Mutant; 12] = [
        Mutant::NoThrottle,
        Mutant::NoLeaseWait,
        Mutant::NoRpoGuard,
        Mutant::RpoGuardNoMargin,
        Mutant::RejoinNoTruncate,
        Mutant::RejoinNoQuarantine,
        Mutant::RejoinMerge,
        Mutant::FailbackNoDrain,
        Mutant::AutoDataFailback,
        Mutant::HastyDetection,
        Mutant::NoComputeFailover,
        Mutant::NoAutoFailover,
    ];

    /// The name the model's `--bug` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::NoThrottle => "no-throttle",
            Mutant::NoLeaseWait => "no-lease-wait",
            Mutant::NoRpoGuard => "no-rpo-guard",
            Mutant::RpoGuardNoMargin => "rpo-guard-no-margin",
            Mutant::RejoinNoTruncate => "rejoin-no-truncate",
            Mutant::RejoinNoQuarantine => "rejoin-no-quarantine",
            Mutant::RejoinMerge => "rejoin-merge",
            Mutant::FailbackNoDrain => "failback-no-drain",
            Mutant::AutoDataFailback => "auto-data-failback",
            Mutant::HastyDetection => "hasty-detection",
            Mutant::NoComputeFailover => "no-compute-failover",
            Mutant::NoAutoFailover => "no-auto-failover",
        }
    }

    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// The mutants switched on in a deployment: none, unless built with the `mutants` feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mutants {
    #[cfg(feature = "mutants")]
    active: Option<Mutant>,
    /// The abstraction maps one field wrongly (every lease one tick long): what refinement
    /// checking must catch in the mapping itself, not in the protocol.
    #[cfg(feature = "mutants")]
    wrong_abstraction: bool,
}

impl Mutants {
    /// Only `mutant` switched on.
    #[cfg(feature = "mutants")]
    pub fn only(mutant: Mutant) -> Mutants {
        Mutants {
            active: Some(mutant),
            wrong_abstraction: false,
        }
    }

    /// A correct protocol behind a wrong abstraction (see the field).
    #[cfg(feature = "mutants")]
    pub fn wrong_abstraction() -> Mutants {
        Mutants {
            active: None,
            wrong_abstraction: true,
        }
    }

    /// Is the abstraction to be mapped wrongly?
    #[inline]
    pub fn wrong_view(&self) -> bool {
        #[cfg(feature = "mutants")]
        {
            self.wrong_abstraction
        }
        #[cfg(not(feature = "mutants"))]
        {
            false
        }
    }

    /// Is `mutant` switched on?
    #[inline]
    pub fn has(&self, mutant: Mutant) -> bool {
        #[cfg(feature = "mutants")]
        {
            self.active == Some(mutant)
        }
        #[cfg(not(feature = "mutants"))]
        {
            let _ = mutant;
            false
        }
    }
}
