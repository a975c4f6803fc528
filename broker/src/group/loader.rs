//! Replaying a `__consumer_offsets` partition into groups and offsets: the latest record per
//! key wins, a tombstone (null value) deletes. [`LoadedPartition::replay`] reads the
//! partition's log; [`LoadedPartition::apply`] is the pure per-record step. The coordinator
//! builds [`super::classic::Group`]s from the result.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::classic::TopicPartition;
use super::records::{GroupMetadataValue, OffsetCommitValue, RecordKey};
use crate::partition::Partition;

/// What one partition of `__consumer_offsets` holds once replayed.
#[derive(Debug, Default)]
pub struct LoadedPartition {
    /// Latest group metadata per group.
    pub groups: HashMap<String, GroupMetadataValue>,
    /// Latest committed offsets per group.
    pub offsets: HashMap<String, BTreeMap<TopicPartition, OffsetCommitValue>>,
    /// Records that could not be decoded (skipped, with a log line each).
    pub skipped: usize,
}

impl LoadedPartition {
    /// Applies one record, in log order.
    pub fn apply(&mut self, key: Option<&Bytes>, value: Option<&Bytes>) {
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
                    }
                    Some(Ok(v)) => {
                        self.offsets.entry(group).or_default().insert(tp, v);
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
        }
    }

    /// Reads one `__consumer_offsets` partition from its log start to its high watermark and
    /// replays every record. A batch that cannot be read or decoded ends the load there, with
    /// an error in the log: what came before it is kept.
    pub fn replay(log: &Partition) -> LoadedPartition {
        let partition = log.index;
        let mut loaded = LoadedPartition::default();
        let mut offset = log.log_start_offset();
        let high_watermark = log.high_watermark();
        while offset < high_watermark {
            let read = match log.read(offset, 1 << 20, true) {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(partition, offset, error = %e, "reading __consumer_offsets failed; groups of this partition may be incomplete");
                    break;
                }
            };
            let mut bytes = read.records;
            let start = offset;
            while !bytes.is_empty() {
                match RecordBatchDecoder::decode(&mut bytes) {
                    Ok(set) => {
                        for r in &set.records {
                            if !r.control {
                                loaded.apply(r.key.as_ref(), r.value.as_ref());
                            }
                            offset = offset.max(r.offset + 1);
                        }
                    }
                    Err(e) => {
                        tracing::error!(partition, offset, error = %e, "undecodable batch in __consumer_offsets; stopping the load there");
                        return loaded;
                    }
                }
            }
            if offset == start {
                break; // nothing decodable past this point
            }
        }
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
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
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
        loaded.apply(Some(&offset_key("g", 0)), Some(&offset_value(5)));
        loaded.apply(Some(&offset_key("g", 0)), Some(&offset_value(9)));
        loaded.apply(Some(&offset_key("g", 1)), Some(&offset_value(3)));
        loaded.apply(Some(&offset_key("g", 1)), None);
        loaded.apply(Some(&offset_key("h", 0)), Some(&offset_value(1)));
        loaded.apply(Some(&offset_key("h", 0)), None);
        let g = &loaded.offsets["g"];
        assert_eq!(g.len(), 1);
        assert_eq!(g[&("t".to_string(), 0)].offset, 9);
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
        loaded.apply(Some(&key), Some(&value));
        assert_eq!(loaded.groups["g"].generation, 3);
        loaded.apply(Some(&key), None);
        assert!(loaded.groups.is_empty());
        loaded.apply(None, Some(&value));
        loaded.apply(Some(&Bytes::from_static(&[0, 9])), None);
        assert_eq!(loaded.skipped, 2);
    }
}
