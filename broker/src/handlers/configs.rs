//! DescribeConfigs, IncrementalAlterConfigs and AlterConfigs of topics, brokers and groups:
//! topic overrides, the dynamic broker settings (`crate::config::dynamic`) per broker or for
//! all (the empty broker name), and group configs (`crate::config::group`), all stored in the
//! metadata log.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Authz;
use super::{config_overrides, text};
use crate::broker::Broker;
use crate::config::dynamic::is_dynamic;
use crate::config::group::{group_value, GROUP_CONFIGS};
use crate::config::topic::{self as topic_config, ConfigSource};
use crate::controller::acl::AclOperation;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
/// DescribeConfigs' config sources: a group's own setting, and a broker default.
const DYNAMIC_GROUP_CONFIG: i8 = 8;
const DEFAULT_CONFIG: i8 = 5;

const SET: i8 = 0;
const DELETE: i8 = 1;

/// The refusal of `operation` on a config resource, as Kafka: a topic needs it on the topic
/// (TOPIC_AUTHORIZATION_FAILED), a group on the group (GROUP_AUTHORIZATION_FAILED), a broker
/// on the cluster (CLUSTER_AUTHORIZATION_FAILED).
fn refusal(
    authz: &Authz<'_>,
    resource_type: i8,
    name: &str,
    operation: AclOperation,
) -> Option<(i16, String)> {
    let (allowed, error) = match resource_type {
        TOPIC => (
            authz.topic(operation, name),
            ResponseError::TopicAuthorizationFailed,
        ),
        GROUP => (
            authz.group(operation, name),
            ResponseError::GroupAuthorizationFailed,
        ),
        _ => (
            authz.cluster(operation),
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!allowed).then(|| (error.code(), error.to_string()))
}

/// Answers DescribeConfigs.
pub fn describe(
    broker: &Broker,
    request: DescribeConfigsRequest,
    authz: &Authz<'_>,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|res| {
            let wanted = |name: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
            };
            let result = DescribeConfigsResult::default()
                .with_error_message(None)
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if let Some((code, message)) = refusal(
                authz,
                res.resource_type,
                &res.resource_name,
                AclOperation::DescribeConfigs,
            ) {
                broker.count_error("DescribeConfigs", code);
                return result
                    .with_error_code(code)
                    .with_error_message(Some(text(message)));
            }
            match res.resource_type {
                TOPIC => match broker.replicas.topic(&res.resource_name) {
                    Some(t) => result.with_configs(
                        topic_config::entries(&broker.replicas.effective_config(), &t.meta.configs)
                            .into_iter()
                            .filter(|e| wanted(e.def.name))
                            .map(|e| {
                                let synonyms = if request.include_synonyms {
                                    vec![DescribeConfigsSynonym::default()
                                        .with_name(text(e.def.name))
                                        .with_value(Some(text(e.value.clone())))
                                        .with_source(e.source as i8)]
                                } else {
                                    Vec::new()
                                };
                                DescribeConfigsResourceResult::default()
                                    .with_name(text(e.def.name))
                                    .with_value(Some(text(e.value)))
                                    .with_config_source(e.source as i8)
                                    .with_config_type(e.def.kind.kafka_type())
                                    .with_synonyms(synonyms)
                            })
                            .collect(),
                    ),
                    None => {
                        broker.count_error(
                            "DescribeConfigs",
                            ResponseError::UnknownTopicOrPartition.code(),
                        );
                        result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(text(format!(
                                "topic `{}` does not exist",
                                &*res.resource_name
                            ))))
                    }
                },
                BROKER => match broker_target(broker, &res.resource_name) {
                    Ok(target) => result.with_configs(describe_broker(
                        broker,
                        target,
                        request.include_synonyms,
                        wanted,
                    )),
                    Err((code, message)) => {
                        broker.count_error("DescribeConfigs", code);
                        result
                            .with_error_code(code)
                            .with_error_message(Some(text(message)))
                    }
                },
                GROUP => result.with_configs(describe_group(broker, &res.resource_name, wanted)),
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(format!(
                        "resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Answers IncrementalAlterConfigs for topics and brokers (SET and DELETE; the list operations
/// APPEND and SUBTRACT apply to no setting Weir has). Deleting a setting that is not set does
/// nothing, as in Kafka (`kafka-reassign-partitions --verify` deletes throttles everywhere).
pub async fn incremental_alter(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    authz: &Authz<'_>,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        {
            let outcome = alter_one(
                broker,
                authz,
                res.resource_type,
                &res.resource_name,
                &res.configs,
                request.validate_only,
            )
            .await;
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            responses.push(match outcome {
                // Kafka answers a null message on success.
                Ok(()) => response.with_error_message(None),
                Err((code, message)) => {
                    broker.count_error("IncrementalAlterConfigs", code);
                    response
                        .with_error_code(code)
                        .with_error_message(Some(text(message)))
                }
            });
        }
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies `changes` (SET/DELETE) to a topic's overrides.
async fn alter_one(
    broker: &Broker,
    authz: &Authz<'_>,
    resource_type: i8,
    name: &StrBytes,
    changes: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> Result<(), (i16, String)> {
    replace_configs(broker, authz, resource_type, name, validate_only, |current| {
        let mut configs = current.clone();
        for c in changes {
            let key = c.name.to_string();
            match c.config_operation {
                SET => {
                    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    configs.insert(key, value);
                }
                DELETE => {
                    configs.remove(&key);
                }
                op => {
                    return Err((
                        ResponseError::InvalidConfig.code(),
                        format!("operation {op} on `{key}`: APPEND and SUBTRACT apply only to list settings"),
                    ));
                }
            }
        }
        Ok(configs)
    })
    .await
}

/// Answers the legacy AlterConfigs, which replaces a topic's whole set of overrides (settings
/// left out return to their defaults). rdkafka's `alter_configs` and older tools use it.
pub async fn alter(
    broker: &Broker,
    request: AlterConfigsRequest,
    authz: &Authz<'_>,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        {
            let outcome = replace_configs(
                broker,
                authz,
                res.resource_type,
                &res.resource_name,
                request.validate_only,
                |_| {
                    Ok(config_overrides(
                        res.configs.iter().map(|c| (&c.name, c.value.as_ref())),
                    ))
                },
            )
            .await;
            let response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            responses.push(match outcome {
                // Kafka answers a null message on success.
                Ok(()) => response.with_error_message(None),
                Err((code, message)) => {
                    broker.count_error("AlterConfigs", code);
                    response
                        .with_error_code(code)
                        .with_error_message(Some(text(message)))
                }
            });
        }
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// Replaces a topic's overrides, or a broker's dynamic settings (the cluster-wide ones for the
/// empty name), with what `build` makes of the current ones.
async fn replace_configs(
    broker: &Broker,
    authz: &Authz<'_>,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    build: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>,
) -> Result<(), (i16, String)> {
    if let Some(refused) = refusal(authz, resource_type, name, AclOperation::AlterConfigs) {
        return Err(refused);
    }
    match resource_type {
        TOPIC => {}
        GROUP => {
            let configs = build(&broker.replicas.group_configs(name))?;
            return broker
                .replicas
                .alter_group_configs(name, configs, validate_only)
                .await
                .map_err(|e| (e.kafka_code(), e.to_string()));
        }
        BROKER => {
            let target = broker_target(broker, name)?;
            let configs = build(&broker.replicas.dynamic_broker_configs(target))?;
            return broker
                .replicas
                .alter_broker_configs(target, configs, validate_only)
                .await
                .map_err(|e| (e.kafka_code(), e.to_string()));
        }
        other => {
            return Err((
                ResponseError::InvalidRequest.code(),
                format!("resource type {other} is not supported"),
            ))
        }
    }
    let topic = broker.replicas.topic(name).ok_or((
        ResponseError::UnknownTopicOrPartition.code(),
        format!("topic `{}` does not exist", name.as_str()),
    ))?;
    let configs = build(&topic.meta.configs)?;
    broker
        .replicas
        .alter_topic_configs(name, configs, validate_only)
        .await
        .map_err(|e| (e.kafka_code(), e.to_string()))
}

/// DescribeConfigs of a GROUP resource: every group config with the group's own value
/// (source DYNAMIC_GROUP_CONFIG) or the broker's (DEFAULT_CONFIG). A group need not exist.
fn describe_group(
    broker: &Broker,
    group: &str,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let config = broker.replicas.effective_config();
    let overrides = broker.replicas.group_configs(group);
    GROUP_CONFIGS
        .iter()
        .filter(|d| wanted(d.name))
        .map(|def| {
            let (value, own) = group_value(&config, Some(&overrides), def);
            DescribeConfigsResourceResult::default()
                .with_name(text(def.name))
                .with_value(Some(text(value)))
                .with_config_source(if own {
                    DYNAMIC_GROUP_CONFIG
                } else {
                    DEFAULT_CONFIG
                })
                .with_config_type(def.kind.kafka_type())
        })
        .collect()
}

/// The broker a BROKER resource names: `None` for the empty name (the cluster-wide
/// defaults), else its id.
fn broker_target(broker: &Broker, name: &str) -> Result<Option<i32>, (i16, String)> {
    if name.is_empty() {
        return Ok(None);
    }
    let id: i32 = name.parse().map_err(|_| {
        (
            ResponseError::InvalidRequest.code(),
            format!("`{name}` is not a broker id"),
        )
    })?;
    if id != broker.node_id() && !broker.replicas.image().brokers.contains_key(&id) {
        return Err((
            ResponseError::InvalidRequest.code(),
            format!("broker {id} is not registered"),
        ));
    }
    Ok(Some(id))
}

/// DescribeConfigs of a BROKER resource: the cluster-wide dynamic settings (`None`), or every
/// setting of a broker with where its value comes from. Another broker's static settings are
/// not known here: it is described with this broker's file values and its own dynamic ones,
/// so Kafka's clients (which send a broker's describe to that broker) see exact values.
fn describe_broker(
    broker: &Broker,
    target: Option<i32>,
    include_synonyms: bool,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DescribeConfigsResourceResult> {
    let effective = broker.replicas.effective_config();
    let Some(id) = target else {
        return effective
            .dynamic_defaults()
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(name, value)| {
                let kind = crate::config::defs::broker_key(name).map_or(2, |d| d.kind.kafka_type());
                DescribeConfigsResourceResult::default()
                    .with_name(text(*name))
                    .with_value(Some(text(value.clone())))
                    .with_config_source(ConfigSource::DynamicDefaultBroker as i8)
                    .with_config_type(kind)
            })
            .collect();
    };
    let config = if id == broker.node_id() {
        effective
    } else {
        let image = broker.replicas.image();
        std::sync::Arc::new(
            broker
                .config
                .with_dynamic(&image.broker_configs.default, image.broker_configs.of(id)),
        )
    };
    config
        .entries()
        .filter(|(def, _, _)| wanted(def.name))
        .map(|(def, value, source)| {
            let synonyms = if include_synonyms {
                broker_synonyms(&config, def)
            } else {
                Vec::new()
            };
            let sensitive = def.kind.is_sensitive();
            DescribeConfigsResourceResult::default()
                .with_name(text(def.name))
                .with_value((!sensitive).then(|| text(value)))
                .with_is_sensitive(sensitive)
                .with_read_only(!is_dynamic(def.name))
                .with_config_source(source as i8)
                .with_config_type(def.kind.kafka_type())
                .with_synonyms(synonyms)
        })
        .collect()
}

/// Every layer that sets `def`, the one in force first, as Kafka lists synonyms.
fn broker_synonyms(
    config: &crate::config::BrokerConfig,
    def: &crate::config::defs::KeyDef,
) -> Vec<DescribeConfigsSynonym> {
    let layers = [
        (
            config.dynamic_broker_value(def.name),
            ConfigSource::DynamicBroker,
        ),
        (
            config.dynamic_defaults().get(def.name).map(String::as_str),
            ConfigSource::DynamicDefaultBroker,
        ),
        (config.static_value(def.name), ConfigSource::StaticBroker),
        (Some(def.default), ConfigSource::Default),
    ];
    layers
        .into_iter()
        .filter_map(|(value, source)| {
            value.map(|v| {
                DescribeConfigsSynonym::default()
                    .with_name(text(def.name))
                    .with_value((!def.kind.is_sensitive()).then(|| text(v)))
                    .with_source(source as i8)
            })
        })
        .collect()
}
