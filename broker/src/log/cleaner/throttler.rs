//! [`Throttler`]: keeps one cleaner thread's I/O under `log.cleaner.io.max.bytes.per.second`.

use std::time::{Duration, Instant};

/// Sleeps the calling (blocking) thread so that the bytes it counts never go faster than
/// `bytes_per_second` (Kafka's `Throttler`). Each byte books its share of time after the
/// previous ones; idle time earns no credit, so a pass after a quiet spell is throttled from
/// its first byte. Not shared.
#[derive(Debug)]
pub struct Throttler {
    bytes_per_second: f64,
    /// When the bytes counted so far may all have been done.
    next_free: Instant,
    slept: Duration,
}

/// Sleeps shorter than this are deferred to a later call (they add up in `next_free`).
const MIN_SLEEP: Duration = Duration::from_millis(5);

impl Throttler {
    /// A throttle at `bytes_per_second`; `f64::MAX` (Kafka's default) never sleeps.
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            bytes_per_second,
            next_free: Instant::now(),
            slept: Duration::ZERO,
        }
    }

    /// Time slept so far.
    pub fn slept(&self) -> Duration {
        self.slept
    }

    /// Counts `bytes` of I/O and sleeps until the rate is back under the limit.
    pub fn maybe_throttle(&mut self, bytes: u64) {
        if self.bytes_per_second >= f64::MAX / 2.0 || self.bytes_per_second <= 0.0 {
            return;
        }
        let now = Instant::now();
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        self.next_free = self.next_free.max(now) + cost;
        let ahead = self.next_free - now;
        if ahead >= MIN_SLEEP {
            // The cleaner runs on a blocking thread of its own: sleeping is the throttle.
            std::thread::sleep(ahead);
            self.slept += ahead;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_rate() {
        let mut t = Throttler::new(1_000_000.0);
        let start = Instant::now();
        for _ in 0..10 {
            t.maybe_throttle(20_000);
        }
        // 200 kB at 1 MB/s: at least 200 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}
