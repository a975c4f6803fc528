//! Which leader epoch wrote which offsets: Kafka's `LeaderEpochFileCache`.
//!
//! Every batch carries the epoch of the leader that appended it (`partitionLeaderEpoch`). The
//! cache keeps, per epoch, the offset of its first batch, which is all a replica needs to
//! answer OffsetForLeaderEpoch ("where does epoch E end in your log?") and so to find where a
//! follower's log diverged from its leader's after a leader change (KIP-101, KIP-279).
//!
//! The [`super::Log`] owns one cache: appends (leader and follower) assign the epochs of the
//! batches they write, truncations trim it from the end, a moving log start trims it from the
//! start, and [`super::Log::open`] loads it (rebuilding it from batch headers when the file is
//! missing or unreadable).

use std::fmt;
use std::path::{Path, PathBuf};

use super::checkpoint::{
    read_entries_checkpoint, replace_entries_checkpoint, write_entries_checkpoint,
};
use super::LogError;

/// Name of the cache's file in the partition directory (Kafka's name).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// OffsetForLeaderEpoch's "no epoch" (Kafka's `UNDEFINED_EPOCH`).
pub const UNDEFINED_EPOCH: i32 = -1;
/// OffsetForLeaderEpoch's "no offset" (Kafka's `UNDEFINED_EPOCH_OFFSET`).
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The first offset written in a leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of the first batch of that epoch.
    pub start_offset: i64,
}

impl fmt::Display for EpochEntry {
    /// The checkpoint line: `<epoch> <start offset>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.epoch, self.start_offset)
    }
}

impl EpochEntry {
    fn parse(line: &str) -> Result<Self, String> {
        let mut fields = line.split_whitespace();
        let (Some(epoch), Some(start_offset), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("expected `<epoch> <offset>`, found {line:?}"));
        };
        let entry = EpochEntry {
            epoch: epoch
                .parse()
                .map_err(|e| format!("bad epoch in {line:?}: {e}"))?,
            start_offset: start_offset
                .parse()
                .map_err(|e| format!("bad offset in {line:?}: {e}"))?,
        };
        if entry.epoch < 0 || entry.start_offset < 0 {
            return Err(format!("negative epoch or offset in {line:?}"));
        }
        Ok(entry)
    }
}

/// The (leader epoch, start offset) history of one partition replica, persisted in
/// `<partition dir>/leader-epoch-checkpoint`.
///
/// File format (Kafka's, text): a version line `0`, a line with the number of entries, then one
/// `<epoch> <start offset>` line per entry, oldest first. Every change is written at once, so
/// the file always holds a whole, recent history: truncations durably
/// ([`super::write_atomically`]); a new epoch (a new leadership, a follower's first batch of
/// an epoch) without fsync (`super::checkpoint::write_replacing`), as the first append of
/// a leader runs under its partition's lock: its [`super::Log`] fsyncs the file before the
/// recovery point passes the epoch's first offset. After a power loss the file may lack the
/// newest epochs (the log's recovery assigns them again from the batches past the recovery
/// point) or be unreadable (rebuilt from every batch).
///
/// Invariants: entries are sorted with epochs and start offsets both strictly increasing, and
/// all are non-negative. The last entry is the epoch currently being written.
///
/// Thread safety: plain data owned by its [`super::Log`]; `&mut self` to change.
#[derive(Debug)]
pub struct LeaderEpochFileCache {
    path: PathBuf,
    epochs: Vec<EpochEntry>,
}

impl LeaderEpochFileCache {
    /// An empty cache for the partition in `dir`; nothing is written until it changes.
    pub fn empty(dir: &Path) -> Self {
        Self {
            path: dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
            epochs: Vec::new(),
        }
    }

