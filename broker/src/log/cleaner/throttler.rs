//! [`Throttler`]: keeps one cleaner thread's I/O under `log.cleaner.io.max.bytes.per.second`.

use std::time::{Duration, Instant};

/// Sleeps the calling (blocking) thread whenever the bytes counted since the window started
/// are ahead of `rate` (Kafka's `Throttler`, one-second windows). Not shared.
#[derive(Debug)]
pub struct Throttler {
    bytes_per_second: f64,
    window_start: Instant,
    window_bytes: u64,
}

impl Throttler {
    /// A throttle at `bytes_per_second`; `f64::MAX` (Kafka's default) never sleeps.
    pub fn new(bytes_per_second: f64) -> Self {
        Self {
            bytes_per_second,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Counts `bytes` of I/O and sleeps until the rate is back under the limit.
    pub fn maybe_throttle(&mut self, bytes: u64) {
        if self.bytes_per_second >= f64::MAX / 2.0 || self.bytes_per_second <= 0.0 {
            return;
        }
        self.window_bytes += bytes;
        let elapsed = self.window_start.elapsed();
        let allowed = Duration::from_secs_f64(self.window_bytes as f64 / self.bytes_per_second);
        if allowed > elapsed {
            // The cleaner runs on a blocking thread of its own: sleeping is the throttle.
            std::thread::sleep(allowed - elapsed);
        }
        if elapsed >= Duration::from_secs(1) {
            self.window_start = Instant::now();
            self.window_bytes = 0;
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
