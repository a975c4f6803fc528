//! Broker metrics in Prometheus form.
//!
//! Counters and histograms are updated on the request path with pre-registered label values
//! looked up once per request (per API) or once per partition per request (per topic); log
//! gauges (size, start and end offsets per partition) are read at scrape time by a collector,
//! so the append path never touches them.

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::group::consumer::ConsumerGroupState;
use crate::group::{GroupCoordinator, GroupState};
use crate::replica_manager::ReplicaManager;

/// All broker metrics, registered in one registry.
#[derive(Debug, Clone)]
pub struct BrokerMetrics {
    registry: Registry,
    /// Requests handled, by API name.
    pub requests: IntCounterVec,
    /// Requests answered with at least one error code, by API and Kafka error name.
    pub request_errors: IntCounterVec,
    /// Request handling time in seconds, by API (long-poll waits included).
    pub request_latency: HistogramVec,
    /// Record batch bytes appended, by topic.
    pub bytes_in: IntCounterVec,
    /// Record batch bytes served to fetchers, by topic.
    pub bytes_out: IntCounterVec,
    /// Records appended, by topic.
    pub records_in: IntCounterVec,
    /// Records served to fetchers, by topic (counted from batch headers).
    pub records_out: IntCounterVec,
    /// Currently open client connections.
    pub connections_open: IntGauge,
    /// Connections accepted since start.
    pub connections_accepted: IntCounter,
    /// Connections closed because of a malformed or oversized request.
    pub protocol_errors: IntCounter,
    /// Connections refused because their address held `max.connections.per.ip` already or was
    /// over its `connection_creation_rate`.
    pub connections_refused: IntCounter,
    /// Connections closed after `connections.max.idle.ms` without a request.
    pub connections_closed_idle: IntCounter,
    /// Connections closed because an offset commit arrived on them after this broker's
    /// registration lease lapsed (see `server.rs`).
    pub stale_connections_closed: IntCounter,
    /// Record bytes Fetch responses sent from segment files with `sendfile` (plaintext).
    pub fetch_sendfile_bytes: IntCounter,
    /// Group rebalances completed (join phases that formed a generation with members).
    pub group_rebalances: IntCounter,
    /// Kafka's `NumIncrementalFetchSessions`: fetch sessions cached.
    pub fetch_sessions: IntGauge,
    /// Kafka's `NumIncrementalFetchPartitionsCached`: partitions over all fetch sessions.
    pub fetch_session_partitions: IntGauge,
    /// Kafka's `IncrementalFetchSessionEvictionsPerSec`, as a counter.
    pub fetch_session_evictions: IntCounter,
    /// Fetch requests answered from a fetch session (incremental fetches).
    pub incremental_fetches: IntCounter,
    /// Kafka's `failed-authentication-total` per listener: failed TLS handshakes and SASL
    /// authentications.
    failed_authentication: IntCounterVec,
    /// Kafka's `successful-authentication-total` per listener: completed SASL
    /// authentications.
    successful_authentication: IntCounterVec,
    /// Kafka's `successful-reauthentication-total` per listener (KIP-368).
    successful_reauthentication: IntCounterVec,
    /// Kafka's authorizer-metrics `authorization-request`: ACL checks made.
    pub authorization_requests: IntCounter,
    /// Kafka's authorizer-metrics `authorization-allowed`: ACL checks that allowed.
    pub authorization_allowed: IntCounter,
    /// Kafka's authorizer-metrics `authorization-denied`: ACL checks that denied.
    pub authorization_denied: IntCounter,
}

