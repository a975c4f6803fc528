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

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The lease of this broker's registration.
#[derive(Debug, Default)]
pub struct RegistrationLease {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
enum State {
    /// No heartbeat has been sent yet: no lease in force (holds).
    #[default]
    NotInForce,
    /// Holds until this instant.
    Until(Instant),
}

/// How much earlier than the controller's deadline the lease ends: a quarter of the session
/// timeout, at most a second (covers clock granularity and the controller's own timer).
fn margin(session_timeout: Duration) -> Duration {
    (session_timeout / 4).min(Duration::from_secs(1))
}

impl RegistrationLease {
    /// A heartbeat sent at `sent` was answered "not fenced": the lease holds until `sent` plus
    /// the session timeout, less the margin. Returns true if the lease had lapsed before.
    pub fn renew(&self, sent: Instant, session_timeout: Duration) -> bool {
        let until = sent + session_timeout.saturating_sub(margin(session_timeout));
        let mut state = self.state.lock();
        let lapsed = match *state {
            State::NotInForce => false,
            State::Until(t) => t <= Instant::now(),
        };
        if !matches!(*state, State::Until(t) if t >= until) {
            *state = State::Until(until);
        }
        lapsed
    }

    /// The controller answered "fenced": the lease ends now (it is in force from here on).
    pub fn expire(&self) {
        *self.state.lock() = State::Until(Instant::now());
    }

    /// Whether the lease holds at `now` (always, while no lease is in force).
    pub fn holds_at(&self, now: Instant) -> bool {
        match *self.state.lock() {
            State::NotInForce => true,
            State::Until(t) => now < t,
        }
    }

    /// Whether a lease is in force at all (a lifecycle heartbeats for this broker).
    pub fn in_force(&self) -> bool {
        matches!(*self.state.lock(), State::Until(_))
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
    fn the_margin_is_a_quarter_of_the_session_at_most_a_second() {
        assert_eq!(
            margin(Duration::from_millis(2000)),
            Duration::from_millis(500)
        );
        assert_eq!(margin(Duration::from_secs(9)), Duration::from_secs(1));
    }
}
