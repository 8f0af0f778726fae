//! Protocol time and the `Clock` interface.
//!
//! Protocol time is in milliseconds of *protocol* minutes since the deployment started. The
//! machines never read a clock: the shell passes `now` in. The clocks themselves (virtual, or
//! real and scaled) live with the shells, in `drcheck-impl`.

/// Milliseconds of protocol time.
pub type Millis = u64;

/// One protocol minute.
pub const MINUTE: Millis = 60_000;

/// The protocol's timing parameters, in protocol milliseconds (the one definition, with the
/// defaults and consistency rules, is `drcheck_properties::Timing`).
pub type Timing = drcheck_properties::Timing<Millis>;

/// `minutes` in protocol milliseconds.
pub fn in_millis(minutes: &drcheck_properties::Timing) -> Timing {
    minutes.map(|m| u64::from(m) * MINUTE)
}

/// The default timing, in protocol milliseconds.
pub fn default_timing() -> Timing {
    in_millis(&drcheck_properties::Timing::default())
}

/// Where protocol time comes from.
pub trait Clock: Send + Sync + 'static {
    /// Protocol time now, on the control plane's clock (a region subtracts its lag).
    fn now(&self) -> Millis;
}
