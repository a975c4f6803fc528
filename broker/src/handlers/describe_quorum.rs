//! DescribeQuorum (API 55): the metadata quorum for `kafka-metadata-quorum describe --status`
//! and `--replication`. Any broker answers, with the active controller's view (asked over the
//! internal RPC when this broker is not it, as a Kafka broker forwards the request to the
//! active controller); see [`crate::controller::quorum`] for what each field means in Raft's
//! terms.
//!
//! Only `__cluster_metadata` partition 0 exists: anything else gets UNKNOWN_TOPIC_OR_PARTITION,
//! and no reachable active controller NOT_LEADER_OR_FOLLOWER, both per partition as Kafka
//! answers. v2 adds directory ids and the members' endpoints (`nodes`): every Weir broker
//! serves the Kafka protocol on its client listener, which is where a Kafka client reaches the
//! quorum, so that is the endpoint listed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::text;
use crate::broker::Broker;
use crate::controller::quorum::{QuorumStatus, ReplicaProgress};
use crate::controller::METADATA_DIR;

/// The listener name the members' endpoints are listed under.
const LISTENER_NAME: &str = "PLAINTEXT";

/// Answers DescribeQuorum.
pub async fn handle(
    broker: &Broker,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let asks_for_metadata = request.topics.len() == 1
        && *request.topics[0].topic_name == *METADATA_DIR
        && request.topics[0].partitions.len() == 1
        && request.topics[0].partitions[0].partition_index == 0;
    if !asks_for_metadata {
        return partition_error(
            broker,
            &request,
            version,
            ResponseError::UnknownTopicOrPartition,
            "DescribeQuorum is only for __cluster_metadata partition 0",
        );
    }
    let status = match broker.replicas.controller() {
        Some(controller) => controller.describe_quorum().await,
        None => Err(crate::controller::ControllerError::Unavailable(
            "this broker has no controller".into(),
        )),
    };
    match status {
        Ok(status) => answer(broker, &status, version),
        Err(e) => partition_error(
            broker,
            &request,
            version,
            ResponseError::NotLeaderOrFollower,
            &format!("no active controller answered: {e}"),
        ),
    }
}

fn replica(r: &ReplicaProgress, version: i16) -> ReplicaState {
    let state = ReplicaState::default()
        .with_replica_id(BrokerId(r.node_id))
        .with_log_end_offset(r.log_end_offset);
    let state = if version >= 1 {
        state
            .with_last_fetch_timestamp(r.last_fetch_ms)
            .with_last_caught_up_timestamp(r.last_caught_up_ms)
    } else {
        state
    };
    match (version >= 2, r.directory_id) {
        (true, Some(directory_id)) => state.with_replica_directory_id(directory_id),
        _ => state,
    }
}

fn answer(broker: &Broker, status: &QuorumStatus, version: i16) -> DescribeQuorumResponse {
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader_id))
        .with_leader_epoch(i32::try_from(status.leader_epoch).unwrap_or(i32::MAX))
        .with_high_watermark(status.high_watermark)
        .with_current_voters(status.voters.iter().map(|r| replica(r, version)).collect())
        .with_observers(
            status
                .observers
                .iter()
                .map(|r| replica(r, version))
                .collect(),
        );
    let response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(text(METADATA_DIR)))
        .with_partitions(vec![partition])]);
    if version < 2 {
        return response;
    }
    let image = broker.replicas.image();
    let nodes = status
        .voters
        .iter()
        .chain(&status.observers)
        .filter_map(|r| image.brokers.get(&r.node_id))
        .map(|b| {
            Node::default()
                .with_node_id(BrokerId(b.id))
                .with_listeners(vec![Listener::default()
                    .with_name(text(LISTENER_NAME))
                    .with_host(text(b.host.clone()))
                    .with_port(b.port)])
        })
        .collect();
    response.with_nodes(nodes)
}

fn partition_error(
    broker: &Broker,
    request: &DescribeQuorumRequest,
    version: i16,
    error: ResponseError,
    message: &str,
) -> DescribeQuorumResponse {
    broker.count_error("DescribeQuorum", error.code());
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let data = PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code());
                            if version >= 2 {
                                data.with_error_message(Some(text(message)))
                            } else {
                                data
                            }
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}
