//! The log cleaner: compaction of `cleanup.policy=compact` logs, with Kafka's semantics.
//!
//! How the pieces fit:
//! - [`LogToClean`] (`log_to_clean.rs`) says which part of a log may be cleaned: from the
//!   cleaner checkpoint (`cleaner-offset-checkpoint`) to the *first uncleanable offset*, the
//!   lowest of the active segment's base, the high watermark and the first segment holding a
//!   record younger than `min.compaction.lag.ms`; and how dirty it is (the dirty ratio).
//! - [`LogCleanerManager`] (here) chooses the filthiest log whose ratio reaches
//!   `min.cleanable.dirty.ratio` (or that `max.compaction.lag.ms` or an expired tombstone
//!   forces), keeps two threads off one log, and keeps the numbers the metrics report.
//! - A [`Cleaner`] (`pass.rs`, one per `log.cleaner.threads`) cleans that log: it fills an
//!   [`OffsetMap`] (key hash → latest offset, bounded by `log.cleaner.dedupe.buffer.size`)
//!   from the dirty part, then rewrites every segment below the map's end in groups that fit
//!   `segment.bytes` (Kafka's `groupSegmentsBySize`), keeping per batch only the records no
//!   later record of their key supersedes (`records.rs`). Offsets never change: batches keep
//!   their base offset, last offset delta, producer id, epoch and base sequence; a producer's
//!   last batch stays even if empty. Tombstones get a delete horizon (`delete.retention.ms`
//!   after the pass that first sees them) and go in the first pass after it; so do
//!   transaction markers once no data of their transaction is left before them, and aborted
//!   records go at once.
//! - Each rewritten group is swapped in under the log's write lock (`swap.rs`), crash-safely.
//!
//! Thread safety: a [`Cleaner`] belongs to one thread; the [`LogCleanerManager`] is shared
//! (interior `Mutex`). Logs are reached through their `RwLock`: a pass reads a snapshot of
//! segment handles under the read lock and takes the write lock only to swap.

mod log_to_clean;
mod offset_map;
mod pass;
pub mod records;
mod swap;
mod throttler;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use parking_lot::{Mutex, RwLock};

pub use self::log_to_clean::{read_cleaner_checkpoint, LogToClean, CLEANER_OFFSET_CHECKPOINT_FILE};
pub use self::offset_map::OffsetMap;
pub use self::pass::{Cleaner, CleanerConfig, CleanerStats};
pub(crate) use self::swap::complete_swaps;
pub use self::throttler::Throttler;

use super::{Log, LogError};

/// Totals since the broker started, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct CleanerTotals {
    /// Bytes read by passes.
    pub bytes_read: u64,
    /// Bytes written by passes.
    pub bytes_written: u64,
    /// Passes completed.
    pub passes: u64,
    /// Wall time of the last pass, ms.
    pub last_pass_ms: u64,
    /// Unix time the last pass ended, ms (0: none yet).
    pub last_pass_end_ms: i64,
    /// The largest dirty ratio seen when a cleaner last chose a log.
    pub max_dirty_ratio: f64,
    /// Logs whose cleaning failed; skipped until the broker restarts (Kafka's uncleanable
    /// partitions).
    pub uncleanable: usize,
}

#[derive(Debug, Default)]
struct ManagerState {
    in_progress: HashSet<PathBuf>,
    uncleanable: HashSet<PathBuf>,
    /// Earliest delete horizon left by the last pass of each log.
    delete_horizons: HashMap<PathBuf, i64>,
    totals: CleanerTotals,
}

/// Chooses logs for the cleaner threads and keeps their results (Kafka's
/// `LogCleanerManager`). Shared by every cleaner thread.
#[derive(Debug, Default)]
pub struct LogCleanerManager {
    state: Mutex<ManagerState>,
}

/// A log chosen for cleaning; dropping it releases the log for other threads.
#[derive(Debug)]
pub struct InProgress<'a> {
    manager: &'a LogCleanerManager,
    dir: PathBuf,
    /// What the log looked like when chosen.
    pub to_clean: LogToClean,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.manager.state.lock().in_progress.remove(&self.dir);
    }
}

