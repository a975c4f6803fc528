//! Looking inside a stored batch and rewriting it with fewer records (the cleaner's part of
//! Kafka's `MemoryRecords.filterTo`).
//!
//! A batch is decompressed with its own codec (the `kafka-protocol` crate's compressors), its
//! records are walked without copying, and the retained records are written back *as they
//! were stored*: their offset deltas stay relative to the unchanged base offset, so no record
//! is re-encoded unless its timestamp delta must move (when the delete horizon is set, the
//! base timestamp changes). The new batch keeps the base offset, last offset delta, partition
//! leader epoch, producer id, epoch and base sequence, so offsets and producer sequences never
//! change; only the record count, maxTimestamp, the delete-horizon attribute and the CRC do.
//!
//! The v2 record format (Kafka's `DefaultRecord`): length (varint), attributes (i8),
//! timestampDelta (varlong), offsetDelta (varint), key length (varint, -1 = null) and key,
//! value length (varint, -1 = null) and value, header count (varint) and headers.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};
use kafka_protocol::records::Compression;

use crate::log::batch::{RecordBatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::log::LogError;

const ATTRIBUTES: usize = 21;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const RECORDS_COUNT: usize = 57;
const CRC: usize = 17;
const BATCH_LENGTH: usize = 8;
/// Attribute bit 6: the batch's base timestamp is the delete horizon (Kafka's KIP-534).
pub const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// One record inside a decompressed batch, borrowed from the records section.
#[derive(Debug, Clone)]
pub struct StoredRecord<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Absolute timestamp (base timestamp + delta; for LogAppendTime batches readers use the
    /// batch's maxTimestamp instead).
    pub timestamp: i64,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Whether the value is null (a tombstone).
    pub is_tombstone: bool,
    /// The whole encoded record, length prefix included.
    pub raw: &'a [u8],
    /// Within `raw`, where the bytes after the timestamp delta start.
    after_timestamp: usize,
    /// The attributes byte.
    attributes: i8,
}

/// A batch's records, decompressed.
#[derive(Debug)]
pub struct DecodedBatch {
    /// The uncompressed records section.
    pub records: Bytes,
    /// The codec of the batch.
    pub compression: Compression,
}

fn decode_error(base_offset: i64, reason: impl ToString) -> LogError {
    LogError::DecodeBatch {
        base_offset,
        reason: reason.to_string(),
    }
}

/// The codec of a batch's attributes; `None` for an unknown one.
pub fn compression_of(header: &RecordBatchHeader<'_>) -> Option<Compression> {
    Some(match header.attributes() & 0x07 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return None,
    })
}

/// Decompresses the records section of one whole batch (`batch` holds exactly the batch).
pub fn decode_batch(batch: &Bytes) -> Result<DecodedBatch, LogError> {
    let header = RecordBatchHeader::parse(batch, 0)?;
    let base_offset = header.base_offset();
    let compression =
        compression_of(&header).ok_or_else(|| decode_error(base_offset, "unknown codec"))?;
    let mut body = batch.slice(HEADER_SIZE..header.total_size());
    let take_all = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(b.copy_to_bytes(b.remaining())) };
    let records = match compression {
        Compression::None => Ok(body),
        Compression::Gzip => codec::Gzip::decompress(&mut body, take_all),
        Compression::Snappy => codec::Snappy::decompress(&mut body, take_all),
        Compression::Lz4 => codec::Lz4::decompress(&mut body, take_all),
        Compression::Zstd => codec::Zstd::decompress(&mut body, take_all),
    }
    .map_err(|e| decode_error(base_offset, e))?;
    Ok(DecodedBatch {
        records,
        compression,
    })
}

fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i32> {
    read_varlong(buf, pos).and_then(|v| i32::try_from(v).ok())
}

