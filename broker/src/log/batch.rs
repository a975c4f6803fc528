//! Record batch v2 headers: parse, walk, validate and rewrite them without touching records.
//!
//! Layout (Kafka's `DefaultRecordBatch`, all integers big-endian):
//!
//! ```text
//! 0  baseOffset i64        | 8  batchLength i32 (bytes after this field)
//! 12 partitionLeaderEpoch i32 | 16 magic i8 (=2) | 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16        | 23 lastOffsetDelta i32 | 27 baseTimestamp i64
//! 35 maxTimestamp i64      | 43 producerId i64      | 51 producerEpoch i16
//! 53 baseSequence i32      | 57 recordsCount i32    | 61 records...
//! ```
//!
//! baseOffset and partitionLeaderEpoch lie outside the CRC'd range, so the leader can stamp
//! them without recomputing the CRC. Nothing here decodes records or allocates per record.

use std::ops::Range;

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::LogError;

/// Bytes before `batchLength` counts: baseOffset + batchLength (Kafka's `LOG_OVERHEAD`).
pub const LOG_OVERHEAD: usize = 12;
/// Size of a v2 batch header, records excluded.
pub const HEADER_SIZE: usize = 61;
/// The only supported message format.
pub const MAGIC_V2: i8 = 2;
/// `producerId` of a non-idempotent batch.
pub const NO_PRODUCER_ID: i64 = -1;
/// A timestamp that was not set.
pub const NO_TIMESTAMP: i64 = -1;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;

/// The smallest legal batchLength: a header with no records.
const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

/// A zero-copy view of one v2 batch header.
///
/// Invariant: `buf` holds at least [`HEADER_SIZE`] bytes and byte 16 is magic 2. The view may
/// cover the whole batch (then [`RecordBatchHeader::compute_crc`] works) or only its header.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatchHeader<'a> {
    buf: &'a [u8],
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// Adds `delta` to a producer sequence, wrapping from `i32::MAX` to 0 as Kafka does.
pub fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

/// Subtracts `delta` from a producer sequence, the inverse of [`increment_sequence`].
pub fn decrement_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence < delta {
        i32::MAX - (delta - sequence) + 1
    } else {
        sequence - delta
    }
}

