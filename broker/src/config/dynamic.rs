//! Dynamic broker settings: the subset of broker settings that IncrementalAlterConfigs and
//! AlterConfigs may change at runtime, on one broker (`kafka-configs --entity-type brokers
//! --entity-name 1`) or on all (`--entity-default`), as Kafka's `DynamicBrokerConfig`.
//!
//! They are stored in the metadata log, so every broker sees the same values and a restarted
//! broker finds them; [`BrokerConfig::with_dynamic`] lays them over the file and `--set`
//! values (this broker's own over the cluster-wide ones), and the replica manager re-derives
//! every partition's log settings, the cleaner's and the replication throttle from the result
//! each time they change. Settings outside [`DYNAMIC_BROKER_KEYS`] are refused by name: they
//! are read at start-up only (listeners, data directory, group and controller timings).

use std::collections::BTreeMap;

use super::defs::broker_key;
use super::{BrokerConfig, ConfigError};

/// Broker settings changeable at runtime (Kafka's names; a subset of Kafka's dynamic ones).
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    // Topic defaults: every partition without its own override picks them up.
    "log.retention.ms",
    "log.retention.bytes",
    "log.roll.ms",
    "log.segment.bytes",
    "log.cleanup.policy",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "message.max.bytes",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "compression.type",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    // The log cleaner's own settings: the next pass runs with them.
    "log.cleaner.backoff.ms",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.buffer.load.factor",
    // Idempotent producer state (KIP-854).
    "producer.id.expiration.ms",
    // Replication throttles (`kafka-reassign-partitions --throttle`).
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// Whether `key` may be changed at runtime.
pub fn is_dynamic(key: &str) -> bool {
    DYNAMIC_BROKER_KEYS.contains(&key)
}

/// Checks a whole set of dynamic settings before it is written: every key known, dynamic, and
/// with a valid value.
pub fn validate_dynamic(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in configs {
        let def = broker_key(key).ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?;
        if !is_dynamic(def.name) {
            return Err(ConfigError::NotDynamic { key: key.clone() });
        }
        def.kind.validate(def.name, value.trim())?;
    }
    Ok(())
}

impl BrokerConfig {
    /// This config with the cluster-wide dynamic settings `default` and this broker's own
    /// `own` laid over it. Entries that are not valid dynamic settings are skipped with a log
    /// line (they were validated when written; an older or newer broker may know other keys).
    pub fn with_dynamic(
        &self,
        default: &BTreeMap<String, String>,
        own: &BTreeMap<String, String>,
    ) -> BrokerConfig {
        let layer = |configs: &BTreeMap<String, String>| {
            configs
                .iter()
                .filter_map(|(key, value)| {
                    let def = broker_key(key).filter(|d| is_dynamic(d.name));
                    match def {
                        Some(def) if def.kind.validate(def.name, value.trim()).is_ok() => {
                            Some((def.name, value.trim().to_string()))
                        }
                        _ => {
                            tracing::warn!(key, value, "ignoring a dynamic broker setting");
                            None
                        }
                    }
                })
                .collect()
        };
        BrokerConfig {
            dynamic_default: layer(default),
            dynamic_broker: layer(own),
            ..self.clone()
        }
    }

    /// The cluster-wide dynamic settings in force (DescribeConfigs of the default resource).
    pub fn dynamic_defaults(&self) -> &BTreeMap<&'static str, String> {
        &self.dynamic_default
    }

    /// The value of `key` in the file or `--set`, if it was set there (a DescribeConfigs
    /// synonym).
    pub fn static_value(&self, key: &str) -> Option<&str> {
        self.explicit
            .contains_key(key)
            .then(|| self.values.get(key).map(String::as_str))
            .flatten()
    }

    /// The value of `key` set for this broker dynamically, if any (a DescribeConfigs synonym).
    pub fn dynamic_broker_value(&self, key: &str) -> Option<&str> {
        self.dynamic_broker.get(key).map(String::as_str)
    }

    /// A replication throttle rate (`leader.` or `follower.replication.throttled.rate`), `None`
    /// when unthrottled (Kafka's default, `Long.MAX_VALUE`).
    pub fn throttled_rate(&self, key: &str) -> Option<u64> {
        let rate = self.int(key);
        (rate != i64::MAX).then_some(rate.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::topic::ConfigSource;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn this_brokers_setting_wins_over_the_cluster_default_over_the_file() {
        let file = vec![("log.retention.ms".to_string(), "1000".to_string())];
        let base = BrokerConfig::new(1, PathBuf::from("d"), &file).unwrap();
        assert_eq!(base.source("log.retention.ms"), ConfigSource::StaticBroker);
        let default = map(&[("log.retention.ms", "2000"), ("log.segment.bytes", "4096")]);
        let c = base.with_dynamic(&default, &BTreeMap::new());
        assert_eq!(c.topic_default("log.retention.ms"), "2000");
        assert_eq!(
            c.source("log.retention.ms"),
            ConfigSource::DynamicDefaultBroker
        );
        assert_eq!(c.static_value("log.retention.ms"), Some("1000"));
        let c = base.with_dynamic(&default, &map(&[("log.retention.ms", "3000")]));
        assert_eq!(c.topic_default("log.retention.ms"), "3000");
        assert_eq!(c.source("log.retention.ms"), ConfigSource::DynamicBroker);
        assert_eq!(c.topic_default("log.segment.bytes"), "4096");
        // Removing the layers brings the file's value back.
        let c = c.with_dynamic(&BTreeMap::new(), &BTreeMap::new());
        assert_eq!(c.topic_default("log.retention.ms"), "1000");
    }

    #[test]
    fn static_only_unknown_and_invalid_settings_are_refused_by_name() {
        assert_eq!(
            validate_dynamic(&map(&[("num.partitions", "3")])),
            Err(ConfigError::NotDynamic {
                key: "num.partitions".to_string()
            })
        );
        assert!(matches!(
            validate_dynamic(&map(&[("log.retention.msec", "3")])),
            Err(ConfigError::UnknownKey { .. })
        ));
        assert!(matches!(
            validate_dynamic(&map(&[("log.retention.ms", "soon")])),
            Err(ConfigError::InvalidValue { .. })
        ));
        assert_eq!(
            validate_dynamic(&map(&[
                ("follower.replication.throttled.rate", "1048576"),
                ("log.cleaner.backoff.ms", "100"),
            ])),
            Ok(())
        );
    }

    #[test]
    fn throttle_rates_default_to_unthrottled() {
        let base = BrokerConfig::new(0, PathBuf::from("d"), &[]).unwrap();
        assert_eq!(
            base.throttled_rate("follower.replication.throttled.rate"),
            None
        );
        let c = base.with_dynamic(
            &BTreeMap::new(),
            &map(&[("follower.replication.throttled.rate", "500")]),
        );
        assert_eq!(
            c.throttled_rate("follower.replication.throttled.rate"),
            Some(500)
        );
    }
}
