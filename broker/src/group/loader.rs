//! Replaying a `__consumer_offsets` partition into groups and offsets: the latest record per
//! key wins, a tombstone (null value) deletes. [`LoadedPartition::replay`] reads the
//! partition's log; [`LoadedPartition::apply`] is the pure per-record step. The coordinator
//! builds [`super::classic::Group`]s from the result.
//!
//! Transactional offset commits (batches with the transactional bit, from TxnOffsetCommit)
//! are buffered per producer id ([`LoadedPartition::apply_transactional`]) until that
//! producer's marker: COMMIT applies them, each at the offset of its record so that a newer
//! plain commit or tombstone of the same partition still wins (as the coordinator does in
//! memory), ABORT drops them ([`LoadedPartition::apply_marker`]). What is still open at the
//! log end stays pending ([`LoadedPartition::pending_txn`]) until the marker comes.

use std::collections::{BTreeMap, HashMap};

use bytes::Buf;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::classic::TopicPartition;
use super::consumer_records::ConsumerRecordType;
use super::records::{GroupMetadataValue, OffsetCommitValue, RecordKey};
use crate::log::batch::RecordBatchHeader;
use crate::partition::Partition;

/// A consumer group's records as loaded: the latest value per (record type, member).
pub type ConsumerRecords = BTreeMap<(ConsumerRecordType, Option<String>), Bytes>;

/// Offsets per partition, each with the offset of the record that stored it.
pub type PendingOffsets = BTreeMap<TopicPartition, (OffsetCommitValue, i64)>;

/// What one partition of `__consumer_offsets` holds once replayed.
#[derive(Debug, Default)]
pub struct LoadedPartition {
    /// Latest group metadata per group.
    pub groups: HashMap<String, GroupMetadataValue>,
    /// Latest committed offsets per group, with the offset of the record that stored each.
    pub offsets: HashMap<String, BTreeMap<TopicPartition, (OffsetCommitValue, i64)>>,
    /// Offsets of transactions open at the log end: group → producer id → partition → value
    /// and the offset of its record. Filled by [`LoadedPartition::finish`].
    pub pending_txn: HashMap<String, BTreeMap<i64, PendingOffsets>>,
    /// During the replay: per producer id, the transactional commits not completed yet.
    open_txns: HashMap<i64, HashMap<String, PendingOffsets>>,
    /// Per group and partition: the offset of the last tombstone, so that a transaction
    /// committed later with an older record does not bring a deleted offset back.
    deleted_at: HashMap<String, BTreeMap<TopicPartition, i64>>,
    /// KIP-848 consumer groups: per group, the latest value per (record type, member).
    pub consumer: HashMap<String, ConsumerRecords>,
    /// Records that could not be decoded (skipped, with a log line each).
    pub skipped: usize,
    /// Where the replay stopped: the log end it found, unless a read failed.
    pub read_to: i64,
}

