//! DescribeProducers (API 61): the active producers of partitions this broker leads, with
//! their epochs, last sequences and open transactions (`kafka-transactions
//! describe-producers`; operators use it to find a hanging transaction to abort).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Answers DescribeProducers.
pub fn handle(
    broker: &Broker,
    request: DescribeProducersRequest,
    authz: &Authz<'_>,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    // READ on the topic, as Kafka.
                    if authz.topic(AclOperation::Read, &t.name) {
                        describe(broker, t.name.as_str(), index)
                    } else {
                        let error = ResponseError::TopicAuthorizationFailed;
                        broker.count_error("DescribeProducers", error.code());
                        PartitionResponse::default()
                            .with_partition_index(index)
                            .with_error_code(error.code())
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn describe(broker: &Broker, topic: &str, index: i32) -> PartitionResponse {
    let response = PartitionResponse::default().with_partition_index(index);
    let failed = |error: ResponseError, message: &str| {
        broker.count_error("DescribeProducers", error.code());
        response
            .clone()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)))
    };
    let exists = broker
        .replicas
        .topic(topic)
        .is_some_and(|t| (0..t.meta.partitions).contains(&index));
    if !exists {
        return failed(ResponseError::UnknownTopicOrPartition, "no such partition");
    }
    let partition = broker.replicas.partition(topic, index);
    let Some(partition) = partition.filter(|p| p.is_leader()) else {
        return failed(
            ResponseError::NotLeaderOrFollower,
            "this broker does not lead the partition",
        );
    };
    let log = partition.log_lock().read();
    let mut producers: Vec<ProducerState> = log
        .producer_state()
        .producers()
        .map(|(id, entry)| {
            let last = entry.batches().last();
            ProducerState::default()
                .with_producer_id(id.into())
                .with_producer_epoch(i32::from(entry.epoch))
                .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                .with_last_timestamp(last.map_or(-1, |b| b.timestamp))
                .with_coordinator_epoch(entry.coordinator_epoch)
                .with_current_txn_start_offset(entry.current_txn_first_offset.unwrap_or(-1))
        })
        .collect();
    producers.sort_by_key(|p| p.producer_id.0);
    response.with_active_producers(producers)
}
