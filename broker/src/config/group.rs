//! Kafka's group configs (the GROUP config resource, type 32): per-group settings set with
//! IncrementalAlterConfigs / AlterConfigs (`kafka-configs --entity-type groups`), stored in the
//! metadata log, each overriding a broker default for one group. Weir has the share-group ones
//! it applies (KIP-932): `share.auto.offset.reset` (where a new share partition starts),
//! `share.record.lock.duration.ms` (acquisition lock) and `share.delivery.count.limit`; other
//! names are INVALID_CONFIG, as Kafka answers an unknown group config.

use std::collections::BTreeMap;

use super::defs::Kind;
use super::{BrokerConfig, ConfigError};

/// One group config: its Kafka name, the broker setting it overrides, how values are checked.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfigDef {
    /// Kafka's name of the group config.
    pub name: &'static str,
    /// The broker setting whose value holds for groups without an override.
    pub broker_key: &'static str,
    /// How values are validated (the broker setting's own bounds).
    pub kind: Kind,
}

/// The group configs Weir has.
pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "share.auto.offset.reset",
        broker_key: "share.auto.offset.reset",
        kind: Kind::Choice(&["latest", "earliest"]),
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        broker_key: "group.share.record.lock.duration.ms",
        kind: Kind::Long {
            min: 1_000,
            max: 3_600_000,
        },
    },
    GroupConfigDef {
        name: "share.delivery.count.limit",
        broker_key: "group.share.delivery.count.limit",
        kind: Kind::Long { min: 2, max: 10 },
    },
];

/// The definition of group config `name`.
pub fn group_config(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks every key and value of a group's settings.
pub fn validate_group_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (key, value) in configs {
        let def = group_config(key).ok_or_else(|| ConfigError::UnknownKey { key: key.clone() })?;
        def.kind.validate(def.name, value.trim())?;
    }
    Ok(())
}

/// A group's value of `def`: its override if it has a valid one, else the broker's setting;
/// and whether it is an override.
pub fn group_value(
    broker: &BrokerConfig,
    overrides: Option<&BTreeMap<String, String>>,
    def: &GroupConfigDef,
) -> (String, bool) {
    let own = overrides
        .and_then(|o| o.get(def.name))
        .map(|v| v.trim())
        .filter(|v| def.kind.validate(def.name, v).is_ok());
    match own {
        Some(v) => (v.to_string(), true),
        None => (
            broker.get(def.broker_key).unwrap_or_default().to_string(),
            false,
        ),
    }
}
