//! DescribeClientQuotas (API 48) and AlterClientQuotas (API 49): client quotas in the metadata
//! log, as `kafka-configs --entity-type users|clients` (and the Admin client's
//! `describeClientQuotas`/`alterClientQuotas`) read and write them.
//!
//! Entities are a `user`, a `client-id`, or both, each named or the default (a null name).
//! Weir enforces `producer_byte_rate`, `consumer_byte_rate`, `request_percentage` and
//! `controller_mutation_rate` ([`crate::quota`]) on user and client-id entities, and
//! `connection_creation_rate` on `ip` entities ([`crate::connection_quotas`]), which stand
//! alone as in Kafka. Each
//! entry is checked as Kafka's controller checks it (empty or repeated entity types, unknown
//! keys, a byte rate that is not a positive integer are INVALID_REQUEST); the valid entries are
//! written in one metadata record and answered once this broker's image shows them.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_client_quotas_response, describe_client_quotas_response, AlterClientQuotasRequest,
    AlterClientQuotasResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::text;
use crate::broker::Broker;
use crate::controller::client_quotas::{
    quota_operation as operation, EntityName, QuotaAlteration, QuotaEntity,
    CONNECTION_CREATION_RATE,
};

const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// Answers DescribeClientQuotas: every entity the filter matches, with its settings.
pub fn describe(
    broker: &Broker,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut filters: Vec<(&str, Filter)> = Vec::new();
    for component in &request.components {
        let kind = component.entity_type.as_str();
        let filter = match (component.match_type, &component._match) {
            (0, Some(name)) => Filter::Exact(name.to_string()),
            // An exact match on a null name is the default, as in Kafka.
            (0, None) | (1, _) => Filter::Default,
            (2, _) => Filter::Any,
            (other, _) => {
                return describe_error(broker, format!("unknown match type {other}"));
            }
        };
        if kind != USER && kind != CLIENT_ID && kind != IP {
            return describe_error(
                broker,
                format!("unknown or unsupported quota entity type `{kind}`"),
            );
        }
        if filters.iter().any(|(k, _)| *k == kind) {
            return describe_error(broker, format!("entity type `{kind}` filtered twice"));
        }
        filters.push((kind, filter));
    }
    let image = broker.replicas.image();
    let entries = image
        .client_quotas
        .entities()
        .filter(|(entity, _)| matches(entity, &filters, request.strict))
        .map(|(entity, settings)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    parts(entity)
                        .into_iter()
                        .map(|(kind, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(text(kind))
                                .with_entity_name(name.map(text))
                        })
                        .collect(),
                )
                .with_values(
                    settings
                        .iter()
                        .map(|(key, value)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(text(key.as_str()))
                                .with_value(value.0)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

/// How one component of a DescribeClientQuotas filter matches an entity's part.
enum Filter {
    Exact(String),
    Default,
    Any,
}

fn matches(entity: &QuotaEntity, filters: &[(&str, Filter)], strict: bool) -> bool {
    let part = |kind: &str| match kind {
        USER => entity.user.as_ref(),
        IP => entity.ip.as_ref(),
        _ => entity.client_id.as_ref(),
    };
    let each = filters
        .iter()
        .all(|(kind, filter)| match (filter, part(kind)) {
            (_, None) => false,
            (Filter::Any, Some(_)) => true,
            (Filter::Default, Some(name)) => *name == EntityName::Default,
            (Filter::Exact(want), Some(name)) => *name == EntityName::Named(want.clone()),
        });
    let parts = usize::from(entity.user.is_some())
        + usize::from(entity.client_id.is_some())
        + usize::from(entity.ip.is_some());
    each && (!strict || parts == filters.len())
}

/// The entity's parts as Kafka names them: (type, name; `None` for the default).
fn parts(entity: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    let name = |n: &EntityName| match n {
        EntityName::Default => None,
        EntityName::Named(s) => Some(s.clone()),
    };
    let mut out = Vec::with_capacity(2);
    if let Some(user) = &entity.user {
        out.push((USER, name(user)));
    }
    if let Some(client) = &entity.client_id {
        out.push((CLIENT_ID, name(client)));
    }
    if let Some(ip) = &entity.ip {
        out.push((IP, name(ip)));
    }
    out
}

fn describe_error(broker: &Broker, message: String) -> DescribeClientQuotasResponse {
    let error = ResponseError::InvalidRequest;
    broker.count_error("DescribeClientQuotas", error.code());
    DescribeClientQuotasResponse::default()
        .with_error_code(error.code())
        .with_error_message(Some(text(message)))
}

/// Answers AlterClientQuotas: each valid entry applied (unless `validate_only`), each
/// invalid one answered with its error.
pub async fn alter(
    broker: &Broker,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut answers = Vec::with_capacity(request.entries.len());
    let mut alterations: Vec<QuotaAlteration> = Vec::new();
    for entry in &request.entries {
        let echoed: Vec<alter_client_quotas_response::EntityData> = entry
            .entity
            .iter()
            .map(|e| {
                alter_client_quotas_response::EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let parsed = entity_of(&entry.entity).and_then(|entity| {
            let ops = entry
                .ops
                .iter()
                .map(|op| {
                    let key = op.key.as_str();
                    // As Kafka: `ip` entities take only the connection rate, and only they do.
                    if entity.ip.is_some() != (key == CONNECTION_CREATION_RATE) {
                        return Err(if entity.ip.is_some() {
                            format!("`{key}` is not a quota of ip entities (only {CONNECTION_CREATION_RATE} is)")
                        } else {
                            format!("{CONNECTION_CREATION_RATE} is a quota of ip entities only")
                        });
                    }
                    operation(key, op.value, op.remove)
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((entity, ops))
        });
        match parsed {
            Ok(alteration) => {
                alterations.push(alteration);
                answers.push((echoed, None));
            }
            Err(message) => answers.push((
                echoed,
                Some((ResponseError::InvalidRequest.code(), message)),
            )),
        }
    }
    if !request.validate_only && !alterations.is_empty() {
        if let Err(e) = broker.replicas.alter_client_quotas(alterations).await {
            let (code, message) = (e.kafka_code(), e.to_string());
            for answer in answers.iter_mut().filter(|a| a.1.is_none()) {
                answer.1 = Some((code, message.clone()));
            }
        }
    }
    let entries = answers
        .into_iter()
        .map(|(entity, failure)| {
            let entry = alter_client_quotas_response::EntryData::default().with_entity(entity);
            match failure {
                None => entry,
                Some((code, message)) => {
                    broker.count_error("AlterClientQuotas", code);
                    entry
                        .with_error_code(code)
                        .with_error_message(Some(text(message)))
                }
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// The entity an AlterClientQuotas entry names, checked as Kafka checks it.
fn entity_of(
    parts: &[kafka_protocol::messages::alter_client_quotas_request::EntityData],
) -> Result<QuotaEntity, String> {
    if parts.is_empty() {
        return Err("a quota entity needs at least one entity type".to_string());
    }
    let mut seen = BTreeSet::new();
    let mut entity = QuotaEntity::default();
    for part in parts {
        let kind = part.entity_type.as_str();
        if !seen.insert(kind) {
            return Err(format!("entity type `{kind}` given twice"));
        }
        let name = match &part.entity_name {
            None => EntityName::Default,
            Some(name) => EntityName::Named(name_of(name)),
        };
        match kind {
            USER => entity.user = Some(name),
            CLIENT_ID => entity.client_id = Some(name),
            IP => {
                // Stored in the address's canonical form, what a connection's peer prints.
                entity.ip = Some(match name {
                    EntityName::Named(address) => EntityName::Named(
                        address
                            .parse::<std::net::IpAddr>()
                            .map_err(|_| format!("`{address}` is not an IP address"))?
                            .to_string(),
                    ),
                    EntityName::Default => EntityName::Default,
                })
            }
            other => return Err(format!("unknown quota entity type `{other}`")),
        }
    }
    if entity.ip.is_some() && (entity.user.is_some() || entity.client_id.is_some()) {
        return Err("an ip entity cannot be combined with a user or client-id".to_string());
    }
    Ok(entity)
}

fn name_of(name: &StrBytes) -> String {
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::client_quotas::{QuotaValue, CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};

    fn entity(user: Option<EntityName>, client_id: Option<EntityName>) -> QuotaEntity {
        QuotaEntity {
            user,
            client_id,
            ip: None,
        }
    }

    #[test]
    fn filters_match_as_kafka_describes_them() {
        let alice = Some(EntityName::Named("alice".into()));
        let default = Some(EntityName::Default);
        let alice_app = entity(alice.clone(), Some(EntityName::Named("app".into())));
        let default_user = entity(default.clone(), None);
        let any_user = [(USER, Filter::Any)];
        assert!(matches(&alice_app, &any_user, false));
        assert!(!matches(&alice_app, &any_user, true), "strict: only users");
        assert!(matches(&default_user, &any_user, true));
        assert!(matches(&default_user, &[(USER, Filter::Default)], true));
        assert!(!matches(&alice_app, &[(USER, Filter::Default)], false));
        assert!(matches(
            &alice_app,
            &[
                (USER, Filter::Exact("alice".into())),
                (CLIENT_ID, Filter::Any)
            ],
            true
        ));
        assert!(!matches(&default_user, &[(CLIENT_ID, Filter::Any)], false));
        assert!(matches(&default_user, &[], false), "no filter: everything");
    }

    #[test]
    fn operations_are_checked_as_kafka_checks_them() {
        assert_eq!(
            operation(PRODUCER_BYTE_RATE, 1024.0, false),
            Ok((PRODUCER_BYTE_RATE.to_string(), Some(QuotaValue(1024.0))))
        );
        assert_eq!(
            operation(CONSUMER_BYTE_RATE, 0.0, true),
            Ok((CONSUMER_BYTE_RATE.to_string(), None))
        );
        // A percentage of one thread need not be whole.
        assert_eq!(
            operation("request_percentage", 12.5, false),
            Ok(("request_percentage".to_string(), Some(QuotaValue(12.5))))
        );
        for (key, value) in [
            (PRODUCER_BYTE_RATE, 0.0),
            (PRODUCER_BYTE_RATE, 10.5),
            (PRODUCER_BYTE_RATE, f64::NAN),
            ("request_percentage", 0.0),
            ("request_percentage", -5.0),
            ("controller_mutation_rate", 0.0),
            ("no_such_key", 1.0),
        ] {
            assert!(operation(key, value, false).is_err(), "{key}={value}");
        }
    }
}