impl BrokerMetrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let requests = counter(
            "weir_requests_total",
            "Kafka requests handled, by API.",
            &["api"],
        )?;
        let request_errors = counter(
            "weir_request_errors_total",
            "Kafka requests answered with an error code, by API and error.",
            &["api", "error"],
        )?;
        let bytes_in = counter(
            "weir_bytes_in_total",
            "Record batch bytes appended, by topic.",
            &["topic"],
        )?;
        let bytes_out = counter(
            "weir_bytes_out_total",
            "Record batch bytes fetched, by topic.",
            &["topic"],
        )?;
        let records_in = counter(
            "weir_records_in_total",
            "Records appended, by topic.",
            &["topic"],
        )?;
        let records_out = counter(
            "weir_records_out_total",
            "Records fetched, by topic.",
            &["topic"],
        )?;
        let request_latency = HistogramVec::new(
            HistogramOpts::new(
                "weir_request_duration_seconds",
                "Time from a request's arrival to its response, by API.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["api"],
        )?;
        registry.register(Box::new(request_latency.clone()))?;
        let connections_open = IntGauge::new("weir_connections_open", "Open client connections.")?;
        registry.register(Box::new(connections_open.clone()))?;
        let connections_accepted = IntCounter::new(
            "weir_connections_accepted_total",
            "Client connections accepted.",
        )?;
        registry.register(Box::new(connections_accepted.clone()))?;
        let protocol_errors = IntCounter::new(
            "weir_protocol_errors_total",
            "Connections closed because a request was malformed, oversized or unsupported.",
        )?;
        registry.register(Box::new(protocol_errors.clone()))?;
        let connections_refused = IntCounter::new(
            "weir_connections_refused_total",
            "Client connections refused: their address held max.connections.per.ip already, or was over its connection_creation_rate.",
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        let connections_closed_idle = IntCounter::new(
            "weir_connections_closed_idle_total",
            "Client connections the broker closed after connections.max.idle.ms without a request.",
        )?;
        registry.register(Box::new(connections_closed_idle.clone()))?;
        let stale_connections_closed = IntCounter::new(
            "weir_stale_connections_closed_total",
            "Connections closed because an offset commit arrived on them after this broker was cut off from the metadata quorum.",
        )?;
        registry.register(Box::new(stale_connections_closed.clone()))?;
        let fetch_sendfile_bytes = IntCounter::new(
            "weir_fetch_sendfile_bytes_total",
            "Record bytes of Fetch responses sent from the segment files by the kernel (sendfile, plaintext listeners), not read into the broker's memory.",
        )?;
        registry.register(Box::new(fetch_sendfile_bytes.clone()))?;
        let group_rebalances = IntCounter::new(
            "weir_group_rebalances_total",
            "Consumer group rebalances completed (a new generation with members formed).",
        )?;
        registry.register(Box::new(group_rebalances.clone()))?;
        // Kafka's FetchSessionCache metrics, named as the Prometheus JMX exporter shows them.
        let fetch_sessions = IntGauge::new(
            "kafka_server_fetch_session_cache_num_incremental_fetch_sessions",
            "Fetch sessions (KIP-227) cached.",
        )?;
        registry.register(Box::new(fetch_sessions.clone()))?;
        let fetch_session_partitions = IntGauge::new(
            "kafka_server_fetch_session_cache_num_incremental_fetch_partitions_cached",
            "Partitions held over all fetch sessions.",
        )?;
        registry.register(Box::new(fetch_session_partitions.clone()))?;
        let fetch_session_evictions = IntCounter::new(
            "kafka_server_fetch_session_cache_incremental_fetch_session_evictions_total",
            "Fetch sessions evicted to make room for a new one.",
        )?;
        registry.register(Box::new(fetch_session_evictions.clone()))?;
        let incremental_fetches = IntCounter::new(
            "weir_incremental_fetch_requests_total",
            "Fetch requests answered from a fetch session (incremental fetches).",
        )?;
        registry.register(Box::new(incremental_fetches.clone()))?;
        // Named as Kafka's socket-server-metrics appear through the Prometheus JMX exporter.
        let failed_authentication = counter(
            "kafka_server_socket_server_metrics_failed_authentication_total",
            "Connections that failed to authenticate (TLS handshake or SASL), by listener.",
            &["listener"],
        )?;
        let successful_authentication = counter(
            "kafka_server_socket_server_metrics_successful_authentication_total",
            "Connections that authenticated with SASL, by listener.",
            &["listener"],
        )?;
        let successful_reauthentication = counter(
            "kafka_server_socket_server_metrics_successful_reauthentication_total",
            "SASL sessions renewed by re-authentication (KIP-368), by listener.",
            &["listener"],
        )?;
        // Kafka's authorizer-metrics (KIP-801), as counters.
        let authorizer_counter =
            |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
                let c = IntCounter::new(
                    format!("kafka_server_authorizer_metrics_{name}_total"),
                    help,
                )?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let authorization_requests = authorizer_counter(
            "authorization_request",
            "ACL checks made by the authorizer (super users included).",
        )?;
        let authorization_allowed =
            authorizer_counter("authorization_allowed", "ACL checks that allowed.")?;
        let authorization_denied =
            authorizer_counter("authorization_denied", "ACL checks that denied.")?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            request_errors,
            request_latency,
            bytes_in,
            bytes_out,
            records_in,
            records_out,
            connections_open,
            connections_accepted,
            protocol_errors,
            connections_refused,
            connections_closed_idle,
            stale_connections_closed,
            fetch_sendfile_bytes,
            group_rebalances,
            fetch_sessions,
            fetch_session_partitions,
            fetch_session_evictions,
            incremental_fetches,
            failed_authentication,
            successful_authentication,
            successful_reauthentication,
            authorization_requests,
            authorization_allowed,
            authorization_denied,
        })
    }

    /// Counts a failed authentication (TLS handshake or SASL) on `listener`.
    pub fn authentication_failed(&self, listener: &str) {
        self.failed_authentication
            .with_label_values(&[listener])
            .inc();
    }

    /// Counts a successful SASL re-authentication on `listener`.
    pub fn reauthentication_succeeded(&self, listener: &str) {
        self.successful_reauthentication
            .with_label_values(&[listener])
            .inc();
    }

    /// Counts a successful SASL authentication on `listener`.
    pub fn authentication_succeeded(&self, listener: &str) {
        self.successful_authentication
            .with_label_values(&[listener])
            .inc();
    }

    /// The registry, for the composition root to register the metrics of the layers above.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Adds consumer group lag and group counts by state, computed at each scrape.
    pub fn register_group_collector(
        &self,
        groups: &Arc<GroupCoordinator>,
        replicas: &Arc<ReplicaManager>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(GroupCollector::new(
            Arc::downgrade(groups),
            Arc::downgrade(replicas),
        )?))
    }

    /// Adds a collector read at each scrape; for the composition root to register collectors
    /// of the layers above this one (the admin service's reassignment metrics).
    pub fn register(&self, collector: Box<dyn Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Adds the per-partition log gauges, read from `replicas` at each scrape.
    pub fn register_log_collector(
        &self,
        replicas: &Arc<ReplicaManager>,
    ) -> Result<(), prometheus::Error> {
        self.registry
            .register(Box::new(LogCollector::new(Arc::downgrade(replicas))?))
    }

    /// Adds replication and controller gauges, computed at each scrape.
    pub fn register_replication_collector(
        &self,
        replicas: &Arc<ReplicaManager>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(
            crate::replication_metrics::ReplicationCollector::new(Arc::downgrade(replicas))?,
        ))
    }

    /// Adds the volume usage of the file system holding `log_dir`, read at each scrape.
    pub fn register_volume_collector(
        &self,
        log_dir: std::path::PathBuf,
    ) -> Result<(), prometheus::Error> {
        self.registry
            .register(Box::new(crate::volume_metrics::VolumeCollector::new(
                log_dir,
            )?))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Reads log size and offsets of every partition at scrape time.
struct LogCollector {
    replicas: Weak<ReplicaManager>,
    size: prometheus::IntGaugeVec,
    end: prometheus::IntGaugeVec,
    start: prometheus::IntGaugeVec,
    segments: prometheus::IntGaugeVec,
    lso_lag: prometheus::IntGaugeVec,
}

impl LogCollector {
    fn new(replicas: Weak<ReplicaManager>) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| {
            prometheus::IntGaugeVec::new(Opts::new(name, help), &["topic", "partition"])
        };
        Ok(Self {
            replicas,
            size: gauge(
                "weir_log_size_bytes",
                "Bytes on disk of a partition's log segments.",
            )?,
            end: gauge("weir_log_end_offset", "Log end offset of a partition.")?,
            start: gauge("weir_log_start_offset", "Log start offset of a partition.")?,
            segments: gauge(
                "weir_log_segments",
                "Number of segments of a partition's log.",
            )?,
            lso_lag: gauge(
                "weir_partition_last_stable_offset_lag",
                "High watermark minus last stable offset of a partition this broker leads (Kafka's LastStableOffsetLag): records open transactions hold back from read_committed consumers.",
            )?,
        })
    }
}

