//! Client byte-rate quotas, enforced as Kafka's `ClientQuotaManager` does.
//!
//! Each produce request's size and each consumer fetch response's size is recorded against the
//! quota entity that applies to the connection (its user and client id, resolved in Kafka's
//! order of precedence from the metadata image, see [`crate::controller::client_quotas`]). A
//! `<default>` entity is measured per user or client id, not shared. The rate is Kafka's:
//! bytes over the last `quota.window.num` windows of `quota.window.size.seconds`, divided by
//! their elapsed time but never by less than all windows but one (so a client's first burst
//! of up to that many windows' quota is let through). Over the quota, the request is answered
//! at once with `throttle_time_ms` = how long the client must stay silent to fall back to its
//! quota, and the server reads nothing more from the connection for that time (KIP-219:
//! clients also hold back on their own). A throttled fetch is answered without records, and
//! its bytes are not counted, as in Kafka: the consumer fetches them again later.
//!
//! Request quotas (`request_percentage`, Kafka's `ClientRequestQuotaManager`) are measured
//! the same way on time instead of bytes: the time a request's handler spent running (the
//! polls of its future, [`Timed`]; not the time it waited for replication or for data, as
//! Kafka counts its request threads' time and not purgatory), in percent-seconds, so the rate
//! is the percentage of one thread. Over it, the response (of whatever kind) carries
//! `throttle_time_ms` and the connection is muted. Brokers' own requests are exempt
//! ([`request_quota_exempt`]).
//!
//! Controller mutation quotas (`controller_mutation_rate`, Kafka's KIP-599) count the
//! partitions a client creates, adds or deletes (CreateTopics, CreatePartitions, DeleteTopics)
//! in a token bucket, as Kafka does: it holds up to the quota times the measured period
//! (`quota.window.num` × `quota.window.size.seconds`), refills at the quota, and a mutation is
//! accepted while the bucket is not empty, even one that takes it below zero. Past that, the
//! versions that know the error (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+)
//! refuse each further topic with THROTTLING_QUOTA_EXCEEDED; older ones are accepted and only
//! throttled. Either way the response carries how long until the bucket is back at zero, and
//! the connection is muted for it ([`MutationQuota`]).
//!
//! No quota set anywhere (the usual case) costs one check of the image per request.
//!
//! Thread-safety: one mutex around the map of rates, held for a few arithmetic operations per
//! recorded request.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::{GaugeVec, IntCounterVec, Opts, Registry};

use crate::controller::client_quotas::{
    EntityName, QuotaEntity, CONNECTION_CREATION_RATE, CONSUMER_BYTE_RATE,
    CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
};
use crate::controller::image::MetadataImage;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaType {
    /// Produce request bytes, against `producer_byte_rate`.
    Produce,
    /// Consumer fetch response bytes, against `consumer_byte_rate`.
    Fetch,
    /// Request handling time in percent-seconds, against `request_percentage`.
    Request,
    /// Partitions created, added or deleted, against `controller_mutation_rate`.
    ControllerMutation,
    /// Connections opened by an IP address, against its `connection_creation_rate`.
    ConnectionCreation,
}

impl QuotaType {
    fn key(self) -> &'static str {
        match self {
            QuotaType::Produce => PRODUCER_BYTE_RATE,
            QuotaType::Fetch => CONSUMER_BYTE_RATE,
            QuotaType::Request => REQUEST_PERCENTAGE,
            QuotaType::ControllerMutation => CONTROLLER_MUTATION_RATE,
            QuotaType::ConnectionCreation => CONNECTION_CREATION_RATE,
        }
    }
}

/// The value a request quota records for `busy` handling time: percent-seconds (Kafka's
/// `nanosToPercentage`).
pub fn request_percent_seconds(busy: Duration) -> f64 {
    busy.as_secs_f64() * 100.0
}

/// A future and the time spent polling it: the request handler's own running time, without
/// the time it waited (for the in-sync replicas, for data to fetch, for a lock).
#[derive(Debug)]
pub struct Timed<F> {
    inner: F,
    busy: Duration,
}

impl<F> Timed<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            busy: Duration::ZERO,
        }
    }
}

impl<F: std::future::Future + Unpin> std::future::Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let started = Instant::now();
        let polled = std::pin::Pin::new(&mut self.inner).poll(cx);
        self.busy += started.elapsed();
        polled.map(|output| (output, self.busy))
    }
}

