//! Kafka's connection limits (its `ConnectionQuotas`), so that a client opening connections in
//! a loop, or thousands of clients at once, cannot take the broker's descriptors and memory:
//!
//! - `max.connections.per.ip` (and `max.connections.per.ip.overrides`, `host:count` pairs): a
//!   connection from an address that already holds that many is closed at once, with a log
//!   line, as Kafka closes it;
//! - `max.connections` (broker-wide) and `listener.name.<listener>.max.connections`: at the
//!   limit the listener stops accepting until a connection closes (new ones wait in the
//!   kernel's backlog), as Kafka's acceptor blocks. The inter-broker listener is not held to the
//!   broker-wide limit (only to its own), so replication is never locked out by clients;
//! - `max.connection.creation.rate` (broker-wide, and per listener with the same prefix):
//!   connections are accepted no faster than that many per second; faster ones wait their turn
//!   (Kafka throttles the acceptor; the inter-broker listener is exempt from the broker-wide
//!   rate).
//!
//! The defaults (2147483647 everywhere, Kafka's) limit nothing, and then the cost is one
//! uncontended lock per accepted connection.
//!
//! Thread safety: one mutex around the counts, held for a few map operations per connection
//! opened or closed; a `Notify` wakes a listener waiting for room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::{parse_ip_counts as parse_overrides, BrokerConfig};

/// Kafka's default for every limit here: none.
const UNLIMITED: i64 = i32::MAX as i64;

/// The broker's connection counts and limits, shared by its listeners.
#[derive(Debug)]
pub struct ConnectionQuotas {
    max_total: Option<usize>,
    per_ip: Option<usize>,
    per_ip_overrides: HashMap<IpAddr, usize>,
    /// The broker-wide creation pacing: seconds between connections, and the next free slot.
    rate: Option<Pacing>,
    counts: Mutex<Counts>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct Counts {
    /// Client connections of every listener but the inter-broker one.
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_listener: HashMap<Arc<str>, usize>,
}

#[derive(Debug)]
struct Pacing {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacing {
    fn new(per_second: i64) -> Option<Self> {
        (per_second < UNLIMITED).then(|| Self {
            interval: Duration::from_secs_f64(1.0 / per_second.max(1) as f64),
            next: Mutex::new(Instant::now()),
        })
    }

    /// Takes the next slot: how long to wait for it from `now`.
    fn take(&self, now: Instant) -> Duration {
        let mut next = self.next.lock();
        let slot = (*next).max(now);
        *next = slot + self.interval;
        slot - now
    }
}

/// One listener's limits (its `listener.name.<name>.` settings).
#[derive(Debug)]
pub struct ListenerLimits {
    /// Shared with every connection admitted on the listener (no copy of the name each).
    name: Arc<str>,
    inter_broker: bool,
    max: Option<usize>,
    rate: Option<Pacing>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyFromAddress {
    /// The limit that address has.
    pub limit: usize,
}

/// An admitted connection: counted until dropped.
#[derive(Debug)]
pub struct Admitted {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
    listener: Arc<str>,
    counted_in_total: bool,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        {
            let mut counts = self.quotas.counts.lock();
            if self.counted_in_total {
                counts.total -= 1;
            }
            decrement(&mut counts.per_ip, &self.ip);
            decrement(&mut counts.per_listener, &self.listener);
        }
        self.quotas.freed.notify_waiters();
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

fn limit(value: i64) -> Option<usize> {
    (value < UNLIMITED).then_some(value.max(0) as usize)
}

impl ConnectionQuotas {
    /// The broker's limits from its settings.
    pub fn new(config: &BrokerConfig) -> Self {
        // Validated when the configuration was loaded.
        let overrides = config
            .get("max.connections.per.ip.overrides")
            .and_then(|v| parse_overrides(v).ok())
            .unwrap_or_default();
        Self {
            max_total: limit(config.number("max.connections")),
            per_ip: limit(config.number("max.connections.per.ip")),
            per_ip_overrides: overrides,
            rate: Pacing::new(config.number("max.connection.creation.rate")),
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
        }
    }

    /// The limits of listener `name` (`inter_broker` if it is `inter.broker.listener.name`).
    pub fn listener(config: &BrokerConfig, name: &str, inter_broker: bool) -> ListenerLimits {
        let setting = |key: &str| {
            config
                .listener_only(name, key)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(UNLIMITED)
        };
        ListenerLimits {
            name: name.into(),
            inter_broker,
            max: limit(setting("max.connections")),
            rate: Pacing::new(setting("max.connection.creation.rate")),
        }
    }

