//! [`Log`]: one partition's log, its reads and lookups. Appends are in `append.rs`, opening
//! and recovery in `recovery.rs`, retention and truncation in `retention.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::batch::NO_TIMESTAMP;
use super::checkpoint::sync_dir;
use super::flush::{PendingFlush, RecoveryPoint};
use super::scanner::ScannedBatch;
use super::transaction_index::AbortedTxn;
use super::{LeaderEpochFileCache, LogConfig, LogError, LogSegment, ProducerStateManager};
use crate::clock::Clock;

/// Name of the clean-shutdown marker written by [`Log::close`] and removed by [`Log::open`].
pub const CLEAN_SHUTDOWN_FILE: &str = ".weir_cleanshutdown";
/// Per-partition recovery point checkpoint: every offset below it is fsynced.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Per-partition log start offset checkpoint (Kafka's `log-start-offset-checkpoint`).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Per-partition high watermark checkpoint (Kafka keeps one `replication-offset-checkpoint`
/// per data directory; Weir keeps it beside the partition's other checkpoints).
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";

/// What an append did (Kafka's `LogAppendInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset of the first appended record (for a duplicate: the one originally assigned).
    pub first_offset: i64,
    /// Offset of the last appended record (for a duplicate: the one originally assigned).
    pub last_offset: i64,
    /// Largest batch maxTimestamp of the append (after LogAppendTime stamping).
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// The broker time stamped on the batches with LogAppendTime, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended (for a duplicate: records in the original batch).
    pub records_count: i64,
    /// Bytes appended (0 for a duplicate).
    pub valid_bytes: u64,
    /// The batch had already been appended; nothing was written.
    pub duplicate: bool,
    /// The leader epoch of the leader that appended (or, for a duplicate, found) the batch;
    /// -1 for an append that was not a leader's.
    pub leader_epoch: i32,
}

impl LogAppendInfo {
    /// Where this append ended, and under which leader: what replication is waited for.
    pub fn appended(&self) -> Appended {
        Appended {
            last_offset: self.last_offset,
            leader_epoch: self.leader_epoch,
        }
    }
}

/// The last offset of a leader's append and the leader epoch it was made in. The record at
/// that offset is the leader's own only while the leader epoch cache still maps the offset to
/// that epoch: a leader that lost its leadership in between may have truncated it and taken
/// another leader's record at the same offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the append's last record.
    pub last_offset: i64,
    /// The leader epoch the append was made in.
    pub leader_epoch: i32,
}

/// What a read returned (Kafka's `FetchDataInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchDataInfo {
    /// The offset asked for. The first batch may start below it (clients skip those records).
    pub fetch_offset: i64,
    /// Whole record batches, exactly as stored; empty at the log end or high watermark.
    pub records: Bytes,
    /// Base offset of the segment read from (-1 when nothing was read).
    pub segment_base_offset: i64,
    /// Byte position of the first batch in that segment.
    pub position: u64,
}

/// One partition's log (Kafka's `UnifiedLog` over `LocalLog`): a directory
/// `<data-dir>/<topic>-<partition>/` of [`LogSegment`]s, checkpoints, producer snapshots.
///
/// Files: `<base>.log/.index/.timeindex` per segment, `<offset>.snapshot` producer state
/// snapshots, `recovery-point`, `log-start-offset` and `high-watermark` checkpoints, the
/// `leader-epoch-checkpoint` ([`LeaderEpochFileCache`]), and `.weir_cleanshutdown` while the
/// log is closed cleanly.
///
/// Invariants: `segments` is non-empty, sorted by base offset, contiguous in offsets; the last
/// one is the active segment (the only one appended to); `log_start_offset <= high_watermark
/// <= log_end_offset`; `recovery_point <= log_end_offset`, and everything below it is
/// fsynced; producer state reflects every batch below the log end offset; the leader epoch
/// cache has an entry for the epoch of every batch from the log start on that starts an epoch,
/// and none starting above the log end offset.
///
/// Thread safety: no interior locking. Reads ([`Log::read`], lookups, getters) take `&self`
/// and may run concurrently with each other; mutations take `&mut self`. Callers hold it in a
/// `parking_lot::RwLock<Log>`: fetches under the read lock, appends under the write lock.
#[derive(Debug)]
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) segments: Vec<LogSegment>,
    pub(super) log_start_offset: i64,
    /// Shared with the flushes queued by rolls, which move it when they complete.
    pub(super) recovery_point: RecoveryPoint,
    /// Flushes queued by rolls, for the owner to run off the lock.
    pub(super) pending_flushes: Vec<PendingFlush>,
    /// A roll created segment files whose directory entries may not be durable yet.
    pub(super) dir_unsynced: bool,
    pub(super) producer_state: ProducerStateManager,
    pub(super) leader_epoch_cache: LeaderEpochFileCache,
    pub(super) high_watermark: i64,
    /// The value in the `high-watermark` file, so unchanged values are not rewritten.
    pub(super) checkpointed_high_watermark: i64,
    pub(super) unflushed_records: i64,
    pub(super) last_flush_ms: i64,
    pub(super) closed: bool,
}

