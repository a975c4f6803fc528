//! The share-group offsets admin APIs (KIP-932), as `kafka-share-groups.sh` uses them:
//! DescribeShareGroupOffsets (API 90: each share partition's start offset, -1 when it has no
//! state yet, and from v1 its lag, KIP-1226), AlterShareGroupOffsets (91: a new start offset, only while the group is
//! empty) and DeleteShareGroupOffsets (92: forget topics' share-partition state, only while
//! the group is empty). DeleteGroups of a share group deletes its state too
//! ([`delete_share_group_state`]).
//!
//! The group coordinator knows which share partitions of a group may have state
//! ([`crate::group::share_admin`]); the state itself is at their share coordinators, reached
//! with ReadShareGroupStateSummary, InitializeShareGroupState and DeleteShareGroupState
//! through the share persister, as Kafka's group coordinator does. An alter writes the
//! state in the next state epoch, which fences a share-partition leader still holding the
//! old state.
//!
//! Authorization as Kafka: DESCRIBE on the group and topics to describe; READ on the group
//! and topics to alter; DELETE on the group and READ on the topics to delete.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_share_group_offsets_response, delete_share_group_offsets_response,
    describe_share_group_offsets_response, AlterShareGroupOffsetsRequest,
    AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, TopicName,
};
use uuid::Uuid;

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::consumer::HeartbeatError;
use crate::share::coordinator::share_lag;
use crate::share::state_records::SharePartitionKey;

fn code(e: ResponseError) -> i16 {
    e.code()
}

fn message(e: &HeartbeatError) -> Option<kafka_protocol::protocol::StrBytes> {
    (!e.message.is_empty()).then(|| text(e.message.clone()))
}

fn share_key(group_id: &str, topic_id: Uuid, partition: i32) -> SharePartitionKey {
    SharePartitionKey {
        group_id: group_id.to_string(),
        topic_id,
        partition,
    }
}

