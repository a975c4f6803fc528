//! A group's committed offsets, kept as Kafka's coordinator keeps them.
//!
//! An OffsetCommit is appended to `__consumer_offsets` first and becomes visible (to
//! OffsetFetch, the lag metric, expiry) only once it is on every in-sync replica: until then it
//! is *pending*. Applying it earlier would let OffsetFetch answer an offset that a coordinator
//! failover then takes back. An OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for a partition with a commit pending, so the client asks again.
//!
//! Every committed (or deleted) partition remembers the `__consumer_offsets` offset of the record
//! it came from. Commits of one group are appended in order but their replication may be seen
//! complete in any order (each waits on its own task), so a commit is applied only if its record
//! is newer than the one already applied: the log's order decides, as it does when the partition
//! is loaded again after a failover.
//!
//! A transactional commit (TxnOffsetCommit, `sendOffsetsToTransaction`) is pending for its
//! producer id from its append until the transaction's marker: a COMMIT marker applies it at
//! the offset of the record that stored it (so the log's order still decides against plain
//! commits, as Kafka's `completePendingTxnOffsetCommit`), an ABORT drops it. While pending it is
//! invisible, and an OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT for its
//! partition.
//!
//! Thread-safety: none here; the owning [`super::classic::Group`] sits behind its mutex.

use std::collections::{BTreeMap, BTreeSet};

use super::classic::TopicPartition;
use super::records::OffsetCommitValue;

/// Committed offsets of one group, the commits still waiting for replication and the
/// transactional commits waiting for their transaction's marker.
/// Invariant: every partition in `committed` has an entry in `applied_at`.
#[derive(Debug, Default)]
pub struct CommittedOffsets {
    committed: BTreeMap<TopicPartition, OffsetCommitValue>,
    /// Per partition committed or deleted: the `__consumer_offsets` offset of the record last
    /// applied (a commit or a tombstone).
    applied_at: BTreeMap<TopicPartition, i64>,
    /// Per partition: how many appended commits wait for replication.
    pending: BTreeMap<TopicPartition, u32>,
    /// Per producer id with an open transaction: its transactional commits, each with the
    /// `__consumer_offsets` offset of the record that stored it (the latest per partition).
    pending_txn: BTreeMap<i64, BTreeMap<TopicPartition, (OffsetCommitValue, i64)>>,
}

impl CommittedOffsets {
    /// The visible committed offsets.
    pub fn committed(&self) -> &BTreeMap<TopicPartition, OffsetCommitValue> {
        &self.committed
    }

    /// Whether no offset is committed.
    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// Whether any commit waits for replication or for its transaction's marker.
    pub fn any_pending(&self) -> bool {
        !self.pending.is_empty() || !self.pending_txn.is_empty()
    }

    /// Whether a commit of `partition` was appended and is not on every in-sync replica yet,
    /// or is part of a transaction not completed yet.
    pub fn is_pending(&self, partition: &TopicPartition) -> bool {
        self.pending.contains_key(partition)
            || self
                .pending_txn
                .values()
                .any(|offsets| offsets.contains_key(partition))
    }

    /// The transactional commits of `producer_id` waiting for its transaction's marker.
    pub fn pending_txn(
        &self,
        producer_id: i64,
    ) -> Option<&BTreeMap<TopicPartition, (OffsetCommitValue, i64)>> {
        self.pending_txn.get(&producer_id)
    }

    /// The partitions with a transactional commit waiting for a marker.
    pub fn pending_txn_partitions(&self) -> BTreeSet<TopicPartition> {
        self.pending_txn
            .values()
            .flat_map(|o| o.keys().cloned())
            .collect()
    }

