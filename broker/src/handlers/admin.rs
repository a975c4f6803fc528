//! CreateTopics, DeleteTopics and CreatePartitions.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use super::{config_overrides, text};
use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::replica_manager::AdminError;

/// Answers CreateTopics (honouring `validate_only`).
pub fn create_topics(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            let created = check_assignments(
                broker,
                &t.assignments
                    .iter()
                    .map(|a| &a.broker_ids[..])
                    .collect::<Vec<_>>(),
            )
            .and_then(|_| {
                let configs =
                    config_overrides(t.configs.iter().map(|c| (&c.name, c.value.as_ref())));
                let (partitions, rf) = if t.assignments.is_empty() {
                    (t.num_partitions, t.replication_factor)
                } else {
                    (
                        t.assignments.len() as i32,
                        t.assignments[0].broker_ids.len() as i16,
                    )
                };
                broker.replicas.create_topic(
                    &t.name,
                    partitions,
                    rf,
                    configs,
                    request.validate_only,
                )
            });
            match created {
                // Partition count, replication factor and configs are answered from v5 on.
                Ok(meta) if version < 5 => result.with_topic_id(meta.id),
                Ok(meta) => {
                    let configs = topic_config::entries(&broker.config, &meta.configs)
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(text(e.def.name))
                                .with_value(Some(text(e.value)))
                                .with_config_source(e.source as i8)
                        })
                        .collect();
                    result
                        .with_topic_id(meta.id)
                        .with_num_partitions(meta.partitions)
                        .with_replication_factor(meta.replication_factor)
                        .with_configs(Some(configs))
                }
                Err(e) => {
                    broker.count_error("CreateTopics", e.code());
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(text(e.to_string())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Manual assignments may only name this broker, once per partition.
fn check_assignments(
    broker: &Broker,
    assignments: &[&[kafka_protocol::messages::BrokerId]],
) -> Result<(), AdminError> {
    for replicas in assignments {
        if replicas.is_empty()
            || replicas.iter().any(|b| **b != broker.node_id())
            || replicas.len() > 1
        {
            return Err(AdminError::InvalidReplicationFactor(format!(
                "replica assignment {:?} must name only broker {}, the single broker of this cluster",
                replicas.iter().map(|b| **b).collect::<Vec<_>>(),
                broker.node_id()
            )));
        }
    }
    Ok(())
}

/// Answers DeleteTopics, by name (v0-v5) or by name or id (v6+).
pub fn delete_topics(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let resolved = match &name {
                Some(n) => Ok(n.to_string()),
                None => broker
                    .replicas
                    .topic_by_id(id)
                    .map(|t| t.meta.name.clone())
                    .ok_or(ResponseError::UnknownTopicId.code()),
            };
            let result = DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(id);
            match resolved.map(|n| broker.replicas.delete_topic(&n)) {
                Ok(Ok(meta)) => result
                    .with_topic_id(meta.id)
                    .with_name(Some(TopicName(text(meta.name)))),
                Ok(Err(e)) => {
                    broker.count_error("DeleteTopics", e.code());
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(text(e.to_string())))
                }
                Err(code) => {
                    broker.count_error("DeleteTopics", code);
                    result.with_error_code(code)
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Answers CreatePartitions (honouring `validate_only`).
pub fn create_partitions(
    broker: &Broker,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let assignments: Vec<&[kafka_protocol::messages::BrokerId]> = t
                .assignments
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(|a| &a.broker_ids[..])
                .collect();
            let outcome = check_assignments(broker, &assignments).and_then(|_| {
                broker
                    .replicas
                    .create_partitions(&t.name, t.count, request.validate_only)
            });
            let result = CreatePartitionsTopicResult::default().with_name(t.name);
            match outcome {
                Ok(()) => result,
                Err(e) => {
                    broker.count_error("CreatePartitions", e.code());
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(text(e.to_string())))
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