impl<'a> RecordBatchHeader<'a> {
    /// Parses the header at the start of `buf`; `position` is only used in errors.
    pub fn parse(buf: &'a [u8], position: u64) -> Result<Self, LogError> {
        if buf.len() < MAGIC + 1 {
            return Err(LogError::TruncatedBatch {
                position,
                needed: HEADER_SIZE as u64,
                available: buf.len() as u64,
            });
        }
        let magic = buf[MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(LogError::UnsupportedMagic { position, magic });
        }
        let batch_length = read_i32(buf, BATCH_LENGTH);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(LogError::InvalidBatchLength {
                position,
                batch_length,
            });
        }
        if buf.len() < HEADER_SIZE {
            return Err(LogError::TruncatedBatch {
                position,
                needed: HEADER_SIZE as u64,
                available: buf.len() as u64,
            });
        }
        Ok(Self { buf })
    }

    /// A view of header bytes that [`RecordBatchHeader::parse`] already accepted.
    pub(crate) fn from_checked_header(buf: &'a [u8]) -> Self {
        debug_assert!(buf.len() >= HEADER_SIZE && buf[MAGIC] as i8 == MAGIC_V2);
        Self { buf }
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        read_i64(self.buf, BASE_OFFSET)
    }
    /// Bytes after the batchLength field.
    pub fn batch_length(&self) -> i32 {
        read_i32(self.buf, BATCH_LENGTH)
    }
    /// Whole batch size in bytes, log overhead included.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length() as usize
    }
    /// Leader epoch stamped by the leader that appended the batch.
    pub fn partition_leader_epoch(&self) -> i32 {
        read_i32(self.buf, PARTITION_LEADER_EPOCH)
    }
    /// Stored CRC-32C.
    pub fn crc(&self) -> u32 {
        read_i32(self.buf, CRC) as u32
    }
    /// Raw attributes.
    pub fn attributes(&self) -> i16 {
        read_i16(self.buf, ATTRIBUTES)
    }
    /// Compression codec, `None` for an unknown id (5..7).
    pub fn compression(&self) -> Option<Compression> {
        match self.attributes() & COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
    /// Whether the timestamps are LogAppendTime (attributes bit 3).
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & TIMESTAMP_TYPE_BIT != 0
    }
    /// Transactional batch (bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }
    /// Control batch (bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }
    /// lastOffset - baseOffset.
    pub fn last_offset_delta(&self) -> i32 {
        read_i32(self.buf, LAST_OFFSET_DELTA)
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    /// Offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    /// Timestamp of the first record.
    pub fn base_timestamp(&self) -> i64 {
        read_i64(self.buf, BASE_TIMESTAMP)
    }
    /// Largest record timestamp (or the append time for LogAppendTime).
    pub fn max_timestamp(&self) -> i64 {
        read_i64(self.buf, MAX_TIMESTAMP)
    }
    /// Producer id, [`NO_PRODUCER_ID`] for non-idempotent producers.
    pub fn producer_id(&self) -> i64 {
        read_i64(self.buf, PRODUCER_ID)
    }
    /// Producer epoch.
    pub fn producer_epoch(&self) -> i16 {
        read_i16(self.buf, PRODUCER_EPOCH)
    }
    /// Sequence of the first record.
    pub fn base_sequence(&self) -> i32 {
        read_i32(self.buf, BASE_SEQUENCE)
    }
    /// Sequence of the last record (wrapping), -1 when the batch has no sequence.
    pub fn last_sequence(&self) -> i32 {
        let base = self.base_sequence();
        if base < 0 {
            return -1;
        }
        increment_sequence(base, self.last_offset_delta())
    }
    /// Number of records.
    pub fn records_count(&self) -> i32 {
        read_i32(self.buf, RECORDS_COUNT)
    }
    /// CRC-32C of attributes..end, `None` if the view covers only the header.
    pub fn compute_crc(&self) -> Option<u32> {
        self.buf
            .get(ATTRIBUTES..self.total_size())
            .map(crc32c::crc32c)
    }

    /// The header bytes, as viewed.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }
}

/// Walks the batches of a buffer, yielding each header and its byte range.
///
/// Yields an error (then stops) on a truncated batch, a non-v2 batch or an impossible length.
/// CRCs are not checked here: see [`validate_produce_batches`] and segment recovery.
#[derive(Debug, Clone)]
pub struct RecordBatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    failed: bool,
}

