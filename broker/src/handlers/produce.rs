//! Produce: append each partition's record batches to its log as leader.
//!
//! `acks=1` answers once the leader's append returned. `acks=-1` (all) first requires the ISR
//! to hold `min.insync.replicas` members (NOT_ENOUGH_REPLICAS otherwise, nothing appended),
//! then waits until the high watermark covers the appended records, up to the request's
//! `timeout_ms` (REQUEST_TIMED_OUT; the records may still be replicated later, as in Kafka).
//! A broker that does not lead the partition answers NOT_LEADER_OR_FOLLOWER, so the client
//! refreshes its metadata.
//!
//! With `transaction.partition.verification.enable` (KIP-890), a transactional batch that
//! would open a transaction in its partition is appended only once the transaction
//! coordinator confirmed that the transaction includes the partition; otherwise the
//! partition answers TRANSACTION_ABORTABLE (INVALID_TXN_STATE before Produce v11) and
//! appends nothing (see
//! [`crate::partition::verification`]). A batch continuing a transaction the partition has
//! open needs no question.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::controller::acl::AclOperation;
use crate::group::OFFSETS_TOPIC;
use crate::partition::verification::VerificationGuard;
use crate::partition::{Partition, PartitionError};
use crate::replica_manager::TopicState;
use crate::transactions::TRANSACTION_VERSION;

type Failure = (i16, Option<String>);

struct Appended {
    base_offset: i64,
    /// What `acks=all` waits for.
    appended: crate::log::Appended,
    log_append_time: i64,
    log_start_offset: i64,
    min_isr: usize,
    partition: Arc<Partition>,
}

/// A partition this broker leads, with the request's records for it, not yet appended.
struct Target {
    topic: String,
    index: i32,
    partition: Arc<Partition>,
    min_isr: usize,
    /// `min_isr` for `acks=all`, checked before appending.
    required_isr: Option<usize>,
    records: bytes::Bytes,
    /// Whether transactional batches are verified (KIP-890).
    verify: bool,
    /// Verifications to pass before appending; empty when none is needed.
    guards: Vec<VerificationGuard>,
}

