//! Broker configuration: Kafka's setting names and defaults, read from a properties file and
//! `--set key=value` overrides, validated once at start.
//!
//! [`BrokerConfig`] is the broker-wide view; [`topic`] resolves a topic's overrides over the
//! broker defaults into the [`crate::log::LogConfig`] its partitions run with and lists the
//! values DescribeConfigs reports.

pub mod defs;
pub mod dynamic;
pub mod group;
pub mod listeners;
pub mod properties;
pub mod topic;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use defs::{KeyDef, BROKER_KEYS};

/// A configuration problem that stops the broker from starting or rejects a topic config.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The key is not a setting Weir knows.
    #[error("unknown configuration key `{key}`")]
    UnknownKey {
        /// The offending key.
        key: String,
    },
    /// The key is a Kafka setting that Weir takes from its command line.
    #[error("`{key}` is given on the command line in Weir: {instead}")]
    CommandLineKey {
        /// The offending key.
        key: String,
        /// The flag (and environment variable) that sets it.
        instead: &'static str,
    },
    /// The key is a Kafka setting whose behaviour Weir does not have.
    #[error("`{key}` is a Kafka setting Weir does not implement: {instead}")]
    Unsupported {
        /// The offending key.
        key: String,
        /// What Weir does instead.
        instead: &'static str,
    },
    /// The value does not parse or is out of range for the key.
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key being set.
        key: String,
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A line of a properties file is not `key=value`.
    #[error("{file}:{line}: expected `key=value`, found `{text}`")]
    Syntax {
        /// The file being read.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// The key is a broker setting read at start-up only.
    #[error(
        "`{key}` cannot be changed at runtime: set it in the broker's config file and restart"
    )]
    NotDynamic {
        /// The offending key.
        key: String,
    },
    /// The properties file could not be read.
    #[error("cannot read config file {file}: {reason}")]
    Io {
        /// The file being read.
        file: String,
        /// The I/O error.
        reason: String,
    },
}

/// The validated broker settings.
///
/// Invariant: `values` holds exactly one entry per key of [`BROKER_KEYS`], each of which passed
/// that key's validation; the typed accessors rely on that and never fail.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// This broker's id (`node.id`).
    pub node_id: i32,
    /// Root of the partition directories.
    pub data_dir: PathBuf,
    values: BTreeMap<&'static str, String>,
    explicit: BTreeMap<&'static str, bool>,
    /// Dynamic settings for every broker, from the metadata log ([`dynamic`]).
    dynamic_default: BTreeMap<&'static str, String>,
    /// Dynamic settings for this broker, from the metadata log; win over the defaults.
    dynamic_broker: BTreeMap<&'static str, String>,
    /// Per-listener settings: `listener.name.<listener>.<key>` with the listener name lower
    /// case, each key a broker key (validated as that key) or `<mechanism>.sasl.jaas.config`.
    listener_values: BTreeMap<String, String>,
    /// Kafka settings given that have no effect here ([`defs::NO_EFFECT_KEYS`]), with why.
    no_effect: BTreeMap<&'static str, &'static str>,
}

/// The prefix of a per-listener setting.
const LISTENER_PREFIX: &str = "listener.name.";

