//! The reassignment throttle (`throttle_bytes_per_second` of the admin API): a token bucket
//! shared by every fetcher of this broker, charged with the bytes fetched for replicas this
//! broker is *adding* (copying because of a reassignment). Ordinary followers are never
//! throttled, so a slow reassignment cannot push an in-sync replica out of the ISR.
//!
//! The bucket holds at most one second of the rate and may go into debt: a follower fetch
//! returns at least one whole batch (Kafka's `min_one_message`), which can be larger than what
//! was left, and the debt is then paid back before the next throttled fetch. The rate comes from
//! the metadata image and may change at any time; a crate such as `governor` has neither debt
//! nor a rate that changes in place, which is why this small bucket is written here.
//!
//! Thread-safety: one `Mutex` around the bucket, taken for a few arithmetic operations per
//! fetch round; time is passed in (`now`), so tests drive it without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What throttled partitions may fetch right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// No throttle is set.
    Unlimited,
    /// Up to this many bytes (at least 1).
    Bytes(u64),
    /// Nothing until this much time has passed (the bucket is empty or in debt).
    WaitFor(Duration),
}

#[derive(Debug)]
struct Bucket {
    /// Bytes per second; `None`: unthrottled.
    rate: Option<u64>,
    /// Bytes that may be fetched now; negative while in debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled_at: Instant,
}

/// The per-broker reassignment throttle.
#[derive(Debug)]
pub struct ReplicationThrottle {
    bucket: Mutex<Bucket>,
    throttled_bytes: AtomicU64,
}

impl Default for ReplicationThrottle {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl ReplicationThrottle {
    /// An unthrottled bucket.
    pub fn new(now: Instant) -> Self {
        Self {
            bucket: Mutex::new(Bucket {
                rate: None,
                tokens: 0.0,
                refilled_at: now,
            }),
            throttled_bytes: AtomicU64::new(0),
        }
    }

    /// Sets the rate (`None` or 0: unthrottled). A new rate starts with a full bucket, a
    /// changed one keeps its tokens (capped to the new burst).
    pub fn set_rate(&self, rate: Option<u64>, now: Instant) {
        let rate = rate.filter(|r| *r > 0);
        let mut bucket = self.bucket.lock();
        if bucket.rate == rate {
            return;
        }
        bucket.refill(now);
        bucket.tokens = match (bucket.rate, rate) {
            (_, None) => 0.0,
            (None, Some(r)) => r as f64,
            (Some(_), Some(r)) => bucket.tokens.min(r as f64),
        };
        bucket.rate = rate;
        bucket.refilled_at = now;
    }

    /// The rate in force.
    pub fn rate(&self) -> Option<u64> {
        self.bucket.lock().rate
    }

    /// What throttled partitions may fetch now.
    pub fn allowance(&self, now: Instant) -> Allowance {
        let mut bucket = self.bucket.lock();
        let Some(rate) = bucket.rate else {
            return Allowance::Unlimited;
        };
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            Allowance::Bytes(bucket.tokens as u64)
        } else {
            let missing = 1.0 - bucket.tokens;
            Allowance::WaitFor(Duration::from_secs_f64(missing / rate as f64))
        }
    }

    /// Charges `bytes` fetched for throttled partitions.
    pub fn consume(&self, bytes: u64, now: Instant) {
        self.throttled_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut bucket = self.bucket.lock();
        if bucket.rate.is_some() {
            bucket.refill(now);
            bucket.tokens -= bytes as f64;
        }
    }

    /// Bytes fetched for replicas being added, since start (throttled or not).
    pub fn reassignment_bytes_total(&self) -> u64 {
        self.throttled_bytes.load(Ordering::Relaxed)
    }
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        // At most one second of the rate accumulates: the burst.
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        self.refilled_at = now.max(self.refilled_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn unthrottled_until_a_rate_is_set_and_again_after_it_is_removed() {
        let start = Instant::now();
        let throttle = ReplicationThrottle::new(start);
        assert_eq!(throttle.allowance(start), Allowance::Unlimited);
        throttle.set_rate(Some(1000), start);
        assert_eq!(throttle.allowance(start), Allowance::Bytes(1000));
        throttle.set_rate(Some(0), start);
        assert_eq!(throttle.allowance(start), Allowance::Unlimited);
        throttle.consume(5, start);
        assert_eq!(throttle.reassignment_bytes_total(), 5);
    }

    #[test]
    fn debt_is_paid_back_at_the_rate_before_more_is_allowed() {
        let start = Instant::now();
        let throttle = ReplicationThrottle::new(start);
        throttle.set_rate(Some(1000), start);
        // One batch larger than the whole burst.
        throttle.consume(2500, start);
        let Allowance::WaitFor(wait) = throttle.allowance(start) else {
            panic!("in debt")
        };
        assert!(
            (Duration::from_millis(1500)..Duration::from_millis(1502)).contains(&wait),
            "{wait:?}"
        );
        assert!(matches!(
            throttle.allowance(start + SECOND),
            Allowance::WaitFor(_)
        ));
        let later = start + 2 * SECOND;
        assert_eq!(throttle.allowance(later), Allowance::Bytes(500));
        // The bucket never holds more than one second of the rate.
        assert_eq!(
            throttle.allowance(later + 10 * SECOND),
            Allowance::Bytes(1000)
        );
    }

    #[test]
    fn over_a_long_copy_the_average_rate_is_the_limit() {
        let start = Instant::now();
        let throttle = ReplicationThrottle::new(start);
        throttle.set_rate(Some(10_000), start);
        let mut now = start;
        let mut copied = 0u64;
        // A fetcher that takes whatever it is allowed, in batches of 4 KiB at least.
        while now < start + 10 * SECOND {
            match throttle.allowance(now) {
                Allowance::Bytes(n) => {
                    let batch = n.max(4096);
                    throttle.consume(batch, now);
                    copied += batch;
                }
                Allowance::WaitFor(wait) => now += wait,
                Allowance::Unlimited => unreachable!("a rate is set"),
            }
        }
        // 10 s at 10 kB/s plus the initial one-second burst, give or take a batch.
        assert!((100_000..=114_096).contains(&copied), "{copied}");
    }

    #[test]
    fn lowering_the_rate_caps_the_saved_tokens() {
        let start = Instant::now();
        let throttle = ReplicationThrottle::new(start);
        throttle.set_rate(Some(1000), start);
        throttle.set_rate(Some(100), start);
        assert_eq!(throttle.allowance(start), Allowance::Bytes(100));
        assert_eq!(throttle.rate(), Some(100));
    }
}