/// Requests a request quota does not count (Kafka exempts the brokers' own, cluster-action
/// requests): a follower's fetch, transaction markers, and the share coordinator's and
/// transaction verification's broker-to-broker calls.
pub fn request_quota_exempt(request: &kafka_protocol::messages::RequestKind, version: i16) -> bool {
    use kafka_protocol::messages::RequestKind as R;
    match request {
        R::Fetch(f) => {
            let replica = if version >= 15 {
                f.replica_state.replica_id.0
            } else {
                f.replica_id.0
            };
            replica >= 0
        }
        R::AddPartitionsToTxn(_) => version >= 4,
        R::WriteTxnMarkers(_)
        | R::ReadShareGroupState(_)
        | R::WriteShareGroupState(_)
        | R::InitializeShareGroupState(_)
        | R::DeleteShareGroupState(_)
        | R::ReadShareGroupStateSummary(_) => true,
        _ => false,
    }
}

/// Sets `throttle_time_ms` of a response to at least `ms`, whatever its kind (those without
/// the field, such as SaslHandshake, are left alone).
pub fn raise_throttle_time(response: &mut kafka_protocol::messages::ResponseKind, ms: i32) {
    use kafka_protocol::messages::ResponseKind as R;
    macro_rules! raise {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(R::$kind(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)*
                _ => {}
            }
        };
    }
    raise!(
        AddOffsetsToTxn,
        AddPartitionsToTxn,
        AlterClientQuotas,
        AlterConfigs,
        AlterPartitionReassignments,
        AlterReplicaLogDirs,
        AlterShareGroupOffsets,
        AlterUserScramCredentials,
        ApiVersions,
        ConsumerGroupDescribe,
        ConsumerGroupHeartbeat,
        CreateAcls,
        CreatePartitions,
        CreateTopics,
        DeleteAcls,
        DeleteGroups,
        DeleteRecords,
        DeleteShareGroupOffsets,
        DeleteTopics,
        DescribeAcls,
        DescribeClientQuotas,
        DescribeCluster,
        DescribeConfigs,
        DescribeGroups,
        DescribeLogDirs,
        DescribeProducers,
        DescribeShareGroupOffsets,
        DescribeTopicPartitions,
        DescribeTransactions,
        DescribeUserScramCredentials,
        ElectLeaders,
        EndTxn,
        Fetch,
        FindCoordinator,
        Heartbeat,
        IncrementalAlterConfigs,
        InitProducerId,
        JoinGroup,
        LeaveGroup,
        ListGroups,
        ListOffsets,
        ListPartitionReassignments,
        ListTransactions,
        Metadata,
        OffsetCommit,
        OffsetDelete,
        OffsetFetch,
        OffsetForLeaderEpoch,
        Produce,
        ShareAcknowledge,
        ShareFetch,
        ShareGroupDescribe,
        ShareGroupHeartbeat,
        SyncGroup,
        TxnOffsetCommit,
        UpdateFeatures,
    );
}

/// The entity a rate is kept for: the quota entity with a `<default>` part replaced by the
/// connection's own user or client id (Kafka's metric tags), as (user, client id); a part the
/// entity does not have is empty.
type SensorKey = (QuotaType, String, String);

/// A rate over a fixed number of windows.
#[derive(Debug)]
struct Rate {
    /// (window start, bytes) oldest first; at most `samples` entries.
    windows: VecDeque<(Instant, f64)>,
}

/// What recording a request decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    /// How long the client must hold back; zero when under its quota.
    pub throttle: Duration,
}

/// The broker's client quota enforcement.
#[derive(Debug)]
pub struct ClientQuotaManager {
    samples: usize,
    window: Duration,
    rates: Mutex<HashMap<SensorKey, Rate>>,
    /// Controller mutation token buckets: (tokens, when last refilled).
    buckets: Mutex<HashMap<SensorKey, (f64, Instant)>>,
    metrics: QuotaMetrics,
}

/// Kafka's per-entity quota metrics (`kafka.server:type=Produce|Fetch,user=..,client-id=..`,
/// attributes `byte-rate` and `throttle-time`) as the Prometheus JMX exporter names them.
#[derive(Debug)]
struct QuotaMetrics {
    produce_byte_rate: GaugeVec,
    fetch_byte_rate: GaugeVec,
    produce_throttle_ms: IntCounterVec,
    fetch_throttle_ms: IntCounterVec,
    request_time: GaugeVec,
    request_throttle_ms: IntCounterVec,
    mutation_throttle_ms: IntCounterVec,
}

