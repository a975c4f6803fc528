//! TxnOffsetCommit: a transactional producer stores a consumer group's positions as part of
//! its transaction (`sendOffsetsToTransaction`). The offsets are appended to the group's
//! `__consumer_offsets` partition as the producer's transactional batch and stay invisible
//! until the transaction commits; see [`crate::group::txn_commit`].

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use kafka_protocol::error::ResponseError;

use crate::broker::Broker;
use crate::group::commit::OffsetCommit;
use crate::group::txn_commit::TxnCommitter;
use crate::group::OFFSETS_TOPIC;
use crate::partition::verification::VerificationGuard;

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
    let verification = match verify(broker, &request).await {
        Ok(guards) => guards,
        Err(code) => return answer_all(broker, request, code),
    };
    let committer = TxnCommitter {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        verification,
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
    respond(broker, request, outcome)
}

/// KIP-890 for TxnOffsetCommit, as Kafka's group coordinator does it: unless the group's
/// `__consumer_offsets` partition has the producer's transaction open already, the
/// transaction coordinator must confirm that the transaction includes that partition
/// (AddOffsetsToTxn added it) before the offsets are appended. Without it a TxnOffsetCommit
/// processed after its transaction ended (held up in a paused or partitioned broker, say)
/// would leave offsets pending for the producer that its *next* transaction's COMMIT marker
/// would then commit: a group's position moved past records whose output was aborted.
/// `Ok(None)`: verification is off; `Ok(Some(guards))`: append under these guards; `Err`:
/// the error for every partition.
async fn verify(
    broker: &Broker,
    request: &TxnOffsetCommitRequest,
) -> Result<Option<Vec<VerificationGuard>>, i16> {
    let enabled = broker
        .replicas
        .effective_config()
        .transaction_partition_verification_enable();
    if !enabled {
        return Ok(None);
    }
    let index = broker.groups.partition_for(&request.group_id);
    let Some(partition) = broker.replicas.partition(OFFSETS_TOPIC, index) else {
        // The append answers NOT_COORDINATOR.
        return Ok(Some(Vec::new()));
    };
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    let Some(guard) = partition.start_producer_verification(producer_id, producer_epoch) else {
        return Ok(Some(Vec::new()));
    };
    let codes = broker
        .transactions
        .verify_for_leader(
            request.transactional_id.as_str(),
            producer_id,
            producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), index)],
        )
        .await;
    match codes.first().copied().unwrap_or(0) {
        0 => Ok(Some(vec![guard])),
        code => {
            partition.discard_verification(&guard);
            tracing::debug!(
                transactional_id = %request.transactional_id.as_str(),
                group = %request.group_id.as_str(),
                producer_id,
                error_code = code,
                "TxnOffsetCommit outside its transaction refused"
            );
            Err(verification_failure(code))
        }
    }
}

/// A failed verification as TxnOffsetCommit answers it: a partition outside the transaction
/// is INVALID_TXN_STATE; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v5; a coordinator
/// that cannot answer now is COORDINATOR_NOT_AVAILABLE, which clients retry.
fn verification_failure(code: i16) -> i16 {
    if code == ResponseError::TransactionAbortable.code() {
        ResponseError::InvalidTxnState.code()
    } else if code == ResponseError::ProducerFenced.code() {
        ResponseError::InvalidProducerEpoch.code()
    } else if [
        ResponseError::NetworkException.code(),
        ResponseError::CoordinatorLoadInProgress.code(),
        ResponseError::NotCoordinator.code(),
        ResponseError::ConcurrentTransactions.code(),
    ]
    .contains(&code)
    {
        ResponseError::CoordinatorNotAvailable.code()
    } else {
        code
    }
}

/// Every partition of `request` answered with `code`.
fn answer_all(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    code: i16,
) -> TxnOffsetCommitResponse {
    respond(broker, request, Err(code))
}

fn respond(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    outcome: Result<Vec<((String, i32), i16)>, i16>,
) -> TxnOffsetCommitResponse {
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
