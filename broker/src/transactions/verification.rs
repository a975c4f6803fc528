//! The partition leader's side of KIP-890: asking a transactional id's coordinator whether
//! its open transaction includes some partitions (AddPartitionsToTxn v4+, the broker form,
//! `verify_only`), as Kafka's `AddPartitionsToTxnManager` does. The coordinator is found in
//! the metadata image (the leader of the id's `__transaction_state` partition); when that is
//! this broker the question is answered in memory, otherwise over the Kafka protocol, on
//! connections kept per peer and reused.
//!
//! Nothing of the answer is kept here: the partition holds a guard while the question is
//! out (see [`crate::partition::verification`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use super::state::{ClientVersion, TopicPartition};

/// How long one question to a remote coordinator may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The AddPartitionsToTxn version of the broker form this broker sends (Kafka 4.x's: a
/// partition outside the transaction answers TRANSACTION_ABORTABLE).
const BROKER_FORM_VERSION: i16 = 5;
/// Idle connections kept per peer broker.
pub(super) const IDLE_CONNECTIONS_PER_PEER: usize = 4;

impl TransactionCoordinator {
    /// Asks the coordinator of `transactional_id` whether the producer's open transaction
    /// includes each of `partitions` (`verify_only`); the error code of each, in order (0:
    /// it does; TRANSACTION_ABORTABLE: it does not; else why the question failed). With
    /// `add`, the coordinator adds them instead (a transactions-version-2 client's implicit
    /// add: Produce v12+, TxnOffsetCommit v5).
    pub async fn verify_for_leader(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        add: bool,
    ) -> Vec<i16> {
        let state_partition = self.partition_for(transactional_id);
        let image = self.replicas.image();
        let leader = image
            .partition(TRANSACTION_STATE_TOPIC, state_partition)
            .map(|p| p.leader)
            .filter(|&l| l >= 0);
        let Some(leader) = leader else {
            return vec![ResponseError::CoordinatorNotAvailable.code(); partitions.len()];
        };
        if leader == self.replicas.local_id() && add {
            let code = self
                .add_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions,
                    ClientVersion::V2,
                )
                .await;
            return vec![code; partitions.len()];
        }
        if leader == self.replicas.local_id() {
            return match self
                .verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
                .await
            {
                Ok(found) => found
                    .into_iter()
                    .map(|ok| {
                        if ok {
                            0
                        } else {
                            ResponseError::TransactionAbortable.code()
                        }
                    })
                    .collect(),
                Err(code) => vec![code; partitions.len()],
            };
        }
        let Some(address) = image
            .brokers
            .get(&leader)
            .filter(|b| !b.fenced)
            .map(|b| format!("{}:{}", b.host, b.port))
        else {
            return vec![ResponseError::CoordinatorNotAvailable.code(); partitions.len()];
        };
        let request = broker_form_request(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            !add,
        );
        let response = match self
            .peers
            .request(&address, &request, BROKER_FORM_VERSION, REQUEST_TIMEOUT)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(transactional_id, address, error = %e, "transaction verification failed");
                return vec![ResponseError::NetworkException.code(); partitions.len()];
            }
        };
        if response.error_code != 0 {
            return vec![response.error_code; partitions.len()];
        }
        let mut codes: HashMap<TopicPartition, i16> = HashMap::new();
        for result in response.results_by_transaction {
            for topic in result.topic_results {
                for p in topic.results_by_partition {
                    codes.insert(
                        (topic.name.to_string(), p.partition_index),
                        p.partition_error_code,
                    );
                }
            }
        }
        partitions
            .iter()
            .map(|tp| {
                codes
                    .get(tp)
                    .copied()
                    .unwrap_or(ResponseError::UnknownServerError.code())
            })
            .collect()
    }
}

/// The coordinator's answers to a verification that mean "ask again" (it is moving, loading,
/// ending the transaction, or could not be reached): each caller turns them into the error
/// its own clients retry.
pub const RETRIABLE: [ResponseError; 5] = [
    ResponseError::NetworkException,
    ResponseError::CoordinatorLoadInProgress,
    ResponseError::CoordinatorNotAvailable,
    ResponseError::NotCoordinator,
    ResponseError::ConcurrentTransactions,
];

/// AddPartitionsToTxn in the broker form (v4+) for one transaction.
fn broker_form_request(
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TopicPartition],
    verify_only: bool,
) -> AddPartitionsToTxnRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(producer_id.into())
            .with_producer_epoch(producer_epoch)
            .with_verify_only(verify_only)
            .with_topics(topics),
    ])
}
