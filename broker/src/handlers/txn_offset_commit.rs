//! TxnOffsetCommit: a transactional producer stores a consumer group's positions as part of
//! its transaction (`sendOffsetsToTransaction`). The offsets are appended to the group's
//! `__consumer_offsets` partition as the producer's transactional batch and stay invisible
//! until the transaction commits; see [`crate::group::txn_commit`].

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::group::commit::OffsetCommit;
use crate::group::txn_commit::TxnCommitter;

/// Answers TxnOffsetCommit once the batch is on every in-sync replica of the group's
/// `__consumer_offsets` partition. Before v3 the request names no member (generation -1, no
/// member id), and the commit is accepted whatever the group's state, as in Kafka.
pub async fn handle(broker: &Broker, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let offsets: Vec<OffsetCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommit {
                partition: (t.name.to_string(), p.partition_index),
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let committer = TxnCommitter {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
    };
    tracing::debug!(
        transactional_id = %request.transactional_id.as_str(),
        group = %request.group_id.as_str(),
        producer_id = committer.producer_id,
        "TxnOffsetCommit"
    );
    let outcome = broker
        .groups
        .commit_txn_offsets(&request.group_id, &committer, offsets)
        .await;
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
                        Ok(results) => results
                            .iter()
                            .find(|((topic, partition), _)| {
                                *partition == p.partition_index && topic.as_str() == t.name.as_str()
                            })
                            .map(|(_, code)| *code)
                            .unwrap_or(0),
                    };
                    broker.count_error("TxnOffsetCommit", code);
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
