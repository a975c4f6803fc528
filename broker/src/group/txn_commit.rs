//! Transactional offset commits: TxnOffsetCommit (a producer's `sendOffsetsToTransaction`, the
//! consume-process-produce loop of exactly-once) and their completion by the transaction's
//! marker.
//!
//! How a transaction's offsets travel, as in Kafka's `GroupMetadataManager`:
//! 1. TxnOffsetCommit appends them to the group's `__consumer_offsets` partition as one
//!    transactional batch of the producer (no sequence), waits for the in-sync replicas and
//!    records them as *pending* for that producer id ([`super::offsets`]): invisible to
//!    OffsetFetch, UNSTABLE_OFFSET_COMMIT with `require_stable`.
//! 2. The transaction coordinator ends the transaction: WriteTxnMarkers appends the COMMIT or
//!    ABORT marker to the same partition, waits for its replication and calls
//!    [`GroupCoordinator::complete_transaction`]: a commit makes the offsets the committed
//!    ones, an abort drops them.
//! 3. After a failover the loader ([`super::loader`]) rebuilds the same state from the log:
//!    offsets of transactions whose marker it read are committed or dropped, the rest stay
//!    pending until their marker comes.
//!
//! Lock order: the ownership table, then `completed_while_loading`; a group's mutex, then
//! `txn_groups`. [`GroupCoordinator::complete_transaction`] holds one at a time.

use kafka_protocol::error::ResponseError;

use super::classic::TopicPartition;
use super::commit::OffsetCommit;
use super::coordinator::{GroupCoordinator, Ownership};
use super::operations::code;
use super::records::{OffsetCommitValue, RecordKey};
use crate::log::Appended;
use crate::partition::verification::VerificationGuard;

/// Who sends a TxnOffsetCommit: the transactional producer, and (v3+) the consumer group
/// member whose position it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCommitter {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// The producer's epoch; an older epoch than the partition knows is fenced.
    pub producer_epoch: i16,
    /// The consumer's generation, -1 if not given (before v3).
    pub generation: i32,
    /// The consumer's member id, empty if not given.
    pub member_id: String,
    /// The consumer's `group.instance.id`, if static.
    pub instance_id: Option<String>,
    /// KIP-890: the guards of the transaction coordinator's confirmation that the transaction
    /// includes the group's `__consumer_offsets` partition (`None`: verification is off; an
    /// empty list: the partition has the producer's transaction open already).
    pub verification: Option<Vec<VerificationGuard>>,
}

/// A TxnOffsetCommit batch appended and pending for its producer.
struct AppendedTxnCommit {
    /// The offset of the batch's last record.
    appended: Appended,
    /// The partitions it commits.
    partitions: Vec<TopicPartition>,
}

/// One error code per partition, and what was appended, if anything.
type TxnCommitOutcome = (Vec<(TopicPartition, i16)>, Option<AppendedTxnCommit>);

