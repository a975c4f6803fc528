//! ReadShareGroupState (API 84) and WriteShareGroupState (API 85): the broker-to-broker
//! requests a share-partition leader sends to the share coordinator of its state
//! ([`crate::share::coordinator`], [`crate::share::persister`]); InitializeShareGroupState
//! (83), DeleteShareGroupState (86) and ReadShareGroupStateSummary (87), which the
//! share-group admin APIs ([`super::share_group_offsets`]) send to it. Authorized as Kafka does,
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
    DeleteShareGroupStateRequest, DeleteShareGroupStateResponse, InitializeShareGroupStateRequest,
    InitializeShareGroupStateResponse, ReadShareGroupStateRequest, ReadShareGroupStateResponse,
    ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse,
    WriteShareGroupStateRequest, WriteShareGroupStateResponse,
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

/// The key of one partition of a share-state request.
fn key(group_id: &str, topic_id: uuid::Uuid, partition: i32) -> SharePartitionKey {
    SharePartitionKey {
        group_id: group_id.to_string(),
        topic_id,
        partition,
    }
}

/// Answers ReadShareGroupStateSummary (an admin's DescribeShareGroupOffsets reads it): each
/// partition's start offset (-1: no state) and epochs, and from v1 its delivery-complete
/// count (KIP-1226; -1 without state).
pub fn read_summary(
    broker: &Broker,
    request: ReadShareGroupStateSummaryRequest,
) -> ReadShareGroupStateSummaryResponse {
    use kafka_protocol::messages::read_share_group_state_summary_response::{
        PartitionResult, ReadStateSummaryResult,
    };
    let group_id = request.group_id.to_string();
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let answer = PartitionResult::default().with_partition(p.partition);
                    match broker.share_coordinator.read_summary(&key(
                        &group_id,
                        topic.topic_id,
                        p.partition,
                    )) {
                        Err(code) => {
                            broker.count_error("ReadShareGroupStateSummary", code);
                            answer.with_error_code(code)
                        }
                        Ok(s) => answer
                            .with_state_epoch(s.state_epoch)
                            .with_leader_epoch(s.leader_epoch)
                            .with_start_offset(s.start_offset)
                            .with_delivery_complete_count(s.delivery_complete_count),
                    }
                })
                .collect();
            ReadStateSummaryResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    ReadShareGroupStateSummaryResponse::default().with_results(results)
}

/// Answers InitializeShareGroupState: each partition's state replaced by an empty window at
/// the given start offset, in a state epoch above the current one (FENCED_STATE_EPOCH
/// otherwise; a negative start offset is INVALID_REQUEST).
pub async fn initialize(
    broker: &Broker,
    request: InitializeShareGroupStateRequest,
) -> InitializeShareGroupStateResponse {
    use kafka_protocol::messages::initialize_share_group_state_response::{
        InitializeStateResult, PartitionResult,
    };
    let group_id = request.group_id.to_string();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let code = match broker
                .share_coordinator
                .initialize(
                    &key(&group_id, topic.topic_id, p.partition),
                    p.state_epoch,
                    p.start_offset,
                )
                .await
            {
                Ok(()) => 0,
                Err(code) => {
                    broker.count_error("InitializeShareGroupState", code);
                    code
                }
            };
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code),
            );
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    InitializeShareGroupStateResponse::default().with_results(results)
}

/// Answers DeleteShareGroupState: each partition's state tombstoned.
pub async fn delete(
    broker: &Broker,
    request: DeleteShareGroupStateRequest,
) -> DeleteShareGroupStateResponse {
    use kafka_protocol::messages::delete_share_group_state_response::{
        DeleteStateResult, PartitionResult,
    };
    let group_id = request.group_id.to_string();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let code = match broker
                .share_coordinator
                .delete(&key(&group_id, topic.topic_id, p.partition))
                .await
            {
                Ok(()) => 0,
                Err(code) => {
                    broker.count_error("DeleteShareGroupState", code);
                    code
                }
            };
            partitions.push(
                PartitionResult::default()
                    .with_partition(p.partition)
                    .with_error_code(code),
            );
        }
        results.push(
            DeleteStateResult::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    DeleteShareGroupStateResponse::default().with_results(results)
}
