//! Where "now" comes from: one injectable clock for the whole server, so tests move time
//! instead of sleeping.

use std::time::Duration;

/// Where "now" comes from: the system clock in production; tests move a [`ManualClock`]
/// instead of sleeping.
pub trait Clock: Send + Sync {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::util::now_ms()
    }
}

/// The system clock moved forward by an offset that tests advance.
#[derive(Debug, Default)]
pub struct ManualClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// Moves this clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        crate::util::now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