impl QuotaMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let labels = ["user", "client_id"];
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), &labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), &labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            produce_byte_rate: gauge(
                "kafka_server_produce_byte_rate",
                "Produce bytes per second of a quota entity, as measured against its quota.",
            )?,
            fetch_byte_rate: gauge(
                "kafka_server_fetch_byte_rate",
                "Fetch bytes per second of a quota entity, as measured against its quota.",
            )?,
            produce_throttle_ms: counter(
                "kafka_server_produce_throttle_time_ms_total",
                "Milliseconds produce requests of a quota entity were throttled.",
            )?,
            fetch_throttle_ms: counter(
                "kafka_server_fetch_throttle_time_ms_total",
                "Milliseconds fetch requests of a quota entity were throttled.",
            )?,
            request_time: gauge(
                "kafka_server_request_request_time",
                "Percentage of one thread's time the requests of a quota entity took, as measured against its request_percentage quota.",
            )?,
            request_throttle_ms: counter(
                "kafka_server_request_throttle_time_ms_total",
                "Milliseconds requests of a quota entity were throttled for its request_percentage quota.",
            )?,
            mutation_throttle_ms: counter(
                "kafka_server_controller_mutation_throttle_time_ms_total",
                "Milliseconds topic and partition mutations of a quota entity were throttled for its controller_mutation_rate quota.",
            )?,
        })
    }

    fn recorded(&self, key: &SensorKey, rate: f64, throttle: Duration) {
        let (kind, user, client_id) = key;
        let (rates, throttles) = match kind {
            QuotaType::Produce => (&self.produce_byte_rate, &self.produce_throttle_ms),
            QuotaType::Fetch => (&self.fetch_byte_rate, &self.fetch_throttle_ms),
            QuotaType::Request => (&self.request_time, &self.request_throttle_ms),
            QuotaType::ConnectionCreation => return,
            QuotaType::ControllerMutation => {
                if !throttle.is_zero() {
                    self.mutation_throttle_ms
                        .with_label_values(&[user.as_str(), client_id.as_str()])
                        .inc_by(throttle.as_millis() as u64);
                }
                return;
            }
        };
        let labels = [user.as_str(), client_id.as_str()];
        rates.with_label_values(&labels).set(rate);
        if !throttle.is_zero() {
            throttles
                .with_label_values(&labels)
                .inc_by(throttle.as_millis() as u64);
        }
    }
}

impl ClientQuotaManager {
    /// Measures over `samples` windows of `window` (`quota.window.num`,
    /// `quota.window.size.seconds`); its metrics go to `registry`.
    pub fn new(
        samples: usize,
        window: Duration,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            samples: samples.max(1),
            window: window.max(Duration::from_millis(1)),
            rates: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            metrics: QuotaMetrics::new(registry)?,
        })
    }

    /// Records `bytes` for `user`/`client_id` if a quota of `kind` applies to them, and
    /// returns how long they must be throttled. `None` when no quota applies (nothing is
    /// recorded).
    pub fn record(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) -> Option<Recorded> {
        self.record_value(image, kind, user, client_id, bytes as f64, now)
    }

    /// [`ClientQuotaManager::record`] of any value: bytes, or percent-seconds of handling
    /// time for [`QuotaType::Request`].
    pub fn record_value(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        value: f64,
        now: Instant,
    ) -> Option<Recorded> {
        let (key, quota) = applicable(image, kind, user, client_id)?;
        let (rate, throttle) = self.add_and_measure(&key, quota, value, now);
        self.metrics.recorded(&key, rate, throttle);
        Some(Recorded { throttle })
    }

    /// Adds `value` to `key`'s rate and measures it: the rate, and how long the client must
    /// hold back to fall to `quota`.
    fn add_and_measure(
        &self,
        key: &SensorKey,
        quota: f64,
        value: f64,
        now: Instant,
    ) -> (f64, Duration) {
        let mut rates = self.rates.lock();
        if !rates.contains_key(key) {
            // A new client: forget those that left before adding it (keeps the map as
            // small as the set of active clients).
            let horizon = self.window * self.samples as u32;
            rates.retain(|_, rate| rate.active_since(now, horizon));
        }
        let rate = rates.entry(key.clone()).or_insert_with(|| Rate {
            windows: VecDeque::with_capacity(self.samples),
        });
        rate.add(now, value, self.samples, self.window);
        let (value, elapsed) = rate.measure(now, self.samples, self.window);
        (
            value,
            throttle_time(value, quota, elapsed, self.samples, self.window),
        )
    }

    /// Takes back `bytes` recorded for a request that was answered without them (a throttled
    /// fetch), so they are not counted twice when the client fetches them again.
    pub fn unrecord(
        &self,
        image: &MetadataImage,
        kind: QuotaType,
        user: &str,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) {
        let Some((key, _)) = applicable(image, kind, user, client_id) else {
            return;
        };
        if let Some(rate) = self.rates.lock().get_mut(&key) {
            rate.add(now, -(bytes as f64), self.samples, self.window);
        }
    }
}