    /// The producer ids with transactional commits waiting for a marker.
    pub fn pending_txn_producers(&self) -> impl Iterator<Item = i64> + '_ {
        self.pending_txn.keys().copied()
    }

    /// Records transactional commits of `producer_id` appended at `record_offset` (the offset
    /// of the batch's last record; one batch holds the whole TxnOffsetCommit). A later commit
    /// of the same partition in the same transaction replaces an earlier one.
    pub fn add_pending_txn(
        &mut self,
        producer_id: i64,
        offsets: impl IntoIterator<Item = (TopicPartition, OffsetCommitValue)>,
        record_offset: i64,
    ) {
        let pending = self.pending_txn.entry(producer_id).or_default();
        for (tp, value) in offsets {
            pending.insert(tp, (value, record_offset));
        }
    }

    /// Ends the transaction of `producer_id`: on commit its offsets are applied (each at the
    /// offset of its record, so a newer plain commit or deletion is kept), on abort dropped.
    /// Returns how many partitions it held.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) -> usize {
        let Some(offsets) = self.pending_txn.remove(&producer_id) else {
            return 0;
        };
        let n = offsets.len();
        if commit {
            for (tp, (value, record_offset)) in offsets {
                self.apply(tp, value, record_offset);
            }
        }
        n
    }

    /// Applies a committed offset stored by the record at `record_offset` of
    /// `__consumer_offsets`, unless a newer record was applied already. Returns whether it was.
    pub fn apply(
        &mut self,
        partition: TopicPartition,
        value: OffsetCommitValue,
        record_offset: i64,
    ) -> bool {
        if self
            .applied_at
            .get(&partition)
            .is_some_and(|applied| *applied >= record_offset)
        {
            return false;
        }
        self.applied_at.insert(partition.clone(), record_offset);
        self.committed.insert(partition, value);
        true
    }

    /// Marks commits of `partitions` as appended and waiting for replication.
    pub fn begin<'a>(&mut self, partitions: impl IntoIterator<Item = &'a TopicPartition>) {
        for tp in partitions {
            *self.pending.entry(tp.clone()).or_insert(0) += 1;
        }
    }

    /// Ends commits begun with [`CommittedOffsets::begin`]: applies them if they are replicated
    /// (`Some(record_offset)` of their batch), else only forgets that they were pending.
    pub fn complete(
        &mut self,
        offsets: Vec<(TopicPartition, OffsetCommitValue)>,
        replicated_at: Option<i64>,
    ) {
        for (tp, value) in offsets {
            if let Some(count) = self.pending.get_mut(&tp) {
                *count -= 1;
                if *count == 0 {
                    self.pending.remove(&tp);
                }
            }
            if let Some(record_offset) = replicated_at {
                self.apply(tp, value, record_offset);
            }
        }
    }

    /// Forgets the offsets of `partitions`, whose tombstones are at `record_offset`: a commit
    /// appended before the tombstones and replicated after them stays forgotten.
    pub fn delete(&mut self, partitions: &[TopicPartition], record_offset: i64) {
        for tp in partitions {
            self.committed.remove(tp);
            self.applied_at.insert(tp.clone(), record_offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(offset: i64) -> OffsetCommitValue {
        OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        }
    }

    fn tp(partition: i32) -> TopicPartition {
        ("t".to_string(), partition)
    }

    #[test]
    fn a_commit_is_visible_only_once_replicated() {
        let mut offsets = CommittedOffsets::default();
        offsets.begin([&tp(0)]);
        assert!(offsets.is_pending(&tp(0)));
        assert!(offsets.committed().is_empty());
        offsets.complete(vec![(tp(0), value(7))], Some(10));
        assert!(!offsets.is_pending(&tp(0)));
        assert_eq!(offsets.committed()[&tp(0)].offset, 7);
    }

    #[test]
    fn a_failed_commit_is_never_visible() {
        let mut offsets = CommittedOffsets::default();
        offsets.apply(tp(0), value(3), 1);
        offsets.begin([&tp(0)]);
        offsets.complete(vec![(tp(0), value(9))], None);
        assert!(!offsets.is_pending(&tp(0)));
        assert_eq!(offsets.committed()[&tp(0)].offset, 3);
    }

    #[test]
    fn the_log_order_decides_when_replication_completes_out_of_order() {
        let mut offsets = CommittedOffsets::default();
        offsets.begin([&tp(0)]);
        offsets.begin([&tp(0)]);
        // The newer commit (record 12) is seen replicated first, then the older (record 11).
        offsets.complete(vec![(tp(0), value(20))], Some(12));
        assert!(offsets.is_pending(&tp(0)), "one commit still pending");
        offsets.complete(vec![(tp(0), value(10))], Some(11));
        assert!(!offsets.is_pending(&tp(0)));
        assert_eq!(offsets.committed()[&tp(0)].offset, 20);
    }

    #[test]
    fn a_deletion_is_not_undone_by_an_older_commit() {
        let mut offsets = CommittedOffsets::default();
        offsets.apply(tp(1), value(5), 3);
        offsets.begin([&tp(1)]);
        offsets.delete(&[tp(1)], 8);
        offsets.complete(vec![(tp(1), value(6))], Some(7));
        assert!(offsets.committed().is_empty());
        assert!(offsets.apply(tp(1), value(9), 9), "a newer commit applies");
        assert_eq!(offsets.committed()[&tp(1)].offset, 9);
    }

    #[test]
    fn a_transactional_commit_is_pending_until_its_marker() {
        let mut offsets = CommittedOffsets::default();
        offsets.apply(tp(0), value(1), 0);
        offsets.add_pending_txn(7, [(tp(0), value(4)), (tp(1), value(8))], 3);
        offsets.add_pending_txn(9, [(tp(2), value(2))], 4);
        assert!(offsets.is_pending(&tp(0)) && offsets.is_pending(&tp(2)));
        assert!(offsets.any_pending());
        assert_eq!(
            offsets.committed()[&tp(0)].offset,
            1,
            "the last committed value"
        );
        assert_eq!(offsets.complete_txn(7, true), 2);
        assert_eq!(offsets.committed()[&tp(0)].offset, 4);
        assert_eq!(offsets.committed()[&tp(1)].offset, 8);
        assert!(!offsets.is_pending(&tp(0)));
        assert_eq!(offsets.complete_txn(9, false), 1);
        assert!(!offsets.committed().contains_key(&tp(2)));
        assert!(!offsets.any_pending());
        assert_eq!(offsets.complete_txn(9, true), 0, "nothing left to complete");
    }

    #[test]
    fn a_committed_transaction_does_not_override_a_newer_plain_commit() {
        let mut offsets = CommittedOffsets::default();
        offsets.add_pending_txn(7, [(tp(0), value(4))], 3);
        // A plain commit appended after the transactional one, replicated before the marker.
        offsets.begin([&tp(0)]);
        offsets.complete(vec![(tp(0), value(6))], Some(5));
        offsets.complete_txn(7, true);
        assert_eq!(offsets.committed()[&tp(0)].offset, 6);
    }
}
