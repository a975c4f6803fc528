//! The recovery point, and flushes that run off the append path.
//!
//! Rolling a segment used to fsync the old one while the partition's write lock was held: a
//! full 1 GiB segment can take hundreds of milliseconds to reach the disk, and every produce to
//! the partition waited. Kafka instead schedules the flush of the rolled segment on a background
//! thread and moves the recovery point only when it completes; Weir does the same:
//!
//! - [`super::Log::roll`] creates the new segment and queues a [`PendingFlush`] of every segment
//!   below it that is not yet known durable (file handles are shared, so the flush needs no
//!   access to the log);
//! - the owner of the log takes the queue ([`super::Log::take_pending_flushes`]) and runs each
//!   [`PendingFlush::run`] on a blocking thread once it released the log lock;
//! - the flush fsyncs the segment files and the directory (the new segment's entry), then moves
//!   the shared [`RecoveryPoint`] up to the roll's offset and checkpoints it.
//!
//! Crash safety: the recovery point (in memory and in the `recovery-point` file) only ever
//! covers offsets whose bytes were fsynced, so recovery after a crash still scans every segment
//! that may hold unflushed data. A truncation sets the recovery point and bumps its
//! *generation*; a flush queued before it finds the generation changed and leaves the recovery
//! point alone (the offsets it flushed may since have been rewritten).
//!
//! Thread-safety: [`RecoveryPoint`] is a value behind a mutex shared by the log (which changes
//! it under its owner's write lock) and its pending flushes (which run anywhere). The
//! checkpoint file is written under that mutex, so writers never interleave and the file never
//! goes back to a value a later writer replaced.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::checkpoint::{sync_dir, sync_file, write_offset_checkpoint};
use super::LogError;

#[derive(Debug)]
struct RecoveryPointState {
    offset: i64,
    generation: u64,
}

/// Every offset of the log below this one is fsynced (Kafka's `recoveryPoint`), with its
/// checkpoint file. Cloning shares it.
///
/// It also holds the files the log wrote without fsync that describe those offsets (the
/// leader epoch checkpoint, a roll's producer snapshot, a new partition's directory and
/// `partition.metadata`; see `super::checkpoint::write_replacing`): every write of the
/// checkpoint fsyncs them first, so the file never claims offsets durable whose epochs or
/// producers are not.
#[derive(Debug, Clone)]
pub struct RecoveryPoint {
    path: Arc<PathBuf>,
    state: Arc<Mutex<RecoveryPointState>>,
    /// Written, not yet fsynced: files, or a directory whose entries changed.
    unsynced: Arc<Mutex<Vec<PathBuf>>>,
}

impl RecoveryPoint {
    /// A recovery point at `offset`, checkpointed in `path` (not written here).
    pub(super) fn new(path: PathBuf, offset: i64) -> Self {
        Self {
            path: Arc::new(path),
            state: Arc::new(Mutex::new(RecoveryPointState {
                offset,
                generation: 0,
            })),
            unsynced: Arc::default(),
        }
    }

    /// `path` (a file, or a directory whose entries changed) was written without fsync: the
    /// next write of the checkpoint fsyncs it first.
    pub(super) fn defer_sync(&self, path: PathBuf) {
        let mut unsynced = self.unsynced.lock();
        if !unsynced.contains(&path) {
            unsynced.push(path);
        }
    }