impl ClientQuotaManager {
    /// Counts a connection `ip` opened against its `connection_creation_rate` (KIP-612), if
    /// one applies: `Some(throttle)` when it is over the rate, and then the connection is not
    /// counted (Kafka takes it back too) and is to be closed after `throttle`.
    pub fn record_connection(
        &self,
        image: &MetadataImage,
        ip: std::net::IpAddr,
        now: Instant,
    ) -> Option<Duration> {
        let (_, quota) = image.client_quotas.ip_rate(&ip.to_string())?;
        // A default quota applies to each address on its own.
        let key = (QuotaType::ConnectionCreation, ip.to_string(), String::new());
        let (_, throttle) = self.add_and_measure(&key, quota, 1.0, now);
        if throttle.is_zero() {
            return None;
        }
        if let Some(rate) = self.rates.lock().get_mut(&key) {
            rate.add(now, -1.0, self.samples, self.window);
        }
        Some(throttle)
    }

    /// The controller mutation quota of one CreateTopics, CreatePartitions or DeleteTopics
    /// request of `user`/`client_id`, if one applies; `strict` for the versions that can
    /// answer THROTTLING_QUOTA_EXCEEDED.
    pub fn mutation_quota(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        strict: bool,
    ) -> Option<MutationQuota<'_>> {
        let (key, quota) = applicable(image, QuotaType::ControllerMutation, user, client_id)?;
        Some(MutationQuota {
            manager: self,
            key,
            quota,
            strict,
            throttle: Duration::ZERO,
        })
    }

    /// The bucket of `key` refilled to `now`: tokens, at most the burst.
    fn refill(&self, key: &SensorKey, quota: f64, now: Instant) -> f64 {
        let burst = quota * (self.window * self.samples as u32).as_secs_f64();
        let mut buckets = self.buckets.lock();
        if !buckets.contains_key(key) {
            // A bucket back at its burst is as good as none: forget those (keeps the map as
            // small as the set of clients mutating lately).
            buckets.retain(|_, (tokens, at)| {
                *tokens + quota * now.saturating_duration_since(*at).as_secs_f64() < burst
            });
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + quota * now.saturating_duration_since(*at).as_secs_f64()).min(burst);
        *at = now;
        *tokens
    }

    fn take(&self, key: &SensorKey, quota: f64, permits: f64, now: Instant) -> f64 {
        self.refill(key, quota, now);
        let mut buckets = self.buckets.lock();
        let entry = buckets.entry(key.clone()).or_insert((0.0, now));
        entry.0 -= permits;
        entry.0
    }
}

/// One request's controller mutation quota (Kafka's `StrictControllerMutationQuota` or, for
/// older request versions, `PermissiveControllerMutationQuota`).
#[derive(Debug)]
pub struct MutationQuota<'a> {
    manager: &'a ClientQuotaManager,
    key: SensorKey,
    quota: f64,
    strict: bool,
    throttle: Duration,
}

impl MutationQuota<'_> {
    /// Whether a topic's mutation may go ahead: always for a permissive quota; for a strict
    /// one, unless the bucket is empty already (then how long until it is not).
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        if !self.strict {
            return Ok(());
        }
        let tokens = self.manager.refill(&self.key, self.quota, now);
        if tokens >= 0.0 {
            return Ok(());
        }
        let wait = self.wait(tokens);
        self.throttle = self.throttle.max(wait);
        Err(wait)
    }

    /// Records `partitions` mutated.
    pub fn record(&mut self, partitions: i32, now: Instant) {
        let tokens = self
            .manager
            .take(&self.key, self.quota, f64::from(partitions.max(0)), now);
        if !self.strict && tokens < 0.0 {
            self.throttle = self.throttle.max(self.wait(tokens));
        }
    }

    fn wait(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64((-tokens / self.quota).max(0.0))
            .min(self.manager.window * self.manager.samples as u32)
    }

    /// How long the client must hold back (the response's `throttle_time_ms`, and how long
    /// the connection is muted); counted in the entity's throttle metric.
    pub fn finish(self) -> Duration {
        self.manager.metrics.recorded(&self.key, 0.0, self.throttle);
        if !self.throttle.is_zero() {
            tracing::debug!(user = %self.key.1, client_id = %self.key.2, throttle_ms = self.throttle.as_millis() as u64, "client over its controller mutation quota; throttled");
        }
        self.throttle
    }
}

