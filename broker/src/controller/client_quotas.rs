//! Client quotas in the metadata image: Kafka's quota entities (a user, a client id, or both,
//! each named or the `<default>`) and their settings (`producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage`, `controller_mutation_rate`), as AlterClientQuotas writes them and `kafka-configs --entity-type
//! users|clients` shows them. The broker's [`crate::quota`] enforces them; this module only
//! stores them and answers which entity's quota applies to a connection, in Kafka's order of
//! precedence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The quota settings Weir enforces, with Kafka's names.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// See [`PRODUCER_BYTE_RATE`].
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The share of one request-handling thread a client may use, in percent (Kafka's request
/// quota: time spent handling its requests per second of wall time, times 100).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";

/// Partitions a client may create, add or delete per second (Kafka's controller mutation
/// quota, KIP-599).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// Connections an IP address may open per second (Kafka's KIP-612 IP quota); the only setting
/// of `ip` entities.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// Checks one change to a quota setting as AlterClientQuotas (and the admin API's
/// AlterUserQuotas) accept it: a setting Weir enforces, and to set, a whole number of bytes per
/// second of at least 1 (byte rates) or a positive number (`request_percentage`,
/// `controller_mutation_rate`). The error says why, for the caller's INVALID_REQUEST /
/// INVALID_ARGUMENT.
pub fn quota_operation(
    key: &str,
    value: f64,
    remove: bool,
) -> Result<(String, Option<QuotaValue>), String> {
    if ![
        PRODUCER_BYTE_RATE,
        CONSUMER_BYTE_RATE,
        REQUEST_PERCENTAGE,
        CONTROLLER_MUTATION_RATE,
        CONNECTION_CREATION_RATE,
    ]
    .contains(&key)
    {
        return Err(format!("unknown quota configuration key `{key}`"));
    }
    if remove {
        return Ok((key.to_string(), None));
    }
    if key == REQUEST_PERCENTAGE
        || key == CONTROLLER_MUTATION_RATE
        || key == CONNECTION_CREATION_RATE
    {
        if !value.is_finite() || value <= 0.0 {
            return Err(format!(
                "quota `{key}` must be a positive number, not {value}"
            ));
        }
        return Ok((key.to_string(), Some(QuotaValue(value))));
    }
    if !value.is_finite() || value < 1.0 || value.fract() != 0.0 {
        return Err(format!(
            "quota `{key}` must be a whole number of bytes per second of at least 1, not {value}"
        ));
    }
    Ok((key.to_string(), Some(QuotaValue(value))))
}

/// One part of a quota entity: a named user or client id, or the default of its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    /// `<default>`: every user (or client id) without a quota of its own.
    Default,
    /// This user (or client id).
    Named(String),
}

/// A quota entity: a user, a client id, or a user's client id; or an IP address (alone);
/// at least one part is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// The user part (the principal's name).
    pub user: Option<EntityName>,
    /// The client id part.
    pub client_id: Option<EntityName>,
    /// An IP address (`connection_creation_rate` only). Absent from records written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// The entities whose quota may apply to `user` with `client_id`, most specific first:
    /// Kafka's order of precedence (user and client id, user and default client id, user,
    /// default user and client id, default user and default client id, default user, client
    /// id, default client id).
    pub fn precedence(user: &str, client_id: &str) -> [QuotaEntity; 8] {
        let user_named = || Some(EntityName::Named(user.to_string()));
        let client_named = || Some(EntityName::Named(client_id.to_string()));
        let entity = |user, client_id| QuotaEntity {
            user,
            client_id,
            ip: None,
        };
        [
            entity(user_named(), client_named()),
            entity(user_named(), Some(EntityName::Default)),
            entity(user_named(), None),
            entity(Some(EntityName::Default), client_named()),
            entity(Some(EntityName::Default), Some(EntityName::Default)),
            entity(Some(EntityName::Default), None),
            entity(None, client_named()),
            entity(None, Some(EntityName::Default)),
        ]
    }
}

/// A quota value (bytes per second for the byte rates). Compared by its bits, so the image
/// stays `Eq`; values are finite and positive (AlterClientQuotas refuses anything else).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// Every entity's quota settings. Serialized as a list of pairs (the keys are not strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)>")]
#[serde(into = "Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)>")]
pub struct ClientQuotas {
    entities: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

impl From<Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)>> for ClientQuotas {
    fn from(pairs: Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)>) -> Self {
        Self {
            entities: pairs.into_iter().collect(),
        }
    }
}

impl From<ClientQuotas> for Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)> {
    fn from(quotas: ClientQuotas) -> Self {
        quotas.entities.into_iter().collect()
    }
}

/// One change to one entity's setting: `Some` sets it, `None` removes it.
pub type QuotaAlteration = (QuotaEntity, Vec<(String, Option<QuotaValue>)>);

impl ClientQuotas {
    /// Whether no quota is set at all (the broker then measures nothing).
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Every entity with its settings.
    pub fn entities(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, QuotaValue>)> {
        self.entities.iter()
    }

