//! A topic's settings: overrides stored with the topic, resolved over the broker defaults.

use std::collections::BTreeMap;

use super::defs::{topic_key, TopicKeyDef, TOPIC_KEYS};
use super::{BrokerConfig, ConfigError};
use crate::log::{CleanupPolicy, LogConfig, TimestampType};

/// Where a reported config value comes from, with Kafka's DescribeConfigs source codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (`DYNAMIC_TOPIC_CONFIG`, 1).
    Topic = 1,
    /// Set for this broker in the metadata log (`DYNAMIC_BROKER_CONFIG`, 2).
    DynamicBroker = 2,
    /// Set for every broker in the metadata log (`DYNAMIC_DEFAULT_BROKER_CONFIG`, 3).
    DynamicDefaultBroker = 3,
    /// Set in the broker's file or `--set` (`STATIC_BROKER_CONFIG`, 4).
    StaticBroker = 4,
    /// Kafka's default (`DEFAULT_CONFIG`, 5).
    Default = 5,
}

/// One row of a DescribeConfigs answer for a topic.
#[derive(Debug, Clone)]
pub struct TopicConfigEntry {
    /// The definition of the setting.
    pub def: &'static TopicKeyDef,
    /// The value in force.
    pub value: String,
    /// Where it came from.
    pub source: ConfigSource,
}

/// Checks one topic override.
pub fn validate(key: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_key(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.to_string(),
    })?;
    def.kind.validate(key, value)
}

/// Checks a whole set of overrides.
pub fn validate_all(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    overrides.iter().try_for_each(|(k, v)| validate(k, v))
}

/// The value of every topic setting for a topic with `overrides`, and where each comes from.
pub fn entries(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<TopicConfigEntry> {
    TOPIC_KEYS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(v) => TopicConfigEntry {
                def,
                value: v.clone(),
                source: ConfigSource::Topic,
            },
            None => TopicConfigEntry {
                def,
                value: broker.topic_default(def.broker_synonym),
                source: broker.source(def.broker_synonym),
            },
        })
        .collect()
}

/// The [`LogConfig`] a partition of a topic with `overrides` runs with.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let value = |name: &str| -> String {
        overrides.get(name).cloned().unwrap_or_else(|| {
            topic_key(name)
                .map(|d| broker.topic_default(d.broker_synonym))
                .unwrap_or_default()
        })
    };
    // Every value was validated on the way in, so parse failures cannot happen; the fallback
    // keeps Kafka's default rather than panicking all the same.
    let long = |name: &str, fallback: i64| value(name).parse::<i64>().unwrap_or(fallback);
    let d = LogConfig::default();
    LogConfig {
        segment_bytes: long("segment.bytes", d.segment_bytes as i64) as u64,
        segment_ms: long("segment.ms", d.segment_ms),
        retention_ms: long("retention.ms", d.retention_ms),
        retention_bytes: long("retention.bytes", d.retention_bytes),
        index_interval_bytes: long("index.interval.bytes", 4096).max(1) as u32,
        segment_index_bytes: long("segment.index.bytes", 10 << 20).max(8) as u32,
        flush_messages: long("flush.messages", i64::MAX),
        flush_ms: long("flush.ms", i64::MAX),
        max_message_bytes: long("max.message.bytes", d.max_message_bytes as i64) as i32,
        timestamp_type: if value("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        cleanup_policy: CleanupPolicy::parse(&value("cleanup.policy")),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
            .parse::<f64>()
            .unwrap_or(d.min_cleanable_dirty_ratio),
        min_compaction_lag_ms: long("min.compaction.lag.ms", d.min_compaction_lag_ms),
        max_compaction_lag_ms: long("max.compaction.lag.ms", d.max_compaction_lag_ms),
        delete_retention_ms: long("delete.retention.ms", d.delete_retention_ms),
    }
}

/// `min.insync.replicas` for a topic.
pub fn min_insync_replicas(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> i32 {
    overrides
        .get("min.insync.replicas")
        .cloned()
        .unwrap_or_else(|| broker.topic_default("min.insync.replicas"))
        .parse()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn broker(pairs: &[(&str, &str)]) -> BrokerConfig {
        let v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::new(0, PathBuf::from("d"), &v).unwrap()
    }

    #[test]
    fn topic_override_beats_broker_default() {
        let b = broker(&[("log.segment.bytes", "2048")]);
        let mut o = BTreeMap::new();
        assert_eq!(log_config(&b, &o).segment_bytes, 2048);
        o.insert("segment.bytes".to_string(), "4096".to_string());
        assert_eq!(log_config(&b, &o).segment_bytes, 4096);
    }

    #[test]
    fn entries_report_sources() {
        let b = broker(&[("log.retention.bytes", "100")]);
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "5".to_string());
        let e = entries(&b, &o);
        let find = |n: &str| e.iter().find(|x| x.def.name == n).unwrap().clone();
        assert_eq!(find("retention.ms").source, ConfigSource::Topic);
        assert_eq!(find("retention.bytes").source, ConfigSource::StaticBroker);
        assert_eq!(find("retention.bytes").value, "100");
        assert_eq!(find("segment.bytes").source, ConfigSource::Default);
    }

    #[test]
    fn compaction_settings_resolve_over_the_cleaner_defaults() {
        let b = broker(&[
            ("log.cleaner.min.cleanable.ratio", "0.25"),
            ("log.cleanup.policy", "compact"),
        ]);
        let mut o = BTreeMap::new();
        let c = log_config(&b, &o);
        assert_eq!(c.cleanup_policy, CleanupPolicy::COMPACT);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(c.delete_retention_ms, 86_400_000);
        assert_eq!(c.max_compaction_lag_ms, i64::MAX);
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        o.insert("delete.retention.ms".to_string(), "5".to_string());
        o.insert("min.compaction.lag.ms".to_string(), "7".to_string());
        let c = log_config(&b, &o);
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
        assert_eq!(c.delete_retention_ms, 5);
        assert_eq!(c.min_compaction_lag_ms, 7);
        assert_eq!(
            log_config(&broker(&[]), &BTreeMap::new()).cleanup_policy,
            CleanupPolicy::DELETE
        );
    }

    #[test]
    fn flush_defaults_leave_it_to_the_os() {
        let c = log_config(&broker(&[]), &BTreeMap::new());
        assert_eq!(c.flush_messages, i64::MAX);
        assert_eq!(c.flush_ms, i64::MAX);
    }

    #[test]
    fn validation_names_bad_keys_and_values() {
        assert!(matches!(
            validate("retention.mss", "1"),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            validate("retention.ms", "-2"),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "delete, compact").is_ok());
        assert!(validate("cleanup.policy", "compact,compact").is_err());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "0.01").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("max.compaction.lag.ms", "0").is_err());
        assert!(validate("retention.ms", "-1").is_ok());
    }
}
