//! ReadShareGroupState (API 84) and WriteShareGroupState (API 85): the broker-to-broker
//! requests a share-partition leader sends to the share coordinator of its state
//! ([`crate::share::coordinator`], [`crate::share::persister`]). Authorized as Kafka does,
//! with CLUSTER_ACTION on the cluster (see [`super::authorize`]).
//!
//! A key never written reads back with start offset -1 and no batches.

use kafka_protocol::messages::read_share_group_state_response::{
    PartitionResult as ReadResult, ReadStateResult, StateBatch as ReadBatch,
};
use kafka_protocol::messages::write_share_group_state_response::{
    PartitionResult as WriteResult, WriteStateResult,
};
use kafka_protocol::messages::{
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse,
};

use crate::broker::Broker;
use crate::share::coordinator::StateWrite;
use crate::share::partition::StateBatch;
use crate::share::state_records::SharePartitionKey;

/// Answers ReadShareGroupState.
pub fn read(broker: &Broker, request: ReadShareGroupStateRequest) -> ReadShareGroupStateResponse {
    let group_id = request.group_id.to_string();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let key = SharePartitionKey {
                        group_id: group_id.clone(),
                        topic_id: topic.topic_id,
                        partition: p.partition,
                    };
                    let answer = ReadResult::default().with_partition(p.partition);
                    match broker.share_coordinator.read(&key, p.leader_epoch) {
                        Err(code) => {
                            broker.count_error("ReadShareGroupState", code);
                            answer.with_error_code(code)
                        }
                        Ok(None) => answer.with_start_offset(-1).with_state_epoch(0),
                        Ok(Some(state)) => answer
                            .with_state_epoch(state.state_epoch)
                            .with_start_offset(state.start_offset)
                            .with_state_batches(
                                state
                                    .batches
                                    .iter()
                                    .map(|b| {
                                        ReadBatch::default()
                                            .with_first_offset(b.first_offset)
                                            .with_last_offset(b.last_offset)
                                            .with_delivery_state(b.delivery_state)
                                            .with_delivery_count(b.delivery_count)
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect();
            ReadStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    ReadShareGroupStateResponse::default().with_results(results)
}

/// Answers WriteShareGroupState: each partition's write answered once the coordinator's
/// in-sync replicas hold it.
pub async fn write(
    broker: &Broker,
    request: WriteShareGroupStateRequest,
) -> WriteShareGroupStateResponse {
    let group_id = request.group_id.to_string();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let key = SharePartitionKey {
                group_id: group_id.clone(),
                topic_id: topic.topic_id,
                partition: p.partition,
            };
            let write = StateWrite {
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
                batches: p
                    .state_batches
                    .iter()
                    .map(|b| StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        delivery_state: b.delivery_state,
                        delivery_count: b.delivery_count,
                    })
                    .collect(),
            };
            let code = match broker.share_coordinator.write(&key, write).await {
                Ok(()) => 0,
                Err(code) => {
                    broker.count_error("WriteShareGroupState", code);
                    code
                }
            };
            partitions.push(
                WriteResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code),
            );
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    WriteShareGroupStateResponse::default().with_results(results)
}
