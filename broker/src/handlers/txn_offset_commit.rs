//! TxnOffsetCommit: a transactional producer stores a consumer group's positions as part of
//! its transaction (`sendOffsetsToTransaction`). The offsets are appended to the group's
//! `__consumer_offsets` partition as the producer's transactional batch and stay invisible
//! until the transaction commits; see [`crate::group::txn_commit`].
//!
//! From v5 (transactions version 2) the client sends no AddOffsetsToTxn: the group
//! coordinator first has the transaction coordinator add the group's `__consumer_offsets`
//! partition to the transaction (the broker form of AddPartitionsToTxn, as a partition
//! leader does for Produce v12).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use crate::broker::Broker;
use crate::group::commit::OffsetCommit;
use crate::group::txn_commit::TxnCommitter;
use crate::group::OFFSETS_TOPIC;

/// Answers TxnOffsetCommit once the batch is on every in-sync replica of the group's
/// `__consumer_offsets` partition. Before v3 the request names no member (generation -1, no
/// member id), and the commit is accepted whatever the group's state, as in Kafka.
pub async fn handle(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
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
    let added = if version >= 5 {
        add_group_to_transaction(broker, &request).await
    } else {
        Ok(())
    };
    let outcome = match added {
        Ok(()) => {
            broker
                .groups
                .commit_txn_offsets(&request.group_id, &committer, offsets)
                .await
        }
        Err(code) => Err(code),
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

/// The implicit AddOffsetsToTxn of a transactions-version-2 client. The transaction
/// coordinator's retriable answers (moving, loading, the last transaction still ending)
/// become COORDINATOR_NOT_AVAILABLE, which the client retries after finding its group
/// coordinator again; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH, as on the produce path.
async fn add_group_to_transaction(
    broker: &Broker,
    request: &TxnOffsetCommitRequest,
) -> Result<(), i16> {
    use kafka_protocol::error::ResponseError;
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.groups.partition_for(&request.group_id),
    );
    let codes = broker
        .transactions
        .verify_for_leader(
            request.transactional_id.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[partition],
            true,
        )
        .await;
    let code = codes.first().copied().unwrap_or_default();
    let retriable = [
        ResponseError::NetworkException,
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::NotCoordinator,
        ResponseError::ConcurrentTransactions,
    ];
    match code {
        0 => Ok(()),
        c if retriable.iter().any(|e| e.code() == c) => {
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
        c if c == ResponseError::ProducerFenced.code() => {
            Err(ResponseError::InvalidProducerEpoch.code())
        }
        c => Err(c),
    }
}
