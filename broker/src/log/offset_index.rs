//! The sparse offset index of one segment (`<base offset>.index`).

use super::index_file::{Index, IndexEntry};
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
pub type OffsetIndex = Index<OffsetEntry>;

/// One offset index entry: (relative offset, position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    relative_offset: u32,
    position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = OFFSET_INDEX_ENTRY_SIZE;
    const NAME: &'static str = "offset index";

    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }

    fn decode(c: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        }
    }

    fn follows(&self, previous: &Self) -> bool {
        self.relative_offset > previous.relative_offset && self.position > previous.position
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

impl Index<OffsetEntry> {
    /// Adds an entry; `offset` must exceed the last entry's and fit the segment's relative range.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<(), LogError> {
        let entry = u32::try_from(offset - self.base_offset())
            .ok()
            .map(|relative_offset| OffsetEntry {
                relative_offset,
                position,
            })
            .filter(|e| self.entries().last().is_none_or(|last| e.follows(last)));
        let Some(entry) = entry.filter(|_| !self.is_full()) else {
            debug_assert!(
                false,
                "offset index append out of order or full: {offset}@{position}"
            );
            return Ok(());
        };
        self.push(entry);
        Ok(())
    }

    /// The entry with the largest offset `<= target`, or (base offset, 0) if there is none.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let base = self.base_offset();
        let idx = self
            .entries()
            .partition_point(|e| base + i64::from(e.relative_offset) <= target);
        match idx.checked_sub(1) {
            Some(i) => self.entry(i),
            None => OffsetPosition {
                offset: base,
                position: 0,
            },
        }
    }

    /// Entry number `i`.
    pub fn entry(&self, i: usize) -> OffsetPosition {
        let e = self.entries()[i];
        OffsetPosition {
            offset: self.base_offset() + i64::from(e.relative_offset),
            position: e.position,
        }
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.entries().len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Removes the entries pointing at positions `>= position`.
    pub fn truncate_to_position(&mut self, position: u32) -> Result<(), LogError> {
        let keep = self.entries().partition_point(|e| e.position < position);
        self.truncate_entries(keep)
    }
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

        // Entries reach the file at a flush; a truncation cuts the file at once, so the
        // reopened index has the truncated entries without another flush.
        index.flush().unwrap();
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
