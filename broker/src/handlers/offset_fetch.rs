//! OffsetFetch: a group's committed offsets, for some partitions or all of them (a null topic
//! list, v2+); from v8 several groups in one request.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use kafka_protocol::error::ResponseError;

use std::collections::BTreeMap;

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::classic::TopicPartition;
use crate::group::commit::FetchedOffset;

/// One partition's answer: committed offset, leader epoch, metadata, error.
struct Fetched {
    partition: TopicPartition,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// Answers OffsetFetch.
pub fn handle(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
    authz: &Authz<'_>,
) -> OffsetFetchResponse {
    // v7+: offsets whose commit waits for replication, or for the marker of its transaction
    // (TxnOffsetCommit), answer UNSTABLE_OFFSET_COMMIT; without it the last committed value.
    let require_stable = version >= 7 && request.require_stable;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|topics| {
                    topics
                        .iter()
                        .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
                        .collect()
                });
                // v9: a consumer-protocol member names itself and its epoch.
                let (error, fetched) = match broker.groups.validate_offset_fetch(
                    &g.group_id,
                    g.member_id.as_deref(),
                    g.member_epoch,
                ) {
                    Err(code) => {
                        broker.count_error("OffsetFetch", code);
                        (code, Vec::new())
                    }
                    Ok(()) => fetch(broker, &g.group_id, wanted, require_stable, authz),
                };
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(error)
                    .with_topics(
                        group_by_topic(fetched)
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(text(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|f| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(f.partition.1)
                                                    .with_committed_offset(f.offset)
                                                    .with_committed_leader_epoch(f.leader_epoch)
                                                    .with_metadata(Some(text(f.metadata)))
                                                    .with_error_code(f.error)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
            .collect()
    });
    let (error, fetched) = fetch(broker, &request.group_id, wanted, require_stable, authz);
    let topics = group_by_topic(fetched)
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|f| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(f.partition.1)
                                .with_committed_offset(f.offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    f.leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(Some(text(f.metadata)))
                                // v1 has no top-level error: it goes into every partition.
                                .with_error_code(if version < 2 && f.error == 0 {
                                    error
                                } else {
                                    f.error
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(if version >= 2 { error } else { 0 })
}

/// The group-level error and one entry per partition.
/// The group's committed offsets of `wanted` (all if `None`). With an authorizer, as Kafka:
/// the group needs DESCRIBE (GROUP_AUTHORIZATION_FAILED), a named topic DESCRIBE
/// (TOPIC_AUTHORIZATION_FAILED), and topics the principal may not describe are left out of
/// an "all topics" answer.
fn fetch(
    broker: &Broker,
    group_id: &str,
    wanted: Option<Vec<TopicPartition>>,
    require_stable: bool,
    authz: &Authz<'_>,
) -> (i16, Vec<Fetched>) {
    let found = if authz.group(AclOperation::Describe, group_id) {
        broker
            .groups
            .fetch_offsets(group_id, wanted.clone(), require_stable)
    } else {
        Err(ResponseError::GroupAuthorizationFailed.code())
    };
    let named = wanted.is_some();
    let mut described: BTreeMap<String, bool> = BTreeMap::new();
    let mut may_describe = |topic: &str| {
        *described
            .entry(topic.to_string())
            .or_insert_with(|| authz.topic(AclOperation::Describe, topic))
    };
    match found {
        Ok(found) => (
            0,
            found
                .into_iter()
                .filter_map(|(partition, value)| {
                    if may_describe(&partition.0) {
                        Some(committed(partition, value))
                    } else if named {
                        Some(Fetched {
                            error: ResponseError::TopicAuthorizationFailed.code(),
                            ..committed(partition, FetchedOffset::None)
                        })
                    } else {
                        None
                    }
                })
                .inspect(|fetched| broker.count_error("OffsetFetch", fetched.error))
                .collect(),
        ),
        Err(error) => {
            broker.count_error("OffsetFetch", error);
            let partitions = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|partition| Fetched {
                    error,
                    ..committed(partition, FetchedOffset::None)
                })
                .collect();
            (error, partitions)
        }
    }
}

fn committed(partition: TopicPartition, value: FetchedOffset) -> Fetched {
    let nothing = |error| Fetched {
        partition: partition.clone(),
        offset: -1,
        leader_epoch: -1,
        metadata: String::new(),
        error,
    };
    match value {
        FetchedOffset::Committed(v) => Fetched {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            ..nothing(0)
        },
        FetchedOffset::None => nothing(0),
        FetchedOffset::Unstable => nothing(ResponseError::UnstableOffsetCommit.code()),
    }
}

/// Entries grouped by topic, topics in first-seen order.
fn group_by_topic(fetched: Vec<Fetched>) -> Vec<(String, Vec<Fetched>)> {
    let mut out: Vec<(String, Vec<Fetched>)> = Vec::new();
    for f in fetched {
        match out.iter_mut().find(|(t, _)| *t == f.partition.0) {
            Some((_, v)) => v.push(f),
            None => out.push((f.partition.0.clone(), vec![f])),
        }
    }
    out
}