    /// Waits until `listener` may accept one more connection: below its own and the broker's
    /// limits, and its turn under the creation rates.
    pub async fn wait_for_room(&self, listener: &ListenerLimits) {
        loop {
            // Registered before the check, so a close between the check and the wait is seen.
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            let full = {
                let counts = self.counts.lock();
                let listener_full = listener.max.is_some_and(|max| {
                    counts
                        .per_listener
                        .get(&listener.name)
                        .copied()
                        .unwrap_or(0)
                        >= max
                });
                let broker_full =
                    !listener.inter_broker && self.max_total.is_some_and(|max| counts.total >= max);
                listener_full || broker_full
            };
            if !full {
                break;
            }
            freed.await;
        }
        let now = Instant::now();
        let mut wait = listener
            .rate
            .as_ref()
            .map_or(Duration::ZERO, |r| r.take(now));
        if !listener.inter_broker {
            if let Some(rate) = &self.rate {
                wait = wait.max(rate.take(now));
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Counts a connection accepted on `listener` from `ip`, unless that address already holds
    /// its limit.
    pub fn admit(
        self: &Arc<Self>,
        listener: &ListenerLimits,
        ip: IpAddr,
    ) -> Result<Admitted, TooManyFromAddress> {
        let limit = self.per_ip_overrides.get(&ip).copied().or(self.per_ip);
        let mut counts = self.counts.lock();
        let held = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if let Some(limit) = limit.filter(|limit| held >= *limit) {
            return Err(TooManyFromAddress { limit });
        }
        *counts.per_ip.entry(ip).or_default() += 1;
        *counts
            .per_listener
            .entry(listener.name.clone())
            .or_default() += 1;
        if !listener.inter_broker {
            counts.total += 1;
        }
        Ok(Admitted {
            quotas: self.clone(),
            ip,
            listener: listener.name.clone(),
            counted_in_total: !listener.inter_broker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(per_ip: Option<usize>, overrides: &str) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_total: Some(3),
            per_ip,
            per_ip_overrides: parse_overrides(overrides).unwrap(),
            rate: None,
            counts: Mutex::new(Counts::default()),
            freed: Notify::new(),
        })
    }

    fn listener(name: &str, inter_broker: bool) -> ListenerLimits {
        ListenerLimits {
            name: name.into(),
            inter_broker,
            max: None,
            rate: None,
        }
    }

    #[test]
    fn an_address_at_its_limit_is_refused_until_one_of_its_connections_closes() {
        let q = quotas(Some(2), "127.0.0.2:1, [::1]:0");
        let plain = listener("PLAINTEXT", false);
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let a = q.admit(&plain, one).unwrap();
        let _b = q.admit(&plain, one).unwrap();
        assert_eq!(
            q.admit(&plain, one).unwrap_err(),
            TooManyFromAddress { limit: 2 }
        );
        let _c = q.admit(&plain, two).unwrap();
        assert_eq!(
            q.admit(&plain, two).unwrap_err(),
            TooManyFromAddress { limit: 1 }
        );
        assert!(q.admit(&plain, "::1".parse().unwrap()).is_err());
        drop(a);
        assert!(q.admit(&plain, one).is_ok());
    }

    #[test]
    fn an_admitted_connection_shares_its_listeners_name() {
        // Held for as long as the connection is open: a copy of the name each would be an
        // allocation per connection.
        let q = quotas(None, "");
        let plain = listener("PLAINTEXT", false);
        let admitted = q.admit(&plain, "127.0.0.1".parse().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&admitted.listener, &plain.name));
        assert_eq!(q.counts.lock().per_listener.get("PLAINTEXT"), Some(&1));
        drop(admitted);
        assert!(q.counts.lock().per_listener.is_empty());
    }

    #[tokio::test]
    async fn a_listener_at_the_broker_limit_waits_and_the_inter_broker_one_does_not() {
        let q = quotas(None, "");
        let plain = listener("PLAINTEXT", false);
        let replication = listener("REPLICATION", true);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<Admitted> = (0..3).map(|_| q.admit(&plain, ip).unwrap()).collect();
        // The inter-broker listener has room: it does not count against the broker's limit.
        tokio::time::timeout(Duration::from_secs(5), q.wait_for_room(&replication))
            .await
            .expect("the inter-broker listener waits for the clients' limit");
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.wait_for_room(&listener("PLAINTEXT", false)).await })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a full broker made room without a close"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a close makes room")
            .unwrap();
    }

    #[test]
    fn pacing_spaces_the_slots_out_at_the_rate() {
        let pacing = Pacing::new(4).unwrap();
        let now = Instant::now();
        let waits: Vec<Duration> = (0..3).map(|_| pacing.take(now)).collect();
        assert_eq!(
            waits,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_millis(500)
            ]
        );
        assert!(Pacing::new(UNLIMITED).is_none());
    }

    #[test]
    fn overrides_take_ip_addresses_and_counts() {
        assert_eq!(
            parse_overrides("10.0.0.1:5,[fe80::1]:2").unwrap(),
            HashMap::from([
                ("10.0.0.1".parse().unwrap(), 5),
                ("fe80::1".parse().unwrap(), 2)
            ])
        );
        assert!(parse_overrides("broker-0:5").is_err());
        assert!(parse_overrides("10.0.0.1").is_err());
        assert!(parse_overrides("10.0.0.1:x").is_err());
        assert_eq!(parse_overrides("").unwrap(), HashMap::new());
    }
}
