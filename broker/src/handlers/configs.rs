//! DescribeConfigs (topics and this broker), IncrementalAlterConfigs and AlterConfigs (topics).

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

use super::{config_overrides, text};
use crate::broker::Broker;
use crate::config::topic::{self as topic_config, ConfigSource};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

const SET: i8 = 0;
const DELETE: i8 = 1;

/// Answers DescribeConfigs.
pub fn describe(broker: &Broker, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
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
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            match res.resource_type {
                TOPIC => match broker.replicas.topic(&res.resource_name) {
                    Some(t) => result.with_configs(
                        topic_config::entries(&broker.config, &t.meta.configs)
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
                BROKER
                    if res.resource_name.is_empty()
                        || res.resource_name.as_str() == broker.node_id().to_string() =>
                {
                    result.with_configs(
                        broker
                            .config
                            .entries()
                            .filter(|(def, _, _)| wanted(def.name))
                            .map(|(def, value, explicit)| {
                                DescribeConfigsResourceResult::default()
                                    .with_name(text(def.name))
                                    .with_value(Some(text(value)))
                                    .with_read_only(true)
                                    .with_config_source(if explicit {
                                        ConfigSource::StaticBroker as i8
                                    } else {
                                        ConfigSource::Default as i8
                                    })
                                    .with_config_type(def.kind.kafka_type())
                            })
                            .collect(),
                    )
                }
                BROKER => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(text(format!("this is broker {}", broker.node_id())))),
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

/// Answers IncrementalAlterConfigs for topics (SET and DELETE; the list operations APPEND and
/// SUBTRACT apply to no topic setting Weir has).
pub async fn incremental_alter(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        {
            let outcome = alter_one(
                broker,
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
                Ok(()) => response,
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
    resource_type: i8,
    name: &StrBytes,
    changes: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    validate_only: bool,
) -> Result<(), (i16, String)> {
    replace_topic_configs(broker, resource_type, name, validate_only, |current| {
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
pub async fn alter(broker: &Broker, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        {
            let outcome = replace_topic_configs(
                broker,
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
                Ok(()) => response,
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

/// Replaces a topic's overrides with what `build` makes of the current ones.
async fn replace_topic_configs(
    broker: &Broker,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    build: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, (i16, String)>,
) -> Result<(), (i16, String)> {
    if resource_type != TOPIC {
        return Err((
            ResponseError::InvalidRequest.code(),
            "only topic configs can be altered; broker settings are static (file or --set)"
                .to_string(),
        ));
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