impl Log {
    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    /// First offset readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
    /// Every offset below this is fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.get()
    }

    /// `path`, renamed into this log's directory, was written without fsync
    /// ([`super::checkpoint::write_replacing`]): it and the directory are fsynced before the
    /// recovery point is next checkpointed.
    pub(super) fn defer_sync(&self, path: &Path) {
        self.recovery_point.defer_sync(path.to_path_buf());
        self.recovery_point.defer_sync(self.dir.clone());
    }

    /// Writes `content` to the file `name` of the log's directory without fsync (a new
    /// partition's `partition.metadata`): it is fsynced with the log's first flush.
    pub fn write_file_unsynced(&self, name: &str, content: &[u8]) -> Result<(), LogError> {
        let path = self.dir.join(name);
        super::checkpoint::write_replacing(&path, content)?;
        self.defer_sync(&path);
        Ok(())
    }

    /// Takes the flushes queued by segment rolls since the last call. The caller runs each
    /// ([`PendingFlush::run`]) once it released the log's lock, on a thread that may block; the
    /// recovery point moves when they complete. Dropping one only delays the recovery point to
    /// the next full [`Log::flush`].
    pub fn take_pending_flushes(&mut self) -> Vec<PendingFlush> {
        std::mem::take(&mut self.pending_flushes)
    }
    /// Bytes in all segment files.
    pub fn size_in_bytes(&self) -> u64 {
        self.segments.iter().map(LogSegment::size).sum()
    }
    /// Number of segments (at least 1).
    pub fn num_segments(&self) -> usize {
        self.segments.len()
    }
    /// The segments, oldest first; the last one is active.
    pub fn segments(&self) -> &[LogSegment] {
        &self.segments
    }
    /// The idempotent producer state.
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// Forgets the producers idle for `expiration_ms` or more without an open transaction
    /// (`producer.id.expiration.ms`, by this log's clock); returns how many.
    pub fn remove_expired_producers(&mut self, expiration_ms: i64) -> usize {
        let now = self.clock.now_ms();
        self.producer_state.remove_expired(now, expiration_ms)
    }

    pub(super) fn active(&self) -> &LogSegment {
        self.segments
            .last()
            .expect("a log has at least one segment")
    }

    pub(super) fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .last_mut()
            .expect("a log has at least one segment")
    }

    pub(super) fn ensure_open(&self) -> Result<(), LogError> {
        if self.closed {
            return Err(LogError::Closed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Sets new settings (IncrementalAlterConfigs). Roll, retention, flush and size limits apply
    /// from the next call; `segment_index_bytes` applies to segments created from now on.
    pub fn update_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Reads whole batches from `fetch_offset`: at most `max_bytes` (but the whole first batch
    /// if `min_one_message` and it is larger), only batches entirely below `max_offset`
    /// (exclusive; the high watermark for consumers, the log end for followers).
    ///
    /// [`LogError::OffsetOutOfRange`] unless `log_start <= fetch_offset <= log_end`; at the log
    /// end the result is empty. A `fetch_offset` inside a batch returns that whole batch, as
    /// Kafka does. Bytes come straight from the segment file; nothing is decoded.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_message: bool,
    ) -> Result<FetchDataInfo, LogError> {
        let log_end = self.check_fetch_offset(fetch_offset)?;
        let empty = FetchDataInfo {
            fetch_offset,
            records: Bytes::new(),
            segment_base_offset: -1,
            position: 0,
        };
        if fetch_offset >= log_end.min(max_offset) {
            return Ok(empty);
        }
        let first = self.segment_index_for(fetch_offset);
        for segment in &self.segments[first..] {
            if let Some(read) =
                segment.read(fetch_offset, max_bytes, max_offset, min_one_message)?
            {
                return Ok(FetchDataInfo {
                    fetch_offset,
                    records: read.records,
                    segment_base_offset: segment.base_offset(),
                    position: read.position,
                });
            }
        }
        Ok(empty)
    }

    /// The log end, if `fetch_offset` lies in `log_start..=log_end`; else
    /// [`LogError::OffsetOutOfRange`].
    fn check_fetch_offset(&self, fetch_offset: i64) -> Result<i64, LogError> {
        let log_end = self.log_end_offset();
        if fetch_offset < self.log_start_offset || fetch_offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        Ok(log_end)
    }

    /// [`Log::read`] for a Fetch that may send the records from the segment file: when the
    /// batches found span at least `file_from` bytes they come back as a range of the file
    /// (`FetchDataInfo::file`, with `records` empty), else as bytes.
    pub fn read_for_fetch(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_message: bool,
        file_from: usize,
    ) -> Result<(FetchDataInfo, Option<super::FileRecords>), LogError> {
        let log_end = self.check_fetch_offset(fetch_offset)?;
        let mut info = FetchDataInfo {
            fetch_offset,
            records: Bytes::new(),
            segment_base_offset: -1,
            position: 0,
        };
        if fetch_offset >= log_end.min(max_offset) {
            return Ok((info, None));
        }
        let first = self.segment_index_for(fetch_offset);
        for segment in &self.segments[first..] {
            let found = segment.read_file_range(
                fetch_offset,
                max_bytes,
                max_offset,
                min_one_message,
                file_from,
            )?;
            let Some(found) = found else { continue };
            info.segment_base_offset = segment.base_offset();
            return Ok(match found {
                super::RangeRead::File(file) => {
                    info.position = file.slice.position();
                    (info, Some(file))
                }
                super::RangeRead::Bytes(read) => {
                    info.position = read.position;
                    info.records = read.records;
                    (info, None)
                }
            });
        }
        Ok((info, None))
    }

    /// The last stable offset (Kafka's LSO): the first offset of the oldest transaction still
    /// open (or whose marker is not yet replicated), capped at the high watermark. A
    /// `read_committed` consumer reads below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.producer_state
            .first_unstable_offset()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark))
            .max(self.log_start_offset)
    }

    /// The aborted transactions a `read_committed` fetch of `[start, upper)` must be told
    /// about: those whose ABORT marker is at or after `start` and that began before `upper`.
    pub fn collect_aborted_txns(&self, start: i64, upper: i64) -> Vec<AbortedTxn> {
        let mut aborted = Vec::new();
        for segment in &self.segments[self.segment_index_for(start)..] {
            segment.txn_index().collect(start, upper, &mut aborted);
        }
        aborted
    }

    /// Index of the segment that would hold `offset` (the last one starting at or below it).
    pub(super) fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// ListOffsets by timestamp: the first offset at or above the log start whose record
    /// timestamp is `>= timestamp`, with that timestamp; `None` if there is none.
    ///
    /// Cold path: the time index finds the batch, then that one batch is decoded (and
    /// decompressed) to find the exact record.
    pub fn fetch_offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        for segment in self
            .segments
            .iter()
            .filter(|s| s.max_timestamp() >= timestamp)
        {
            let mut min_offset = self.log_start_offset;
            while let Some(batch) = segment.find_batch_by_timestamp(timestamp, min_offset)? {
                let found = find_record(segment, &batch, |offset, ts| {
                    offset >= self.log_start_offset && ts >= timestamp
                })?;
                if found.is_some() {
                    return Ok(found);
                }
                min_offset = batch.header().next_offset();
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the offset and timestamp of the first record carrying
    /// the log's largest timestamp; `None` if the log holds no timestamped record.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<&LogSegment> = None;
        for segment in &self.segments {
            if segment.max_timestamp() > best.map_or(NO_TIMESTAMP, LogSegment::max_timestamp) {
                best = Some(segment);
            }
        }
        let Some(segment) = best else {
            return Ok(None);
        };
        let max_timestamp = segment.max_timestamp();
        let Some(batch) = segment.find_batch(segment.offset_of_max_timestamp())? else {
            return Ok(None);
        };
        find_record(segment, &batch, |_, ts| ts == max_timestamp)
    }

    /// fsyncs every segment holding offsets at or above the recovery point, moves the
    /// recovery point to the log end and checkpoints it, and checkpoints the high watermark if
    /// it moved. For the periodic checkpoint and flush jobs and shutdown; appends flush with
    /// `Log::flush_segments`, which leaves the high watermark file alone.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.flush_segments()?;
        self.checkpoint_high_watermark()
    }

    /// What [`Log::flush`] does, with the fsyncs queued for the owner to run off the log's
    /// lock ([`Log::take_pending_flushes`]), as a roll's are: the index entries the files lack
    /// are written now, the high watermark checkpointed; the queued flush fsyncs every segment
    /// from the recovery point on (the active one too, while appends go on) and the directory,
    /// then moves the recovery point to today's log end. For the periodic recovery-point
    /// checkpoint: fsyncing an active segment that holds a gigabyte not yet written back takes
    /// hundreds of milliseconds, which every produce to the partition waited for under the
    /// lock.
    pub fn queue_flush(&mut self) -> Result<(), LogError> {
        self.ensure_open()?;
        let log_end = self.log_end_offset();
        let recovery_point = self.recovery_point.get();
        let mut unflushed = Vec::new();
        for segment in self.segments.iter_mut().filter(|s| {
            s.next_offset() > recovery_point || s.is_empty() || s.unwritten_index_entries() > 0
        }) {
            segment.write_index_entries()?;
            unflushed.push(segment.files());
        }
        if log_end > recovery_point {
            self.pending_flushes.push(PendingFlush::new(
                &self.dir,
                unflushed,
                log_end,
                &self.recovery_point,
            ));
        }
        self.checkpoint_high_watermark()
    }

    /// fsyncs every segment holding offsets at or above the recovery point, then moves the
    /// recovery point to the log end and checkpoints it.
    pub(super) fn flush_segments(&mut self) -> Result<(), LogError> {
        let log_end = self.log_end_offset();
        let recovery_point = self.recovery_point.get();
        for segment in self
            .segments
            .iter_mut()
            // A segment below the recovery point may still hold index entries the files
            // lack when DeleteRecords raised the point over it: write them too.
            .filter(|s| {
                s.next_offset() > recovery_point || s.is_empty() || s.unwritten_index_entries() > 0
            })
        {
            segment.flush()?;
        }
        if self.dir_unsynced {
            // Segment files created by a roll whose queued flush may not have run yet.
            sync_dir(&self.dir)?;
            self.dir_unsynced = false;
        }
        self.recovery_point.set(log_end)?;
        self.unflushed_records = 0;
        self.last_flush_ms = self.clock.now_ms();
        Ok(())
    }

    /// Flushes, snapshots producer state and writes the clean-shutdown marker so the next
    /// [`Log::open`] skips recovery. Mutations after this fail with [`LogError::Closed`].
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.closed {
            return Ok(());
        }
        self.flush()?;
        self.producer_state.take_snapshot()?;
        self.producer_state.retain_latest_snapshots(2)?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        std::fs::File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(LogError::io("create clean shutdown marker", &marker))?;
        sync_dir(&self.dir)?;
        self.closed = true;
        Ok(())
    }

    /// Deletes the partition directory and everything in it (topic deletion).
    pub fn delete_dir(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(LogError::io("delete log directory", &dir))
    }
}

/// Decodes one stored batch and returns the first record matching `wanted(offset, timestamp)`.
fn find_record(
    segment: &LogSegment,
    batch: &ScannedBatch,
    wanted: impl Fn(i64, i64) -> bool,
) -> Result<Option<(i64, i64)>, LogError> {
    let header = batch.header();
    let base_offset = header.base_offset();
    let mut bytes = segment.read_bytes(batch.position, batch.size())?;
    let record_set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| LogError::DecodeBatch {
        base_offset,
        reason: e.to_string(),
    })?;
    // With LogAppendTime every record carries the batch's maxTimestamp (Kafka's rule).
    let append_time = header.is_log_append_time().then(|| header.max_timestamp());
    Ok(record_set
        .records
        .iter()
        .map(|r| (r.offset, append_time.unwrap_or(r.timestamp)))
        .find(|&(offset, ts)| wanted(offset, ts)))
}

#[cfg(test)]
#[path = "unified_log_tests.rs"]
mod tests;
