//! DescribeLogDirs (API 35): this broker's log directories and the replicas in them, what
//! `kafka-log-dirs`, `kafka-reassign-partitions` and Cruise Control read partition sizes from.
//!
//! Weir keeps every log in one directory (`--data-dir`), so the answer has exactly one result:
//! that directory, with the size of its file system from `statvfs(2)` (`total_bytes`, and
//! `usable_bytes` as an unprivileged writer sees it), and every hosted replica in it, or only
//! those among the requested partitions (a requested partition this broker does not host is
//! left out, as Kafka does). Per replica:
//! - `partition_size`: the bytes of all its segments;
//! - `offset_lag`: Kafka's definition, the high watermark this replica knows minus its log end
//!   offset, never below zero: 0 on a leader; on a follower, what it still has to copy of
//!   what the leader has already committed;
//! - `is_future_key`: always false (Weir has no AlterReplicaLogDirs, so no future replicas).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::text;
use crate::broker::Broker;
use crate::volume_metrics::VolumeUsage;

/// What Kafka answers for volume sizes it cannot read (`UNKNOWN_VOLUME_BYTES`).
const UNKNOWN_VOLUME_BYTES: i64 = -1;

/// Answers DescribeLogDirs.
pub fn handle(broker: &Broker, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted: Option<BTreeSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for partition in broker.replicas.all_partitions() {
        let key = (partition.topic.to_string(), partition.index);
        if wanted.as_ref().is_some_and(|w| !w.contains(&key)) {
            continue;
        }
        let stats = partition.stats();
        let offset_lag = (partition.high_watermark() - stats.log_end_offset).max(0);
        by_topic.entry(key.0).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(partition.index)
                .with_partition_size(i64::try_from(stats.size_bytes).unwrap_or(i64::MAX))
                .with_offset_lag(offset_lag)
                .with_is_future_key(false),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(text(name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = &broker.config.data_dir;
    let (total_bytes, usable_bytes) = volume_bytes(dir);
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(text(absolute(dir)))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes)])
}

/// `(total, usable)` bytes of the file system holding `dir`, or Kafka's unknown marker.
fn volume_bytes(dir: &Path) -> (i64, i64) {
    match VolumeUsage::of(dir) {
        Ok(usage) => (
            i64::try_from(usage.total_bytes).unwrap_or(i64::MAX),
            i64::try_from(usage.usable_bytes).unwrap_or(i64::MAX),
        ),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "statvfs of the log directory failed");
            (UNKNOWN_VOLUME_BYTES, UNKNOWN_VOLUME_BYTES)
        }
    }
}

/// The directory as Kafka prints log dirs: an absolute path.
fn absolute(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .display()
        .to_string()
}