impl BrokerConfig {
    /// Builds a config from `overrides` (file entries first, then `--set`, later wins) over the
    /// defaults, validating every key and value.
    pub fn new(
        node_id: i32,
        data_dir: PathBuf,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<&'static str, String> = BROKER_KEYS
            .iter()
            .map(|k| (k.name, k.default.to_string()))
            .collect();
        let mut explicit = BTreeMap::new();
        let mut listener_values = BTreeMap::new();
        let mut no_effect = BTreeMap::new();
        for (key, value) in overrides {
            if let Some(rest) = key.strip_prefix(LISTENER_PREFIX) {
                let value = value.trim().to_string();
                let key = validate_listener_key(key, rest, &value)?;
                listener_values.insert(key, value);
                continue;
            }
            if let Some((name, why)) = defs::kafka_key(defs::NO_EFFECT_KEYS, key) {
                no_effect.insert(name, why);
                continue;
            }
            if let Some((_, instead)) = defs::kafka_key(defs::UNSUPPORTED_KEYS, key) {
                return Err(ConfigError::Unsupported {
                    key: key.clone(),
                    instead,
                });
            }
            if let Some((_, instead)) = defs::kafka_key(defs::COMMAND_LINE_KEYS, key) {
                return Err(ConfigError::CommandLineKey {
                    key: key.clone(),
                    instead,
                });
            }
            let def = defs::broker_key(key)
                .ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?;
            let value = value.trim().to_string();
            def.kind.validate(def.name, &value)?;
            values.insert(def.name, value);
            explicit.insert(def.name, true);
        }
        let config = Self {
            node_id,
            data_dir,
            values,
            explicit,
            dynamic_default: BTreeMap::new(),
            dynamic_broker: BTreeMap::new(),
            listener_values,
            no_effect,
        };
        config.validate_consumer_group_settings()?;
        Ok(config)
    }

    /// The Kafka settings given that have no effect in Weir, each with why (the broker logs
    /// them at start).
    pub fn no_effect(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.no_effect.iter().map(|(k, why)| (*k, *why))
    }

    /// Kafka's start-up checks of the `group.consumer.*` timeouts: each within its bounds,
    /// the heartbeat interval below the session timeout, and known assignors.
    fn validate_consumer_group_settings(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::InvalidValue {
            key: key.to_string(),
            value: self.get(key).unwrap_or_default().to_string(),
            reason,
        };
        for (key, min, max) in [
            (
                "group.consumer.session.timeout.ms",
                "group.consumer.min.session.timeout.ms",
                "group.consumer.max.session.timeout.ms",
            ),
            (
                "group.consumer.heartbeat.interval.ms",
                "group.consumer.min.heartbeat.interval.ms",
                "group.consumer.max.heartbeat.interval.ms",
            ),
        ] {
            let (v, lo, hi) = (self.long(key), self.long(min), self.long(max));
            if v < lo || v > hi {
                return Err(invalid(
                    key,
                    format!("must be within {min} ({lo}) and {max} ({hi})"),
                ));
            }
        }
        if self.long("group.consumer.heartbeat.interval.ms")
            >= self.long("group.consumer.session.timeout.ms")
        {
            return Err(invalid(
                "group.consumer.heartbeat.interval.ms",
                "must be less than group.consumer.session.timeout.ms".to_string(),
            ));
        }
        if self
            .group_consumer_assignors()
            .iter()
            .any(|a| !["uniform", "range"].contains(&a.as_str()))
        {
            return Err(invalid(
                "group.consumer.assignors",
                "names an assignor other than uniform and range".to_string(),
            ));
        }
        Ok(())
    }

    /// `group.consumer.session.timeout.ms`.
    pub fn group_consumer_session_timeout_ms(&self) -> i32 {
        self.long("group.consumer.session.timeout.ms") as i32
    }

    /// `group.consumer.heartbeat.interval.ms`.
    pub fn group_consumer_heartbeat_interval_ms(&self) -> i32 {
        self.long("group.consumer.heartbeat.interval.ms") as i32
    }

    /// `group.consumer.max.size`.
    pub fn group_consumer_max_size(&self) -> usize {
        self.long("group.consumer.max.size") as usize
    }

    /// A `group.share.*` setting (every one is an integer), by its Kafka name.
    pub fn group_share(&self, key: &str) -> i64 {
        self.long(key)
    }

    /// A `share.coordinator.*` setting (`__share_group_state`'s partitions, replication
    /// factor, snapshot interval, write timeout).
    pub fn share_coordinator(&self, key: &str) -> i64 {
        self.long(key)
    }

    /// `group.share.enable`: whether the share group APIs are served and advertised.
    pub fn share_groups_enabled(&self) -> bool {
        self.flag("group.share.enable")
    }