impl LogCollector {
    fn gauges(&self) -> [&prometheus::IntGaugeVec; 5] {
        [
            &self.size,
            &self.end,
            &self.start,
            &self.segments,
            &self.lso_lag,
        ]
    }
}

impl Collector for LogCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for g in self.gauges() {
            g.reset();
        }
        if let Some(replicas) = self.replicas.upgrade() {
            for p in replicas.all_partitions() {
                let index = p.index.to_string();
                let labels = [&*p.topic, index.as_str()];
                let stats = p.stats();
                self.size
                    .with_label_values(&labels)
                    .set(stats.size_bytes as i64);
                self.end
                    .with_label_values(&labels)
                    .set(stats.log_end_offset);
                self.start
                    .with_label_values(&labels)
                    .set(stats.log_start_offset);
                self.segments
                    .with_label_values(&labels)
                    .set(stats.segments as i64);
                if p.is_leader() {
                    self.lso_lag
                        .with_label_values(&labels)
                        .set(stats.last_stable_offset_lag);
                }
            }
        }
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

/// Consumer lag (high watermark minus committed offset) per group and partition, and the
/// number of groups in each state, read from the coordinator at scrape time.
struct GroupCollector {
    groups: Weak<GroupCoordinator>,
    replicas: Weak<ReplicaManager>,
    lag: prometheus::IntGaugeVec,
    by_state: prometheus::IntGaugeVec,
    consumer_by_state: prometheus::IntGaugeVec,
}

