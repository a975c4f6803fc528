//! Per-partition log settings, resolved from topic configs over broker defaults.

/// How a batch's timestamp is set: by the producer or by the broker on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps (`message.timestamp.type=CreateTime`, Kafka's default).
    CreateTime,
    /// Overwrite the batch max timestamp with the broker's clock (`LogAppendTime`).
    LogAppendTime,
}

/// What happens to old records (`cleanup.policy`): deleted by retention, compacted by the log
/// cleaner, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: whole segments go by `retention.ms` and `retention.bytes`.
    pub delete: bool,
    /// `compact`: the log cleaner keeps the latest record per key below the active segment.
    pub compact: bool,
}

impl CleanupPolicy {
    /// Kafka's default, `delete`.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `compact` alone.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parses a validated `cleanup.policy` value (`delete`, `compact`, `compact,delete`).
    pub fn parse(value: &str) -> CleanupPolicy {
        let has = |item: &str| value.split(',').any(|i| i.trim() == item);
        CleanupPolicy {
            delete: has("delete"),
            compact: has("compact"),
        }
    }
}

/// The settings one partition's [`crate::log::Log`] runs with. Field names follow Kafka's
/// topic-level config names (`segment.bytes` → `segment_bytes`).
///
/// Invariants (enforced by the config parser, assumed here): `segment_bytes >= 14` (one batch
/// header), `index_interval_bytes > 0`, `segment_index_bytes >= 8`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment once it holds this many bytes (`segment.bytes`, 1 GiB).
    pub segment_bytes: u64,
    /// Roll the active segment once its first batch is this old (`segment.ms`, 7 days).
    pub segment_ms: i64,
    /// Delete whole segments whose newest record is older than this; -1 = never (`retention.ms`).
    pub retention_ms: i64,
    /// Delete oldest whole segments while the log is larger than this; -1 = never (`retention.bytes`).
    pub retention_bytes: i64,
    /// Bytes of batches between two sparse index entries (`index.interval.bytes`, 4096).
    pub index_interval_bytes: u32,
    /// Maximum size of one segment's offset index file in bytes (`segment.index.bytes`, 10 MiB);
    /// a full index rolls the segment.
    pub segment_index_bytes: u32,
    /// fsync after this many appended records; `i64::MAX` = leave it to the OS (`flush.messages`).
    pub flush_messages: i64,
    /// fsync when the last flush is older than this; `i64::MAX` = leave it to the OS (`flush.ms`).
    pub flush_ms: i64,
    /// Largest record batch accepted, in bytes (`max.message.bytes`, 1048588).
    pub max_message_bytes: i32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// Clean a log once its dirty bytes are at least this share of it
    /// (`min.cleanable.dirty.ratio`, 0.5).
    pub min_cleanable_dirty_ratio: f64,
    /// A record stays uncompacted at least this long after it was written
    /// (`min.compaction.lag.ms`, 0).
    pub min_compaction_lag_ms: i64,
    /// A record is compacted at most this long after it was written, whatever the dirty ratio
    /// (`max.compaction.lag.ms`, `i64::MAX`).
    pub max_compaction_lag_ms: i64,
    /// Tombstones (null values) stay readable this long after the cleaner first saw them
    /// (`delete.retention.ms`, 1 day).
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
        }
    }
}