    /// `share.auto.offset.reset`: whether a new share partition starts at the log start
    /// (`earliest`) rather than the high watermark.
    pub fn share_auto_offset_reset_earliest(&self) -> bool {
        self.get("share.auto.offset.reset") == Some("earliest")
    }

    /// `group.consumer.migration.policy`: `bidirectional`, `upgrade`, `downgrade` or
    /// `disabled` (validated at startup).
    pub fn group_consumer_migration_policy(&self) -> &str {
        self.get("group.consumer.migration.policy")
            .unwrap_or("bidirectional")
    }

    /// `group.consumer.assignors` (Kafka's short names), the first being the default.
    pub fn group_consumer_assignors(&self) -> Vec<String> {
        self.get("group.consumer.assignors")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A setting for `listener`: `listener.name.<listener>.<key>` if set, else the broker
    /// setting `key` (which has none for the listener-only `<mechanism>.sasl.jaas.config`).
    pub fn listener_setting(&self, listener: &str, key: &str) -> Option<&str> {
        let prefixed = format!("{LISTENER_PREFIX}{}.{key}", listener.to_ascii_lowercase());
        self.listener_values
            .get(&prefixed)
            .map(String::as_str)
            .or_else(|| self.get(key))
    }

    /// A setting given for `listener` only (`listener.name.<listener>.<key>`), without falling
    /// back to the broker's.
    pub fn listener_only(&self, listener: &str, key: &str) -> Option<&str> {
        let prefixed = format!("{LISTENER_PREFIX}{}.{key}", listener.to_ascii_lowercase());
        self.listener_values.get(&prefixed).map(String::as_str)
    }

    /// A numeric broker setting (`max.connections`, ...): its value in force.
    pub fn number(&self, key: &str) -> i64 {
        self.long(key)
    }

    /// The resolved listener settings; `listen` is `--listen`, the single PLAINTEXT listener
    /// when `listeners` is not set.
    pub fn listeners(
        &self,
        listen: std::net::SocketAddr,
    ) -> Result<listeners::Listeners, ConfigError> {
        let setting = |key: &str| self.get(key).unwrap_or_default();
        listeners::resolve(
            setting("listeners"),
            setting("advertised.listeners"),
            setting("listener.security.protocol.map"),
            setting("inter.broker.listener.name"),
            listeners::ListenerAddress {
                name: "PLAINTEXT".to_string(),
                host: listen.ip().to_string(),
                port: listen.port(),
            },
        )
    }

    /// The value in force of a known broker key: this broker's dynamic setting, else the
    /// cluster-wide dynamic one, else the file or `--set`, else Kafka's default.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.dynamic_broker
            .get(key)
            .or_else(|| self.dynamic_default.get(key))
            .or_else(|| self.values.get(key))
            .map(String::as_str)
    }

    /// Whether `key` was set (dynamically, in the file or on the command line) rather than
    /// defaulted.
    pub fn is_explicit(&self, key: &str) -> bool {
        self.source(key) != topic::ConfigSource::Default
    }

    /// Where the value of `key` in force comes from.
    pub fn source(&self, key: &str) -> topic::ConfigSource {
        if self.dynamic_broker.contains_key(key) {
            topic::ConfigSource::DynamicBroker
        } else if self.dynamic_default.contains_key(key) {
            topic::ConfigSource::DynamicDefaultBroker
        } else if self.explicit.contains_key(key) {
            topic::ConfigSource::StaticBroker
        } else {
            topic::ConfigSource::Default
        }
    }

