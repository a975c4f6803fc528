//! ListOffsets: earliest, latest, max-timestamp, and by time through the time index.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::partition::Partition;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Answers ListOffsets.
pub fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
    authz: &Authz<'_>,
) -> ListOffsetsResponse {
    // READ_COMMITTED (1) answers with the last stable offset where READ_UNCOMMITTED answers
    // with the high watermark, and finds no record at or past it.
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            // DESCRIBE on the topic, as Kafka.
            let refused = !authz.topic(AclOperation::Describe, &t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    if refused {
                        let code = ResponseError::TopicAuthorizationFailed.code();
                        broker.count_error("ListOffsets", code);
                        return r.with_error_code(code);
                    }
                    let exists = broker.replicas.topic(&t.name).is_some_and(|topic| {
                        (0..topic.meta.partitions).contains(&p.partition_index)
                    });
                    let partition = broker
                        .replicas
                        .partition(&t.name, p.partition_index)
                        .filter(|_| exists);
                    let Some(partition) = partition else {
                        let code = if exists {
                            ResponseError::NotLeaderOrFollower.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        broker.count_error("ListOffsets", code);
                        return r.with_error_code(code);
                    };
                    if let Err(e) = partition.check_leader_epoch(p.current_leader_epoch) {
                        broker.count_error("ListOffsets", e.code());
                        return r.with_error_code(e.code());
                    }
                    let epoch = partition.leader_epoch();
                    match lookup(&partition, p.timestamp, read_committed) {
                        // The leader epoch field exists from v4 on.
                        Ok(Some((offset, timestamp))) => r
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Ok(None) => r,
                        Err(code) => {
                            broker.count_error("ListOffsets", code);
                            r.with_error_code(code)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for a ListOffsets target, `None` when no record matches.
fn lookup(
    partition: &Partition,
    target: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, i16> {
    let fetchable = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let visible = |found: Option<(i64, i64)>| found.filter(|(offset, _)| *offset < fetchable);
    let by_log = |r: Result<Option<(i64, i64)>, crate::log::LogError>| {
        r.map_err(|e| {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "ListOffsets lookup failed");
            e.kafka_code()
        })
    };
    match target {
        LATEST => Ok(Some((fetchable, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((partition.log_start_offset(), -1))),
        MAX_TIMESTAMP => by_log(partition.max_timestamp()).map(visible),
        LATEST_TIERED => Ok(None),
        t if t >= 0 => by_log(partition.offset_for_timestamp(t)).map(visible),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}
