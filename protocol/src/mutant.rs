//! Implementation mutants: each switches off one guard of the protocol, the same
//! [`drcheck_properties::Bug`] the model's `--bug` switches off, so that tests can show the
//! implementation's invariant checks catch it. They exist only in a build with the `mutants`
//! feature; otherwise [`Mutants::has`] is always false and compiles away.

/// One switched-off guard: the guard list is `drcheck_properties::Bug`, shared with the model.
pub use drcheck_properties::Bug as Mutant;

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
