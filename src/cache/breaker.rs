//! A circuit breaker for Redis: after a few consecutive failures the cache
//! is bypassed without trying Redis, then one probe per cool-down checks
//! whether it is back. Open costs requests nothing; they go to Postgres.

use std::{
    sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    time::{Duration, Instant},
};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// Breaker state shared by all requests of an instance.
pub struct Breaker {
    state: AtomicU8,
    failures: AtomicU32,
    opened_at_ms: AtomicU64,
    /// 1 + ms (since `epoch`) of the first failure since the last success; 0 when none.
    trouble_since_ms: AtomicU64,
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures; probes every `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            opened_at_ms: AtomicU64::new(0),
            trouble_since_ms: AtomicU64::new(0),
            threshold,
            cooldown,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a Redis call may be made now (at most one probe while open).
    pub fn allow(&self) -> bool {
        match self.state.load(Ordering::Acquire) {
            CLOSED => true,
            OPEN => {
                let opened = self.opened_at_ms.load(Ordering::Acquire);
                self.now_ms().saturating_sub(opened) >= self.cooldown.as_millis() as u64
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
            }
            _ => false,
        }
    }

    /// Records a successful call; returns true when this closed the circuit.
    pub fn success(&self) -> bool {
        self.failures.store(0, Ordering::Release);
        self.trouble_since_ms.store(0, Ordering::Release);
        self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED
    }

    /// Records a failed call; returns true when this opened the circuit.
    pub fn failure(&self) -> bool {
        let _ = self.trouble_since_ms.compare_exchange(
            0,
            self.now_ms() + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state.load(Ordering::Acquire);
        if state == HALF_OPEN || (state == CLOSED && n >= self.threshold) {
            self.opened_at_ms.store(self.now_ms(), Ordering::Release);
            return self.state.swap(OPEN, Ordering::AcqRel) == CLOSED;
        }
        false
    }

    /// Whether calls go through normally (no probing in progress). Unlike
    /// [`Breaker::allow`], never claims the probe.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// When the failures since the last success began (`None`: none since).
    pub fn trouble_since(&self) -> Option<Instant> {
        match self.trouble_since_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms - 1)),
        }
    }

    /// 0 closed, 1 open, 2 half-open (for /metrics).
    pub fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breaker::new(3, Duration::from_millis(30));
        assert!(b.allow());
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third failure opens");
        assert!(!b.allow(), "open: no calls");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one probe after the cool-down");
        assert!(!b.allow(), "only one probe at a time");
        b.failure();
        assert!(!b.allow(), "failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        assert!(b.success(), "successful probe closes");
        assert!(b.allow());
    }

    #[test]
    fn asking_whether_closed_never_takes_the_probe() {
        let b = Breaker::new(1, Duration::from_millis(10));
        assert!(b.is_closed());
        b.failure();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!b.is_closed());
        assert!(b.allow(), "the probe is still there for the lookup");
        assert!(!b.is_closed(), "half-open is not closed");
        b.success();
        assert!(b.is_closed());
    }
}
