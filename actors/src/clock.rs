//! Time as a dependency. Actors read `now()` from a [`Clock`], so their
//! state machines are tested by moving a [`ManualClock`], never by sleeping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    /// Wall-clock time, for timestamps shown to people.
    fn wall(&self) -> SystemTime;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: (Instant, SystemTime),
    elapsed: Arc<Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self {
            start: (Instant::now(), SystemTime::now()),
            elapsed: Arc::default(),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start.0 + self.elapsed()
    }

    fn wall(&self) -> SystemTime {
        self.start.1 + self.elapsed()
    }
}

pub type SharedClock = Arc<dyn Clock>;