    /// Loads the cache of the partition in `dir`: `Ok(None)` if the file does not exist,
    /// [`LogError::CorruptFile`] if it cannot be parsed or breaks the ordering invariant.
    pub fn load(dir: &Path) -> Result<Option<Self>, LogError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let Some(epochs) = read_entries_checkpoint(&path, EpochEntry::parse)? else {
            return Ok(None);
        };
        let increasing = epochs
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        if !increasing {
            return Err(LogError::CorruptFile {
                path,
                reason: "epochs and start offsets must both increase".to_string(),
            });
        }
        Ok(Some(Self { path, epochs }))
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.epochs
    }

    /// The newest entry: the epoch being written now.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.epochs.last().copied()
    }

    /// The newest epoch, `None` when nothing was ever assigned.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.latest_entry().map(|e| e.epoch)
    }

    /// The oldest entry still kept.
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.epochs.first().copied()
    }

    /// The epoch that wrote `offset` (the entry starting at or below it), `None` below the
    /// first entry (Kafka's `epochForOffset`).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let after = self.epochs.partition_point(|e| e.start_offset <= offset);
        after.checked_sub(1).map(|i| self.epochs[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`, and writes the file if that changed
    /// anything. Returns whether it did.
    ///
    /// As Kafka: nothing changes when `epoch` is already the latest epoch and `start_offset` is
    /// not below its start (the common case: every append of the current leader). A new,
    /// greater epoch is added. An entry that would break the ordering (an older epoch, or a
    /// start offset at or below a later entry's) first removes the conflicting newer entries,
    /// so epochs and offsets keep increasing; that only happens when the log was truncated
    /// without the cache, and is logged. Negative values are [`LogError::InvalidEpochEntry`].
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, LogError> {
        let changed = self.assign_in_memory(EpochEntry {
            epoch,
            start_offset,
        })?;
        if changed {
            self.write_unsynced()?;
        }
        Ok(changed)
    }

    /// [`LeaderEpochFileCache::assign`] for several entries, with one write at the end.
    pub fn assign_all(
        &mut self,
        entries: impl IntoIterator<Item = EpochEntry>,
    ) -> Result<bool, LogError> {
        let mut changed = false;
        for entry in entries {
            changed |= self.assign_in_memory(entry)?;
        }
        if changed {
            self.write_unsynced()?;
        }
        Ok(changed)
    }

    fn assign_in_memory(&mut self, entry: EpochEntry) -> Result<bool, LogError> {
        if entry.epoch < 0 || entry.start_offset < 0 {
            return Err(LogError::InvalidEpochEntry {
                epoch: entry.epoch,
                start_offset: entry.start_offset,
            });
        }
        let update_needed = self.latest_entry().is_none_or(|latest| {
            entry.epoch != latest.epoch || entry.start_offset < latest.start_offset
        });
        if !update_needed {
            return Ok(false);
        }
        let keep = self
            .epochs
            .iter()
            .rposition(|e| e.epoch < entry.epoch && e.start_offset < entry.start_offset)
            .map_or(0, |i| i + 1);
        let removed = &self.epochs[keep..];
        // An entry at the same offset with no data yet (a leader that never appended) going
        // away is expected; anything else means the cache and the log disagreed.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|r| r.start_offset != entry.start_offset)
        {
            tracing::warn!(path = %self.path.display(), new = %entry, ?removed, "new epoch entry truncated conflicting entries");
        }
        self.epochs.truncate(keep);
        self.epochs.push(entry);
        Ok(true)
    }

    /// Kafka's OffsetForLeaderEpoch answer for `requested_epoch` on a log ending at
    /// `log_end_offset`: `(epoch, end offset)`, where epoch is the largest known epoch at or
    /// below the requested one and end offset is where it ends, the start of the next known
    /// epoch.
    ///
    /// - `requested_epoch` is [`UNDEFINED_EPOCH`], or no epoch above it is known (it is newer
    ///   than the latest, or the cache is empty): `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    /// - `requested_epoch` is the latest epoch: `(requested_epoch, log_end_offset)`.
    /// - `requested_epoch` is older than every known epoch (its data was deleted):
    ///   `(requested_epoch, start of the first known epoch)`.
    /// - otherwise, including an epoch that never wrote here (a gap): the largest known epoch
    ///   below it and the start offset of the first known epoch above it.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested_epoch == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let higher = self.epochs.partition_point(|e| e.epoch <= requested_epoch);
        let Some(next) = self.epochs.get(higher) else {
            return undefined;
        };
        match higher.checked_sub(1) {
            None => (requested_epoch, next.start_offset),
            Some(floor) => (self.epochs[floor].epoch, next.start_offset),
        }
    }

    /// Removes every entry starting at or after `end_offset` (the log was truncated there),
    /// writing the file if any went.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        if end_offset < 0 {
            return Ok(());
        }
        let keep = self.epochs.partition_point(|e| e.start_offset < end_offset);
        if keep == self.epochs.len() {
            return Ok(());
        }
        self.epochs.truncate(keep);
        self.write()
    }

    /// The log now starts at `start_offset`: entries wholly below it go, and the epoch that
    /// holds `start_offset` now starts there (an entry at exactly `start_offset` stays as is).
    /// Writes the file if anything changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), LogError> {
        let at_or_below = self
            .epochs
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(holder) = at_or_below.checked_sub(1) else {
            return Ok(());
        };
        if holder == 0 && self.epochs[0].start_offset == start_offset {
            return Ok(());
        }
        self.epochs.drain(..holder);
        self.epochs[0].start_offset = start_offset;
        self.write()
    }

    /// Removes every entry and writes the empty file (the log was emptied).
    pub fn clear_and_flush(&mut self) -> Result<(), LogError> {
        self.epochs.clear();
        self.write()
    }

    /// Writes the entries to the file (atomically; the file is replaced as a whole).
    pub fn write(&self) -> Result<(), LogError> {
        write_entries_checkpoint(&self.path, &self.epochs)
    }

    /// [`LeaderEpochFileCache::write`] without the fsyncs, for the owner to fsync later.
    fn write_unsynced(&self) -> Result<(), LogError> {
        replace_entries_checkpoint(&self.path, &self.epochs)
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
#[path = "leader_epoch_tests.rs"]
mod tests;