impl GroupCoordinator {
    /// TxnOffsetCommit (Kafka's `handleTxnCommitOffsets`): `Err` applies to every partition,
    /// else one code per partition. An unknown group is created empty. Answers once the batch
    /// is on every in-sync replica; the offsets stay pending for the producer until its
    /// transaction's marker ([`GroupCoordinator::complete_transaction`]).
    pub async fn commit_txn_offsets(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        offsets: Vec<OffsetCommit>,
    ) -> Result<Vec<(TopicPartition, i16)>, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let (mut results, appended) = self.append_txn_commit(group_id, committer, offsets)?;
        let Some(AppendedTxnCommit {
            appended,
            partitions,
        }) = appended
        else {
            return Ok(results);
        };
        // A failure here leaves the offsets pending: the batch is in the leader's log and the
        // marker decides, as a reload of the log would (the client retries or aborts).
        let stored = self
            .wait_replicated(group_id, appended)
            .await
            .err()
            .unwrap_or(0);
        tracing::debug!(
            group = group_id,
            producer_id = committer.producer_id,
            record_offset = appended.last_offset,
            error_code = stored,
            "transactional offset commit replicated or failed"
        );
        results.extend(partitions.into_iter().map(|tp| (tp, stored)));
        Ok(results)
    }

    /// The part of TxnOffsetCommit under the group's lock: validates, appends what is accepted
    /// and marks it pending for the producer. The offset of the batch's last record and the
    /// partitions it holds, if anything was appended.
    fn append_txn_commit(
        &self,
        group_id: &str,
        committer: &TxnCommitter,
        offsets: Vec<OffsetCommit>,
    ) -> Result<TxnCommitOutcome, i16> {
        let group = self.group_or_create(group_id)?;
        let mut g = group.lock();
        let now = self.now_ms();
        g.validate_txn_commit(
            committer.generation,
            &committer.member_id,
            committer.instance_id.as_deref(),
            now,
        )?;
        let max_metadata = self.config.offset_metadata_max_bytes();
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted: Vec<(TopicPartition, OffsetCommitValue)> = Vec::new();
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            let known = self
                .replicas
                .topic(&o.partition.0)
                .is_some_and(|t| (0..t.meta.partitions).contains(&o.partition.1));
            if !known {
                results.push((o.partition, code(ResponseError::UnknownTopicOrPartition)));
            } else if metadata.len() > max_metadata {
                results.push((o.partition, code(ResponseError::OffsetMetadataTooLarge)));
            } else {
                let value = OffsetCommitValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                };
                accepted.push((o.partition, value));
            }
        }
        if accepted.is_empty() {
            return Ok((results, None));
        }
        let records = accepted
            .iter()
            .map(|((topic, partition), value)| {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), Some(value.encode()))
            })
            .collect();
        let appended = match self.append_transactional(
            group_id,
            committer.producer_id,
            committer.producer_epoch,
            records,
            committer.verification.as_deref(),
        ) {
            Ok(offset) => offset,
            Err(c) => {
                results.extend(accepted.into_iter().map(|(tp, _)| (tp, c)));
                return Ok((results, None));
            }
        };
        let partitions: Vec<TopicPartition> = accepted.iter().map(|(tp, _)| tp.clone()).collect();
        g.committed_offsets_mut().add_pending_txn(
            committer.producer_id,
            accepted,
            appended.last_offset,
        );
        self.txn_groups
            .lock()
            .entry(committer.producer_id)
            .or_default()
            .insert(group_id.to_string());
        tracing::debug!(
            group = group_id,
            producer_id = committer.producer_id,
            producer_epoch = committer.producer_epoch,
            record_offset = appended.last_offset,
            partitions = partitions.len(),
            "transactional offset commit appended"
        );
        Ok((
            results,
            Some(AppendedTxnCommit {
                appended,
                partitions,
            }),
        ))
    }

    /// The hook WriteTxnMarkers calls once the COMMIT (`commit`) or ABORT marker of
    /// `producer_id` is appended to `__consumer_offsets` partition `offsets_partition` and
    /// replicated, with no lock held: every group of that partition with offsets pending for
    /// the producer gets them committed (each applied at the offset of its record, as Kafka's
    /// `completePendingTxnOffsetCommit`) or dropped. A partition still loading keeps the
    /// completion for the load to apply (the replay may have read past the marker or not); a
    /// partition this broker does not lead is left alone (its new coordinator reads the
    /// marker from the log).
    pub fn complete_transaction(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        match self.owned.read().get(&offsets_partition) {
            Some(Ownership::Active { .. }) => {}
            Some(Ownership::Loading { .. }) => {
                // Under the ownership lock: the load takes these under its write lock.
                self.completed_while_loading
                    .lock()
                    .entry(offsets_partition)
                    .or_default()
                    .push((producer_id, commit));
                return;
            }
            None => {
                tracing::debug!(
                    partition = offsets_partition,
                    producer_id,
                    "transaction marker for a __consumer_offsets partition this broker does not lead"
                );
                return;
            }
        }
        let group_ids: Vec<String> = {
            let mut txn_groups = self.txn_groups.lock();
            let Some(open) = txn_groups.get_mut(&producer_id) else {
                return;
            };
            let ids: Vec<String> = open
                .iter()
                .filter(|id| self.partition_for(id) == offsets_partition)
                .cloned()
                .collect();
            open.retain(|id| !ids.contains(id));
            if open.is_empty() {
                txn_groups.remove(&producer_id);
            }
            ids
        };
        for group_id in group_ids {
            let Some(group) = self.groups.read().get(&group_id).cloned() else {
                continue;
            };
            let partitions = group
                .lock()
                .committed_offsets_mut()
                .complete_txn(producer_id, commit);
            tracing::debug!(
                group = %group_id,
                producer_id,
                commit,
                partitions,
                "transactional offsets completed"
            );
        }
    }
}
