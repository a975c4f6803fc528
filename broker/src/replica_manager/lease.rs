//! The registration lease: how long this broker may still act on its own view of the cluster.
//!
//! The controller fences a broker whose heartbeats stop for `broker.session.timeout.ms` and
//! moves its leaderships away, but a broker cut off from the quorum does not learn that: its
//! metadata image still says it leads what it led. For the partition data path this is safe
//! (an `acks=all` write needs the other replicas, who follow the new leader), but a group
//! coordinator answers OffsetFetch and JoinGroup from memory, so a cut-off coordinator would go on
//! serving offsets and assignments its successor has long replaced (a "zombie"), and keeps doing
//! so after the network heals until its image catches up.
//!
//! So a broker only acts as coordinator while its lease holds: the last heartbeat the
//! controller answered with "not fenced" was sent less than the session timeout (minus a
//! margin) ago, and the broker's own image shows it unfenced. The lease starts when the
//! heartbeat was *sent*, which is no later than the controller received it, so the lease ends
//! before the controller can fence the broker for silence. After a fence, the broker's image
//! must show it unfenced again, which it only does once it has applied the records that moved
//! its leaderships away.
//!
//! A broker without a lifecycle (unit tests that drive a replica manager directly) has no
//! lease in force and always holds it.
//!
//! A lapse also makes the client connections opened before it suspect: a request a client
//! sent just before the broker was cut off may still be in the network (TCP retransmits it
//! once the path heals, seconds later), long after the client gave up on it and committed
//! newer offsets through the successor. [`RegistrationLease::lapses`] counts the lapses seen
//! so far, so that the listener can refuse offset commits arriving on a connection older than
//! the last one (see `server.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The lease of this broker's registration.
#[derive(Debug, Default)]
pub struct RegistrationLease {
    state: Mutex<State>,
    /// Lapses of a lease that had held: counted when the renewal after one is answered.
    lapses: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    /// No heartbeat has been sent yet: no lease in force (holds).
    #[default]
    NotInForce,
    /// Holds until this instant; `held` once a heartbeat was answered "not fenced" (a broker
    /// starting up is fenced until then, which is not a lapse of anything it served).
    Until { until: Instant, held: bool },
}

/// How much earlier than the controller's deadline the lease ends: a quarter of the session
/// timeout, at most a second (covers clock granularity and the controller's own timer).
fn margin(session_timeout: Duration) -> Duration {
    (session_timeout / 4).min(Duration::from_secs(1))
}

impl RegistrationLease {
    /// A heartbeat sent at `sent` was answered "not fenced": the lease holds until `sent` plus
    /// the session timeout, less the margin. Returns true if a lease that had held lapsed
    /// before (and counts it in [`RegistrationLease::lapses`]).
    pub fn renew(&self, sent: Instant, session_timeout: Duration) -> bool {
        let new_until = sent + session_timeout.saturating_sub(margin(session_timeout));
        let mut state = self.state.lock();
        let lapsed = match *state {
            State::NotInForce => false,
            State::Until { until, held } => held && until <= Instant::now(),
        };
        if lapsed {
            self.lapses.fetch_add(1, Ordering::AcqRel);
        }
        let until = match *state {
            State::Until { until, .. } if until >= new_until => until,
            _ => new_until,
        };
        *state = State::Until { until, held: true };
        lapsed
    }

    /// The controller answered "fenced": the lease ends now (it is in force from here on).
    pub fn expire(&self) {
        let mut state = self.state.lock();
        let held = matches!(*state, State::Until { held: true, .. });
        *state = State::Until {
            until: Instant::now(),
            held,
        };
    }

    /// Whether the lease holds at `now` (always, while no lease is in force).
    pub fn holds_at(&self, now: Instant) -> bool {
        match *self.state.lock() {
            State::NotInForce => true,
            State::Until { until, .. } => now < until,
        }
    }

    /// How many times a lease that had held lapsed, as seen by the renewals since: a connection
    /// opened when this was smaller may carry requests sent before the broker was cut off.
    pub fn lapses(&self) -> u64 {
        self.lapses.load(Ordering::Acquire)
    }

    /// Whether a lease is in force at all (a lifecycle heartbeats for this broker).
    pub fn in_force(&self) -> bool {
        matches!(*self.state.lock(), State::Until { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Duration = Duration::from_millis(2000);

    #[test]
    fn holds_until_no_lease_is_in_force() {
        let lease = RegistrationLease::default();
        assert!(lease.holds_at(Instant::now() + Duration::from_secs(3600)));
        assert!(!lease.in_force());
    }

    #[test]
    fn ends_before_the_controller_can_fence() {
        let lease = RegistrationLease::default();
        let sent = Instant::now();
        assert!(!lease.renew(sent, SESSION));
        assert!(lease.holds_at(sent + Duration::from_millis(1400)));
        // The controller fences at the earliest at sent + 2000 ms; the lease ends 500 ms before.
        assert!(!lease.holds_at(sent + Duration::from_millis(1500)));
        assert!(!lease.holds_at(sent + SESSION));
    }

    #[test]
    fn a_fenced_answer_ends_it_and_a_later_renewal_reports_the_lapse() {
        let lease = RegistrationLease::default();
        lease.renew(Instant::now(), SESSION);
        lease.expire();
        assert!(!lease.holds_at(Instant::now()));
        assert!(lease.in_force());
        assert!(lease.renew(Instant::now(), SESSION));
        assert!(lease.holds_at(Instant::now()));
    }

    #[test]
    fn an_older_answer_arriving_late_does_not_shorten_it() {
        let lease = RegistrationLease::default();
        let first = Instant::now();
        let later = first + Duration::from_millis(300);
        lease.renew(later, SESSION);
        lease.renew(first, SESSION);
        assert!(lease.holds_at(first + Duration::from_millis(1700)));
    }

    #[test]
    fn lapses_count_only_a_lease_that_had_held() {
        let lease = RegistrationLease::default();
        // Starting up: fenced until the first "not fenced" answer, which is no lapse.
        lease.expire();
        assert!(!lease.renew(Instant::now(), SESSION));
        assert_eq!(lease.lapses(), 0);
        // Renewed in time: no lapse.
        assert!(!lease.renew(Instant::now(), SESSION));
        assert_eq!(lease.lapses(), 0);
        // Fenced after it held, then renewed: one lapse.
        lease.expire();
        assert!(lease.renew(Instant::now(), SESSION));
        assert_eq!(lease.lapses(), 1);
        // Run out (its last answered heartbeat was sent long ago), then renewed: a lapse too.
        let ran_out = RegistrationLease::default();
        ran_out.renew(Instant::now() - 2 * SESSION, SESSION);
        assert!(!ran_out.holds_at(Instant::now()));
        assert!(ran_out.renew(Instant::now(), SESSION));
        assert_eq!(ran_out.lapses(), 1);
    }

    #[test]
    fn the_margin_is_a_quarter_of_the_session_at_most_a_second() {
        assert_eq!(
            margin(Duration::from_millis(2000)),
            Duration::from_millis(500)
        );
        assert_eq!(margin(Duration::from_secs(9)), Duration::from_secs(1));
    }
}
