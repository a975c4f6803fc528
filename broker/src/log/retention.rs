//! Deleting whole segments by retention, and truncating the log's tail.

use super::checkpoint::{sync_dir, write_offset_checkpoint};
use super::unified_log::LOG_START_OFFSET_FILE;
use super::{Log, LogError, LogSegment};

impl Log {
    /// Deletes the oldest whole segments that retention allows to go, and returns how many.
    ///
    /// With `cleanup.policy` lacking `delete` (compacted topics) only the last rule applies.
    /// As Kafka, in order: segments whose largest record timestamp is more than `retention.ms`
    /// old (the time of their first append if they hold no timestamp), then the oldest segments
    /// while the log stays at least `retention.bytes` without them, then segments entirely below
    /// the log start offset. Only a prefix of segments goes; an empty active segment stays. If
    /// every segment goes, an empty segment is rolled first, so the log start offset moves to
    /// the log end offset. The new log start offset is checkpointed. A no-op once closed (the
    /// retention task may race with shutdown).
    pub fn delete_old_segments(&mut self) -> Result<usize, LogError> {
        if self.closed {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut deleted = 0;

        // `cleanup.policy=compact` alone: the cleaner, not retention, decides what goes.
        let delete_policy = self.config.cleanup_policy.delete;
        if delete_policy && self.config.retention_ms >= 0 {
            let retention_ms = self.config.retention_ms;
            let expired = self.deletable_prefix(|segment| {
                let largest = if segment.max_timestamp() >= 0 {
                    Some(segment.max_timestamp())
                } else {
                    segment.roll_base_ms()
                };
                largest.is_some_and(|t| now.saturating_sub(t) > retention_ms)
            });
            deleted += self.delete_prefix(expired)?;
        }

        if delete_policy && self.config.retention_bytes >= 0 {
            let mut excess = self.size_in_bytes() as i64 - self.config.retention_bytes;
            let too_big = self.deletable_prefix(|segment| {
                let size = segment.size() as i64;
                let deletable = excess - size >= 0;
                if deletable {
                    excess -= size;
                }
                deletable
            });
            deleted += self.delete_prefix(too_big)?;
        }

        let log_start_offset = self.log_start_offset;
        let next_bases: Vec<i64> = self
            .segments
            .iter()
            .skip(1)
            .map(LogSegment::base_offset)
            .collect();
        let below_start = next_bases
            .iter()
            .take_while(|&&next| next <= log_start_offset)
            .count();
        deleted += self.delete_prefix(below_start)?;
        Ok(deleted)
    }

    /// Length of the prefix of segments matching `deletable`, never counting an empty active
    /// segment.
    fn deletable_prefix(&self, mut deletable: impl FnMut(&LogSegment) -> bool) -> usize {
        let last = self.segments.len() - 1;
        self.segments
            .iter()
            .enumerate()
            .take_while(|(i, segment)| !(*i == last && segment.is_empty()) && deletable(segment))
            .count()
    }

    /// Deletes the first `count` segments, rolling first if that is all of them.
    fn delete_prefix(&mut self, count: usize) -> Result<usize, LogError> {
        if count == 0 {
            return Ok(0);
        }
        if count == self.segments.len() {
            self.roll()?;
        }
        for segment in self.segments.drain(..count) {
            tracing::info!(path = %segment.log_path().display(), "deleting segment by retention");
            segment.delete()?;
        }
        sync_dir(&self.dir)?;
        let first_base = self.segments[0].base_offset();
        if first_base > self.log_start_offset {
            self.set_log_start_offset(first_base)?;
        }
        Ok(count)
    }

    /// Moves the log start up: the recovery point and high watermark follow it, and the epoch
    /// that holds it now starts there.
    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        self.log_start_offset = offset;
        self.recovery_point.raise(offset);
        self.high_watermark = self.high_watermark.max(offset);
        self.leader_epoch_cache.truncate_from_start(offset)?;
        write_offset_checkpoint(&self.dir.join(LOG_START_OFFSET_FILE), offset)
    }

    /// Moves the log start offset up to `offset` (DeleteRecords); segments wholly below it are
    /// deleted by the next [`Log::delete_old_segments`]. Returns whether it moved.
    pub fn maybe_increment_log_start_offset(&mut self, offset: i64) -> Result<bool, LogError> {
        self.ensure_open()?;
        let log_end = self.log_end_offset();
        if offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(false);
        }
        self.set_log_start_offset(offset)?;
        Ok(true)
    }

    /// Removes every record at or above `offset` (a follower diverging from its leader).
    ///
    /// Whole batches go, as in Kafka: if `offset` falls inside a batch, that batch goes too and
    /// the log end lands below `offset`. Below the log start the log is emptied and restarted
    /// at `offset`. Producer state is reloaded from snapshots and the remaining batches; leader
    /// epochs starting at or after the new log end are forgotten, and the high watermark comes
    /// down to the log end if it was above. Returns whether any record was removed.
    ///
    /// At or past the log end no record goes, but epochs starting at the log end are still
    /// forgotten, as Kafka does: a replica that became leader and assigned an epoch without
    /// appending must not keep it once it follows a leader that never wrote in that epoch.
    pub fn truncate_to(&mut self, offset: i64) -> Result<bool, LogError> {
        self.ensure_open()?;
        if offset >= self.log_end_offset() {
            self.leader_epoch_cache
                .truncate_from_end(self.log_end_offset())?;
            return Ok(false);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(true);
        }
        while self.segments.len() > 1 && self.active().base_offset() > offset {
            let segment = self.segments.pop().expect("more than one segment");
            segment.delete()?;
        }
        self.active_mut().truncate_to(offset)?;
        let log_end = self.log_end_offset();
        // The log end, not `offset`: a batch cut in the middle leaves nothing of its epoch.
        self.leader_epoch_cache.truncate_from_end(log_end)?;
        self.high_watermark = self.high_watermark.min(log_end);
        // Always through `truncate`: flushes queued before must not move the recovery point
        // over offsets that are now rewritten.
        self.recovery_point
            .truncate(self.recovery_point.get().min(log_end))?;
        self.producer_state.delete_snapshots_after(log_end)?;
        self.reload_producer_state()?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Deletes every segment and restarts the log empty at `offset`, which becomes the log
    /// start, log end, recovery point and high watermark, and forgets every leader epoch (a
    /// follower too far behind its leader's log start).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.ensure_open()?;
        for segment in self.segments.drain(..) {
            segment.delete()?;
        }
        self.segments.push(LogSegment::create(
            &self.dir,
            offset,
            self.config.segment_index_bytes,
        )?);
        self.log_start_offset = offset;
        self.recovery_point.truncate(offset)?;
        self.high_watermark = offset;
        self.leader_epoch_cache.clear_and_flush()?;
        write_offset_checkpoint(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
        self.producer_state.delete_snapshots_after(-1)?;
        self.producer_state.reset(offset);
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
