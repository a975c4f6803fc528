//! Opening a log: load segments, recover what may be torn, rebuild producer state, and bring
//! the leader epoch cache and high watermark in line with what survived.

use std::path::Path;
use std::sync::Arc;

use super::batch::RecordBatchHeader;
use super::checkpoint::{read_offset_checkpoint, sync_dir, write_offset_checkpoint};
use super::control::control_record_type;
use super::flush::RecoveryPoint;
use super::index_file::remove_if_exists;
use super::segment::{
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX,
};
use super::unified_log::{
    CLEAN_SHUTDOWN_FILE, HIGH_WATERMARK_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use super::{LeaderEpochFileCache, Log, LogConfig, LogError, LogSegment, ProducerStateManager};
use crate::clock::Clock;

/// Suffixes of files left by an interrupted write, deletion or compaction.
const STRAY_SUFFIXES: [&str; 4] = ["tmp", "deleted", "cleaned", "swap"];

impl Log {
    /// Opens (or creates) the log in `dir`.
    ///
    /// Completes cleaner swaps that passed their commit point (`<base>.swap` manifests, see
    /// [`super::cleaner`]), deletes stray `.tmp`/`.deleted`/`.cleaned`/`.swap` files and orphan indexes, opens the
    /// segments in base-offset order and, unless the previous run closed cleanly
    /// (`.weir_cleanshutdown`), recovers every segment that may hold offsets at or after the
    /// `recovery-point` checkpoint: each batch's structure and CRC is checked, a torn or corrupt
    /// tail is cut, and if that happens before the last segment, every later segment is deleted
    /// (Kafka's rule: nothing after a hole survives). Missing or corrupt indexes are rebuilt in
    /// any case. Producer state is loaded from the newest snapshot and replayed from batch
    /// headers after it.
    ///
    /// The leader epoch cache is loaded from `leader-epoch-checkpoint` and, after an unclean
    /// shutdown, completed from the batch headers past the recovery point; if the file is
    /// missing or unreadable it is rebuilt from every batch header in the log. Either way
    /// entries past the recovered log end or below the log start are trimmed. The high
    /// watermark is read from `high-watermark` and clamped to `[log start, log end]`.
    pub fn open(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Log, LogError> {
        let created = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(LogError::io("create log directory", dir))?;
                true
            }
            Err(e) => return Err(LogError::io("create log directory", dir)(e)),
        };
        if created {
            return Self::create_new(dir, config, clock);
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = marker.exists();
        // A cleaner swap that passed its commit point is completed before strays go.
        super::cleaner::complete_swaps(dir)?;
        let base_offsets = clean_directory(dir)?;
        // A missing checkpoint reads as 0, which is also what a new log would write: the
        // files are only (re)written below when their value changes, so creating or reopening
        // thousands of partitions does not cost two fsyncs per unchanged file.
        let checkpointed_recovery_point =
            read_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE))?.unwrap_or(0);
        let checkpointed_log_start =
            read_offset_checkpoint(&dir.join(LOG_START_OFFSET_FILE))?.unwrap_or(0);
        let checkpointed_high_watermark =
            read_offset_checkpoint(&dir.join(HIGH_WATERMARK_FILE))?.unwrap_or(0);
        let now = clock.now_ms();

        let mut segments: Vec<LogSegment> = Vec::with_capacity(base_offsets.len());
        let mut recovered_any = false;
        for (i, &base_offset) in base_offsets.iter().enumerate() {
            let (mut segment, needs_recovery) =
                LogSegment::open(dir, base_offset, config.segment_index_bytes, now)?;
            let may_hold_unflushed = base_offsets
                .get(i + 1)
                .is_none_or(|&next_base| next_base > checkpointed_recovery_point);
            let overlaps_previous = segments
                .last()
                .is_some_and(|p| p.next_offset() > base_offset);
            if overlaps_previous {
                tracing::warn!(dir = %dir.display(), base_offset, "segment overlaps its predecessor; deleting it and later ones");
                segment.delete()?;
                delete_segments_from(dir, &base_offsets[i + 1..])?;
                break;
            }
            // Only the active segment keeps its index entries in memory; the others reload
            // them on demand, so opening a long log does not hold every index at once.
            if let Some(previous) = segments.last_mut() {
                previous.release_index_memory()?;
            }
            if needs_recovery || (!clean_shutdown && may_hold_unflushed) {
                recovered_any = true;
                let truncated = segment.recover(config.index_interval_bytes)?;
                segment.flush()?;
                let later = &base_offsets[i + 1..];
                if truncated > 0 && !later.is_empty() {
                    tracing::warn!(dir = %dir.display(), base_offset, "corruption mid-log; deleting {} later segments", later.len());
                    segments.push(segment);
                    delete_segments_from(dir, later)?;
                    break;
                }
            }
            segments.push(segment);
        }

        let log_end = segments
            .last()
            .map_or(checkpointed_log_start, LogSegment::next_offset);
        if segments.is_empty() || log_end < checkpointed_log_start {
            // Kafka: a log ending below its checkpointed start offset starts over there.
            for segment in segments.drain(..) {
                segment.delete()?;
            }
            segments.push(LogSegment::create(
                dir,
                checkpointed_log_start,
                config.segment_index_bytes,
            )?);
        }
        let log_start_offset = checkpointed_log_start.max(segments[0].base_offset());
        let log_end = segments
            .last()
            .map_or(log_start_offset, LogSegment::next_offset);

        let mut log = Log::assemble(
            dir,
            config,
            clock,
            segments,
            log_start_offset,
            checkpointed_recovery_point.min(log_end),
            checkpointed_high_watermark,
        );
        log.reload_producer_state()?;
        let replay_epochs_from = (!clean_shutdown).then_some(checkpointed_recovery_point);
        log.load_leader_epoch_cache(replay_epochs_from)?;
        log.update_high_watermark(checkpointed_high_watermark);
        // Recovered segments were fsynced above; after a clean shutdown all of it was.
        let recovery_point = if recovered_any || clean_shutdown {
            log_end
        } else {
            log.recovery_point.get()
        };
        if recovery_point != checkpointed_recovery_point {
            log.recovery_point.set(recovery_point)?;
        }
        if log.log_start_offset != checkpointed_log_start {
            write_offset_checkpoint(&dir.join(LOG_START_OFFSET_FILE), log.log_start_offset)?;
        }
        remove_if_exists(&marker)?;
        sync_dir(dir)?;
        tracing::info!(
            dir = %dir.display(),
            log_start_offset = log.log_start_offset,
            log_end_offset = log_end,
            high_watermark = log.high_watermark,
            latest_epoch = ?log.latest_epoch(),
            segments = log.segments.len(),
            clean_shutdown,
            "opened log"
        );
        Ok(log)
    }

    /// The log of a directory [`Log::open`] just created: one empty segment, nothing to
    /// recover or load, and no fsync. The directory's entry in its parent and the segment
    /// files' entries are fsynced before the recovery point is first checkpointed (a flush, a
    /// roll's queued flush, a clean shutdown): until then the log holds nothing durable, and a
    /// power loss that takes the directory only takes records no flush covered. Creating
    /// thousands of partitions at once (a topic, a broker taking its replicas) would otherwise
    /// wait on a directory fsync each.
    fn create_new(dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Log, LogError> {
        let segment = LogSegment::create_in_new_dir(dir, 0, config.segment_index_bytes)?;
        let log = Log::assemble(dir, config, clock, vec![segment], 0, 0, 0);
        log.recovery_point.defer_sync(dir.to_path_buf());
        if let Some(parent) = dir.parent() {
            log.recovery_point.defer_sync(parent.to_path_buf());
        }
        tracing::info!(dir = %dir.display(), "created log");
        Ok(log)
    }

    /// A log of `segments` (at least one) from `log_start_offset`, with empty producer state
    /// and leader epoch cache for the caller to load.
    fn assemble(
        dir: &Path,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        segments: Vec<LogSegment>,
        log_start_offset: i64,
        recovery_point: i64,
        checkpointed_high_watermark: i64,
    ) -> Log {
        let last_flush_ms = clock.now_ms();
        Log {
            dir: dir.to_path_buf(),
            config,
            clock,
            segments,
            log_start_offset,
            recovery_point: RecoveryPoint::new(dir.join(RECOVERY_POINT_FILE), recovery_point),
            pending_flushes: Vec::new(),
            dir_unsynced: false,
            producer_state: ProducerStateManager::new(dir, log_start_offset),
            leader_epoch_cache: LeaderEpochFileCache::empty(dir),
            high_watermark: log_start_offset,
            checkpointed_high_watermark,
            unflushed_records: 0,
            last_flush_ms,
            closed: false,
        }
    }

    /// Loads the leader epoch cache and makes it agree with the log: rebuilt from every batch
    /// header if the file is missing or unreadable; else trimmed to the log end and completed
    /// from `replay_from` (after an unclean shutdown, batches past the recovery point may
    /// start epochs newer than the file's); then trimmed to the log start.
    fn load_leader_epoch_cache(&mut self, replay_from: Option<i64>) -> Result<(), LogError> {
        let rebuild = match LeaderEpochFileCache::load(&self.dir) {
            Ok(Some(cache)) => {
                self.leader_epoch_cache = cache;
                false
            }
            Ok(None) => true,
            Err(LogError::CorruptFile { path, reason }) => {
                tracing::warn!(path = %path.display(), reason, "rebuilding unreadable leader epoch checkpoint from the log");
                true
            }
            Err(e) => return Err(e),
        };
        let replay_from = if rebuild {
            Some(self.log_start_offset)
        } else {
            replay_from
        };
        // Entries for offsets a torn tail lost go first, so the replay can add the epochs of
        // the batches that survived.
        self.leader_epoch_cache
            .truncate_from_end(self.log_end_offset())?;
        if let Some(from) = replay_from {
            self.assign_epochs_from_batches(from.max(self.log_start_offset))?;
        }
        self.leader_epoch_cache
            .truncate_from_start(self.log_start_offset)?;
        // Written even when empty, so the next open does not scan the whole log again; an
        // empty log has nothing to scan (a new partition needs no file yet).
        if rebuild && self.log_end_offset() > self.log_start_offset {
            self.leader_epoch_cache.write()?;
        }
        Ok(())
    }

    /// Loads the newest producer snapshot at or below the log end and replays the batch
    /// headers after it (all of them from the log start if there is no snapshot).
    pub(super) fn reload_producer_state(&mut self) -> Result<(), LogError> {
        let log_end = self.log_end_offset();
        let snapshot = self
            .producer_state
            .load_latest_snapshot(log_end, self.log_start_offset)?;
        let from = self.producer_state.map_end_offset();
        // The aborted-transaction indexes past the snapshot are rebuilt by the replay (a crash
        // may have left them with more or fewer entries than the log).
        for index in 0..self.segments.len() {
            if self.segments[index].next_offset() <= from {
                continue;
            }
            self.segments[index].txn_index_mut().truncate_to(from)?;
            let mut batches = Vec::new();
            for batch in self.segments[index].batches_from(from) {
                let batch = batch?;
                let control = if batch.header().is_control() {
                    let bytes = self.segments[index].read_bytes(batch.position, batch.size())?;
                    let header = RecordBatchHeader::parse(&bytes, batch.position)?;
                    control_record_type(&header, batch.position)?
                } else {
                    None
                };
                batches.push((batch, control));
            }
            for (batch, control) in batches {
                self.track_transaction(index, &batch.header(), control)?;
            }
        }
        tracing::debug!(dir = %self.dir.display(), ?snapshot, replayed_from = from, "loaded producer state");
        Ok(())
    }
}

