//! Builders of valid record batches for tests, encoded by `kafka-protocol` (which computes the
//! CRC) so the storage layer is checked against an independent encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What [`encode_test_batch`] builds: one v2 batch of `records` records of `value_size` bytes.
#[derive(Debug, Clone)]
pub struct TestBatch {
    /// Base offset written in the batch (the leader overwrites it).
    pub base_offset: i64,
    /// Number of records.
    pub records: usize,
    /// Bytes in each record value.
    pub value_size: usize,
    /// Timestamp of the first record; record `i` gets `timestamp + i`.
    pub timestamp: i64,
    /// Producer id, -1 for a non-idempotent batch.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record (-1 for non-idempotent).
    pub base_sequence: i32,
    /// Codec.
    pub compression: Compression,
    /// Control batch flag.
    pub control: bool,
}

impl TestBatch {
    /// A non-idempotent, uncompressed batch at offset 0 with timestamps from 1_000.
    pub fn new(records: usize, value_size: usize) -> Self {
        Self {
            base_offset: 0,
            records,
            value_size,
            timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            compression: Compression::None,
            control: false,
        }
    }

    /// The same batch from idempotent producer `producer_id`, `epoch`, starting at `sequence`.
    pub fn idempotent(self, producer_id: i64, epoch: i16, sequence: i32) -> Self {
        Self {
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            ..self
        }
    }
}

/// Encodes `batch` as exactly one record batch v2 (valid CRC). Record `i`'s value is
/// `value_size` bytes of `i as u8`.
pub fn encode_test_batch(batch: &TestBatch) -> Bytes {
    let records: Vec<Record> = (0..batch.records)
        .map(|i| Record {
            transactional: false,
            control: batch.control,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: batch.producer_id,
            producer_epoch: batch.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: batch.base_offset + i as i64,
            sequence: batch.base_sequence.wrapping_add(i as i32),
            timestamp: batch.timestamp + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![i as u8; batch.value_size])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: batch.compression,
        },
    )
    .expect("test batch encodes");
    buf.freeze()
}

/// Concatenates encoded batches into one produce payload.
pub fn concat(batches: &[Bytes]) -> Bytes {
    let mut buf = BytesMut::new();
    for b in batches {
        buf.extend_from_slice(b);
    }
    buf.freeze()
}

/// A batch of `records` records of `value_size` bytes at `base_offset`, timestamps from
/// `timestamp`, as a segment stores it (offsets assigned).
pub fn batch_at(base_offset: i64, records: usize, value_size: usize, timestamp: i64) -> Bytes {
    encode_test_batch(&TestBatch {
        base_offset,
        timestamp,
        ..TestBatch::new(records, value_size)
    })
}