/// Answers DescribeShareGroupOffsets; from v1 with each partition's lag ([`share_lag`]; -1
/// when the partition has no state or its end offset is unknown).
pub async fn describe(
    broker: &Broker,
    request: DescribeShareGroupOffsetsRequest,
    authz: &Authz<'_>,
) -> DescribeShareGroupOffsetsResponse {
    use describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponseGroup as Group,
        DescribeShareGroupOffsetsResponsePartition as Partition,
        DescribeShareGroupOffsetsResponseTopic as Topic,
    };
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in request.groups {
        let group_id = group.group_id.to_string();
        let base = Group::default().with_group_id(group.group_id.clone());
        if !authz.group(AclOperation::Describe, &group_id) {
            let c = code(ResponseError::GroupAuthorizationFailed);
            broker.count_error("DescribeShareGroupOffsets", c);
            groups.push(base.with_error_code(c));
            continue;
        }
        let view = match broker.groups.share_state_view(&group_id) {
            Ok(view) => view,
            Err(e) => {
                broker.count_error("DescribeShareGroupOffsets", e.code);
                groups.push(base.with_error_code(e.code).with_error_message(message(&e)));
                continue;
            }
        };
        // The topics asked for, or (null) every topic with share partitions that may have
        // state, leaving out those the caller may not describe.
        let wanted: Vec<(String, Option<Vec<i32>>)> = match group.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.topic_name.to_string(), Some(t.partitions)))
                .collect(),
            None => view
                .partitions
                .iter()
                .filter_map(|(id, (_, partitions))| {
                    let meta = broker.replicas.topic_by_id(*id)?;
                    authz
                        .topic(AclOperation::Describe, &meta.meta.name)
                        .then(|| {
                            (
                                meta.meta.name.clone(),
                                Some(partitions.iter().copied().collect()),
                            )
                        })
                })
                .collect(),
        };
        let mut topics = Vec::with_capacity(wanted.len());
        for (name, partitions) in wanted {
            let partitions = partitions.unwrap_or_default();
            let failed = |c: i16| -> Vec<Partition> {
                partitions
                    .iter()
                    .map(|p| {
                        Partition::default()
                            .with_partition_index(*p)
                            .with_start_offset(-1)
                            .with_leader_epoch(-1)
                            .with_error_code(c)
                    })
                    .collect()
            };
            let topic = Topic::default().with_topic_name(TopicName(text(name.clone())));
            if !authz.topic(AclOperation::Describe, &name) {
                let c = code(ResponseError::TopicAuthorizationFailed);
                broker.count_error("DescribeShareGroupOffsets", c);
                topics.push(topic.with_partitions(failed(c)));
                continue;
            }
            let Some(meta) = broker.replicas.topic(&name) else {
                let c = code(ResponseError::UnknownTopicOrPartition);
                broker.count_error("DescribeShareGroupOffsets", c);
                topics.push(topic.with_partitions(failed(c)));
                continue;
            };
            let topic_id = meta.meta.id;
            let mut answers = Vec::with_capacity(partitions.len());
            for p in partitions {
                let answer = Partition::default().with_partition_index(p);
                if !(0..meta.meta.partitions).contains(&p) {
                    let c = code(ResponseError::UnknownTopicOrPartition);
                    broker.count_error("DescribeShareGroupOffsets", c);
                    answers.push(
                        answer
                            .with_start_offset(-1)
                            .with_leader_epoch(-1)
                            .with_error_code(c),
                    );
                    continue;
                }
                let key = share_key(&group_id, topic_id, p);
                answers.push(match broker.share.persister().read_summary(&key).await {
                    Ok(s) => {
                        let lag = if s.start_offset >= 0 && s.delivery_complete_count >= 0 {
                            let end = broker.share.persister().end_offset(&name, p).await;
                            end.map_or(-1, |end| {
                                share_lag(end, s.start_offset, s.delivery_complete_count)
                            })
                        } else {
                            -1
                        };
                        answer
                            .with_start_offset(s.start_offset)
                            .with_leader_epoch(s.leader_epoch)
                            .with_lag(lag)
                    }
                    Err(c) => {
                        broker.count_error("DescribeShareGroupOffsets", c);
                        answer
                            .with_start_offset(-1)
                            .with_leader_epoch(-1)
                            .with_error_code(c)
                    }
                });
            }
            topics.push(topic.with_topic_id(topic_id).with_partitions(answers));
        }
        groups.push(base.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

/// Answers AlterShareGroupOffsets.
pub async fn alter(
    broker: &Broker,
    request: AlterShareGroupOffsetsRequest,
    authz: &Authz<'_>,
) -> AlterShareGroupOffsetsResponse {
    use alter_share_group_offsets_response::{
        AlterShareGroupOffsetsResponsePartition as Partition,
        AlterShareGroupOffsetsResponseTopic as Topic,
    };
    let group_id = request.group_id.to_string();
    let refused = |c: i16, msg: Option<kafka_protocol::protocol::StrBytes>| {
        broker.count_error("AlterShareGroupOffsets", c);
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(c)
            .with_error_message(msg)
    };
    if !authz.group(AclOperation::Read, &group_id) {
        return refused(code(ResponseError::GroupAuthorizationFailed), None);
    }
    if let Err(e) = broker.groups.share_group_for_alter(&group_id) {
        return refused(e.code, message(&e));
    }
    let mut altered = Vec::new();
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic_name.to_string();
        let answer = Topic::default().with_topic_name(topic.topic_name.clone());
        let failed = |c: i16| -> Vec<Partition> {
            topic
                .partitions
                .iter()
                .map(|p| {
                    Partition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect()
        };
        if !authz.topic(AclOperation::Read, &name) {
            let c = code(ResponseError::TopicAuthorizationFailed);
            broker.count_error("AlterShareGroupOffsets", c);
            responses.push(answer.with_partitions(failed(c)));
            continue;
        }
        let Some(meta) = broker.replicas.topic(&name) else {
            let c = code(ResponseError::UnknownTopicOrPartition);
            broker.count_error("AlterShareGroupOffsets", c);
            responses.push(answer.with_partitions(failed(c)));
            continue;
        };
        let topic_id = meta.meta.id;
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let c = if !(0..meta.meta.partitions).contains(&p.partition_index) {
                code(ResponseError::UnknownTopicOrPartition)
            } else if p.start_offset < 0 {
                code(ResponseError::InvalidRequest)
            } else {
                let key = share_key(&group_id, topic_id, p.partition_index);
                match reset(broker, &key, p.start_offset).await {
                    Ok(()) => {
                        altered.push((topic_id, name.clone(), p.partition_index));
                        0
                    }
                    Err(c) => c,
                }
            };
            broker.count_error("AlterShareGroupOffsets", c);
            partitions.push(
                Partition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(c),
            );
        }
        responses.push(answer.with_topic_id(topic_id).with_partitions(partitions));
    }
    if let Err(e) = broker
        .groups
        .add_share_state_partitions(&group_id, altered)
        .await
    {
        return refused(e.code, message(&e));
    }
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}

/// A share partition's state replaced by an empty window at `start_offset`, in the state
/// epoch after its current one.
async fn reset(broker: &Broker, key: &SharePartitionKey, start_offset: i64) -> Result<(), i16> {
    let persister = broker.share.persister();
    let current = persister.read_summary(key).await?;
    persister
        .initialize(key, current.state_epoch.max(0) + 1, start_offset)
        .await
}

/// Answers DeleteShareGroupOffsets.
pub async fn delete(
    broker: &Broker,
    request: DeleteShareGroupOffsetsRequest,
    authz: &Authz<'_>,
) -> DeleteShareGroupOffsetsResponse {
    use delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as Topic;
    let group_id = request.group_id.to_string();
    let refused = |c: i16, msg: Option<kafka_protocol::protocol::StrBytes>| {
        broker.count_error("DeleteShareGroupOffsets", c);
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(c)
            .with_error_message(msg)
    };
    if !authz.group(AclOperation::Delete, &group_id) {
        return refused(code(ResponseError::GroupAuthorizationFailed), None);
    }
    let view = match broker.groups.share_state_view(&group_id) {
        Ok(view) => view,
        Err(e) => return refused(e.code, message(&e)),
    };
    if !view.empty {
        let msg = format!("The group {group_id} is not empty.");
        return refused(code(ResponseError::NonEmptyGroup), Some(text(msg)));
    }
    let mut deleted = Vec::new();
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic_name.to_string();
        let answer = Topic::default().with_topic_name(topic.topic_name.clone());
        let meta = broker.replicas.topic(&name);
        let (c, msg) = if !authz.topic(AclOperation::Read, &name) {
            (code(ResponseError::TopicAuthorizationFailed), None)
        } else if let Some(partitions) = meta
            .as_ref()
            .and_then(|m| view.partitions.get(&m.meta.id))
            .map(|(_, p)| p.clone())
        {
            let topic_id = meta.as_ref().map(|m| m.meta.id).unwrap_or_default();
            match delete_state(broker, &group_id, topic_id, &partitions).await {
                Ok(()) => {
                    deleted.push(topic_id);
                    (0, None)
                }
                Err(c) => (c, None),
            }
        } else {
            (
                code(ResponseError::UnknownTopicOrPartition),
                Some(format!(
                    "The share group {group_id} has no state for topic {name}."
                )),
            )
        };
        broker.count_error("DeleteShareGroupOffsets", c);
        responses.push(
            answer
                .with_topic_id(meta.map(|m| m.meta.id).unwrap_or_default())
                .with_error_code(c)
                .with_error_message(msg.map(text)),
        );
    }
    if let Err(e) = broker
        .groups
        .remove_share_state_topics(&group_id, &deleted)
        .await
    {
        return refused(e.code, message(&e));
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}

/// Deletes the state of `partitions` of one topic of a share group at their share
/// coordinators; the first error code.
async fn delete_state(
    broker: &Broker,
    group_id: &str,
    topic_id: Uuid,
    partitions: &BTreeSet<i32>,
) -> Result<(), i16> {
    for p in partitions {
        broker
            .share
            .persister()
            .delete(&share_key(group_id, topic_id, *p))
            .await?;
    }
    Ok(())
}

/// DeleteGroups of a share group, before its records go: the group must be empty
/// (NON_EMPTY_GROUP) and the state of every share partition that may have some is deleted at
/// its share coordinator. `None` when `group_id` is not a share group (nothing to do here).
pub async fn delete_share_group_state(broker: &Broker, group_id: &str) -> Option<i16> {
    let view = broker.groups.share_state_view(group_id).ok()?;
    if !view.empty {
        return Some(code(ResponseError::NonEmptyGroup));
    }
    for (topic_id, (_, partitions)) in &view.partitions {
        if let Err(c) = delete_state(broker, group_id, *topic_id, partitions).await {
            return Some(c);
        }
    }
    Some(0)
}