impl LogCleanerManager {
    /// A manager with nothing in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks the filthiest compacted log among `candidates` that is due (dirty ratio above
    /// `min.cleanable.dirty.ratio`, or forced by `max.compaction.lag.ms`, or holding a
    /// tombstone past its delete horizon) and not being cleaned; marks it in progress.
    pub fn grab_filthiest<'c, T>(
        &self,
        candidates: &'c [T],
        log_of: impl Fn(&T) -> &RwLock<Log>,
    ) -> Option<(&'c T, InProgress<'_>)> {
        let mut best: Option<(&'c T, PathBuf, LogToClean, f64)> = None;
        let mut max_ratio: f64 = 0.0;
        {
            let state = self.state.lock();
            for candidate in candidates {
                let log = log_of(candidate).read();
                if !log.config().cleanup_policy.compact || log.closed {
                    continue;
                }
                let dir = log.dir().to_path_buf();
                if state.in_progress.contains(&dir) || state.uncleanable.contains(&dir) {
                    continue;
                }
                let checkpoint = read_cleaner_checkpoint(&dir).ok().flatten();
                let now = log.clock.now_ms();
                let to_clean = log.log_to_clean(checkpoint, now);
                let ratio = to_clean.dirty_ratio();
                max_ratio = max_ratio.max(ratio);
                let tombstones_due = state.delete_horizons.get(&dir).is_some_and(|&h| h <= now);
                let dirty_enough =
                    to_clean.needs_compaction_now || ratio > log.config().min_cleanable_dirty_ratio;
                let due = (to_clean.cleanable_bytes > 0 && dirty_enough) || tombstones_due;
                // Forced logs first, then the dirtiest.
                let score = if to_clean.needs_compaction_now || tombstones_due {
                    2.0 + ratio
                } else {
                    ratio
                };
                if due && best.as_ref().is_none_or(|b| score > b.3) {
                    best = Some((candidate, dir, to_clean, score));
                }
            }
        }
        let mut state = self.state.lock();
        state.totals.max_dirty_ratio = max_ratio;
        let (candidate, dir, to_clean, _) = best?;
        if !state.in_progress.insert(dir.clone()) {
            return None;
        }
        Some((
            candidate,
            InProgress {
                manager: self,
                dir,
                to_clean,
            },
        ))
    }

    /// Cleans the log of `in_progress` with `cleaner` and records the outcome; a failure
    /// marks the log uncleanable until restart (it keeps serving, uncompacted).
    pub fn clean(
        &self,
        cleaner: &mut Cleaner,
        log: &RwLock<Log>,
        in_progress: InProgress<'_>,
        now_ms: impl Fn() -> i64,
    ) -> Result<CleanerStats, LogError> {
        let result = cleaner.clean(log);
        // A log closed during the pass (deleted, moved away, shutdown) failed for that reason.
        let closed = log.read().closed;
        let mut state = self.state.lock();
        match &result {
            Ok(stats) => {
                match stats.earliest_delete_horizon {
                    Some(h) => state.delete_horizons.insert(in_progress.dir.clone(), h),
                    None => state.delete_horizons.remove(&in_progress.dir),
                };
                let totals = &mut state.totals;
                totals.bytes_read += stats.bytes_read;
                totals.bytes_written += stats.bytes_written;
                totals.passes += 1;
                totals.last_pass_ms = stats.elapsed_ms;
                totals.last_pass_end_ms = now_ms();
            }
            Err(_) if closed => {}
            Err(e) => {
                tracing::error!(dir = %in_progress.dir.display(), error = %e, "cleaning failed; the log is uncleanable until restart");
                state.uncleanable.insert(in_progress.dir.clone());
                state.totals.uncleanable = state.uncleanable.len();
            }
        }
        drop(state);
        drop(in_progress);
        result
    }

    /// The totals so far.
    pub fn totals(&self) -> CleanerTotals {
        self.state.lock().totals.clone()
    }
}

#[cfg(test)]
mod tests;
