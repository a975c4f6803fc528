//! AddPartitionsToTxn: a transactional producer adds the partitions it is about to write to
//! its open transaction (v0–3, one transaction); brokers verify that a partition is in a
//! transaction (v4–5, batched, `verify_only`: a partition outside the transaction answers
//! TRANSACTION_ABORTABLE from v5, INVALID_TXN_STATE in v4). Answered by the transaction
//! coordinator.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::transactions::state::TopicPartition;
use crate::transactions::ClientVersion;

/// Answers AddPartitionsToTxn.
pub async fn handle(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    version: i16,
    authz: &Authz<'_>,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        // The client form: WRITE on the transactional id and on every topic, as Kafka (the
        // broker form, v4+, needs CLUSTER_ACTION: `super::authorize`).
        if let Some(results) = refused(&request, authz) {
            return AddPartitionsToTxnResponse::default()
                .with_results_by_topic_v3_and_below(results);
        }
        let results = add(
            broker,
            request.v3_and_below_transactional_id.as_str(),
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            &request.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut by_transaction = Vec::with_capacity(request.transactions.len());
    for t in request.transactions {
        let results = add(
            broker,
            t.transactional_id.as_str(),
            t.producer_id.0,
            t.producer_epoch,
            &t.topics,
            t.verify_only,
            version,
        )
        .await;
        by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id)
                .with_topic_results(results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(by_transaction)
}

/// The answer refusing a client's (v0-3) request: every partition
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED without WRITE on the transactional id, else the
/// partitions of topics without WRITE TOPIC_AUTHORIZATION_FAILED and the others
/// OPERATION_NOT_ATTEMPTED; `None` when all is allowed.
fn refused(
    request: &AddPartitionsToTxnRequest,
    authz: &Authz<'_>,
) -> Option<Vec<AddPartitionsToTxnTopicResult>> {
    let topics = &request.v3_and_below_topics;
    let txn_allowed =
        authz.transactional_id(AclOperation::Write, &request.v3_and_below_transactional_id);
    let denied: Vec<bool> = topics
        .iter()
        .map(|t| !txn_allowed || !authz.topic(AclOperation::Write, &t.name))
        .collect();
    if !denied.contains(&true) {
        return None;
    }
    let code = |denied: bool| match (txn_allowed, denied) {
        (false, _) => ResponseError::TransactionalIdAuthorizationFailed.code(),
        (true, true) => ResponseError::TopicAuthorizationFailed.code(),
        (true, false) => ResponseError::OperationNotAttempted.code(),
    };
    Some(
        topics
            .iter()
            .zip(denied)
            .map(|(t, denied)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(code(denied))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// One transaction's partitions: their error codes, per topic.
async fn add(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.to_string(), p)))
        .collect();
    // Kafka: partitions of unknown topics fail, and then nothing is added (the others answer
    // OPERATION_NOT_ATTEMPTED).
    let unknown = |(topic, p): &TopicPartition| {
        !broker
            .replicas
            .topic(topic)
            .is_some_and(|t| (0..t.meta.partitions).contains(p))
    };
    let codes: Vec<i16> = if partitions.iter().any(unknown) {
        partitions
            .iter()
            .map(|tp| {
                if unknown(tp) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else if verify_only {
        match broker
            .transactions
            .verify_partitions(transactional_id, producer_id, producer_epoch, &partitions)
            .await
        {
            Ok(found) => found
                .into_iter()
                .map(|ok| {
                    // Kafka 4.x: TRANSACTION_ABORTABLE from v5, INVALID_TXN_STATE before.
                    match (ok, version >= 5) {
                        (true, _) => 0,
                        (false, true) => ResponseError::TransactionAbortable.code(),
                        (false, false) => ResponseError::InvalidTxnState.code(),
                    }
                })
                .collect(),
            Err(code) => vec![code; partitions.len()],
        }
    } else {
        let code = broker
            .transactions
            .add_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                &partitions,
                // The broker form (v4+) adds for a transactions-version-2 client.
                if version >= 4 {
                    ClientVersion::V2
                } else {
                    ClientVersion::V1
                },
            )
            .await;
        vec![code; partitions.len()]
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|&p| {
                    let code = super::fenced_for(codes.next().unwrap_or_default(), version, 2);
                    broker.count_error("AddPartitionsToTxn", code);
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(results)
        })
        .collect()
}
