//! `__transaction_state` records in Kafka's format (`TransactionLogKey` version 0 and
//! `TransactionLogValue` versions 0 and 1; big-endian):
//!
//! ```text
//! key      = version i16 (0) | transactional_id string
//! value v0 = version i16 (0) | producer_id i64 | producer_epoch i16 | timeout_ms i32
//!          | status i8 | partitions: count i32 (-1 null), each topic string
//!            + (count i32, partition i32...)
//!          | last_update_ms i64 | start_ms i64
//! value v1 = the same fields, flexible: arrays and strings with unsigned-varint lengths
//!            plus one (0: null), an empty tagged-field section after each partitions
//!            entry, and at the end the tagged fields: 0 previous_producer_id i64,
//!            1 next_producer_id i64, 2 client_transaction_version i16 (each written only
//!            when not its default: -1, -1, 0)
//! ```
//!
//! v0 strings are an i16 length + UTF-8. Kafka 4.x writes v1 once `transaction.version` is
//! 1 or more; Weir writes v1 ([`super::TRANSACTION_VERSION`] is 2) and reads both. A null
//! value (tombstone) forgets the id.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TransactionMetadata, TxnState};

/// Why a record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes than the format needs.
    #[error("truncated __transaction_state record")]
    Truncated,
    /// A version this broker does not read.
    #[error("unknown __transaction_state record version {0}")]
    Version(i16),
    /// A string that is not UTF-8 or a state id Kafka does not define.
    #[error("invalid __transaction_state record: {0}")]
    Invalid(&'static str),
}

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

/// The key of `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// The value of `metadata` at `version` (0 or 1).
pub fn encode_value_version(metadata: &TransactionMetadata, version: i16) -> Bytes {
    let flexible = version >= 1;
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(version);
    buf.put_i64(metadata.producer_id);
    buf.put_i16(metadata.producer_epoch);
    buf.put_i32(metadata.timeout_ms);
    buf.put_i8(metadata.state.id());
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &metadata.partitions {
        match topics.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    let count = |buf: &mut BytesMut, n: usize| {
        if flexible {
            put_uvarint(buf, n as u64 + 1);
        } else {
            buf.put_i32(n as i32);
        }
    };
    count(&mut buf, topics.len());
    for (topic, partitions) in topics {
        if flexible {
            put_uvarint(&mut buf, topic.len() as u64 + 1);
            buf.put_slice(topic.as_bytes());
        } else {
            put_string(&mut buf, topic);
        }
        count(&mut buf, partitions.len());
        for p in partitions {
            buf.put_i32(p);
        }
        if flexible {
            put_uvarint(&mut buf, 0);
        }
    }
    buf.put_i64(metadata.update_ms);
    buf.put_i64(metadata.start_ms);
    if flexible {
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if metadata.prev_producer_id != -1 {
            tags.push((0, metadata.prev_producer_id.to_be_bytes().to_vec()));
        }
        if metadata.next_producer_id != -1 {
            tags.push((1, metadata.next_producer_id.to_be_bytes().to_vec()));
        }
        if metadata.client_transaction_version != 0 {
            tags.push((
                2,
                metadata.client_transaction_version.to_be_bytes().to_vec(),
            ));
        }
        put_uvarint(&mut buf, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut buf, tag);
            put_uvarint(&mut buf, data.len() as u64);
            buf.put_slice(&data);
        }
    }
    buf.freeze()
}

/// The value of `metadata`, at the version Kafka writes at Weir's `transaction.version`.
pub fn encode_value(metadata: &TransactionMetadata) -> Bytes {
    let version = if super::TRANSACTION_VERSION >= 1 {
        1
    } else {
        0
    };
    encode_value_version(metadata, version)
}

/// A cursor over record bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        if self.0.len() < N {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        self.take().map(i64::from_be_bytes)
    }
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.take::<1>()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Invalid("varint too long"))
    }
    /// A flexible array's or string's length (`None`: null).
    fn compact_len(&mut self) -> Result<Option<usize>, RecordError> {
        let n = self.uvarint()?;
        Ok(n.checked_sub(1).map(|n| n as usize))
    }
    fn skip(&mut self, n: usize) -> Result<(), RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        self.0 = &self.0[n..];
        Ok(())
    }
    fn compact_string(&mut self) -> Result<String, RecordError> {
        let len = self
            .compact_len()?
            .ok_or(RecordError::Invalid("null string"))?;
        self.bytes_as_string(len)
    }
    fn string(&mut self) -> Result<String, RecordError> {
        let len = usize::try_from(self.i16()?).map_err(|_| RecordError::Invalid("null string"))?;
        self.bytes_as_string(len)
    }
    fn bytes_as_string(&mut self, len: usize) -> Result<String, RecordError> {
        if self.0.len() < len {
            return Err(RecordError::Truncated);
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(s.to_vec()).map_err(|_| RecordError::Invalid("string is not UTF-8"))
    }
}