/// Appends the request's batches; `None` for `acks=0`, which gets no response.
pub async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
    authz: &Authz<'_>,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    // As Kafka: a transactional producer needs WRITE on its transactional id (every
    // partition refused otherwise), and every topic needs WRITE.
    let transactional_denied = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !authz.transactional_id(AclOperation::Write, id));
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let verify = broker
        .replicas
        .effective_config()
        .transaction_partition_verification_enable();
    // First the partitions this broker leads, then the transaction verifications (one
    // question per producer), then every append, then the acks=all waits, so partitions
    // replicate in parallel.
    let mut staged = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        // Produce v13 names topics by id only.
        let topic = if version >= 13 {
            broker.replicas.topic_by_id(topic_data.topic_id)
        } else {
            broker.replicas.topic(&topic_data.name)
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let topic_denied = {
            let name = match &topic {
                Some(t) => t.meta.name.as_str(),
                None => topic_data.name.as_str(),
            };
            !authz.topic(AclOperation::Write, name)
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let target = match &topic {
                _ if transactional_denied => Err((
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    None,
                )),
                _ if topic_denied => Err((ResponseError::TopicAuthorizationFailed.code(), None)),
                _ if !matches!(acks, -1..=1) => {
                    Err((ResponseError::InvalidRequiredAcks.code(), None))
                }
                None => Err((unknown, None)),
                Some(t) => resolve(broker, t, pd.index, pd.records, acks, verify),
            };
            partitions.push((pd.index, target));
        }
        staged.push((topic_data.name, topic_data.topic_id, partitions));
    }
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    let targets = staged
        .iter()
        .flat_map(|(_, _, partitions)| partitions.iter())
        .filter_map(|(_, target)| target.as_ref().ok());
    // Produce v12 is a transactions-version-2 client's: the leader adds the partition to the
    // transaction rather than asking whether it is in (KIP-890 part 2).
    let add = version >= 12 && TRANSACTION_VERSION >= 2;
    let verdicts = verify_transactions(broker, transactional_id.as_deref(), targets, add).await;
    let staged: Vec<_> = staged
        .into_iter()
        .map(|(name, topic_id, partitions)| {
            let partitions: Vec<_> = partitions
                .into_iter()
                .map(|(index, target)| {
                    let outcome = target.and_then(|t| append(broker, t, &verdicts, version));
                    (index, outcome)
                })
                .collect();
            (name, topic_id, partitions)
        })
        .collect();
    let mut responses = Vec::with_capacity(staged.len());
    for (name, topic_id, partitions) in staged {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for (index, outcome) in partitions {
            let outcome = match outcome {
                Ok(a) if acks == -1 => a
                    .partition
                    .wait_for_high_watermark(a.appended, a.min_isr, timeout)
                    .await
                    .map(|_| a)
                    .map_err(|e| (e.code(), Some(e.to_string()))),
                other => other,
            };
            let mut r = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let code = match outcome {
                Ok(a) => {
                    r = r
                        .with_base_offset(a.base_offset)
                        .with_log_append_time_ms(a.log_append_time)
                        .with_log_start_offset(a.log_start_offset);
                    0
                }
                Err((code, message)) => {
                    r = r.with_error_message(message.map(text));
                    code
                }
            };
            broker.count_error("Produce", code);
            partition_responses.push(r.with_error_code(code));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// The partition to append to, if this broker leads it and the topic takes client records;
/// with the verifications its transactional batches need first.
fn resolve(
    broker: &Broker,
    topic: &TopicState,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
    verify: bool,
) -> Result<Target, Failure> {
    if topic.meta.name == OFFSETS_TOPIC {
        // Only the group coordinator writes there, as in Kafka.
        return Err((
            ResponseError::InvalidTopicException.code(),
            Some(format!("cannot append to internal topic {OFFSETS_TOPIC}")),
        ));
    }
    if index < 0 || index >= topic.meta.partitions {
        return Err((ResponseError::UnknownTopicOrPartition.code(), None));
    }
    let partition = broker
        .replicas
        .partition(&topic.meta.name, index)
        .ok_or_else(|| {
            let e = PartitionError::NotLeader;
            (e.code(), Some(e.to_string()))
        })?;
    let min_isr =
        topic_config::min_insync_replicas(&broker.replicas.effective_config(), &topic.meta.configs)
            as usize;
    let records = records.unwrap_or_default();
    let guards = if verify {
        partition.start_verification(&records)
    } else {
        Vec::new()
    };
    Ok(Target {
        topic: topic.meta.name.to_string(),
        index,
        partition,
        min_isr,
        required_isr: (acks == -1).then_some(min_isr),
        records,
        verify,
        guards,
    })
}

/// What the coordinator answered per guarded producer and partition.
type Verdicts = BTreeMap<(i64, i16, String, i32), i16>;

/// Asks the transaction coordinator about every partition that needs a verification (or,
/// with `add`, to add it), one question per producer (a request has one transactional id,
/// so one coordinator).
async fn verify_transactions(
    broker: &Broker,
    transactional_id: Option<&str>,
    targets: impl Iterator<Item = &Target>,
    add: bool,
) -> Verdicts {
    let mut questions: BTreeMap<(i64, i16), Vec<(String, i32)>> = BTreeMap::new();
    for target in targets {
        for guard in &target.guards {
            questions
                .entry((guard.producer_id, guard.producer_epoch))
                .or_default()
                .push((target.topic.clone(), target.index));
        }
    }
    let mut verdicts = Verdicts::new();
    for ((producer_id, producer_epoch), partitions) in questions {
        let codes = match transactional_id {
            // Kafka refuses transactional records without a transactional id.
            None => {
                vec![ResponseError::TransactionalIdAuthorizationFailed.code(); partitions.len()]
            }
            Some(id) => {
                broker
                    .transactions
                    .verify_for_leader(id, producer_id, producer_epoch, &partitions, add)
                    .await
            }
        };
        for ((topic, index), code) in partitions.into_iter().zip(codes) {
            verdicts.insert((producer_id, producer_epoch, topic, index), code);
        }
    }
    verdicts
}

/// Kafka's translation of a failed verification into a produce error (its
/// `AddPartitionsToTxnManager` and `ReplicaManager`): a partition outside the transaction is
/// TRANSACTION_ABORTABLE from Produce v11 (the client aborts and carries on) and
/// INVALID_TXN_STATE before; a retriable error the oldest clients may not retry (the
/// coordinator moving or loading, a transaction being ended before Produce v12) is
/// NOT_ENOUGH_REPLICAS, which every client retries without a metadata refresh;
/// PRODUCER_FENCED is the produce path's
/// INVALID_PRODUCER_EPOCH.
fn verification_failure(code: i16, version: i16) -> Failure {
    let code = if code == ResponseError::ProducerFenced.code() {
        ResponseError::InvalidProducerEpoch.code()
    } else if code == ResponseError::TransactionAbortable.code() && version <= 10 {
        ResponseError::InvalidTxnState.code()
    } else {
        code
    };
    let retriable = crate::transactions::verification::RETRIABLE;
    // A transactions-version-2 client (Produce v12) retries CONCURRENT_TRANSACTIONS itself:
    // it is common while its last transaction's markers are being written.
    let kept = version >= 12 && code == ResponseError::ConcurrentTransactions.code();
    if let Some(e) = retriable.iter().find(|e| e.code() == code && !kept) {
        return (
            ResponseError::NotEnoughReplicas.code(),
            Some(format!(
                "Unable to verify the partition has been added to the transaction. Underlying error: {e:?}"
            )),
        );
    }
    let outside = [
        ResponseError::InvalidTxnState.code(),
        ResponseError::TransactionAbortable.code(),
    ];
    if outside.contains(&code) {
        return (
            code,
            Some("Partition was not added to the transaction".to_string()),
        );
    }
    (code, None)
}

/// Appends `target`'s records, unless a verification its batches needed failed.
fn append(
    broker: &Broker,
    target: Target,
    verdicts: &Verdicts,
    version: i16,
) -> Result<Appended, Failure> {
    let Target {
        topic,
        index,
        partition,
        min_isr,
        required_isr,
        records,
        verify,
        guards,
    } = target;
    let refused = guards.iter().find_map(|g| {
        let code = verdicts
            .get(&(g.producer_id, g.producer_epoch, topic.clone(), index))
            .copied()
            .unwrap_or(ResponseError::UnknownServerError.code());
        (code != 0).then_some(code)
    });
    if let Some(code) = refused {
        for g in &guards {
            partition.discard_verification(g);
        }
        tracing::debug!(%topic, partition = index, code, "transaction verification refused the produce");
        return Err(verification_failure(code, version));
    }
    // Verified appends check again under the log lock: a marker may have closed the
    // transaction the batches continue, or made a guard stale, since `resolve`.
    let appended = if verify {
        partition.append_verified(&records, required_isr, &guards)
    } else {
        partition.append_checked(&records, required_isr)
    };
    match appended {
        Ok(info) => {
            if !info.duplicate {
                broker
                    .metrics
                    .bytes_in
                    .with_label_values(&[topic.as_str()])
                    .inc_by(records.len() as u64);
                broker
                    .metrics
                    .records_in
                    .with_label_values(&[topic.as_str()])
                    .inc_by(info.records_count as u64);
            }
            Ok(Appended {
                base_offset: info.first_offset,
                appended: info.appended(),
                log_append_time: info.log_append_time,
                log_start_offset: info.log_start_offset,
                min_isr,
                partition,
            })
        }
        // The coordinator confirmed the transaction, but a marker of this producer (the end
        // of its previous transaction, still being written here) or a role change voided the
        // confirmation before the append: nothing was appended, and the retry asks the
        // coordinator again (and is refused then if the transaction really is over).
        Err(e @ PartitionError::UnverifiedTransaction { .. }) => {
            tracing::debug!(%topic, partition = index, error = %e, "verified append raced a marker; retriable");
            Err(verification_failure(
                ResponseError::ConcurrentTransactions.code(),
                version,
            ))
        }
        Err(e) => {
            tracing::debug!(%topic, partition = index, error = %e, "append refused");
            Err((e.code(), Some(e.to_string())))
        }
    }
}