    /// fsyncs the files [`RecoveryPoint::defer_sync`] named (one deleted meanwhile needs
    /// nothing). On an error the rest stay named for the next try.
    fn sync_deferred(&self) -> Result<(), LogError> {
        let paths = std::mem::take(&mut *self.unsynced.lock());
        for (i, path) in paths.iter().enumerate() {
            if let Err(e) = sync_file(path) {
                for path in &paths[i..] {
                    self.defer_sync(path.clone());
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether some file waits for [`RecoveryPoint::defer_sync`]'s fsync (tests).
    #[cfg(test)]
    pub(super) fn has_unsynced(&self) -> bool {
        !self.unsynced.lock().is_empty()
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.state.lock().offset
    }

    /// Sets the value and writes the checkpoint (a flush done in place, or the log opened).
    /// Moving it down cancels the flushes queued before.
    pub(super) fn set(&self, offset: i64) -> Result<(), LogError> {
        self.sync_deferred()?;
        let mut state = self.state.lock();
        if offset < state.offset {
            state.generation += 1;
        }
        state.offset = offset;
        write_offset_checkpoint(&self.path, offset)
    }

    /// Sets the value after the log's tail was cut or the log restarted elsewhere, and writes
    /// the checkpoint. Cancels the flushes queued before, whatever the value: the offsets they
    /// were to cover may hold other records by the time they complete.
    pub(super) fn truncate(&self, offset: i64) -> Result<(), LogError> {
        self.sync_deferred()?;
        let mut state = self.state.lock();
        state.generation += 1;
        state.offset = offset;
        write_offset_checkpoint(&self.path, offset)
    }

    /// Moves the value up without writing the file (the log start moved past it: nothing
    /// below the log start is ever read again, so the file may stay behind).
    pub(super) fn raise(&self, offset: i64) {
        let mut state = self.state.lock();
        state.offset = state.offset.max(offset);
    }

    /// The generation a flush queued now must still find to move the value.
    pub(super) fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Moves the value up to `offset` and checkpoints it, if no truncation happened since
    /// `generation` and it is below `offset`. Returns whether it moved.
    fn advance(&self, offset: i64, generation: u64) -> Result<bool, LogError> {
        {
            let state = self.state.lock();
            if state.generation != generation || offset <= state.offset {
                return Ok(false);
            }
        }
        self.sync_deferred()?;
        let mut state = self.state.lock();
        if state.generation != generation || offset <= state.offset {
            return Ok(false);
        }
        state.offset = offset;
        write_offset_checkpoint(&self.path, offset)?;
        Ok(true)
    }
}

/// The files of one segment, for fsyncing without the log.
#[derive(Debug)]
pub(super) struct SegmentFiles {
    /// `(path, file)` of the log, the handle shared with the segment.
    pub(super) log: (PathBuf, Arc<File>),
    /// The paths of its indexes, written but maybe not fsynced: indexes hold no descriptor
    /// ([`super::index_file`]), so the flush opens each for its fsync.
    pub(super) indexes: Vec<PathBuf>,
}

impl SegmentFiles {
    /// fsyncs the log and the indexes. An index deleted meanwhile (retention, a truncation)
    /// needs no fsync: nothing will read it.
    fn sync(&self) -> Result<(), LogError> {
        let (path, file) = &self.log;
        file.sync_data()
            .map_err(LogError::io("fsync segment", path))?;
        for path in &self.indexes {
            sync_file(path)?;
        }
        Ok(())
    }
}

/// A flush queued by a roll: fsync these segments and the directory, then move the recovery
/// point to `upto`. Runs without the log; see the module docs.
#[derive(Debug)]
pub struct PendingFlush {
    dir: PathBuf,
    segments: Vec<SegmentFiles>,
    upto: i64,
    generation: u64,
    recovery_point: RecoveryPoint,
}

impl PendingFlush {
    pub(super) fn new(
        dir: &Path,
        segments: Vec<SegmentFiles>,
        upto: i64,
        recovery_point: &RecoveryPoint,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            segments,
            upto,
            generation: recovery_point.generation(),
            recovery_point: recovery_point.clone(),
        }
    }

    /// The offset the recovery point moves to when this flush completes.
    pub fn upto(&self) -> i64 {
        self.upto
    }

    /// fsyncs the segments and the directory, then moves the recovery point (blocking: run it
    /// on a thread that may wait for the disk). Returns whether the recovery point moved.
    pub fn run(self) -> Result<bool, LogError> {
        for segment in &self.segments {
            segment.sync()?;
        }
        // The new segment's files and any deletions must be durable before a checkpoint
        // claims the offsets below it are.
        sync_dir(&self.dir)?;
        self.recovery_point.advance(self.upto, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::read_offset_checkpoint;

    #[test]
    fn advances_only_upwards_and_only_within_its_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recovery-point");
        let rp = RecoveryPoint::new(path.clone(), 0);
        let g = rp.generation();
        assert!(rp.advance(10, g).unwrap());
        assert_eq!(rp.get(), 10);
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(10));
        assert!(!rp.advance(5, g).unwrap(), "never backwards");
        assert_eq!(rp.get(), 10);

        // A truncation: flushes queued before it must not move the value any more.
        rp.truncate(4).unwrap();
        assert!(!rp.advance(20, g).unwrap());
        assert_eq!(rp.get(), 4);
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(4));
        assert!(rp.advance(20, rp.generation()).unwrap());
        assert_eq!(read_offset_checkpoint(&path).unwrap(), Some(20));

        // Moving up in place keeps queued flushes valid; a truncation above cancels them too.
        let g = rp.generation();
        rp.set(25).unwrap();
        assert!(rp.advance(30, g).unwrap());
        let g = rp.generation();
        rp.truncate(40).unwrap();
        assert!(!rp.advance(50, g).unwrap());
        assert_eq!(rp.get(), 40);
    }
}
