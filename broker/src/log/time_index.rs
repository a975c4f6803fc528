//! The sparse time index of one segment (`<base offset>.timeindex`).

use super::batch::NO_TIMESTAMP;
use super::index_file::{Index, IndexEntry};
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
pub type TimeIndex = Index<TimeEntry>;

/// One time index entry: (timestamp, relative offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    timestamp: i64,
    relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = TIME_INDEX_ENTRY_SIZE;
    const NAME: &'static str = "time index";

    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }

    fn decode(c: &[u8]) -> Self {
        Self {
            timestamp: i64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(c[8..12].try_into().expect("4 bytes")),
        }
    }

    fn follows(&self, previous: &Self) -> bool {
        self.timestamp > previous.timestamp && self.relative_offset >= previous.relative_offset
    }

    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
}

impl Index<TimeEntry> {
    /// Adds `(timestamp, offset)` if `timestamp` exceeds the last entry's (Kafka's
    /// `maybeAppend`); `offset` must not go backwards.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<(), LogError> {
        let Ok(relative_offset) = u32::try_from(offset - self.base_offset()) else {
            debug_assert!(false, "time index offset {offset} outside segment");
            return Ok(());
        };
        let entry = TimeEntry {
            timestamp,
            relative_offset,
        };
        if self.is_full()
            || self
                .entries()
                .last()
                .is_some_and(|last| !entry.follows(last))
        {
            return Ok(());
        }
        self.push(entry);
        Ok(())
    }

    /// The entry with the largest timestamp `<= target`, or ([`NO_TIMESTAMP`], base offset).
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        let idx = self.entries().partition_point(|e| e.timestamp <= target);
        match idx.checked_sub(1) {
            Some(i) => self.entry(i),
            None => TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: self.base_offset(),
            },
        }
    }

    fn entry(&self, i: usize) -> TimestampOffset {
        let e = self.entries()[i];
        TimestampOffset {
            timestamp: e.timestamp,
            offset: self.base_offset() + i64::from(e.relative_offset),
        }
    }

    /// The last entry, if any.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().len().checked_sub(1).map(|i| self.entry(i))
    }
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

        // Entries reach the file at a flush; a truncation cuts the file at once, so the
        // reopened index has the truncated entries without another flush.
        index.flush().unwrap();
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
