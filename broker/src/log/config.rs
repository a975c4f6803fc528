//! Per-partition log settings, resolved from topic configs over broker defaults.

/// How a batch's timestamp is set: by the producer or by the broker on append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps (`message.timestamp.type=CreateTime`, Kafka's default).
    CreateTime,
    /// Overwrite the batch max timestamp with the broker's clock (`LogAppendTime`).
    LogAppendTime,
}

/// The settings one partition's [`crate::log::Log`] runs with. Field names follow Kafka's
/// topic-level config names (`segment.bytes` → `segment_bytes`).
///
/// Invariants (enforced by the config parser, assumed here): `segment_bytes >= 14` (one batch
/// header), `index_interval_bytes > 0`, `segment_index_bytes >= 8`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}
