//! DeleteRecords (API 21): moves partitions' log start offsets forward, as `kafka-delete-records`
//! and Kafka Streams (purging its repartition topics) use it.
//!
//! Each partition is handled on its leader: the requested offset (-1 for the high watermark)
//! must not pass the high watermark, and the topic's `cleanup.policy` must include `delete`.
//! The answer waits, up to `timeout_ms`, until the low watermark — the smallest log start
//! offset among the leader and its followers on live brokers — reaches the offset, as Kafka's
//! delayed DeleteRecords does: once answered, no replica that could take over serves a deleted
//! record. The segments below the new start go at the next retention pass.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tokio::time::Instant;

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::OFFSETS_TOPIC;
use crate::partition::{Partition, PartitionError};

const API: &str = "DeleteRecords";

/// Answers DeleteRecords: every partition's log start moves first, then the answer waits for
/// their low watermarks under one deadline.
pub async fn handle(
    broker: &Broker,
    request: DeleteRecordsRequest,
    authz: &Authz<'_>,
) -> DeleteRecordsResponse {
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let started: Vec<_> = request
        .topics
        .into_iter()
        .map(|t| {
            // DELETE on the topic, as Kafka.
            let refused = !authz.topic(AclOperation::Delete, &t.name);
            let partitions: Vec<_> = t
                .partitions
                .iter()
                .map(|p| {
                    let started = if refused {
                        Err(ResponseError::TopicAuthorizationFailed.code())
                    } else {
                        start(broker, &t.name, p.partition_index, p.offset)
                    };
                    (p.partition_index, started)
                })
                .collect();
            (t.name, partitions)
        })
        .collect();
    let mut topics = Vec::with_capacity(started.len());
    for (name, partitions) in started {
        let mut results = Vec::with_capacity(partitions.len());
        for (index, started) in partitions {
            let outcome = match started {
                Ok((partition, offset)) => {
                    // Live: registered and not fenced. A fenced follower that comes back
                    // fetches from the leader first and moves its own start then.
                    let alive = |id: i32| {
                        broker
                            .replicas
                            .image()
                            .brokers
                            .get(&id)
                            .is_some_and(|b| !b.fenced)
                    };
                    let left = deadline.saturating_duration_since(Instant::now());
                    partition
                        .wait_for_low_watermark(offset, alive, left)
                        .await
                        .map_err(|e| e.code())
                }
                Err(code) => Err(code),
            };
            let result = DeleteRecordsPartitionResult::default().with_partition_index(index);
            results.push(match outcome {
                Ok(low_watermark) => result.with_low_watermark(low_watermark),
                Err(code) => {
                    broker.count_error(API, code);
                    result.with_low_watermark(-1).with_error_code(code)
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(results),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Moves one partition's log start on its leader; the partition and the offset to wait for,
/// or the error code to answer.
fn start(
    broker: &Broker,
    topic: &str,
    index: i32,
    offset: i64,
) -> Result<(Arc<Partition>, i64), i16> {
    // Kafka refuses its internal topics: their records belong to the coordinators.
    if topic == OFFSETS_TOPIC {
        return Err(ResponseError::InvalidTopicException.code());
    }
    let exists = broker
        .replicas
        .topic(topic)
        .is_some_and(|t| (0..t.meta.partitions).contains(&index));
    if !exists {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    }
    let Some(partition) = broker.replicas.partition(topic, index) else {
        return Err(ResponseError::NotLeaderOrFollower.code());
    };
    match partition.delete_records_before(offset) {
        Ok(offset) => Ok((partition, offset)),
        Err(e) => {
            if let PartitionError::DeleteOnCompactedTopic { .. } = e {
                tracing::info!(topic, partition = index, error = %e, "DeleteRecords refused");
            }
            Err(e.code())
        }
    }
}