impl GroupCollector {
    fn new(
        groups: Weak<GroupCoordinator>,
        replicas: Weak<ReplicaManager>,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            groups,
            replicas,
            lag: prometheus::IntGaugeVec::new(
                Opts::new(
                    "weir_consumer_group_lag",
                    "Records a group has not consumed: high watermark minus committed offset.",
                ),
                &["group", "topic", "partition"],
            )?,
            by_state: prometheus::IntGaugeVec::new(
                Opts::new(
                    "weir_consumer_groups",
                    "Classic consumer groups this broker coordinates, by state.",
                ),
                &["state"],
            )?,
            // Kafka's group-coordinator-metrics consumer-group-count{state}.
            consumer_by_state: prometheus::IntGaugeVec::new(
                Opts::new(
                    "kafka_coordinator_group_consumer_group_count",
                    "KIP-848 consumer groups this broker coordinates, by state.",
                ),
                &["state"],
            )?,
        })
    }
}

impl Collector for GroupCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.lag, &self.by_state, &self.consumer_by_state]
            .into_iter()
            .flat_map(|g| g.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.lag.reset();
        self.by_state.reset();
        self.consumer_by_state.reset();
        if let (Some(groups), Some(replicas)) = (self.groups.upgrade(), self.replicas.upgrade()) {
            let counts = groups.count_by_state();
            for state in GroupState::ALL {
                if state != GroupState::Dead {
                    let n = counts.get(&state).copied().unwrap_or(0);
                    self.by_state
                        .with_label_values(&[state.name()])
                        .set(n as i64);
                }
            }
            let consumer_counts = groups.count_consumer_groups_by_state();
            for state in ConsumerGroupState::ALL {
                let n = consumer_counts.get(state.name()).copied().unwrap_or(0);
                self.consumer_by_state
                    .with_label_values(&[state.name()])
                    .set(n as i64);
            }
            for (group, topic, partition, committed) in groups.committed_offsets() {
                let Some(p) = replicas.partition(&topic, partition) else {
                    continue;
                };
                let lag = (p.high_watermark() - committed).max(0);
                self.lag
                    .with_label_values(&[group.as_str(), topic.as_str(), &partition.to_string()])
                    .set(lag);
            }
        }
        [&self.lag, &self.by_state, &self.consumer_by_state]
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}
