//! The `Clock` seam's implementations: a virtual clock a test advances by hand, and a real
//! clock that scales wall time (`minute_ms` wall milliseconds per protocol minute) so that a
//! 60-minute RTO can be watched in seconds. Protocol time itself is `drcheck_protocol::time`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use drcheck_protocol::time::{default_timing, in_millis, Clock, Millis, Timing, MINUTE};

/// `timing` in whole protocol minutes (as a `started` event gives it).
pub fn in_minutes(timing: &Timing) -> drcheck_properties::Timing {
    timing.map(|ms| u32::try_from(ms / MINUTE).unwrap_or(u32::MAX))
}

/// Wall time, scaled: `minute_ms` wall milliseconds make one protocol minute.
#[derive(Debug)]
pub struct RealClock {
    start: Start,
    minute_ms: u64,
}

/// Where protocol time 0 is.
#[derive(Debug)]
enum Start {
    /// When this process made the clock.
    Here(Instant),
    /// A wall-clock instant (Unix milliseconds) shared by the processes of a deployment.
    Unix(u64),
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RealClock {
    /// A clock whose time 0 is now, running `minute_ms` wall milliseconds per protocol
    /// minute (at least 1).
    pub fn new(minute_ms: u64) -> RealClock {
        RealClock {
            start: Start::Here(Instant::now()),
            minute_ms: minute_ms.max(1),
        }
    }

    /// A clock whose time 0 is `start_unix_ms`: every process of a deployment made with the
    /// same start agrees on protocol time (up to the machines' clock skew).
    pub fn since_unix(start_unix_ms: u64, minute_ms: u64) -> RealClock {
        RealClock {
            start: Start::Unix(start_unix_ms),
            minute_ms: minute_ms.max(1),
        }
    }

    /// Wall milliseconds per protocol minute.
    pub fn minute_ms(&self) -> u64 {
        self.minute_ms
    }
}

/// Microseconds since the Unix epoch, now.
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Clock for RealClock {
    /// Read in wall microseconds: with a short minute a wall millisecond is many protocol
    /// milliseconds, and a message's effect in another process, a fraction of a wall
    /// millisecond later, must not be stamped with its cause's time (the merged event logs
    /// of a deployment order its processes' events by these times).
    fn now(&self) -> Millis {
        let wall_us = match self.start {
            Start::Here(at) => u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX),
            Start::Unix(at) => unix_us().saturating_sub(at.saturating_mul(1000)),
        };
        let protocol =
            u128::from(wall_us) * u128::from(MINUTE) / (u128::from(self.minute_ms) * 1000);
        u64::try_from(protocol).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when a test advances it.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now: AtomicU64,
}

impl VirtualClock {
    /// A clock at time 0.
    pub fn new() -> VirtualClock {
        VirtualClock::default()
    }

    /// Moves the clock forward by `by` and returns the new time.
    pub fn advance(&self, by: Millis) -> Millis {
        self.now.fetch_add(by, Ordering::SeqCst) + by
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_clock_scales_wall_time_from_the_deployment_s_start() {
        let clock = RealClock::since_unix(unix_ms() - 2_000, 1_000);
        let now = clock.now();
        assert!((2 * MINUTE..3 * MINUTE).contains(&now), "{now}");
    }

    /// With a 200 ms minute a wall millisecond is 300 protocol milliseconds: the clock must
    /// tell apart two instants a fifth of a wall millisecond apart, as a message and its
    /// effect in another process are.
    #[test]
    fn a_real_clock_reads_finer_than_a_wall_millisecond() {
        let clock = RealClock::since_unix(unix_ms(), 200);
        let told_apart = (0..20).any(|_| {
            let before = clock.now();
            let wait = Instant::now();
            while wait.elapsed() < std::time::Duration::from_micros(200) {
                std::hint::spin_loop();
            }
            let after = clock.now();
            after > before && after - before < 300
        });
        assert!(told_apart);
    }
}
