//! Reads record batch v2 headers straight from a partition's `.log` segment files, to check
//! what the broker stored (compression kept, batch boundaries) and to damage it on purpose.
//!
//! Batch v2 header layout (61 bytes): baseOffset i64, batchLength i32, partitionLeaderEpoch
//! i32, magic i8, crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64,
//! maxTimestamp i64, producerId i64, producerEpoch i16, baseSequence i32, recordCount i32.

use std::path::{Path, PathBuf};

/// Bytes of a batch before its records.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes of a batch that `batchLength` does not count (baseOffset and batchLength).
pub const LOG_OVERHEAD: usize = 12;

/// The header of one stored batch and where it is in its segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    pub position: usize,
    pub base_offset: i64,
    pub batch_length: i32,
    pub magic: i8,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl StoredBatch {
    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Position just past this batch.
    pub fn end_position(&self) -> usize {
        self.position + LOG_OVERHEAD + self.batch_length as usize
    }
}

/// The `.log` segment files of a partition directory, in offset order.
pub fn segment_files(partition_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", partition_dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// Every complete batch header in one segment file; stops at a torn or malformed tail.
pub fn read_batches(segment: &Path) -> Vec<StoredBatch> {
    let bytes =
        std::fs::read(segment).unwrap_or_else(|e| panic!("reading {}: {e}", segment.display()));
    parse_batches(&bytes)
}

/// [`read_batches`] over bytes in memory.
pub fn parse_batches(bytes: &[u8]) -> Vec<StoredBatch> {
    let mut batches = Vec::new();
    let mut position = 0;
    while bytes.len() - position >= BATCH_HEADER_BYTES {
        let header = &bytes[position..position + BATCH_HEADER_BYTES];
        let batch_length = be_i32(&header[8..12]);
        let batch = StoredBatch {
            position,
            base_offset: i64::from_be_bytes(header[0..8].try_into().unwrap()),
            batch_length,
            magic: header[16] as i8,
            attributes: i16::from_be_bytes(header[21..23].try_into().unwrap()),
            last_offset_delta: be_i32(&header[23..27]),
            max_timestamp: i64::from_be_bytes(header[35..43].try_into().unwrap()),
            producer_id: i64::from_be_bytes(header[43..51].try_into().unwrap()),
            base_sequence: be_i32(&header[53..57]),
            record_count: be_i32(&header[57..61]),
        };
        if batch_length < (BATCH_HEADER_BYTES - LOG_OVERHEAD) as i32
            || batch.end_position() > bytes.len()
        {
            break;
        }
        position = batch.end_position();
        batches.push(batch);
    }
    batches
}

fn be_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes(bytes.try_into().unwrap())
}

/// The concatenated bytes of every segment file of a partition directory, in offset order:
/// two replicas holding the same log have equal bytes.
pub fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}