impl<'a> RecordBatchIter<'a> {
    /// Iterates over `buf`, which should hold whole batches back to back.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            position: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for RecordBatchIter<'a> {
    type Item = Result<(RecordBatchHeader<'a>, Range<usize>), LogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        let position = self.position as u64;
        let parsed = RecordBatchHeader::parse(rest, position).and_then(|header| {
            let size = header.total_size();
            if size > rest.len() {
                return Err(LogError::TruncatedBatch {
                    position,
                    needed: size as u64,
                    available: rest.len() as u64,
                });
            }
            Ok(RecordBatchHeader { buf: &rest[..size] })
        });
        match parsed {
            Ok(header) => {
                let range = self.position..self.position + header.total_size();
                self.position = range.end;
                Some(Ok((header, range)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Summary of a produce request's records, all of whose batches passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedBatches {
    /// The records, as received (a cheap reference-counted handle).
    pub records: Bytes,
    /// Number of batches.
    pub batch_count: usize,
    /// Sum of the batches' recordsCount.
    pub records_count: i64,
    /// Largest maxTimestamp of all batches (producer clock).
    pub max_timestamp: i64,
}

/// Checks the rules a leader enforces on a produce request's records, without decoding them.
///
/// Every batch must be v2, have a batchLength matching the buffer (no trailing bytes), a
/// correct CRC-32C, a size within `max_message_bytes`, a known codec, `recordsCount >= 1`
/// equal to `lastOffsetDelta + 1`, sequence fields consistent with its producer id, and must
/// not be a control batch. Compressed batches are checked as opaque bytes.
pub fn validate_produce_batches(
    records: &Bytes,
    max_message_bytes: i32,
) -> Result<ValidatedBatches, LogError> {
    let mut batch_count = 0;
    let mut records_count = 0i64;
    let mut max_timestamp = NO_TIMESTAMP;
    for item in RecordBatchIter::new(records) {
        let (header, range) = item?;
        let position = range.start as u64;
        let size = range.len() as u64;
        if size > max_message_bytes.max(0) as u64 {
            return Err(LogError::RecordTooLarge {
                position,
                size,
                max: max_message_bytes,
            });
        }
        validate_batch_content(&header, position)?;
        if header.is_control() {
            return Err(LogError::InvalidBatch {
                position,
                reason: "clients may not write control batches",
            });
        }
        batch_count += 1;
        records_count += i64::from(header.records_count());
        max_timestamp = max_timestamp.max(header.max_timestamp());
    }
    if batch_count == 0 {
        return Err(LogError::InvalidBatch {
            position: 0,
            reason: "produce request holds no record batch",
        });
    }
    Ok(ValidatedBatches {
        records: records.clone(),
        batch_count,
        records_count,
        max_timestamp,
    })
}

/// Checks CRC, codec, record count and sequence fields of one whole batch from a client
/// (`header` must view the whole batch).
pub fn validate_batch_content(
    header: &RecordBatchHeader<'_>,
    position: u64,
) -> Result<(), LogError> {
    verify_crc(header, position)?;
    validate_stored_header(header, position)?;
    let invalid = |reason| Err(LogError::InvalidBatch { position, reason });
    if header.records_count() < 1 {
        return invalid("recordsCount must be at least 1");
    }
    if i64::from(header.last_offset_delta()) != i64::from(header.records_count()) - 1 {
        return invalid("lastOffsetDelta must be recordsCount - 1");
    }
    if header.producer_id() >= 0 && (header.producer_epoch() < 0 || header.base_sequence() < 0) {
        return invalid("an idempotent batch needs a producer epoch and base sequence");
    }
    Ok(())
}

/// Checks the CRC-32C of one whole batch (`header` must view the whole batch).
pub fn verify_crc(header: &RecordBatchHeader<'_>, position: u64) -> Result<(), LogError> {
    let stored = header.crc();
    let computed = header.compute_crc().unwrap_or(!stored);
    if stored != computed {
        return Err(LogError::CorruptRecord {
            position,
            stored,
            computed,
        });
    }
    Ok(())
}

/// The header checks that hold for any batch already in a log, which segment recovery applies
/// after streaming the CRC: a known codec and a non-negative lastOffsetDelta. Record counts are
/// not checked here: compaction (a later step) legitimately leaves fewer records than
/// `lastOffsetDelta + 1`.
pub fn validate_stored_header(
    header: &RecordBatchHeader<'_>,
    position: u64,
) -> Result<(), LogError> {
    if header.compression().is_none() {
        return Err(LogError::InvalidBatch {
            position,
            reason: "unknown compression codec",
        });
    }
    if header.last_offset_delta() < 0 {
        return Err(LogError::InvalidBatch {
            position,
            reason: "negative lastOffsetDelta",
        });
    }
    Ok(())
}

/// Sets baseOffset of the batch at the start of `batch` (outside the CRC: stays valid).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets partitionLeaderEpoch of the batch at the start of `batch` (outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the whole batch in `batch` as LogAppendTime with `timestamp` as its maxTimestamp, and
/// recomputes its CRC (both fields are inside the CRC'd range). `batch` must be exactly one
/// whole batch.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attributes = read_i16(batch, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::test_util::{encode_test_batch, TestBatch};

    fn one_batch() -> Bytes {
        encode_test_batch(&TestBatch::new(3, 100))
    }

    #[test]
    fn parses_encoder_output() {
        let bytes = encode_test_batch(&TestBatch {
            base_offset: 7,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 10,
            ..TestBatch::new(4, 50)
        });
        let header = RecordBatchHeader::parse(&bytes, 0).unwrap();
        assert_eq!(header.base_offset(), 7);
        assert_eq!(header.last_offset(), 10);
        assert_eq!(header.records_count(), 4);
        assert_eq!(header.producer_id(), 42);
        assert_eq!(header.producer_epoch(), 3);
        assert_eq!(header.base_sequence(), 10);
        assert_eq!(header.last_sequence(), 13);
        assert_eq!(header.total_size(), bytes.len());
        assert_eq!(Some(header.crc()), header.compute_crc());
        assert_eq!(header.compression(), Some(Compression::None));
    }

    #[test]
    fn validates_good_batches_and_rejects_trailing_garbage() {
        let mut buf = one_batch().to_vec();
        buf.extend_from_slice(&one_batch());
        let valid = validate_produce_batches(&Bytes::from(buf.clone()), 1 << 20).unwrap();
        assert_eq!(valid.batch_count, 2);
        assert_eq!(valid.records_count, 6);
        buf.extend_from_slice(&[0, 0, 0]);
        let err = validate_produce_batches(&Bytes::from(buf), 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::TruncatedBatch { .. }), "{err}");
    }

    #[test]
    fn rejects_bad_crc_size_magic_and_control() {
        let good = one_batch();
        let mut corrupt = good.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let err = validate_produce_batches(&Bytes::from(corrupt), 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::CorruptRecord { .. }), "{err}");

        let err = validate_produce_batches(&good, 10).unwrap_err();
        assert!(
            matches!(err, LogError::RecordTooLarge { max: 10, .. }),
            "{err}"
        );

        let mut old = good.to_vec();
        old[MAGIC] = 1;
        let err = validate_produce_batches(&Bytes::from(old), 1 << 20).unwrap_err();
        assert!(
            matches!(err, LogError::UnsupportedMagic { magic: 1, .. }),
            "{err}"
        );

        let control = encode_test_batch(&TestBatch {
            control: true,
            ..TestBatch::new(1, 10)
        });
        let err = validate_produce_batches(&control, 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::InvalidBatch { .. }), "{err}");

        let err = validate_produce_batches(&Bytes::new(), 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::InvalidBatch { .. }), "{err}");
    }

