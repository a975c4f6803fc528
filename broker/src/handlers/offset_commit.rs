//! OffsetCommit: store a group's consumed positions in `__consumer_offsets`. Members commit
//! with their generation and member id; a client outside group management (generation -1,
//! no member id) may commit into a group without members.

use std::collections::HashSet;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use kafka_protocol::error::ResponseError;

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::commit::OffsetCommit;

/// Answers OffsetCommit once the commit is on every in-sync replica of the group's
/// `__consumer_offsets` partition. `retention_time_ms` (v2-v4) is ignored, as in Kafka 4:
/// `offsets.retention.minutes` decides.
///
/// A consumer-protocol (KIP-848) member sends its member epoch as the generation; it must use
/// v9+ (UNSUPPORTED_VERSION otherwise, as Kafka answers), and an epoch other than its
/// current one is STALE_MEMBER_EPOCH.
pub async fn handle(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
    authz: &Authz<'_>,
) -> OffsetCommitResponse {
    // As Kafka: READ on the group (every partition refused otherwise) and on each topic.
    let group_denied = !authz.group(AclOperation::Read, &request.group_id);
    let topic_denied: HashSet<String> = request
        .topics
        .iter()
        .filter(|t| !authz.topic(AclOperation::Read, &t.name))
        .map(|t| t.name.to_string())
        .collect();
    let offsets: Vec<OffsetCommit> = request
        .topics
        .iter()
        .filter(|t| !topic_denied.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                partition: (t.name.to_string(), p.partition_index),
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let too_old = version < 9
        && !request.member_id.is_empty()
        && broker
            .groups
            .is_consumer_protocol_member(&request.group_id, &request.member_id);
    let outcome = if group_denied {
        Err(ResponseError::GroupAuthorizationFailed.code())
    } else if too_old {
        Err(ResponseError::UnsupportedVersion.code())
    } else {
        broker
            .groups
            .commit_offsets(
                &request.group_id,
                request.generation_id_or_member_epoch,
                &request.member_id,
                request.group_instance_id.as_deref(),
                offsets,
            )
            .await
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = match &outcome {
                        Err(code) => *code,
                        Ok(_) if topic_denied.contains(t.name.as_str()) => {
                            ResponseError::TopicAuthorizationFailed.code()
                        }
                        Ok(results) => results
                            .iter()
                            .find(|((topic, partition), _)| {
                                *partition == p.partition_index && topic.as_str() == t.name.as_str()
                            })
                            .map(|(_, code)| *code)
                            .unwrap_or(0),
                    };
                    broker.count_error("OffsetCommit", code);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