/// The transactional id of a key.
pub fn decode_key(key: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader(key);
    match r.i16()? {
        0 => r.string(),
        v => Err(RecordError::Version(v)),
    }
}

/// The metadata of a value.
pub fn decode_value(value: &[u8]) -> Result<TransactionMetadata, RecordError> {
    let mut r = Reader(value);
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::Version(version));
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let [status] = r.take::<1>()?;
    let state = TxnState::from_id(status as i8).ok_or(RecordError::Invalid("state id"))?;
    let count = |r: &mut Reader| -> Result<usize, RecordError> {
        if flexible {
            Ok(r.compact_len()?.unwrap_or(0))
        } else {
            Ok(usize::try_from(r.i32()?).unwrap_or(0))
        }
    };
    let mut partitions = BTreeSet::new();
    for _ in 0..count(&mut r)? {
        let topic = if flexible {
            r.compact_string()?
        } else {
            r.string()?
        };
        for _ in 0..count(&mut r)? {
            partitions.insert((topic.clone(), r.i32()?));
        }
        if flexible {
            skip_tagged_fields(&mut r)?;
        }
    }
    let update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut metadata = TransactionMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        update_ms,
        start_ms,
        prev_producer_id: -1,
        next_producer_id: -1,
        client_transaction_version: 0,
    };
    if flexible {
        for _ in 0..r.uvarint()? {
            let tag = r.uvarint()?;
            let size = r.uvarint()? as usize;
            match (tag, size) {
                (0, 8) => metadata.prev_producer_id = r.i64()?,
                (1, 8) => metadata.next_producer_id = r.i64()?,
                (2, 2) => metadata.client_transaction_version = r.i16()?,
                _ => r.skip(size)?,
            }
        }
    }
    Ok(metadata)
}

/// Skips a flexible struct's tagged fields (none are defined inside the partitions entry).
fn skip_tagged_fields(r: &mut Reader) -> Result<(), RecordError> {
    for _ in 0..r.uvarint()? {
        r.uvarint()?;
        let size = r.uvarint()? as usize;
        r.skip(size)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_and_bad_bytes_are_errors() {
        assert_eq!(decode_key(&encode_key("tx-1")).unwrap(), "tx-1");
        let metadata = TransactionMetadata {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 100,
            update_ms: 200,
            prev_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
        };
        let value = encode_value_version(&metadata, 0);
        assert_eq!(decode_value(&value).unwrap(), metadata);
        assert_eq!(
            decode_value(&value[..value.len() - 1]),
            Err(RecordError::Truncated)
        );
        assert_eq!(decode_key(&[0, 1]), Err(RecordError::Version(1)));
        let mut bad_state = value.to_vec();
        bad_state[16] = 9;
        assert!(matches!(
            decode_value(&bad_state),
            Err(RecordError::Invalid(_))
        ));
    }
}

#[cfg(test)]
mod flexible_tests {
    use super::*;

    #[test]
    fn version_1_values_carry_the_tagged_fields_and_read_back() {
        let metadata = TransactionMetadata {
            producer_id: 42,
            producer_epoch: 32_767,
            timeout_ms: 60_000,
            state: TxnState::PrepareAbort,
            partitions: [("a".to_string(), 0), ("a".to_string(), 300)]
                .into_iter()
                .collect(),
            start_ms: 100,
            update_ms: 200,
            prev_producer_id: 7,
            next_producer_id: 43,
            client_transaction_version: 2,
        };
        let value = encode_value(&metadata);
        assert_eq!(&value[..2], &[0, 1], "Kafka 4.x's flexible version");
        assert_eq!(decode_value(&value).unwrap(), metadata);
        // Defaults are not written: the value ends with an empty tagged-field section.
        let plain = TransactionMetadata {
            prev_producer_id: -1,
            next_producer_id: -1,
            client_transaction_version: 0,
            partitions: Default::default(),
            state: TxnState::Empty,
            ..metadata.clone()
        };
        let bytes = encode_value(&plain);
        // version, producer id, epoch, timeout, status, partitions (1: empty), two
        // timestamps, no tags.
        assert_eq!(bytes.len(), 2 + 8 + 2 + 4 + 1 + 1 + 8 + 8 + 1);
        assert_eq!(decode_value(&bytes).unwrap(), plain);
        // An unknown tag is skipped.
        let mut unknown = bytes[..bytes.len() - 1].to_vec();
        unknown.extend_from_slice(&[1, 9, 2, 0xab, 0xcd]);
        assert_eq!(decode_value(&unknown).unwrap(), plain);
        assert_eq!(decode_value(&[0, 2]), Err(RecordError::Version(2)));
    }
}