/// The rate a request of `user`/`client_id` counts against, and its quota, if one applies.
fn applicable(
    image: &MetadataImage,
    kind: QuotaType,
    user: &str,
    client_id: &str,
) -> Option<(SensorKey, f64)> {
    let (entity, quota) = image.client_quotas.resolve(kind.key(), user, client_id)?;
    Some((sensor_key(kind, &entity, user, client_id), quota))
}

fn sensor_key(kind: QuotaType, entity: &QuotaEntity, user: &str, client_id: &str) -> SensorKey {
    let part = |part: &Option<EntityName>, own: &str| match part {
        None => String::new(),
        Some(EntityName::Default) => own.to_string(),
        Some(EntityName::Named(name)) => name.clone(),
    };
    (
        kind,
        part(&entity.user, user),
        part(&entity.client_id, client_id),
    )
}

impl Rate {
    /// Whether anything was recorded within `horizon` before `now`.
    fn active_since(&self, now: Instant, horizon: Duration) -> bool {
        self.windows
            .back()
            .is_some_and(|(start, _)| now.saturating_duration_since(*start) <= horizon)
    }

    fn add(&mut self, now: Instant, value: f64, samples: usize, window: Duration) {
        self.purge(now, samples, window);
        match self.windows.back_mut() {
            Some((start, total)) if now.saturating_duration_since(*start) < window => {
                *total += value;
            }
            _ => {
                if self.windows.len() == samples {
                    self.windows.pop_front();
                }
                self.windows.push_back((now, value));
            }
        }
    }

    /// Drops windows that ended more than `samples` windows ago.
    fn purge(&mut self, now: Instant, samples: usize, window: Duration) {
        let horizon = window * samples as u32;
        while self
            .windows
            .front()
            .is_some_and(|(start, _)| now.saturating_duration_since(*start) >= horizon)
        {
            self.windows.pop_front();
        }
    }