    fn long(&self, key: &str) -> i64 {
        // Invariant of the struct: every key is present and validated by its KeyDef.
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// `num.partitions`: partitions of an auto-created topic or one created without a count.
    pub fn num_partitions(&self) -> i32 {
        self.long("num.partitions") as i32
    }

    /// `num.recovery.threads.per.data.dir`: threads opening logs in parallel.
    pub fn num_recovery_threads(&self) -> usize {
        self.long("num.recovery.threads.per.data.dir") as usize
    }

    /// `default.replication.factor`.
    pub fn default_replication_factor(&self) -> i16 {
        self.long("default.replication.factor") as i16
    }

    /// `auto.create.topics.enable`.
    pub fn auto_create_topics(&self) -> bool {
        self.flag("auto.create.topics.enable")
    }

    /// `message.max.bytes`: the broker-wide default for a topic's `max.message.bytes`.
    pub fn message_max_bytes(&self) -> i32 {
        self.long("message.max.bytes") as i32
    }

    /// `offsets.topic.compression.codec`: the codec of the coordinator's `__consumer_offsets`
    /// batches, as Kafka numbers them (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn offsets_topic_compression_codec(&self) -> i64 {
        self.long("offsets.topic.compression.codec")
    }

    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub fn socket_request_max_bytes(&self) -> usize {
        self.long("socket.request.max.bytes") as usize
    }

    /// `fetch.max.bytes`: the most record bytes of one consumer's Fetch response, whatever it
    /// asks (a first batch larger than that still comes whole).
    pub fn fetch_max_bytes(&self) -> usize {
        self.long("fetch.max.bytes") as usize
    }

    /// `replica.fetch.response.max.bytes`: the same for a follower's Fetch.
    pub fn replica_fetch_response_max_bytes(&self) -> usize {
        self.long("replica.fetch.response.max.bytes") as usize
    }

    /// `connections.max.idle.ms`: how long a client connection may go without a request before
    /// the broker closes it; `None` (never) when not positive or longer than a year.
    pub fn connections_max_idle(&self) -> Option<Duration> {
        const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;
        let ms = self.long("connections.max.idle.ms");
        (ms > 0 && ms <= YEAR_MS).then(|| Duration::from_millis(ms as u64))
    }

