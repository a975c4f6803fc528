//! What replication asks of a log: its high watermark, its leader epochs and where a follower
//! must truncate to stay a prefix of its leader.
//!
//! The partition layer decides the values (the leader computes the high watermark from its
//! followers' log end offsets, a follower takes the leader's); the log keeps them consistent
//! with its own offsets, persists them, and restores them on open. Follower appends are in
//! `append.rs` beside leader appends.

use super::checkpoint::write_offset_checkpoint;
use super::leader_epoch::{EpochEntry, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use super::unified_log::HIGH_WATERMARK_FILE;
use super::{LeaderEpochFileCache, Log, LogError};

/// Where a follower truncates after its leader answered OffsetForLeaderEpoch (Kafka's
/// `OffsetTruncationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTruncationState {
    /// Truncate the log to this offset ([`Log::truncate_to`]); never above the log end.
    pub offset: i64,
    /// `false` when the leader answered with an epoch this log does not know: after truncating,
    /// ask again with the (now older) [`Log::latest_epoch`].
    pub truncation_completed: bool,
}

impl Log {
    /// The high watermark: every offset below it is replicated to the in-sync replicas and
    /// may be read by consumers. Always within `[log_start_offset, log_end_offset]`.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark, clamped to `[log_start_offset, log_end_offset]`, and returns
    /// the value set (Kafka's `updateHighWatermark`). It may move backwards: a follower takes
    /// whatever its leader sends, capped by its own log end. Checkpointed by [`Log::flush`].
    pub fn update_high_watermark(&mut self, high_watermark: i64) -> i64 {
        self.high_watermark = high_watermark
            .min(self.log_end_offset())
            .max(self.log_start_offset);
        self.producer_state.on_high_watermark(self.high_watermark);
        self.high_watermark
    }

    /// Moves the high watermark forward to `high_watermark` (capped at the log end), never
    /// back: the leader's rule (Kafka's `maybeIncrementHighWatermark`). Returns the old value
    /// if it moved.
    pub fn maybe_increment_high_watermark(&mut self, high_watermark: i64) -> Option<i64> {
        let old = self.high_watermark;
        let new = high_watermark.min(self.log_end_offset());
        if new <= old {
            return None;
        }
        self.high_watermark = new;
        self.producer_state.on_high_watermark(new);
        Some(old)
    }

    /// Writes the `high-watermark` checkpoint if the value changed since it was last written.
    pub(super) fn checkpoint_high_watermark(&mut self) -> Result<(), LogError> {
        if self.high_watermark == self.checkpointed_high_watermark {
            return Ok(());
        }
        write_offset_checkpoint(&self.dir.join(HIGH_WATERMARK_FILE), self.high_watermark)?;
        self.checkpointed_high_watermark = self.high_watermark;
        Ok(())
    }

    /// The leader epoch history of this log.
    pub fn leader_epoch_cache(&self) -> &LeaderEpochFileCache {
        &self.leader_epoch_cache
    }

    /// The newest leader epoch in the log (or assigned to it), `None` if there is none.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epoch_cache.latest_epoch()
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` for `requested_epoch` on this log, with
    /// Kafka's rules ([`LeaderEpochFileCache::end_offset_for`]); `(UNDEFINED_EPOCH,
    /// UNDEFINED_EPOCH_OFFSET)` when there is no answer.
    pub fn end_offset_for_epoch(&self, requested_epoch: i32) -> (i32, i64) {
        self.leader_epoch_cache
            .end_offset_for(requested_epoch, self.log_end_offset())
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `maybeAssignEpochStartOffset`).
    /// A replica that becomes leader calls it with its log end offset before it appends, so
    /// OffsetForLeaderEpoch answers followers correctly even before the first append. A start
    /// offset past the log end is [`LogError::InvalidEpochEntry`].
    pub fn maybe_assign_epoch_start_offset(
        &mut self,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), LogError> {
        self.ensure_open()?;
        if start_offset > self.log_end_offset() {
            return Err(LogError::InvalidEpochEntry {
                epoch,
                start_offset,
            });
        }
        if self.leader_epoch_cache.assign(epoch, start_offset)? {
            self.defer_sync(self.leader_epoch_cache.path());
        }
        Ok(())
    }

    /// Where this log, as a follower, must truncate given its leader's OffsetForLeaderEpoch
    /// answer `(leader_epoch, leader_end_offset)` to the request for [`Log::latest_epoch`]
    /// (Kafka's `getOffsetTruncationState`, KIP-279):
    ///
    /// - the leader had no answer (`UNDEFINED_EPOCH_OFFSET`): the high watermark, known to be
    ///   replicated;
    /// - the leader answered an offset without an epoch, or this log does not track epochs that
    ///   old: the leader's offset;
    /// - the leader answered an epoch this log does not have: the end of this log's largest
    ///   epoch below it, not completed (ask again with that epoch);
    /// - otherwise the smaller of the two logs' end offsets for that epoch.
    ///
    /// The offset is never above the log end.
    pub fn offset_truncation_state(
        &self,
        leader_epoch: i32,
        leader_end_offset: i64,
    ) -> OffsetTruncationState {
        let log_end = self.log_end_offset();
        let completed = |offset: i64| OffsetTruncationState {
            offset: offset.min(log_end),
            truncation_completed: true,
        };
        if leader_end_offset == UNDEFINED_EPOCH_OFFSET {
            return completed(self.high_watermark);
        }
        if leader_epoch == UNDEFINED_EPOCH {
            return completed(leader_end_offset);
        }
        match self.end_offset_for_epoch(leader_epoch) {
            (_, UNDEFINED_EPOCH_OFFSET) => completed(leader_end_offset),
            (follower_epoch, follower_end_offset) if follower_epoch != leader_epoch => {
                OffsetTruncationState {
                    offset: follower_end_offset.min(log_end),
                    truncation_completed: false,
                }
            }
            (_, follower_end_offset) => completed(follower_end_offset.min(leader_end_offset)),
        }
    }

    /// Assigns the epochs of the batches from `from_offset` to the log end that start a newer
    /// epoch than the cache's latest (Kafka's rule while recovering segments), with one write.
    pub(super) fn assign_epochs_from_batches(&mut self, from_offset: i64) -> Result<(), LogError> {
        let mut latest = self.leader_epoch_cache.latest_epoch();
        let mut found = Vec::new();
        for segment in self
            .segments
            .iter()
            .filter(|s| s.next_offset() > from_offset)
        {
            for batch in segment.batches_from(from_offset) {
                let batch = batch?;
                let header = batch.header();
                let epoch = header.partition_leader_epoch();
                if epoch >= 0 && latest.is_none_or(|l| epoch > l) {
                    found.push(EpochEntry {
                        epoch,
                        start_offset: header.base_offset(),
                    });
                    latest = Some(epoch);
                }
            }
        }
        if self.leader_epoch_cache.assign_all(found)? {
            self.defer_sync(self.leader_epoch_cache.path());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "replication_history_tests.rs"]
mod history_tests;
