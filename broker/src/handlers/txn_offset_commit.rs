//! TxnOffsetCommit: a transactional producer stores a consumer group's positions as part of
//! its transaction (`sendOffsetsToTransaction`). The offsets are appended to the group's
//! `__consumer_offsets` partition as the producer's transactional batch and stay invisible
//! until the transaction commits; see [`crate::group::txn_commit`].
//!
//! KIP-890, as Kafka's group coordinator does it:
//! - from v5 (transactions version 2) the client sends no AddOffsetsToTxn: the group
//!   coordinator first has the transaction coordinator add the group's `__consumer_offsets`
//!   partition to the transaction (the broker form of AddPartitionsToTxn, as a partition
//!   leader does for Produce v12);
//! - with `transaction.partition.verification.enable`, unless that partition has the
//!   producer's transaction open already, the transaction coordinator must confirm that the
//!   transaction includes it before the offsets are appended, under a guard that a marker of
//!   the producer closes (see [`crate::partition::verification`]). Without it a TxnOffsetCommit
//!   processed after its transaction ended (held up in a paused or partitioned broker, say)
//!   would leave offsets pending for the producer that its *next* transaction's COMMIT
//!   marker would make the group's: a position moved past records whose output was aborted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::group::classic::TopicPartition;
use crate::group::commit::OffsetCommit;
use crate::group::txn_commit::TxnCommitter;
use crate::group::OFFSETS_TOPIC;
use crate::partition::verification::VerificationGuard;
use crate::transactions::verification::RETRIABLE;

/// Answers TxnOffsetCommit once the batch is on every in-sync replica of the group's
/// `__consumer_offsets` partition. Before v3 the request names no member (generation -1, no
/// member id), and the commit is accepted whatever the group's state, as in Kafka.
pub async fn handle(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    version: i16,
    authz: &Authz<'_>,
) -> TxnOffsetCommitResponse {
    // WRITE on the transactional id, READ on the group and on every topic (Weir refuses the
    // whole commit when one topic is not readable; Kafka commits the others).
    let refused = if !authz.transactional_id(AclOperation::Write, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authz.group(AclOperation::Read, &request.group_id) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else if request
        .topics
        .iter()
        .any(|t| !authz.topic(AclOperation::Read, &t.name))
    {
        Some(ResponseError::TopicAuthorizationFailed)
    } else {
        None
    };
    if let Some(error) = refused {
        return respond(broker, request, Err(error.code()));
    }
    let verification = match add_or_verify(broker, &request, version).await {
        Ok(guards) => guards,
        Err(code) => return respond(broker, request, Err(code)),
    };
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

/// The implicit add of a v5 request and the verification of any version (see the module
/// documentation). `Ok(None)`: verification is off; `Ok(Some(guards))`: append under these
/// guards (none needed when the partition has the transaction open); `Err`: the error for
/// every partition.
async fn add_or_verify(
    broker: &Broker,
    request: &TxnOffsetCommitRequest,
    version: i16,
) -> Result<Option<Vec<VerificationGuard>>, i16> {
    let verify = broker
        .replicas
        .effective_config()
        .transaction_partition_verification_enable();
    let add = version >= 5;
    if !verify && !add {
        return Ok(None);
    }
    let index = broker.groups.partition_for(&request.group_id);
    let (producer_id, producer_epoch) = (request.producer_id.0, request.producer_epoch);
    // No partition here: the append answers NOT_COORDINATOR.
    let partition = broker.replicas.partition(OFFSETS_TOPIC, index);
    let guard = match (&partition, verify) {
        (Some(p), true) => p.start_producer_verification(producer_id, producer_epoch),
        _ => None,
    };
    if add || guard.is_some() {
        let codes = broker
            .transactions
            .verify_for_leader(
                request.transactional_id.as_str(),
                producer_id,
                producer_epoch,
                &[(OFFSETS_TOPIC.to_string(), index)],
                add,
            )
            .await;
        let code = codes.first().copied().unwrap_or_default();
        if code != 0 {
            if let (Some(p), Some(g)) = (&partition, &guard) {
                p.discard_verification(g);
            }
            tracing::debug!(
                transactional_id = %request.transactional_id.as_str(),
                group = %request.group_id.as_str(),
                producer_id,
                error_code = code,
                "TxnOffsetCommit outside its transaction refused"
            );
            return Err(failure(code, version));
        }
    }
    Ok(verify.then(|| guard.into_iter().collect()))
}

/// The transaction coordinator's refusal as TxnOffsetCommit answers it: a partition outside
/// the transaction is TRANSACTION_ABORTABLE from v5 and INVALID_TXN_STATE before;
/// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH, as on the produce path; a coordinator that
/// cannot answer now (moving, loading, the last transaction still ending) is
/// COORDINATOR_NOT_AVAILABLE, which clients retry after finding their group coordinator again.
fn failure(code: i16, version: i16) -> i16 {
    if RETRIABLE.iter().any(|e| e.code() == code) {
        ResponseError::CoordinatorNotAvailable.code()
    } else if code == ResponseError::ProducerFenced.code() {
        ResponseError::InvalidProducerEpoch.code()
    } else if code == ResponseError::TransactionAbortable.code() && version < 5 {
        ResponseError::InvalidTxnState.code()
    } else {
        code
    }
}

/// The response: `outcome`'s code for each partition of `request` (its one code for all).
fn respond(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    outcome: Result<Vec<(TopicPartition, i16)>, i16>,
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
