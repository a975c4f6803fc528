//! OffsetForLeaderEpoch (API 23, v2–4) for clients: after a leader change a consumer (the Java
//! client, librdkafka) asks the new leader where the epoch of its position ended, and resets or
//! reports truncation when the log it was reading diverged. Answered by the leader only, as
//! Kafka does for every requester but its debugging replica id (-2); followers of Weir use the
//! diverging epoch of Fetch v12+ instead.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

const API: &str = "OffsetForLeaderEpoch";

/// Answers OffsetForLeaderEpoch.
pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    authz: &Authz<'_>,
) -> OffsetForLeaderEpochResponse {
    // A follower (a replica id) needs CLUSTER_ACTION, a client DESCRIBE on each topic.
    let follower = request.replica_id.0 >= 0;
    let cluster_action = follower && authz.cluster(AclOperation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let refused = if follower {
                !cluster_action
            } else {
                !authz.topic(AclOperation::Describe, &t.topic)
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if refused {
                        let code = ResponseError::TopicAuthorizationFailed.code();
                        broker.count_error(API, code);
                        return result.with_error_code(code);
                    }
                    let exists = broker
                        .replicas
                        .topic(&t.topic)
                        .is_some_and(|topic| (0..topic.meta.partitions).contains(&p.partition));
                    let partition = broker
                        .replicas
                        .partition(&t.topic, p.partition)
                        .filter(|_| exists);
                    let Some(partition) = partition else {
                        let code = if exists {
                            ResponseError::NotLeaderOrFollower.code()
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        };
                        broker.count_error(API, code);
                        return result.with_error_code(code);
                    };
                    if let Err(e) = partition.check_leader_epoch(p.current_leader_epoch) {
                        broker.count_error(API, e.code());
                        return result.with_error_code(e.code());
                    }
                    let (epoch, end_offset) = partition.end_offset_for_epoch(p.leader_epoch);
                    result.with_leader_epoch(epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
