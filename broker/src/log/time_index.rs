//! The sparse time index of one segment (`<base offset>.timeindex`).

use std::path::Path;

use super::batch::NO_TIMESTAMP;
use super::index_file::{CachedEntries, IndexFile};
use super::LogError;

/// Size of one time index entry on disk.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// A timestamp and the offset at which the segment's largest timestamp first reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Milliseconds since the epoch, or [`NO_TIMESTAMP`].
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: i64,
}

/// Maps timestamps to offsets, sparsely (Kafka's `TimeIndex`).
///
/// On-disk format: back-to-back 12-byte entries, `timestamp i64 BE` then `relative offset u32
/// BE`. An entry `(t, o)` says: the largest timestamp of the segment up to offset `o` is `t`.
/// Entries are added only when the timestamp grows, so timestamps are strictly increasing and
/// offsets non-decreasing; the file is exactly `entries * 12` bytes.
///
/// Thread safety: lookups take `&self`, mutations `&mut self`; no interior locking.
#[derive(Debug)]
pub struct TimeIndex {
    file: IndexFile,
    base_offset: i64,
    /// (timestamp, relative offset).
    entries: CachedEntries<(i64, u32)>,
    max_entries: usize,
}

impl TimeIndex {
    /// Opens or creates the index at `path` for a segment starting at `base_offset`, holding at
    /// most `max_index_bytes / 12` entries. Returns the index and whether the file content was
    /// intact; a torn or non-monotonic file is emptied (and the caller must rebuild it).
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<(Self, bool), LogError> {
        let (file, content) = IndexFile::open(path)?;
        let max_entries = (max_index_bytes as usize / TIME_INDEX_ENTRY_SIZE).max(1);
        let mut index = Self {
            file,
            base_offset,
            entries: CachedEntries::new(decode_entries),
            max_entries,
        };
        match decode_entries(&content) {
            Some(entries) => {
                index.entries.set(entries);
                Ok((index, true))
            }
            None => {
                tracing::warn!(path = %path.display(), "corrupt time index, rebuilding");
                index.reset()?;
                Ok((index, false))
            }
        }
    }

    fn entries(&self) -> &Vec<(i64, u32)> {
        self.entries.get(&self.file)
    }

    fn entries_mut(&mut self) -> &mut Vec<(i64, u32)> {
        self.entries.get_mut(&self.file)
    }

    /// Drops the in-memory entries of an index that is no longer appended to; they are read
    /// back from the file on the next lookup. Keeps memory proportional to the segments in use.
    pub fn release_memory(&mut self) {
        self.entries.release();
    }

    /// Whether the entries are in memory.
    pub fn is_loaded(&self) -> bool {
        self.entries.is_loaded()
    }

    /// Removes every entry.
    pub fn reset(&mut self) -> Result<(), LogError> {
        self.entries.set(Vec::new());
        self.file.truncate(0)
    }

    /// Adds `(timestamp, offset)` if `timestamp` exceeds the last entry's (Kafka's
    /// `maybeAppend`); `offset` must not go backwards.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<(), LogError> {
        let Ok(relative) = u32::try_from(offset - self.base_offset) else {
            debug_assert!(false, "time index offset {offset} outside segment");
            return Ok(());
        };
        if self.is_full() {
            return Ok(());
        }
        if let Some(&(last_ts, last_rel)) = self.entries().last() {
            if timestamp <= last_ts || relative < last_rel {
                return Ok(());
            }
        }
        let mut entry = [0u8; TIME_INDEX_ENTRY_SIZE];
        entry[..8].copy_from_slice(&timestamp.to_be_bytes());
        entry[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.append(&entry)?;
        self.entries_mut().push((timestamp, relative));
        Ok(())
    }

    /// The entry with the largest timestamp `<= target`, or ([`NO_TIMESTAMP`], base offset).
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        let idx = self.entries().partition_point(|&(ts, _)| ts <= target);
        match idx.checked_sub(1) {
            Some(i) => self.entry(i),
            None => TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: self.base_offset,
            },
        }
    }

    fn entry(&self, i: usize) -> TimestampOffset {
        let (timestamp, rel) = self.entries()[i];
        TimestampOffset {
            timestamp,
            offset: self.base_offset + i64::from(rel),
        }
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Whether the index reached `segment.index.bytes` (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.entries().len() >= self.max_entries
    }

    /// Removes the entries for offsets `>= offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self
            .entries()
            .partition_point(|&(_, rel)| self.base_offset + i64::from(rel) < offset);
        if keep < self.entries().len() {
            self.entries_mut().truncate(keep);
            self.file.truncate((keep * TIME_INDEX_ENTRY_SIZE) as u64)?;
        }
        Ok(())
    }

    /// The path and a shared handle of the file, for an fsync off the log lock.
    pub(crate) fn shared_file(&self) -> (std::path::PathBuf, std::sync::Arc<std::fs::File>) {
        self.file.shared()
    }

    /// fsyncs the file.
    pub fn flush(&self) -> Result<(), LogError> {
        self.file.flush()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Deletes the file.
    pub fn delete(self) -> Result<(), LogError> {
        self.file.delete()
    }
}

/// Decodes and checks entries; `None` if torn, or timestamps not strictly increasing, or
/// offsets going backwards.
fn decode_entries(content: &[u8]) -> Option<Vec<(i64, u32)>> {
    let chunks = content.chunks_exact(TIME_INDEX_ENTRY_SIZE);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let entries: Vec<(i64, u32)> = chunks
        .map(|c| {
            (
                i64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
                u32::from_be_bytes(c[8..].try_into().expect("4 bytes")),
            )
        })
        .collect();
    let monotonic = entries
        .windows(2)
        .all(|w| w[1].0 > w[0].0 && w[1].1 >= w[0].1);
    monotonic.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_growing_timestamps_and_looks_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10.timeindex");
        let (mut index, _) = TimeIndex::open(&path, 10, 1200).unwrap();
        assert_eq!(index.lookup(5).timestamp, NO_TIMESTAMP);
        index.maybe_append(1000, 12).unwrap();
        index.maybe_append(900, 15).unwrap();
        index.maybe_append(1000, 16).unwrap();
        index.maybe_append(2000, 20).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(
            index.lookup(999),
            TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: 10
            }
        );
        assert_eq!(
            index.lookup(1500),
            TimestampOffset {
                timestamp: 1000,
                offset: 12
            }
        );
        assert_eq!(
            index.lookup(i64::MAX),
            TimestampOffset {
                timestamp: 2000,
                offset: 20
            }
        );

        index.truncate_to(20).unwrap();
        drop(index);
        let (index, intact) = TimeIndex::open(&path, 10, 1200).unwrap();
        assert!(intact);
        assert_eq!(
            index.last_entry(),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 12
            })
        );
    }

    #[test]
    fn torn_or_unordered_file_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        std::fs::write(&path, [1u8; 13]).unwrap();
        let (index, intact) = TimeIndex::open(&path, 0, 1200).unwrap();
        assert!(!intact && index.is_empty());

        let mut bytes = Vec::new();
        for (ts, rel) in [(500i64, 1u32), (400, 2)] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let (_, intact) = TimeIndex::open(&path, 0, 1200).unwrap();
        assert!(!intact);
    }

    #[test]
    fn full_at_segment_index_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = TimeIndex::open(&dir.path().join("0.timeindex"), 0, 24).unwrap();
        index.maybe_append(1, 1).unwrap();
        assert!(!index.is_full());
        index.maybe_append(2, 2).unwrap();
        assert!(index.is_full());
    }
}
