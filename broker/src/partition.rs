//! One partition of a topic on this broker: its log and the offsets clients see.
//!
//! On a single broker the partition's only replica is the leader and the in-sync replica set
//! is just itself, so the high watermark equals the log end offset as soon as an append
//! returns. The replicated cluster will add follower state here.
//!
//! Thread-safety: the log sits behind a `RwLock`; appends take it for writing (one at a time
//! per partition, which is what assigns offsets in order), reads and offset queries take it
//! for reading and run concurrently.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::clock::Clock;
use crate::log::{Log, LogAppendInfo, LogConfig, LogError};

/// Leader epoch stamped on batches. A single broker is leader from epoch 0 forever; the
/// replicated cluster takes epochs from the controller.
pub const LEADER_EPOCH: i32 = 0;

/// A partition hosted by this broker.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index within the topic.
    pub index: i32,
    log: RwLock<Log>,
    last_periodic_flush: Mutex<Instant>,
}

/// Sizes and offsets of a partition, for metrics and admin answers.
#[derive(Debug, Clone, Copy)]
pub struct PartitionStats {
    /// Bytes of all segments.
    pub size_bytes: u64,
    /// First offset still in the log.
    pub log_start_offset: i64,
    /// Offset the next appended record will get.
    pub log_end_offset: i64,
    /// Number of segments.
    pub segments: usize,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// Whole record batches, exactly as stored.
    pub records: Bytes,
    /// High watermark at the time of the read.
    pub high_watermark: i64,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
}

impl Partition {
    /// The directory a partition's log lives in: `<data-dir>/<topic>-<index>`.
    pub fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    /// Opens (recovering if needed) or creates the partition's log under `data_dir`.
    pub fn open(
        data_dir: &std::path::Path,
        topic: Arc<str>,
        topic_id: Uuid,
        index: i32,
        config: LogConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let dir: PathBuf = data_dir.join(Self::dir_name(&topic, index));
        let log = Log::open(&dir, config, clock)?;
        Ok(Self {
            topic,
            topic_id,
            index,
            log: RwLock::new(log),
            last_periodic_flush: Mutex::new(Instant::now()),
        })
    }

    /// Appends a producer's record batches as leader.
    pub fn append(&self, records: &Bytes) -> Result<LogAppendInfo, LogError> {
        self.log.write().append_as_leader(records, LEADER_EPOCH)
    }

    /// Reads whole batches from `offset`, at most `max_bytes` unless `min_one_message` lets the
    /// first batch exceed it, never past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_message: bool,
    ) -> Result<PartitionRead, LogError> {
        let log = self.log.read();
        let high_watermark = log.log_end_offset();
        let data = log.read(offset, max_bytes, high_watermark, min_one_message)?;
        Ok(PartitionRead {
            records: data.records,
            high_watermark,
            log_start_offset: log.log_start_offset(),
        })
    }

    /// The high watermark: on a single replica, the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.log.read().log_end_offset()
    }

    /// The log start offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is at least `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        self.log.read().fetch_offset_for_timestamp(ts)
    }

    /// ListOffsets MAX_TIMESTAMP: the offset and timestamp of the newest-stamped record.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.log.read().max_timestamp_and_offset()
    }

    /// Sizes and offsets.
    pub fn stats(&self) -> PartitionStats {
        let log = self.log.read();
        PartitionStats {
            size_bytes: log.size_in_bytes(),
            log_start_offset: log.log_start_offset(),
            log_end_offset: log.log_end_offset(),
            segments: log.num_segments(),
        }
    }

    /// Applies a changed topic config to the log.
    pub fn update_config(&self, config: LogConfig) {
        self.log.write().update_config(config);
    }

    /// Deletes segments past retention; returns how many were deleted.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        self.log.write().delete_old_segments()
    }

    /// Fsyncs the log if `flush.ms` has passed since this partition's last periodic flush
    /// (appends check `flush.messages` and `flush.ms` themselves; this covers a quiet log).
    pub fn flush_if_due(&self) -> Result<(), LogError> {
        let flush_ms = self.log.read().config().flush_ms;
        if flush_ms == i64::MAX {
            return Ok(());
        }
        let mut last = self.last_periodic_flush.lock();
        if last.elapsed() >= Duration::from_millis(flush_ms.max(0) as u64) {
            self.log.write().flush()?;
            *last = Instant::now();
        }
        Ok(())
    }

    /// Flushes and writes the recovery checkpoint.
    pub fn checkpoint(&self) -> Result<(), LogError> {
        self.log.write().flush()
    }

    /// Flushes and closes the log cleanly (a restart then skips recovery).
    pub fn close(&self) -> Result<(), LogError> {
        self.log.write().close()
    }
}
