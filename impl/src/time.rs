//! The `Clock` seam's implementations: a virtual clock a test advances by hand, and a real
//! clock that scales wall time (`minute_ms` wall milliseconds per protocol minute) so that a
//! 60-minute RTO can be watched in seconds. Protocol time itself is `drcheck_protocol::time`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub use drcheck_protocol::time::{default_timing, in_millis, Clock, Millis, Timing, MINUTE};

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

impl Clock for RealClock {
    fn now(&self) -> Millis {
        let wall = match self.start {
            Start::Here(at) => u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX),
            Start::Unix(at) => unix_ms().saturating_sub(at),
        };
        wall.saturating_mul(MINUTE) / self.minute_ms
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
