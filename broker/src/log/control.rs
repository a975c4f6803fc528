//! Control batches: the transaction markers (COMMIT / ABORT) a transaction coordinator has
//! written into every partition of a transaction (Kafka's `EndTransactionMarker`).
//!
//! A control batch has the transactional and control attribute bits set, the producer id and
//! epoch of the transaction, no sequence (-1), and exactly one record:
//!
//! ```text
//! key   = version i16 (0) | type i16 (0 = ABORT, 1 = COMMIT)
//! value = version i16 (0) | coordinatorEpoch i32
//! ```
//!
//! Markers are written uncompressed, so their one record can be read without a codec.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::{RecordBatchHeader, HEADER_SIZE};
use super::LogError;

/// What a transaction marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    /// The transaction's records are discarded by `read_committed` consumers.
    Abort,
    /// The transaction's records become visible to `read_committed` consumers.
    Commit,
}

impl ControlRecordType {
    fn code(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
        }
    }
}

/// One transaction marker, as the coordinator asks for it (WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// The transaction's producer id.
    pub producer_id: i64,
    /// The transaction's producer epoch.
    pub producer_epoch: i16,
    /// Epoch of the coordinator that wrote it (the leader epoch of its `__transaction_state`
    /// partition): a marker from an older coordinator is refused.
    pub coordinator_epoch: i32,
    /// Commit or abort.
    pub kind: ControlRecordType,
}

/// Encodes `marker` as a control batch at offset 0 (the leader assigns the offset).
pub fn encode_marker(marker: &TxnMarker, timestamp: i64) -> Bytes {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.kind.code().to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: marker.producer_id,
        producer_epoch: marker.producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::with_capacity(HEADER_SIZE + 32);
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options)
        .expect("an uncompressed control record always encodes");
    buf.freeze()
}

/// Reads a varint (zig-zag) from `buf` at `*at`, moving `*at` past it.
fn read_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
    }
    None
}

/// The type of the marker in a whole control batch (`header` must view the whole batch), by
/// reading the key of its first record without decoding the rest. `None` for a control record
/// type this broker does not know (Kafka ignores those too).
pub fn control_record_type(
    header: &RecordBatchHeader<'_>,
    position: u64,
) -> Result<Option<ControlRecordType>, LogError> {
    let invalid = |reason| LogError::InvalidBatch { position, reason };
    let buf = header.as_bytes();
    if header.compression() != Some(Compression::None) {
        return Err(invalid("a control batch must not be compressed"));
    }
    // Record: length, attributes i8, timestampDelta, offsetDelta, keyLength, key.
    let mut at = HEADER_SIZE;
    read_varint(buf, &mut at).ok_or_else(|| invalid("truncated control record"))?;
    at += 1;
    for _ in 0..2 {
        read_varint(buf, &mut at).ok_or_else(|| invalid("truncated control record"))?;
    }
    let key_len = read_varint(buf, &mut at).ok_or_else(|| invalid("truncated control record"))?;
    if key_len < 4 || buf.len() < at + 4 {
        return Err(invalid("control record key too short"));
    }
    Ok(match i16::from_be_bytes([buf[at + 2], buf[at + 3]]) {
        0 => Some(ControlRecordType::Abort),
        1 => Some(ControlRecordType::Commit),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn markers_round_trip_through_kafkas_decoder_and_the_header_reader() {
        for kind in [ControlRecordType::Abort, ControlRecordType::Commit] {
            let marker = TxnMarker {
                producer_id: 42,
                producer_epoch: 3,
                coordinator_epoch: 7,
                kind,
            };
            let bytes = encode_marker(&marker, 1_000);
            let header = RecordBatchHeader::parse(&bytes, 0).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.producer_id(), 42);
            assert_eq!(header.producer_epoch(), 3);
            assert_eq!(header.base_sequence(), -1);
            assert_eq!(control_record_type(&header, 0).unwrap(), Some(kind));
            let decoded = RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
            let record = &decoded.records[0];
            assert!(record.control);
            let key = record.key.as_ref().unwrap();
            assert_eq!(&key[2..4], &kind.code().to_be_bytes());
            assert_eq!(&record.value.as_ref().unwrap()[2..6], &7i32.to_be_bytes());
        }
    }
}
