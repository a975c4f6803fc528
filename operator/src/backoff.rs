//! Retry delays after failed reconciles, per object: the first retry comes after
//! [`FIRST_RETRY`], each further failure doubles the delay up to [`MAX_RETRY`], and a
//! successful reconcile starts over.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The delay after a first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest delay between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Consecutive failures by object (`namespace/name` of a kind).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.lock();
        let count = failures.entry(key.to_string()).or_insert(0);
        let delay = FIRST_RETRY
            .saturating_mul(2u32.saturating_pow(*count))
            .min(MAX_RETRY);
        *count = count.saturating_add(1);
        delay
    }

    /// Forgets the failures of `key` after a reconcile that succeeded.
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        // A panic while holding the map leaves counts that are still usable.
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset_on_success() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (0..6).map(|_| backoff.failed("ns/a").as_secs()).collect();
        assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff.failed("ns/b"), FIRST_RETRY);
        backoff.succeeded("ns/a");
        assert_eq!(backoff.failed("ns/a"), FIRST_RETRY);
    }
}
