//! Whether each Raft peer answers, so a peer that is down is reported once, not on every retry.
//!
//! openraft retries an unreachable peer every 500 ms and logs each failure itself (one ERROR
//! and two WARN lines per retry). Those lines are filtered out of the broker's log
//! ([`crate::telemetry`]); instead the transport ([`super::network`]) records the outcome of
//! every RPC here and logs only the transitions: one WARN when a peer stops answering (with the
//! first error), one INFO when it answers again (with how long it was gone). Errors of a
//! different kind while a peer is already failing are logged at WARN too, so nothing new is
//! hidden; repeats of the same kind are DEBUG.
//!
//! Thread-safety: one map behind a mutex, shared by every connection openraft opens; a
//! connection is recreated on leadership changes, the map outlives it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::types::NodeId;

/// How an RPC to a peer failed, for telling a new kind of failure from a repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection, or no answer in time.
    Unreachable,
    /// The peer's host refused the connection: nothing listens on its port, its process is
    /// gone (a paused or cut-off peer times out instead).
    Refused,
    /// The answer could not be sent or decoded.
    Network,
    /// The peer's Raft answered with an error.
    Remote,
}

/// What a recorded outcome changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing worth a line: same state as before.
    Unchanged,
    /// The peer was answering (or not heard of) and now fails.
    Failing,
    /// The peer was failing one way and now fails another way.
    FailingDifferently,
    /// The peer answers again after failing since the given time.
    Recovered {
        /// How long it failed.
        after: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    kind: FailureKind,
    /// Since when it fails the current way.
    kind_since: Instant,
}

/// Reachability of every peer this node sends Raft RPCs to. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct PeerHealth {
    failing: Arc<Mutex<HashMap<NodeId, Failing>>>,
    /// When each peer last answered an RPC (wall clock: DescribeQuorum reports it).
    last_answer: Arc<Mutex<HashMap<NodeId, SystemTime>>>,
}

impl PeerHealth {
    /// Records an answered RPC and logs a recovery.
    pub fn succeeded(&self, target: NodeId, addr: &str) {
        self.last_answer.lock().insert(target, SystemTime::now());
        if let Transition::Recovered { after } = self.record_success(target, Instant::now()) {
            tracing::info!(
                peer = target,
                addr,
                down_for_ms = after.as_millis() as u64,
                "metadata quorum peer reachable again"
            );
        }
    }

    /// Records a failed RPC and logs it if it starts (or changes) a failure.
    pub fn failed(&self, target: NodeId, addr: &str, kind: FailureKind, error: &str) {
        match self.record_failure(target, kind, Instant::now()) {
            Transition::Failing => tracing::warn!(
                peer = target,
                addr,
                error,
                "metadata quorum peer unreachable; retrying quietly until it answers"
            ),
            Transition::FailingDifferently => tracing::warn!(
                peer = target,
                addr,
                ?kind,
                error,
                "metadata quorum peer still failing"
            ),
            Transition::Unchanged | Transition::Recovered { .. } => {
                tracing::debug!(peer = target, addr, error, "Raft RPC failed")
            }
        }
    }

    /// When `target` last answered an RPC of this node, if it ever did.
    pub fn last_answer(&self, target: NodeId) -> Option<SystemTime> {
        self.last_answer.lock().get(&target).copied()
    }

    /// Since when every RPC to `target` has been refused, if the last one was (no answer and
    /// no other failure since).
    pub fn refused_since(&self, target: NodeId) -> Option<Instant> {
        self.failing
            .lock()
            .get(&target)
            .filter(|f| f.kind == FailureKind::Refused)
            .map(|f| f.kind_since)
    }

    fn record_success(&self, target: NodeId, now: Instant) -> Transition {
        match self.failing.lock().remove(&target) {
            Some(f) => Transition::Recovered {
                after: now.saturating_duration_since(f.since),
            },
            None => Transition::Unchanged,
        }
    }

    fn record_failure(&self, target: NodeId, kind: FailureKind, now: Instant) -> Transition {
        let mut failing = self.failing.lock();
        match failing.get_mut(&target) {
            None => {
                failing.insert(
                    target,
                    Failing {
                        since: now,
                        kind,
                        kind_since: now,
                    },
                );
                Transition::Failing
            }
            Some(f) if f.kind != kind => {
                f.kind = kind;
                f.kind_since = now;
                Transition::FailingDifferently
            }
            Some(_) => Transition::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_peer_is_reported_once_and_its_return_once() {
        let health = PeerHealth::default();
        let t0 = Instant::now();
        assert_eq!(
            health.record_failure(2, FailureKind::Unreachable, t0),
            Transition::Failing
        );
        for i in 1..100 {
            let at = t0 + Duration::from_millis(500 * i);
            assert_eq!(
                health.record_failure(2, FailureKind::Unreachable, at),
                Transition::Unchanged,
                "retry {i}"
            );
        }
        assert_eq!(
            health.record_success(2, t0 + Duration::from_secs(60)),
            Transition::Recovered {
                after: Duration::from_secs(60)
            }
        );
        assert_eq!(
            health.record_success(2, t0 + Duration::from_secs(61)),
            Transition::Unchanged
        );
    }

    #[test]
    fn a_new_kind_of_failure_is_reported_and_peers_are_tracked_apart() {
        let health = PeerHealth::default();
        let t0 = Instant::now();
        assert_eq!(
            health.record_failure(1, FailureKind::Unreachable, t0),
            Transition::Failing
        );
        assert_eq!(
            health.record_failure(2, FailureKind::Unreachable, t0),
            Transition::Failing,
            "another peer"
        );
        assert_eq!(health.refused_since(1), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            health.record_failure(1, FailureKind::Refused, t1),
            Transition::FailingDifferently
        );
        health.record_failure(1, FailureKind::Refused, t1 + Duration::from_secs(1));
        assert_eq!(health.refused_since(1), Some(t1), "since the first refusal");
        assert_eq!(
            health.record_failure(1, FailureKind::Remote, t0),
            Transition::FailingDifferently
        );
        assert_eq!(
            health.record_failure(1, FailureKind::Remote, t0),
            Transition::Unchanged
        );
        assert!(matches!(
            health.record_success(1, t0),
            Transition::Recovered { .. }
        ));
        assert_eq!(
            health.record_failure(2, FailureKind::Unreachable, t0),
            Transition::Unchanged,
            "peer 2 is still down"
        );
    }
}