    /// The settings of `entity`, if any.
    pub fn get(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, QuotaValue>> {
        self.entities.get(entity)
    }

    /// Applies `alterations`; an entity left without settings is removed.
    pub fn alter(&mut self, alterations: &[QuotaAlteration]) {
        for (entity, ops) in alterations {
            let settings = self.entities.entry(entity.clone()).or_default();
            for (key, value) in ops {
                match value {
                    Some(v) => settings.insert(key.clone(), *v),
                    None => settings.remove(key),
                };
            }
            if settings.is_empty() {
                self.entities.remove(entity);
            }
        }
    }

    /// The `connection_creation_rate` of address `ip`: its own entity's, else the default
    /// ip entity's.
    pub fn ip_rate(&self, ip: &str) -> Option<(QuotaEntity, f64)> {
        if self.entities.is_empty() {
            return None;
        }
        [EntityName::Named(ip.to_string()), EntityName::Default]
            .into_iter()
            .map(|name| QuotaEntity {
                ip: Some(name),
                ..QuotaEntity::default()
            })
            .find_map(|entity| {
                let value = self.entities.get(&entity)?.get(CONNECTION_CREATION_RATE)?.0;
                Some((entity, value))
            })
    }

    /// The quota `key` that applies to `user` with `client_id`, and the entity it was set on:
    /// the first entity in Kafka's order of precedence that sets it.
    pub fn resolve(&self, key: &str, user: &str, client_id: &str) -> Option<(QuotaEntity, f64)> {
        if self.entities.is_empty() {
            return None;
        }
        QuotaEntity::precedence(user, client_id)
            .into_iter()
            .find_map(|entity| {
                let value = self.entities.get(&entity)?.get(key)?.0;
                Some((entity, value))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(s: &str) -> Option<EntityName> {
        Some(EntityName::Named(s.to_string()))
    }

    fn set(entity: QuotaEntity, key: &str, value: f64) -> QuotaAlteration {
        (entity, vec![(key.to_string(), Some(QuotaValue(value)))])
    }

    #[test]
    fn the_most_specific_entity_that_sets_the_key_wins() {
        let mut quotas = ClientQuotas::default();
        let client_default = QuotaEntity {
            user: None,
            client_id: Some(EntityName::Default),
            ..QuotaEntity::default()
        };
        let alice = QuotaEntity {
            user: named("alice"),
            client_id: None,
            ..QuotaEntity::default()
        };
        let alice_app = QuotaEntity {
            user: named("alice"),
            client_id: named("app"),
            ..QuotaEntity::default()
        };
        quotas.alter(&[
            set(client_default.clone(), PRODUCER_BYTE_RATE, 100.0),
            set(alice.clone(), PRODUCER_BYTE_RATE, 200.0),
            set(alice_app.clone(), CONSUMER_BYTE_RATE, 300.0),
        ]);
        // alice/app sets only the consumer rate: the producer rate comes from alice.
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "alice", "app"),
            Some((alice, 200.0))
        );
        assert_eq!(
            quotas.resolve(CONSUMER_BYTE_RATE, "alice", "app"),
            Some((alice_app, 300.0))
        );
        assert_eq!(
            quotas.resolve(PRODUCER_BYTE_RATE, "bob", "other"),
            Some((client_default, 100.0))
        );
        assert_eq!(quotas.resolve(CONSUMER_BYTE_RATE, "bob", "other"), None);
    }

    #[test]
    fn removing_the_last_setting_removes_the_entity_and_it_survives_json() {
        let mut quotas = ClientQuotas::default();
        let entity = QuotaEntity {
            user: Some(EntityName::Default),
            client_id: named("app"),
            ..QuotaEntity::default()
        };
        quotas.alter(&[set(entity.clone(), PRODUCER_BYTE_RATE, 1024.5)]);
        let json = serde_json::to_string(&quotas).unwrap();
        let back: ClientQuotas = serde_json::from_str(&json).unwrap();
        assert_eq!(back, quotas);
        quotas.alter(&[(entity, vec![(PRODUCER_BYTE_RATE.to_string(), None)])]);
        assert!(quotas.is_empty());
    }

    #[test]
    fn ip_rates_resolve_per_address_then_default_and_old_records_still_read() {
        let ip = |name: EntityName| QuotaEntity {
            ip: Some(name),
            ..QuotaEntity::default()
        };
        let mut quotas = ClientQuotas::default();
        quotas.alter(&[
            (
                ip(EntityName::Default),
                vec![(CONNECTION_CREATION_RATE.to_string(), Some(QuotaValue(10.0)))],
            ),
            (
                ip(EntityName::Named("127.0.0.1".into())),
                vec![(CONNECTION_CREATION_RATE.to_string(), Some(QuotaValue(2.0)))],
            ),
        ]);
        assert_eq!(quotas.ip_rate("127.0.0.1").map(|(_, v)| v), Some(2.0));
        assert_eq!(quotas.ip_rate("10.0.0.9").map(|(_, v)| v), Some(10.0));
        // An ip entity is not a user's or client's.
        assert_eq!(
            quotas.resolve(CONNECTION_CREATION_RATE, "alice", "app"),
            None
        );
        // A record written before ip entities existed has no `ip` field.
        let old: ClientQuotas = serde_json::from_str(
            r#"[[{"user":{"Named":"alice"},"client_id":null},{"producer_byte_rate":1024.0}]]"#,
        )
        .unwrap();
        assert_eq!(
            old.resolve(PRODUCER_BYTE_RATE, "alice", "x")
                .map(|(_, v)| v),
            Some(1024.0)
        );
    }
}