impl LoadedPartition {
    /// Applies the record at `offset`, in log order.
    pub fn apply(&mut self, offset: i64, key: Option<&Bytes>, value: Option<&Bytes>) {
        let Some(key) = key else {
            self.skipped += 1;
            return;
        };
        let key = match RecordKey::decode(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an undecodable __consumer_offsets key");
                self.skipped += 1;
                return;
            }
        };
        match key {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let tp = (topic, partition);
                match value.map(|v| OffsetCommitValue::decode(v)) {
                    None => {
                        if let Some(offsets) = self.offsets.get_mut(&group) {
                            offsets.remove(&tp);
                        }
                        self.deleted_at.entry(group).or_default().insert(tp, offset);
                    }
                    Some(Ok(v)) => {
                        self.offsets
                            .entry(group)
                            .or_default()
                            .insert(tp, (v, offset));
                    }
                    Some(Err(e)) => {
                        tracing::warn!(group, error = %e, "skipping an undecodable offset commit");
                        self.skipped += 1;
                    }
                }
            }
            RecordKey::Group { group } => match value.map(|v| GroupMetadataValue::decode(v)) {
                None => {
                    self.groups.remove(&group);
                }
                Some(Ok(v)) => {
                    self.groups.insert(group, v);
                }
                Some(Err(e)) => {
                    tracing::warn!(group, error = %e, "skipping undecodable group metadata");
                    self.skipped += 1;
                }
            },
            RecordKey::Consumer {
                kind,
                group,
                member,
            } => match value {
                None => {
                    if let Some(records) = self.consumer.get_mut(&group) {
                        records.remove(&(kind, member));
                        if records.is_empty() {
                            self.consumer.remove(&group);
                        }
                    }
                }
                Some(v) => {
                    self.consumer
                        .entry(group)
                        .or_default()
                        .insert((kind, member), v.clone());
                }
            },
        }
    }

    /// Applies the record at `offset` of a transactional batch of `producer_id`: an offset
    /// commit is buffered until the producer's marker. Group metadata is never transactional
    /// (a coordinator writes it plainly); such a record is skipped.
    pub fn apply_transactional(
        &mut self,
        producer_id: i64,
        offset: i64,
        key: Option<&Bytes>,
        value: Option<&Bytes>,
    ) {
        let key = match key.map(|k| RecordKey::decode(k)) {
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                tracing::warn!(producer_id, error = %e, "skipping an undecodable transactional __consumer_offsets key");
                self.skipped += 1;
                return;
            }
            None => {
                self.skipped += 1;
                return;
            }
        };
        let RecordKey::Offset {
            group,
            topic,
            partition,
        } = key
        else {
            tracing::warn!(producer_id, "skipping transactional group metadata");
            self.skipped += 1;
            return;
        };
        let open = self
            .open_txns
            .entry(producer_id)
            .or_default()
            .entry(group.clone())
            .or_default();
        match value.map(|v| OffsetCommitValue::decode(v)) {
            // A transactional tombstone takes back what the transaction had committed.
            None => {
                open.remove(&(topic, partition));
            }
            Some(Ok(v)) => {
                open.insert((topic, partition), (v, offset));
            }
            Some(Err(e)) => {
                tracing::warn!(group, producer_id, error = %e, "skipping an undecodable transactional offset commit");
                self.skipped += 1;
            }
        }
    }

    /// Applies a transaction marker of `producer_id`: its buffered offsets become committed
    /// (`commit`, unless a newer record of the same partition was applied) or are dropped.
    pub fn apply_marker(&mut self, producer_id: i64, commit: bool) {
        let Some(open) = self.open_txns.remove(&producer_id) else {
            return;
        };
        if !commit {
            return;
        }
        for (group, offsets) in open {
            let deleted_at = self.deleted_at.get(&group);
            let committed = self.offsets.entry(group.clone()).or_default();
            for (tp, (value, record_offset)) in offsets {
                let newer_exists = committed
                    .get(&tp)
                    .map(|(_, at)| *at)
                    .into_iter()
                    .chain(deleted_at.and_then(|d| d.get(&tp)).copied())
                    .any(|at| at >= record_offset);
                if !newer_exists {
                    committed.insert(tp, (value, record_offset));
                }
            }
        }
    }

    /// Ends the replay: the transactions still open become [`LoadedPartition::pending_txn`].
    pub fn finish(&mut self) {
        for (producer_id, groups) in self.open_txns.drain() {
            for (group, offsets) in groups {
                if offsets.is_empty() {
                    continue;
                }
                self.pending_txn
                    .entry(group)
                    .or_default()
                    .insert(producer_id, offsets);
            }
        }
    }

    /// Reads one `__consumer_offsets` partition from its log start to its log end and replays
    /// every record. To the log end, not the high watermark, as Kafka loads: a new leader
    /// never truncates its own log, and on a new leader the high watermark still lags by a
    /// fetch round, so stopping there would lose commits the previous coordinator had
    /// acknowledged (they are on every in-sync replica, this one included). A batch that
    /// cannot be read or decoded ends the load there, with an error in the log: what came
    /// before it is kept.
    pub fn replay(log: &Partition) -> LoadedPartition {
        let partition = log.index;
        let mut loaded = LoadedPartition::default();
        let mut offset = log.log_start_offset();
        let log_end = log.log_end_offset();
        while offset < log_end {
            let read = match log.read_to_log_end(offset, 1 << 20) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(partition, offset, error = %e, "reading __consumer_offsets failed; groups of this partition may be incomplete");
                    break;
                }
            };
            let mut bytes = read.records;
            let start = offset;
            while !bytes.is_empty() {
                // The batch header's end, not its last record's: compaction can remove a batch's
                // last records, or all of them (an empty batch kept for its producer state).
                let next = RecordBatchHeader::parse(&bytes, 0).map(|h| h.next_offset());
                match RecordBatchDecoder::decode(&mut bytes) {
                    Ok(set) => {
                        for r in &set.records {
                            if r.control {
                                match marker_kind(r.key.as_ref()) {
                                    Some(commit) => loaded.apply_marker(r.producer_id, commit),
                                    None => {
                                        tracing::warn!(
                                            partition,
                                            offset = r.offset,
                                            "skipping an undecodable control record"
                                        );
                                        loaded.skipped += 1;
                                    }
                                }
                            } else if r.transactional {
                                loaded.apply_transactional(
                                    r.producer_id,
                                    r.offset,
                                    r.key.as_ref(),
                                    r.value.as_ref(),
                                );
                            } else {
                                loaded.apply(r.offset, r.key.as_ref(), r.value.as_ref());
                            }
                            offset = offset.max(r.offset + 1);
                        }
                        if let Ok(next) = next {
                            offset = offset.max(next);
                        }
                    }
                    Err(e) => {
                        tracing::error!(partition, offset, error = %e, "undecodable batch in __consumer_offsets; stopping the load there");
                        loaded.read_to = offset;
                        loaded.finish();
                        return loaded;
                    }
                }
            }
            if offset == start {
                break; // nothing decodable past this point
            }
        }
        loaded.read_to = offset;
        loaded.finish();
        if loaded.skipped > 0 {
            tracing::warn!(
                partition,
                skipped = loaded.skipped,
                "skipped undecodable __consumer_offsets records"
            );
        }
        loaded
    }

    /// Every group id with metadata or offsets.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .groups
            .keys()
            .chain(
                self.offsets
                    .iter()
                    .filter(|(_, o)| !o.is_empty())
                    .map(|(g, _)| g),
            )
            .chain(self.pending_txn.keys())
            .chain(self.consumer.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// A transaction marker's type from its control record key (version i16, type i16):
/// `Some(true)` for COMMIT, `Some(false)` for ABORT.
fn marker_kind(key: Option<&Bytes>) -> Option<bool> {
    let mut key = key?.clone();
    if key.len() < 4 {
        return None;
    }
    let _version = key.get_i16();
    match key.get_i16() {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_key(group: &str, partition: i32) -> Bytes {
        RecordKey::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
        }
        .encode()
    }

    fn offset_value(offset: i64) -> Bytes {
        OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
        }
        .encode()
    }

    #[test]
    fn latest_value_wins_and_tombstones_delete() {
        let mut loaded = LoadedPartition::default();
        loaded.apply(0, Some(&offset_key("g", 0)), Some(&offset_value(5)));
        loaded.apply(1, Some(&offset_key("g", 0)), Some(&offset_value(9)));
        loaded.apply(2, Some(&offset_key("g", 1)), Some(&offset_value(3)));
        loaded.apply(3, Some(&offset_key("g", 1)), None);
        loaded.apply(4, Some(&offset_key("h", 0)), Some(&offset_value(1)));
        loaded.apply(5, Some(&offset_key("h", 0)), None);
        let g = &loaded.offsets["g"];
        assert_eq!(g.len(), 1);
        let (value, record_offset) = &g[&("t".to_string(), 0)];
        assert_eq!((value.offset, *record_offset), (9, 1));
        assert_eq!(loaded.group_ids(), vec!["g".to_string()]);
    }

    #[test]
    fn group_tombstone_removes_metadata() {
        let mut loaded = LoadedPartition::default();
        let key = RecordKey::Group { group: "g".into() }.encode();
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: None,
            leader: None,
            current_state_timestamp: 0,
            members: vec![],
        }
        .encode();
        loaded.apply(0, Some(&key), Some(&value));
        assert_eq!(loaded.groups["g"].generation, 3);
        loaded.apply(1, Some(&key), None);
        assert!(loaded.groups.is_empty());
        loaded.apply(2, None, Some(&value));
        loaded.apply(3, Some(&Bytes::from_static(&[0, 9])), None);
        assert_eq!(loaded.skipped, 2);
    }

    /// Commit records for group `g`, partition t-0, at offsets `base..`, as a leader in
    /// `epoch` wrote them.
    fn offsets_batch(base: i64, epoch: i32, commits: &[i64]) -> Bytes {
        use kafka_protocol::indexmap::IndexMap;
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records: Vec<Record> = commits
            .iter()
            .enumerate()
            .map(|(i, committed)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: epoch,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1,
                timestamp: 0,
                key: Some(offset_key("g", 0)),
                value: Some(offset_value(*committed)),
                headers: IndexMap::new(),
            })
            .collect();
        let mut out = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.freeze()
    }

    /// The lost-commit bug: a follower that becomes leader holds the previous leader's last
    /// commits above its own high watermark (which lags by a fetch round). They were
    /// acknowledged, so the load must read them.
    #[test]
    fn replay_reads_past_the_high_watermark_to_the_log_end() {
        use std::sync::Arc;

        use crate::clock::SystemClock;
        use crate::log::LogConfig;

        let dir = tempfile::tempdir().unwrap();
        let partition = Partition::open(
            dir.path(),
            Arc::from("__consumer_offsets"),
            uuid::Uuid::new_v4(),
            0,
            LogConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap();
        partition.make_follower(1, 3);
        // As a follower: offset 0, then 1..3 fetched, the leader's high watermark then at 1.
        partition
            .append_from_leader(3, &offsets_batch(0, 3, &[5]), 0, 0)
            .unwrap();
        partition
            .append_from_leader(3, &offsets_batch(1, 3, &[9, 12]), 1, 0)
            .unwrap();
        // Leader now, with the old leader still in the ISR: the high watermark stays at 1
        // until a follower fetches.
        partition.make_leader(0, 4, 1, &[0, 1], &[0, 1]).unwrap();
        assert_eq!(
            (partition.high_watermark(), partition.log_end_offset()),
            (1, 3)
        );
        let loaded = LoadedPartition::replay(&partition);
        let (value, record_offset) = &loaded.offsets["g"][&("t".to_string(), 0)];
        assert_eq!(
            (value.offset, *record_offset),
            (12, 2),
            "the last commit, above the high watermark"
        );
    }

    /// One batch of offset commits `(group, partition of t, offset)`, transactional for
    /// `Some(producer id)`, at offset 0 (the leader assigns offsets).
    fn commits_batch(producer_id: Option<i64>, commits: &[(&str, i32, i64)]) -> Bytes {
        use kafka_protocol::indexmap::IndexMap;
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records: Vec<Record> = commits
            .iter()
            .enumerate()
            .map(|(i, (group, partition, committed))| Record {
                transactional: producer_id.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: producer_id.unwrap_or(-1),
                producer_epoch: if producer_id.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 0,
                key: Some(offset_key(group, *partition)),
                value: Some(offset_value(*committed)),
                headers: IndexMap::new(),
            })
            .collect();
        let mut out = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.freeze()
    }

    /// A log with a committed, an aborted and an open transaction, and plain commits between
    /// them: the load commits the first, drops the second, keeps the third pending, and a
    /// plain commit newer than a transaction's record wins over it.
    #[test]
    fn replay_applies_committed_transactions_drops_aborted_and_keeps_open_ones_pending() {
        use std::sync::Arc;

        use crate::clock::SystemClock;
        use crate::log::{ControlRecordType, LogConfig, TxnMarker};

        let dir = tempfile::tempdir().unwrap();
        let partition = Partition::open(
            dir.path(),
            Arc::from("__consumer_offsets"),
            uuid::Uuid::new_v4(),
            0,
            LogConfig::default(),
            Arc::new(SystemClock),
        )
        .unwrap();
        partition.make_leader(0, 1, 1, &[0], &[0]).unwrap();
        let marker = |producer_id, kind| TxnMarker {
            producer_id,
            producer_epoch: 0,
            coordinator_epoch: 0,
            kind,
        };
        let plain = |commits: &[(&str, i32, i64)]| {
            partition.append(&commits_batch(None, commits)).unwrap();
        };
        let txn = |producer_id, commits: &[(&str, i32, i64)]| {
            partition
                .append_as_coordinator(&commits_batch(Some(producer_id), commits), None)
                .unwrap();
        };
        plain(&[("g", 0, 1)]);
        txn(10, &[("g", 0, 5), ("g", 1, 6)]);
        txn(11, &[("g", 0, 7), ("h", 1, 8)]);
        // Newer than transaction 10's record of t-1: stays when 10 commits.
        plain(&[("g", 1, 2)]);
        txn(12, &[("h", 0, 3)]);
        partition
            .append_txn_marker(&marker(10, ControlRecordType::Commit))
            .unwrap();
        partition
            .append_txn_marker(&marker(11, ControlRecordType::Abort))
            .unwrap();
        // Transaction 12 is still open at the log end, and 13 commits t-1 of h twice.
        txn(13, &[("h", 1, 4)]);
        txn(13, &[("h", 1, 9)]);

        let loaded = LoadedPartition::replay(&partition);
        assert_eq!(loaded.skipped, 0);
        assert_eq!(loaded.read_to, partition.log_end_offset());
        let committed = |group: &str| -> Vec<(i32, i64)> {
            loaded
                .offsets
                .get(group)
                .map(|o| o.iter().map(|((_, p), (v, _))| (*p, v.offset)).collect())
                .unwrap_or_default()
        };
        assert_eq!(committed("g"), vec![(0, 5), (1, 2)]);
        assert_eq!(committed("h"), vec![], "nothing of h is committed");
        assert!(
            !loaded.pending_txn.contains_key("g"),
            "g has no open transaction"
        );
        let open: Vec<(i64, i32, i64)> = loaded.pending_txn["h"]
            .iter()
            .flat_map(|(producer_id, offsets)| {
                offsets
                    .iter()
                    .map(move |((_, p), (v, _))| (*producer_id, *p, v.offset))
            })
            .collect();
        assert_eq!(open, vec![(12, 0, 3), (13, 1, 9)]);
        assert_eq!(loaded.group_ids(), vec!["g".to_string(), "h".to_string()]);
    }

    #[test]
    fn a_tombstone_newer_than_a_transactions_record_is_not_undone_by_its_commit() {
        let mut loaded = LoadedPartition::default();
        loaded.apply(0, Some(&offset_key("g", 0)), Some(&offset_value(1)));
        loaded.apply_transactional(7, 1, Some(&offset_key("g", 0)), Some(&offset_value(5)));
        loaded.apply_transactional(7, 2, Some(&offset_key("g", 1)), Some(&offset_value(6)));
        loaded.apply(3, Some(&offset_key("g", 0)), None);
        loaded.apply_marker(7, true);
        loaded.finish();
        let g = &loaded.offsets["g"];
        assert!(
            !g.contains_key(&("t".to_string(), 0)),
            "deleted after the commit's record"
        );
        assert_eq!(g[&("t".to_string(), 1)].0.offset, 6);
        assert!(loaded.pending_txn.is_empty());
    }
}