    /// `log.retention.check.interval.ms`.
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.long("log.retention.check.interval.ms") as u64
    }

    /// `log.flush.scheduler.interval.ms` bounded to something a timer can use: how often the
    /// broker checks whether `flush.ms` asks for an fsync.
    pub fn flush_check_interval_ms(&self) -> u64 {
        self.long("log.flush.scheduler.interval.ms")
            .clamp(10, 60_000) as u64
    }

    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points are checkpointed.
    pub fn recovery_point_checkpoint_interval_ms(&self) -> u64 {
        self.long("log.flush.offset.checkpoint.interval.ms") as u64
    }

    /// A numeric setting by name (0 if it is not numeric).
    pub fn int(&self, key: &str) -> i64 {
        self.long(key)
    }

    /// A `*.ms` setting as a duration.
    pub fn duration_ms(&self, key: &str) -> std::time::Duration {
        std::time::Duration::from_millis(self.long(key).max(0) as u64)
    }

    /// `controller.quorum.auto.join.enable`.
    pub fn quorum_auto_join(&self) -> bool {
        self.flag("controller.quorum.auto.join.enable")
    }

    /// `auto.leader.rebalance.enable`.
    pub fn auto_leader_rebalance(&self) -> bool {
        self.flag("auto.leader.rebalance.enable")
    }

    /// `leader.imbalance.check.interval.seconds`.
    pub fn leader_imbalance_check_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.long("leader.imbalance.check.interval.seconds") as u64)
    }

    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.long("offsets.topic.num.partitions") as i32
    }

    /// `offsets.topic.replication.factor` as configured (capped to the brokers available
    /// when the topic is created).
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.long("offsets.topic.replication.factor") as i16
    }

    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub fn transaction_state_log_num_partitions(&self) -> i32 {
        self.long("transaction.state.log.num.partitions") as i32
    }

    /// `transaction.state.log.replication.factor` as configured (capped to the brokers
    /// available when the topic is created).
    pub fn transaction_state_log_replication_factor(&self) -> i16 {
        self.long("transaction.state.log.replication.factor") as i16
    }

    /// `transaction.state.log.min.isr`: `min.insync.replicas` of `__transaction_state`
    /// (capped to its replication factor).
    pub fn transaction_state_log_min_isr(&self) -> i32 {
        self.long("transaction.state.log.min.isr") as i32
    }

    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`.
    pub fn transaction_state_log_segment_bytes(&self) -> i64 {
        self.long("transaction.state.log.segment.bytes")
    }

    /// `transaction.max.timeout.ms`: the largest `transaction.timeout.ms` a producer may ask.
    pub fn transaction_max_timeout_ms(&self) -> i64 {
        self.long("transaction.max.timeout.ms")
    }

    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often the
    /// coordinator looks for transactions past their timeout.
    pub fn transaction_abort_interval_ms(&self) -> i64 {
        self.long("transaction.abort.timed.out.transaction.cleanup.interval.ms")
    }

    /// `producer.id.expiration.ms`: how long a partition remembers an idle idempotent
    /// producer (dynamic).
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.long("producer.id.expiration.ms")
    }

    /// `producer.id.expiration.check.interval.ms`: how often idle producers are forgotten.
    pub fn producer_id_expiration_check_interval_ms(&self) -> u64 {
        self.long("producer.id.expiration.check.interval.ms") as u64
    }

    /// `transactional.id.expiration.ms`: how long an idle transactional id is remembered.
    pub fn transactional_id_expiration_ms(&self) -> i64 {
        self.long("transactional.id.expiration.ms")
    }

    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how often idle
    /// transactional ids are looked for.
    pub fn transaction_expiration_interval_ms(&self) -> i64 {
        self.long("transaction.remove.expired.transaction.cleanup.interval.ms")
    }

    /// `transaction.partition.verification.enable`: a partition leader asks the transaction
    /// coordinator whether a producer's transaction includes the partition before appending
    /// the first transactional batch of that transaction (KIP-890).
    pub fn transaction_partition_verification_enable(&self) -> bool {
        self.flag("transaction.partition.verification.enable")
    }

    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`.
    pub fn offsets_topic_segment_bytes(&self) -> i64 {
        self.long("offsets.topic.segment.bytes")
    }

    /// `offsets.retention.minutes` in ms: how long an empty group keeps its offsets.
    pub fn offsets_retention_ms(&self) -> i64 {
        self.long("offsets.retention.minutes")
            .saturating_mul(60_000)
    }

    /// `offsets.retention.check.interval.ms`.
    pub fn offsets_retention_check_interval_ms(&self) -> u64 {
        self.long("offsets.retention.check.interval.ms") as u64
    }

    /// `offsets.commit.timeout.ms`: how long a commit may wait for the offsets partition's
    /// replicas (the replicated cluster); a single node appends locally.
    pub fn offsets_commit_timeout_ms(&self) -> i64 {
        self.long("offsets.commit.timeout.ms")
    }

    /// `quota.window.num`: how many windows a client's byte rate is measured over.
    pub fn quota_window_num(&self) -> usize {
        self.long("quota.window.num") as usize
    }

    /// `quota.window.size.seconds`: the length of one window of a client's byte rate.
    pub fn quota_window_size(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.long("quota.window.size.seconds") as u64)
    }

    /// `offset.metadata.max.bytes`: the longest metadata string an OffsetCommit may carry.
    pub fn offset_metadata_max_bytes(&self) -> usize {
        self.long("offset.metadata.max.bytes") as usize
    }

    /// `group.initial.rebalance.delay.ms`: how long an empty group waits for more members.
    pub fn group_initial_rebalance_delay_ms(&self) -> i64 {
        self.long("group.initial.rebalance.delay.ms")
    }

    /// `group.min.session.timeout.ms`.
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.long("group.min.session.timeout.ms") as i32
    }

    /// `group.max.session.timeout.ms`.
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.long("group.max.session.timeout.ms") as i32
    }

    /// `group.max.size`: members one group may have.
    pub fn group_max_size(&self) -> usize {
        self.long("group.max.size") as usize
    }

    /// `max.incremental.fetch.session.cache.slots`: fetch sessions kept at most.
    pub fn max_incremental_fetch_session_cache_slots(&self) -> usize {
        self.long("max.incremental.fetch.session.cache.slots") as usize
    }

    /// A floating-point setting by name (0 if it is not numeric).
    pub fn double(&self, key: &str) -> f64 {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }

    /// `log.cleaner.enable`: whether this broker runs the log cleaner.
    pub fn log_cleaner_enable(&self) -> bool {
        self.flag("log.cleaner.enable")
    }

    /// `broker.rack`, if set.
    pub fn rack(&self) -> Option<&str> {
        self.get("broker.rack").filter(|r| !r.is_empty())
    }

    /// The value of a topic setting's broker-level synonym, resolving Kafka's unit variants
    /// (`log.retention.ms` over `log.retention.minutes` over `log.retention.hours`).
    pub fn topic_default(&self, broker_key: &str) -> String {
        match broker_key {
            "log.retention.ms" => self.retention_ms().to_string(),
            "log.roll.ms" => {
                if self.is_explicit("log.roll.ms") || !self.is_explicit("log.roll.hours") {
                    self.long("log.roll.ms").to_string()
                } else {
                    (self.long("log.roll.hours") * 3_600_000).to_string()
                }
            }
            "log.flush.interval.ms" => {
                if self.is_explicit("log.flush.interval.ms") {
                    self.long("log.flush.interval.ms").to_string()
                } else {
                    self.long("log.flush.scheduler.interval.ms").to_string()
                }
            }
            other => self.get(other).unwrap_or_default().to_string(),
        }
    }

    fn retention_ms(&self) -> i64 {
        if self.is_explicit("log.retention.ms") {
            self.long("log.retention.ms")
        } else if self.is_explicit("log.retention.minutes") {
            let m = self.long("log.retention.minutes");
            if m < 0 {
                -1
            } else {
                m * 60_000
            }
        } else {
            let h = self.long("log.retention.hours");
            if h < 0 {
                -1
            } else {
                h * 3_600_000
            }
        }
    }

    /// Every broker key with its value in force and where it comes from, for DescribeConfigs.
    pub fn entries(&self) -> impl Iterator<Item = (&'static KeyDef, &str, topic::ConfigSource)> {
        BROKER_KEYS
            .iter()
            .map(|def| (def, self.get(def.name).unwrap_or(""), self.source(def.name)))
    }
}

