//! CreateTopics, DeleteTopics and CreatePartitions; each topic checked for CREATE (on the
//! cluster or the topic), DELETE or ALTER when an authorizer is on.

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

use super::authz::Authz;
use super::{config_overrides, text};
use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::controller::acl::AclOperation;
use crate::replica_manager::{AdminError, CreateTopic};

/// Answers CreateTopics (honouring `validate_only`).
pub async fn create_topics(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
    authz: &Authz<'_>,
) -> CreateTopicsResponse {
    let may_create_any = authz.cluster(AclOperation::Create);
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let result = CreatableTopicResult::default().with_name(t.name.clone());
        let configs = config_overrides(t.configs.iter().map(|c| (&c.name, c.value.as_ref())));
        let assignment = (!t.assignments.is_empty()).then(|| {
            t.assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect::<Vec<i32>>())
                .collect::<Vec<_>>()
        });
        // CREATE on the cluster or on the topic, as Kafka.
        let created = if !may_create_any && !authz.topic(AclOperation::Create, &t.name) {
            Err(AdminError::topic_unauthorized(&t.name))
        } else {
            broker
                .replicas
                .create_topic(CreateTopic {
                    name: t.name.to_string(),
                    // -1 on the wire: the broker's default.
                    partitions: (t.num_partitions != -1).then_some(t.num_partitions),
                    replication_factor: (t.replication_factor != -1)
                        .then_some(t.replication_factor),
                    configs,
                    assignment,
                    validate_only: request.validate_only,
                })
                .await
        };
        topics.push(match created {
            // Partition count, replication factor and configs are answered from v5 on.
            Ok(meta) if version < 5 => result.with_topic_id(meta.id),
            Ok(meta) => {
                let configs =
                    topic_config::entries(&broker.replicas.effective_config(), &meta.configs)
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
                broker.count_error("CreateTopics", e.kafka_code());
                result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(text(e.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// Answers DeleteTopics, by name (v0-v5) or by name or id (v6+).
pub async fn delete_topics(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
    authz: &Authz<'_>,
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
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let by_id = name.is_none();
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
        let outcome = match resolved {
            // DELETE on the topic, as Kafka (by id, unauthorized reads as unknown).
            Ok(n) if !authz.topic(AclOperation::Delete, &n) => {
                if by_id {
                    Err(ResponseError::UnknownTopicId.code())
                } else {
                    Ok(Err(AdminError::topic_unauthorized(&n)))
                }
            }
            Ok(n) => Ok(broker.replicas.delete_topic(&n).await),
            Err(code) => Err(code),
        };
        responses.push(match outcome {
            Ok(Ok(meta)) => result
                .with_topic_id(meta.id)
                .with_name(Some(TopicName(text(meta.name)))),
            Ok(Err(e)) => {
                broker.count_error("DeleteTopics", e.kafka_code());
                result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(text(e.to_string())))
            }
            Err(code) => {
                broker.count_error("DeleteTopics", code);
                result.with_error_code(code)
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Answers CreatePartitions (honouring `validate_only`). Explicit assignments are refused:
/// Weir places new partitions itself.
pub async fn create_partitions(
    broker: &Broker,
    request: CreatePartitionsRequest,
    authz: &Authz<'_>,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        // ALTER on the topic, as Kafka.
        let outcome = if !authz.topic(AclOperation::Alter, &t.name) {
            Err(AdminError::topic_unauthorized(&t.name))
        } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err(AdminError::InvalidReplicaAssignment(
                "explicit replica assignments for new partitions are not supported; Weir places them"
                    .to_string(),
            ))
        } else {
            broker
                .replicas
                .create_partitions(&t.name, t.count, request.validate_only)
                .await
        };
        let result = CreatePartitionsTopicResult::default().with_name(t.name);
        results.push(match outcome {
            Ok(()) => result,
            Err(e) => {
                broker.count_error("CreatePartitions", e.kafka_code());
                result
                    .with_error_code(e.kafka_code())
                    .with_error_message(Some(text(e.to_string())))
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
