//! Which part of a log the cleaner may clean, and how dirty it is (Kafka's `LogToClean` and
//! `LogCleanerManager.cleanableOffsets`).

use std::path::Path;

use crate::log::checkpoint::{read_offset_checkpoint, write_offset_checkpoint};
use crate::log::{Log, LogError, LogSegment};

/// Per-partition checkpoint of the offset the cleaner has cleaned up to: everything below it
/// holds at most one record per key (plus tombstones within their horizon). Kafka keeps one
/// `cleaner-offset-checkpoint` per data directory; Weir keeps it beside the partition's other
/// checkpoints, as it does the high watermark, so it goes with the partition's directory.
pub const CLEANER_OFFSET_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The cleanable state of one compacted log at one moment.
///
/// Invariant: `log_start_offset <= first_dirty_offset <= first_uncleanable_offset`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogToClean {
    /// The log start offset.
    pub log_start_offset: i64,
    /// Where the dirty (not yet cleaned) part starts: the checkpoint, or the log start.
    pub first_dirty_offset: i64,
    /// The cleaner never goes at or above this: min(active segment base, last stable offset, base
    /// of the first segment with a record newer than `min.compaction.lag.ms`).
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments wholly below `first_dirty_offset`.
    pub clean_bytes: u64,
    /// Bytes of the segments in `[first_dirty_offset, first_uncleanable_offset)`.
    pub cleanable_bytes: u64,
    /// Whether `max.compaction.lag.ms` forces a clean whatever the dirty ratio.
    pub needs_compaction_now: bool,
}

impl LogToClean {
    /// `cleanable_bytes / (clean_bytes + cleanable_bytes)`, 0 for an empty log.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }
}

/// The cleaner checkpoint of the log in `dir` (`None` when it was never cleaned).
pub fn read_cleaner_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    read_offset_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT_FILE))
}

/// Records that the log in `dir` is cleaned up to `offset`.
pub fn write_cleaner_checkpoint(dir: &Path, offset: i64) -> Result<(), LogError> {
    write_offset_checkpoint(&dir.join(CLEANER_OFFSET_CHECKPOINT_FILE), offset)
}

impl Log {
    /// What the cleaner may clean in this log at `now_ms`, with `checkpoint` the cleaner's
    /// checkpointed offset. A checkpoint outside `[log start, log end]` (retention or
    /// truncation moved the log) restarts from the log start, as Kafka does.
    pub fn log_to_clean(&self, checkpoint: Option<i64>, now_ms: i64) -> LogToClean {
        let log_start = self.log_start_offset;
        let log_end = self.log_end_offset();
        let first_dirty = checkpoint
            .filter(|&c| c >= log_start && c <= log_end)
            .unwrap_or(log_start);
        // The last stable offset (at most the high watermark): an open transaction's records
        // may still be aborted, so nothing from its first offset on is cleaned.
        let mut first_uncleanable = self.active().base_offset().min(self.last_stable_offset());
        let min_lag = self.config.min_compaction_lag_ms;
        if min_lag > 0 {
            let too_recent = self
                .segments
                .iter()
                .filter(|s| s.next_offset() > first_dirty)
                .find(|s| s.max_timestamp() > now_ms.saturating_sub(min_lag));
            if let Some(segment) = too_recent {
                first_uncleanable = first_uncleanable.min(segment.base_offset());
            }
        }
        let first_uncleanable = first_uncleanable.max(first_dirty);
        let clean_bytes = self
            .segments
            .iter()
            .filter(|s| s.next_offset() <= first_dirty && s.base_offset() < first_dirty)
            .map(LogSegment::size)
            .sum();
        let dirty: Vec<&LogSegment> = self
            .segments
            .iter()
            .filter(|s| s.next_offset() > first_dirty && s.base_offset() < first_uncleanable)
            .collect();
        let cleanable_bytes = dirty.iter().map(|s| s.size()).sum();
        let max_lag = self.config.max_compaction_lag_ms;
        let needs_compaction_now = cleanable_bytes > 0
            && dirty.first().is_some_and(|s| {
                let first_timestamp = s.roll_base_ms().unwrap_or(now_ms);
                now_ms.saturating_sub(first_timestamp) > max_lag
            });
        LogToClean {
            log_start_offset: log_start,
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            needs_compaction_now,
        }
    }
}