    #[test]
    fn rejects_count_mismatch_and_bad_codec_even_with_valid_crc() {
        let mut buf = one_batch().to_vec();
        buf[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
        buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let err = validate_produce_batches(&Bytes::from(buf), 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::InvalidBatch { .. }), "{err}");

        let mut buf = one_batch().to_vec();
        buf[ATTRIBUTES + 1] |= 0x07;
        let crc = crc32c::crc32c(&buf[ATTRIBUTES..]);
        buf[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let err = validate_produce_batches(&Bytes::from(buf), 1 << 20).unwrap_err();
        assert!(matches!(err, LogError::InvalidBatch { .. }), "{err}");
    }

    #[test]
    fn header_rewrites_keep_the_crc_valid() {
        let mut buf = one_batch().to_vec();
        set_base_offset(&mut buf, 1234);
        set_partition_leader_epoch(&mut buf, 9);
        let header = RecordBatchHeader::parse(&buf, 0).unwrap();
        assert_eq!(header.base_offset(), 1234);
        assert_eq!(header.partition_leader_epoch(), 9);
        assert_eq!(Some(header.crc()), header.compute_crc());

        set_log_append_time(&mut buf, 555);
        let header = RecordBatchHeader::parse(&buf, 0).unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp(), 555);
        assert_eq!(Some(header.crc()), header.compute_crc());
    }

    #[test]
    fn sequence_arithmetic_wraps_like_kafka() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
    }
}
