//! The sparse offset index of one segment (`<base offset>.index`).

use std::path::Path;

use super::index_file::{CachedEntries, IndexFile};
use super::LogError;

/// Size of one offset index entry on disk.
pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;

/// A record offset and the byte position, in its segment's `.log` file, of the batch holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset.
    pub offset: i64,
    /// Byte position in the segment's log file.
    pub position: u32,
}

/// Maps offsets to positions in a segment's log file, sparsely (Kafka's `OffsetIndex`).
///
/// On-disk format: back-to-back 8-byte entries, `relative offset u32 BE` (offset minus the
/// segment's base offset) then `position u32 BE`. An entry names the *last* offset of a batch
/// and the position where that batch *starts*, so a lookup lands at or before the wanted batch.
/// Entries are strictly increasing in both fields; the file is exactly `entries * 8` bytes.
///
/// Thread safety: lookups take `&self`, mutations `&mut self`; the owning [`super::LogSegment`]
/// decides who may call what (no interior locking).
#[derive(Debug)]
pub struct OffsetIndex {
    file: IndexFile,
    base_offset: i64,
    /// (relative offset, position), both strictly increasing.
    entries: CachedEntries<(u32, u32)>,
    max_entries: usize,
}

impl OffsetIndex {
    /// Opens or creates the index at `path` for a segment starting at `base_offset`, holding at
    /// most `max_index_bytes / 8` entries. Returns the index and whether the file content was
    /// intact; a torn or non-monotonic file is emptied (and the caller must rebuild it).
    pub fn open(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<(Self, bool), LogError> {
        let (file, content) = IndexFile::open(path)?;
        let max_entries = (max_index_bytes as usize / OFFSET_INDEX_ENTRY_SIZE).max(1);
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
                tracing::warn!(path = %path.display(), "corrupt offset index, rebuilding");
                index.reset()?;
                Ok((index, false))
            }
        }
    }

    fn entries(&self) -> &Vec<(u32, u32)> {
        self.entries.get(&self.file)
    }

    fn entries_mut(&mut self) -> &mut Vec<(u32, u32)> {
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

    /// Adds an entry; `offset` must exceed the last entry's and fit the segment's relative range.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<(), LogError> {
        let relative = u32::try_from(offset - self.base_offset).ok();
        let in_order = self
            .entries()
            .last()
            .is_none_or(|&(last_rel, last_pos)| relative > Some(last_rel) && position > last_pos);
        let Some(relative) = relative.filter(|_| in_order && !self.is_full()) else {
            debug_assert!(
                false,
                "offset index append out of order or full: {offset}@{position}"
            );
            return Ok(());
        };
        let mut entry = [0u8; OFFSET_INDEX_ENTRY_SIZE];
        entry[..4].copy_from_slice(&relative.to_be_bytes());
        entry[4..].copy_from_slice(&position.to_be_bytes());
        self.file.append(&entry)?;
        self.entries_mut().push((relative, position));
        Ok(())
    }

    /// The entry with the largest offset `<= target`, or (base offset, 0) if there is none.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let idx = self
            .entries()
            .partition_point(|&(rel, _)| self.base_offset + i64::from(rel) <= target);
        match idx.checked_sub(1) {
            Some(i) => self.entry(i),
            None => OffsetPosition {
                offset: self.base_offset,
                position: 0,
            },
        }
    }

    /// Entry number `i`.
    pub fn entry(&self, i: usize) -> OffsetPosition {
        let (rel, position) = self.entries()[i];
        OffsetPosition {
            offset: self.base_offset + i64::from(rel),
            position,
        }
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
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
            .partition_point(|&(rel, _)| self.base_offset + i64::from(rel) < offset);
        self.truncate_entries(keep)
    }

    /// Removes the entries pointing at positions `>= position`.
    pub fn truncate_to_position(&mut self, position: u32) -> Result<(), LogError> {
        let keep = self.entries().partition_point(|&(_, pos)| pos < position);
        self.truncate_entries(keep)
    }

    fn truncate_entries(&mut self, keep: usize) -> Result<(), LogError> {
        if keep < self.entries().len() {
            self.entries_mut().truncate(keep);
            self.file
                .truncate((keep * OFFSET_INDEX_ENTRY_SIZE) as u64)?;
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

/// Decodes and checks entries; `None` if the content is torn or not strictly increasing.
fn decode_entries(content: &[u8]) -> Option<Vec<(u32, u32)>> {
    let chunks = content.chunks_exact(OFFSET_INDEX_ENTRY_SIZE);
    if !chunks.remainder().is_empty() {
        return None;
    }
    let entries: Vec<(u32, u32)> = chunks
        .map(|c| {
            (
                u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    let monotonic = entries
        .windows(2)
        .all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1);
    monotonic.then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lookup_finds_largest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("100.index");
        let (mut index, intact) = OffsetIndex::open(&path, 100, 1024).unwrap();
        assert!(intact);
        assert_eq!(
            index.lookup(150),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        index.append(110, 50).unwrap();
        index.append(120, 90).unwrap();
        assert_eq!(index.lookup(109).position, 0);
        assert_eq!(index.lookup(110).position, 50);
        assert_eq!(index.lookup(119).position, 50);
        assert_eq!(
            index.lookup(500),
            OffsetPosition {
                offset: 120,
                position: 90
            }
        );

        index.truncate_to(120).unwrap();
        assert_eq!(index.len(), 1);
        drop(index);
        let (index, intact) = OffsetIndex::open(&path, 100, 1024).unwrap();
        assert!(intact);
        assert_eq!(
            index.last_entry(),
            Some(OffsetPosition {
                offset: 110,
                position: 50
            })
        );
    }

    #[test]
    fn torn_or_unordered_file_is_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        std::fs::write(&path, [0u8; 12]).unwrap();
        let (index, intact) = OffsetIndex::open(&path, 0, 1024).unwrap();
        assert!(!intact);
        assert!(index.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);

        let mut bytes = Vec::new();
        for (rel, pos) in [(5u32, 100u32), (3, 200)] {
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let (_, intact) = OffsetIndex::open(&path, 0, 1024).unwrap();
        assert!(!intact);
    }

    #[test]
    fn full_at_segment_index_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut index, _) = OffsetIndex::open(&dir.path().join("0.index"), 0, 16).unwrap();
        index.append(1, 10).unwrap();
        assert!(!index.is_full());
        index.append(2, 20).unwrap();
        assert!(index.is_full());
    }

    proptest! {
        #[test]
        fn lookup_matches_linear_scan(
            gaps in proptest::collection::vec((1i64..50, 1u32..500), 0..60),
            targets in proptest::collection::vec(0i64..3000, 1..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (mut index, _) = OffsetIndex::open(&dir.path().join("0.index"), 7, 1 << 20).unwrap();
            let (mut offset, mut position) = (7i64, 0u32);
            let mut expected = Vec::new();
            for (d_off, d_pos) in gaps {
                offset += d_off;
                position += d_pos;
                index.append(offset, position).unwrap();
                expected.push(OffsetPosition { offset, position });
            }
            for target in targets {
                let linear = expected
                    .iter()
                    .rev()
                    .find(|e| e.offset <= target)
                    .copied()
                    .unwrap_or(OffsetPosition { offset: 7, position: 0 });
                prop_assert_eq!(index.lookup(target), linear);
            }
        }
    }
}
