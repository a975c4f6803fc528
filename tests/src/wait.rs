//! Waiting for a condition with a deadline: the only way tests synchronise with the broker.

use std::time::{Duration, Instant};

/// How often a condition is re-evaluated. Short enough not to slow tests down, long enough
/// not to hog one of the machine's two cores.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Evaluates `condition` until it returns `Some`, and returns that value. Panics with `what`
/// (and the time waited) when `timeout` passes first.
pub fn wait_until<T>(timeout: Duration, what: &str, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// [`wait_until`] for a boolean condition.
pub fn wait_for(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_until(timeout, what, || condition().then_some(()))
}