/// Deletes stray and orphan files; returns the base offsets of the segments, ascending.
fn clean_directory(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(LogError::io("list log directory", dir))? {
        let path = entry
            .map_err(LogError::io("list log directory", dir))?
            .path();
        let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
            continue;
        };
        if STRAY_SUFFIXES.contains(&extension) {
            tracing::info!(path = %path.display(), "deleting stray file");
            remove_if_exists(&path)?;
            continue;
        }
        let base_offset = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| s.len() == 20)
            .and_then(|s| s.parse::<i64>().ok());
        match (extension, base_offset) {
            (LOG_FILE_SUFFIX, Some(base)) => logs.push(base),
            (INDEX_FILE_SUFFIX | TIME_INDEX_FILE_SUFFIX | TXN_INDEX_FILE_SUFFIX, Some(base)) => {
                indexes.push((base, path))
            }
            _ => {}
        }
    }
    logs.sort_unstable();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            tracing::info!(path = %path.display(), "deleting orphan index");
            remove_if_exists(&path)?;
        }
    }
    Ok(logs)
}

/// Deletes the files of the segments with these base offsets (not opened).
fn delete_segments_from(dir: &Path, base_offsets: &[i64]) -> Result<(), LogError> {
    for &base in base_offsets {
        for suffix in super::segment::SEGMENT_FILE_SUFFIXES {
            remove_if_exists(&super::segment::segment_file(dir, base, suffix))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "recovery_tests.rs"]
mod tests;