/// Parses `max.connections.per.ip.overrides`: `host:count` pairs separated by commas, hosts
/// as IP addresses (Kafka also takes host names; they are refused here rather than resolved).
pub fn parse_ip_counts(
    value: &str,
) -> Result<std::collections::HashMap<std::net::IpAddr, usize>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (host, count) = entry
                .rsplit_once(':')
                .ok_or_else(|| format!("`{entry}` is not host:count"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host
                .parse()
                .map_err(|_| format!("`{host}` is not an IP address"))?;
            let count: usize = count
                .trim()
                .parse()
                .map_err(|_| format!("`{count}` is not a connection count"))?;
            Ok((ip, count))
        })
        .collect()
}

/// Checks `listener.name.<listener>.<rest>` and returns the key with the listener name lower
/// case (Kafka's form).
fn validate_listener_key(key: &str, rest: &str, value: &str) -> Result<String, ConfigError> {
    let unknown = || ConfigError::UnknownKey {
        key: key.to_string(),
    };
    let (listener, setting) = rest.split_once('.').ok_or_else(unknown)?;
    if listener.is_empty() {
        return Err(unknown());
    }
    let per_mechanism = |suffix: &str| {
        setting
            .strip_suffix(suffix)
            .is_some_and(|mechanism| !mechanism.is_empty() && !mechanism.contains('.'))
    };
    let is_jaas =
        per_mechanism(".sasl.jaas.config") || per_mechanism(".sasl.server.callback.handler.class");
    if !is_jaas {
        let def = defs::broker_key(setting).ok_or_else(unknown)?;
        def.kind.validate(key, value)?;
    }
    Ok(format!(
        "{LISTENER_PREFIX}{}.{setting}",
        listener.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_settings_override_the_broker_ones() {
        let c = cfg(&[
            ("ssl.client.auth", "requested"),
            ("listener.name.SASL_SSL.ssl.client.auth", "required"),
            (
                "listener.name.sasl_ssl.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required;",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.listener_setting("SASL_SSL", "ssl.client.auth"),
            Some("required")
        );
        assert_eq!(
            c.listener_setting("SSL", "ssl.client.auth"),
            Some("requested")
        );
        assert!(c
            .listener_setting("SASL_SSL", "plain.sasl.jaas.config")
            .is_some());
        assert_eq!(c.listener_setting("SSL", "plain.sasl.jaas.config"), None);
        for bad in [
            ("listener.name.ssl.no.such.key", "1"),
            ("listener.name.ssl", "1"),
            ("listener.name.ssl.ssl.client.auth", "sometimes"),
        ] {
            assert!(cfg(&[bad]).is_err(), "{bad:?}");
        }
    }

    fn cfg(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::new(0, PathBuf::from("d"), &v)
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.num_partitions(), 1);
        assert!(c.auto_create_topics());
        assert_eq!(c.message_max_bytes(), 1_048_588);
        assert_eq!(c.topic_default("log.retention.ms"), "604800000");
        assert_eq!(c.topic_default("log.segment.bytes"), "1073741824");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = cfg(&[("log.segmnt.bytes", "1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown configuration key `log.segmnt.bytes`"
        );
    }

    #[test]
    fn kafka_tuning_without_an_effect_here_is_accepted_and_named() {
        let c = cfg(&[
            ("num.io.threads", "8"),
            ("socket.send.buffer.bytes", "102400"),
            ("num.partitions", "3"),
        ])
        .unwrap();
        assert_eq!(c.num_partitions(), 3);
        let named: Vec<_> = c.no_effect().map(|(k, _)| k).collect();
        assert_eq!(named, ["num.io.threads", "socket.send.buffer.bytes"]);
        assert!(c.no_effect().all(|(_, why)| !why.is_empty()));
        assert_eq!(cfg(&[]).unwrap().no_effect().count(), 0);
        // Still not settings: nothing else about them is accepted.
        assert!(c.get("num.io.threads").is_none());
    }

    #[test]
    fn kafka_settings_of_the_command_line_point_to_their_flag() {
        let err = cfg(&[("node.id", "1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`node.id` is given on the command line in Weir: --node-id (WEIR_NODE_ID)"
        );
        let err = cfg(&[("replica.selector.class", "x")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`replica.selector.class` is a Kafka setting Weir does not implement"),
            "{err}"
        );
        for key in ["log.dirs", "process.roles", "controller.quorum.voters"] {
            let err = cfg(&[(key, "x")]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::CommandLineKey { key: k, .. } if k == key),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_value_is_named() {
        let err = cfg(&[("num.partitions", "zero")]).unwrap_err();
        assert!(
            err.to_string().contains("`zero` for `num.partitions`"),
            "{err}"
        );
        assert!(cfg(&[("num.partitions", "0")]).is_err());
        assert!(cfg(&[("auto.create.topics.enable", "yes")]).is_err());
    }

    #[test]
    fn retention_units_resolve_like_kafka() {
        assert_eq!(
            cfg(&[("log.retention.hours", "1")])
                .unwrap()
                .topic_default("log.retention.ms"),
            "3600000"
        );
        assert_eq!(
            cfg(&[("log.retention.minutes", "2")])
                .unwrap()
                .topic_default("log.retention.ms"),
            "120000"
        );
        let both = cfg(&[("log.retention.hours", "1"), ("log.retention.ms", "5")]).unwrap();
        assert_eq!(both.topic_default("log.retention.ms"), "5");
        assert_eq!(
            cfg(&[("log.retention.hours", "-1")])
                .unwrap()
                .topic_default("log.retention.ms"),
            "-1"
        );
    }

    #[test]
    fn later_override_wins() {
        let c = cfg(&[("num.partitions", "3"), ("num.partitions", "7")]).unwrap();
        assert_eq!(c.num_partitions(), 7);
    }
}