    /// The rate in bytes per second and the elapsed time it is measured over: from the
    /// oldest window's start, but at least `samples - 1` windows (Kafka's `Rate`).
    fn measure(&mut self, now: Instant, samples: usize, window: Duration) -> (f64, Duration) {
        self.purge(now, samples, window);
        let total: f64 = self.windows.iter().map(|(_, v)| v).sum();
        let oldest = self.windows.front().map_or(now, |(start, _)| *start);
        let elapsed = now
            .saturating_duration_since(oldest)
            .max(window * (samples as u32).saturating_sub(1))
            .max(window);
        (total.max(0.0) / elapsed.as_secs_f64(), elapsed)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long until the rate over `elapsed` falls back to
/// `quota`, capped at the whole measurement period.
fn throttle_time(
    rate: f64,
    quota: f64,
    elapsed: Duration,
    samples: usize,
    window: Duration,
) -> Duration {
    if rate <= quota || quota <= 0.0 {
        return Duration::ZERO;
    }
    let throttle = (rate - quota) / quota * elapsed.as_secs_f64();
    Duration::from_secs_f64(throttle).min(window * samples as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn mutation<'a>(manager: &'a ClientQuotaManager, strict: bool) -> MutationQuota<'a> {
        MutationQuota {
            manager,
            key: (QuotaType::ControllerMutation, "alice".into(), String::new()),
            quota: 10.0,
            strict,
            throttle: Duration::ZERO,
        }
    }

    /// Kafka's token bucket for controller mutations (quota 10/s over 10 windows of 1 s: a
    /// burst of 100): mutations are accepted while the bucket is not empty, even one that
    /// empties it past zero; then a strict quota refuses until it refills, and says how long;
    /// a permissive one accepts and throttles.
    #[test]
    fn the_mutation_bucket_admits_until_empty_then_refuses_until_refilled() {
        let manager = ClientQuotaManager::new(10, SECOND, &Registry::new()).unwrap();
        let start = Instant::now();
        let mut q = mutation(&manager, true);
        assert_eq!(q.admit(start), Ok(()));
        q.record(90, start);
        assert_eq!(q.admit(start), Ok(()));
        q.record(90, start); // down to -80: accepted, not throttled
        assert_eq!(q.finish(), Duration::ZERO);

        let mut q = mutation(&manager, true);
        assert_eq!(q.admit(start), Err(8 * SECOND));
        // Refilled at 10 a second: still short after 7.9 s, not after 8.
        assert!(q.admit(start + Duration::from_millis(7_900)).is_err());
        assert_eq!(q.admit(start + 8 * SECOND), Ok(()));
        assert_eq!(q.finish(), 8 * SECOND);

        // Permissive (older request versions): accepted past empty, throttled by the debt.
        let mut q = mutation(&manager, false);
        let later = start + 8 * SECOND;
        assert_eq!(q.admit(later), Ok(()));
        q.record(30, later);
        assert_eq!(q.finish(), 3 * SECOND);
        // A long pause refills the bucket to its burst, no further.
        let mut q = mutation(&manager, true);
        let much_later = later + 60 * SECOND;
        q.record(100, much_later);
        assert_eq!(q.admit(much_later), Ok(()));
        q.record(1, much_later);
        assert!(q.admit(much_later).is_err());
    }

    #[test]
    fn a_first_burst_of_the_measured_windows_passes_then_the_client_is_held_to_its_quota() {
        let (samples, quota) = (11, 1000.0);
        let start = Instant::now();
        let mut rate = Rate {
            windows: VecDeque::new(),
        };
        // 10 s worth of quota at once: measured over 10 s, exactly the quota.
        rate.add(start, 10_000.0, samples, SECOND);
        let (value, elapsed) = rate.measure(start, samples, SECOND);
        assert_eq!((value, elapsed), (1000.0, 10 * SECOND));
        assert_eq!(
            throttle_time(value, quota, elapsed, samples, SECOND),
            Duration::ZERO
        );
        // Another 5 s worth: 15,000 bytes over 10 s is 1.5x the quota, so hold back 5 s.
        rate.add(start, 5_000.0, samples, SECOND);
        let (value, elapsed) = rate.measure(start, samples, SECOND);
        assert_eq!(
            throttle_time(value, quota, elapsed, samples, SECOND),
            5 * SECOND
        );
        // 11 s later every window has expired.
        let later = start + 11 * SECOND;
        assert_eq!(rate.measure(later, samples, SECOND).0, 0.0);
    }

    #[tokio::test]
    async fn a_timed_future_counts_its_polls_not_its_waits() {
        let handler = std::pin::pin!(async {
            // Waiting (for replication, for data) is not handling time.
            tokio::time::sleep(Duration::from_millis(1000)).await;
            // Running is (a blocking computation stands in for it).
            std::thread::sleep(Duration::from_millis(20));
            7
        });
        let (value, busy) = Timed::new(handler).await;
        assert_eq!(value, 7);
        assert!(
            busy >= Duration::from_millis(20) && busy < Duration::from_millis(900),
            "{busy:?}"
        );
        assert_eq!(request_percent_seconds(Duration::from_millis(20)), 2.0);
    }

    #[test]
    fn brokers_own_requests_are_exempt_from_request_quotas() {
        use kafka_protocol::messages::{FetchRequest, MetadataRequest, RequestKind};
        let follower =
            FetchRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(1));
        assert!(request_quota_exempt(&RequestKind::Fetch(follower), 12));
        let consumer =
            FetchRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1));
        assert!(!request_quota_exempt(&RequestKind::Fetch(consumer), 12));
        assert!(!request_quota_exempt(
            &RequestKind::Metadata(MetadataRequest::default()),
            12
        ));
    }

    #[test]
    fn throttle_time_is_capped_at_the_measurement_period() {
        assert_eq!(
            throttle_time(1e12, 1.0, 10 * SECOND, 11, SECOND),
            11 * SECOND
        );
    }

    #[test]
    fn a_default_entity_is_measured_per_client_and_a_named_one_is_shared() {
        let default_client = QuotaEntity {
            user: None,
            client_id: Some(EntityName::Default),
            ..QuotaEntity::default()
        };
        assert_eq!(
            sensor_key(QuotaType::Produce, &default_client, "alice", "app-1"),
            (QuotaType::Produce, String::new(), "app-1".to_string())
        );
        let user = QuotaEntity {
            user: Some(EntityName::Named("alice".into())),
            client_id: None,
            ..QuotaEntity::default()
        };
        assert_eq!(
            sensor_key(QuotaType::Fetch, &user, "alice", "app-1"),
            sensor_key(QuotaType::Fetch, &user, "alice", "app-2"),
        );
    }
}