fn put_varlong(out: &mut impl BufMut, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn varlong_len(value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

/// Walks the records of a decompressed batch: `count` records of `header`'s batch.
pub fn records<'a>(
    header: &RecordBatchHeader<'_>,
    section: &'a [u8],
) -> Result<Vec<StoredRecord<'a>>, LogError> {
    let base_offset = header.base_offset();
    let base_timestamp = header.base_timestamp();
    let bad = |what: &str| decode_error(base_offset, format!("malformed record: {what}"));
    let count = usize::try_from(header.records_count()).map_err(|_| bad("negative count"))?;
    let mut out = Vec::with_capacity(count.min(section.len()));
    let mut pos = 0;
    for _ in 0..count {
        let start = pos;
        let len = read_varint(section, &mut pos).ok_or_else(|| bad("length"))?;
        let body_start = pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| body_start.checked_add(l))
            .filter(|&e| e <= section.len())
            .ok_or_else(|| bad("length past the batch"))?;
        let body = &section[..end];
        let attributes = *body.get(pos).ok_or_else(|| bad("attributes"))? as i8;
        pos += 1;
        let timestamp_delta = read_varlong(body, &mut pos).ok_or_else(|| bad("timestamp"))?;
        let after_timestamp = pos - start;
        let offset_delta = read_varint(body, &mut pos).ok_or_else(|| bad("offset"))?;
        let key_len = read_varint(body, &mut pos).ok_or_else(|| bad("key length"))?;
        let key = if key_len < 0 {
            None
        } else {
            let key_end = pos + key_len as usize;
            let key = body.get(pos..key_end).ok_or_else(|| bad("key"))?;
            pos = key_end;
            Some(key)
        };
        let value_len = read_varint(body, &mut pos).ok_or_else(|| bad("value length"))?;
        out.push(StoredRecord {
            offset: base_offset + i64::from(offset_delta),
            timestamp: base_timestamp.wrapping_add(timestamp_delta),
            key,
            is_tombstone: value_len < 0,
            raw: &section[start..end],
            after_timestamp,
            attributes,
        });
        pos = end;
    }
    Ok(out)
}

/// Writes `record` into `out` with its timestamp delta taken relative to `base_timestamp`.
fn write_record(out: &mut BytesMut, record: &StoredRecord<'_>, base_timestamp: i64) {
    let rest = &record.raw[record.after_timestamp..];
    let delta = record.timestamp.wrapping_sub(base_timestamp);
    let body_len = 1 + varlong_len(delta) + rest.len();
    put_varlong(out, body_len as i64);
    out.put_i8(record.attributes);
    put_varlong(out, delta);
    out.put_slice(rest);
}

/// How the batch to write differs from the original.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite {
    /// Set the delete horizon to this time (the base timestamp becomes it) if the batch has
    /// none yet; `None` keeps the base timestamp.
    pub new_delete_horizon: Option<i64>,
}

/// Builds a batch from `original` (a whole stored batch) with only `retained` of its
/// records, compressed with the original codec. With no record retained this is Kafka's
/// empty batch: a header alone, which keeps the producer's last sequence.
pub fn rebuild_batch(
    original: &[u8],
    compression: Compression,
    retained: &[StoredRecord<'_>],
    rewrite: Rewrite,
) -> Result<Vec<u8>, LogError> {
    let header = RecordBatchHeader::parse(original, 0)?;
    let base_offset = header.base_offset();
    let mut attributes = header.attributes();
    let mut base_timestamp = header.base_timestamp();
    if let Some(horizon) = rewrite.new_delete_horizon {
        attributes |= DELETE_HORIZON_BIT;
        base_timestamp = horizon;
    }
    let mut section = BytesMut::new();
    for record in retained {
        if rewrite.new_delete_horizon.is_some() {
            write_record(&mut section, record, base_timestamp);
        } else {
            section.put_slice(record.raw);
        }
    }
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp()
    } else {
        retained
            .iter()
            .map(|r| r.timestamp)
            .max()
            .unwrap_or_else(|| header.max_timestamp())
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + section.len());
    out.extend_from_slice(&original[..HEADER_SIZE]);
    let body = section.freeze();
    let put = |b: &mut Vec<u8>| -> Result<(), LogError> {
        let copy = |w: &mut BytesMut| -> anyhow::Result<()> {
            w.put_slice(&body);
            Ok(())
        };
        let result = match compression {
            Compression::None => {
                b.extend_from_slice(&body);
                Ok(())
            }
            _ if body.is_empty() => Ok(()),
            Compression::Gzip => codec::Gzip::compress(b, copy),
            Compression::Snappy => codec::Snappy::compress(b, copy),
            Compression::Lz4 => codec::Lz4::compress(b, copy),
            Compression::Zstd => codec::Zstd::compress(b, copy),
        };
        result.map_err(|e| decode_error(base_offset, e))
    };
    put(&mut out)?;
    if retained.is_empty() {
        // Kafka's empty batch is uncompressed: no records section at all.
        attributes &= !0x07;
    }
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| decode_error(base_offset, "rewritten batch too large"))?;
    out[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BASE_TIMESTAMP..BASE_TIMESTAMP + 8].copy_from_slice(&base_timestamp.to_be_bytes());
    out[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    out[RECORDS_COUNT..RECORDS_COUNT + 4].copy_from_slice(&(retained.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
    out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Whether the batch's base timestamp is a delete horizon, and which.
pub fn delete_horizon(header: &RecordBatchHeader<'_>) -> Option<i64> {
    (header.attributes() & DELETE_HORIZON_BIT != 0).then(|| header.base_timestamp())
}
