//! The aborted-transaction index of one segment (Kafka's `TransactionIndex`, `.txnindex`).
//!
//! Each entry names a transaction whose ABORT marker lies in this segment: a `read_committed`
//! fetch returns the entries that overlap the range it reads, and the consumer drops those
//! producers' records up to their markers.
//!
//! On disk `<base>.txnindex` holds 34-byte entries back to back, big-endian, as Kafka writes
//! them: version i16 (0), producerId i64, firstOffset i64, lastOffset i64 (the marker),
//! lastStableOffset i64. A torn last entry is ignored on open and cut at the next write.
//! The file exists only once a transaction was aborted in the segment.
//!
//! Thread safety: plain data owned by its segment; `&mut self` to change. Entries are kept in
//! memory (a segment aborts few transactions); the file is their durable copy, fsynced with the
//! segment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::index_file::remove_if_exists;
use super::LogError;

/// Size of one entry on disk.
pub const ENTRY_SIZE: usize = 2 + 8 * 4;
const VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// Offset of its first record in this partition.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&VERSION.to_be_bytes());
        buf.extend_from_slice(&self.producer_id.to_be_bytes());
        buf.extend_from_slice(&self.first_offset.to_be_bytes());
        buf.extend_from_slice(&self.last_offset.to_be_bytes());
        buf.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(entry: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().expect("8"));
        (i16::from_be_bytes([entry[0], entry[1]]) == VERSION).then(|| Self {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// The aborted transactions whose markers are in one segment, in marker order.
#[derive(Debug)]
pub struct TransactionIndex {
    path: PathBuf,
    entries: Vec<AbortedTxn>,
    /// The file holds exactly `entries` (false after a torn tail was found or a truncation).
    file_in_sync: bool,
}

impl TransactionIndex {
    /// Loads `path` if it exists (an empty index otherwise).
    pub fn open(path: PathBuf) -> Result<Self, LogError> {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(LogError::io("read transaction index", &path)(e)),
        };
        let entries: Vec<AbortedTxn> = bytes
            .chunks_exact(ENTRY_SIZE)
            .map_while(AbortedTxn::decode)
            .collect();
        let file_in_sync = entries.len() * ENTRY_SIZE == bytes.len();
        if !file_in_sync {
            tracing::warn!(path = %path.display(), kept = entries.len(), "transaction index has a torn or unknown tail");
        }
        Ok(Self {
            path,
            entries,
            file_in_sync,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries, in marker order.
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Appends an entry (its marker follows every earlier one).
    pub fn append(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        self.entries.push(entry);
        if !self.file_in_sync {
            return self.rewrite();
        }
        let mut buf = Vec::with_capacity(ENTRY_SIZE);
        entry.encode(&mut buf);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(LogError::io("open transaction index", &self.path))?;
        file.write_all(&buf)
            .map_err(LogError::io("append to transaction index", &self.path))
    }

    /// Drops the entries whose marker is at or above `offset` (a log truncation).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() && self.file_in_sync {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// The entries overlapping `[start, upper)`: aborted at or after `start`, begun before
    /// `upper`.
    pub fn collect(&self, start: i64, upper: i64, into: &mut Vec<AbortedTxn>) {
        let from = self.entries.partition_point(|e| e.last_offset < start);
        into.extend(
            self.entries[from..]
                .iter()
                .filter(|e| e.first_offset < upper),
        );
    }

    /// fsyncs the file, if there is one.
    pub fn flush(&self) -> Result<(), LogError> {
        match File::open(&self.path) {
            Ok(file) => file
                .sync_all()
                .map_err(LogError::io("fsync transaction index", &self.path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::io("open transaction index", &self.path)(e)),
        }
    }

    /// Writes the file even with no entry (the cleaner's `.cleaned` index, whose rename must
    /// replace an older index of the same base offset).
    pub fn write_even_if_empty(&mut self) -> Result<(), LogError> {
        if self.entries.is_empty() {
            std::fs::write(&self.path, [])
                .map_err(LogError::io("write transaction index", &self.path))?;
            self.file_in_sync = true;
            return Ok(());
        }
        self.rewrite()
    }

    /// Deletes the file.
    pub fn delete(&self) -> Result<(), LogError> {
        remove_if_exists(&self.path)
    }

    fn rewrite(&mut self) -> Result<(), LogError> {
        if self.entries.is_empty() {
            remove_if_exists(&self.path)?;
        } else {
            let mut buf = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
            for e in &self.entries {
                e.encode(&mut buf);
            }
            std::fs::write(&self.path, &buf)
                .map_err(LogError::io("write transaction index", &self.path))?;
        }
        self.file_in_sync = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_reopen_truncate_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TransactionIndex::open(path.clone()).unwrap();
        assert!(!path.exists(), "no file until the first abort");
        for (p, f, l) in [(1, 0, 5), (2, 3, 9), (3, 10, 12)] {
            index.append(txn(p, f, l)).unwrap();
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            3 * ENTRY_SIZE as u64
        );

        let mut out = Vec::new();
        TransactionIndex::open(path.clone())
            .unwrap()
            .collect(6, 11, &mut out);
        assert_eq!(out, vec![txn(2, 3, 9), txn(3, 10, 12)]);

        // A torn entry (a crash mid-append) is ignored, and cut by the next write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&[0, 0, 1, 2]).unwrap();
        let mut index = TransactionIndex::open(path.clone()).unwrap();
        assert_eq!(index.entries().len(), 3);
        index.truncate_to(9).unwrap();
        assert_eq!(index.entries(), &[txn(1, 0, 5)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ENTRY_SIZE as u64);
        index.truncate_to(0).unwrap();
        assert!(!path.exists());
    }
}
