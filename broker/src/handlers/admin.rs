//! CreateTopics, DeleteTopics and CreatePartitions; each topic checked for CREATE (on the
//! cluster or the topic), DELETE or ALTER when an authorizer is on, and against the client's
//! `controller_mutation_rate` quota when one applies ([`crate::quota::MutationQuota`]: the
//! partitions created, added or deleted are counted; a topic the quota does not admit is
//! answered THROTTLING_QUOTA_EXCEEDED, and the response carries the throttle time).

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
use crate::quota::MutationQuota;
use crate::replica_manager::{AdminError, CreateTopic};

/// THROTTLING_QUOTA_EXCEEDED's code and Kafka's message for it.
fn throttled() -> (i16, kafka_protocol::protocol::StrBytes) {
    (
        ResponseError::ThrottlingQuotaExceeded.code(),
        text("The throttling quota has been exceeded."),
    )
}

/// Whether `quota` (if any) admits one more topic's mutation now.
fn admitted(quota: &mut Option<MutationQuota<'_>>) -> bool {
    quota
        .as_mut()
        .is_none_or(|q| q.admit(std::time::Instant::now()).is_ok())
}

/// Records `partitions` mutated against `quota` (if any).
fn record(quota: &mut Option<MutationQuota<'_>>, partitions: i32) {
    if let Some(q) = quota.as_mut() {
        q.record(partitions, std::time::Instant::now());
    }
}

/// The response's throttle time, in milliseconds, once `quota` (if any) is done.
fn throttle_ms(quota: Option<MutationQuota<'_>>) -> i32 {
    quota.map_or(0, |q| q.finish().as_millis().min(i32::MAX as u128) as i32)
}

/// Answers CreateTopics (honouring `validate_only`).
pub async fn create_topics(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
    authz: &Authz<'_>,
    mut quota: Option<MutationQuota<'_>>,
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
        } else if !admitted(&mut quota) {
            let (code, message) = throttled();
            broker.count_error("CreateTopics", code);
            topics.push(
                result
                    .with_error_code(code)
                    .with_error_message(Some(message))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            );
            continue;
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
        if let (Ok(meta), false) = (&created, request.validate_only) {
            record(&mut quota, meta.partitions);
        }
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
    CreateTopicsResponse::default()
        .with_topics(topics)
        .with_throttle_time_ms(throttle_ms(quota))
}

/// Answers DeleteTopics, by name (v0-v5) or by name or id (v6+).
pub async fn delete_topics(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
    authz: &Authz<'_>,
    mut quota: Option<MutationQuota<'_>>,
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
            Ok(_) if !admitted(&mut quota) => Err(throttled().0),
            Ok(n) => Ok(broker.replicas.delete_topic(&n).await),
            Err(code) => Err(code),
        };
        if let Ok(Ok(meta)) = &outcome {
            record(&mut quota, meta.partitions);
        }
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
                let message = (code == throttled().0).then(|| throttled().1);
                result.with_error_code(code).with_error_message(message)
            }
        });
    }
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_ms(quota))
}

/// Answers CreatePartitions (honouring `validate_only`). Explicit assignments are refused:
/// Weir places new partitions itself.
pub async fn create_partitions(
    broker: &Broker,
    request: CreatePartitionsRequest,
    authz: &Authz<'_>,
    mut quota: Option<MutationQuota<'_>>,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let before = broker
            .replicas
            .topic(&t.name)
            .map(|topic| topic.meta.partitions);
        // ALTER on the topic, as Kafka.
        let outcome = if !authz.topic(AclOperation::Alter, &t.name) {
            Err(AdminError::topic_unauthorized(&t.name))
        } else if !admitted(&mut quota) {
            let (code, message) = throttled();
            broker.count_error("CreatePartitions", code);
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code)
                    .with_error_message(Some(message)),
            );
            continue;
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
        if let (Ok(()), Some(before), false) = (&outcome, before, request.validate_only) {
            record(&mut quota, t.count - before);
        }
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
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(throttle_ms(quota))
}
