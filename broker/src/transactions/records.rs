//! `__transaction_state` records in Kafka's format (`TransactionLogKey` and
//! `TransactionLogValue`, version 0; big-endian, strings as i16 length + UTF-8):
//!
//! ```text
//! key   = version i16 (0) | transactional_id string
//! value = version i16 (0) | producer_id i64 | producer_epoch i16 | timeout_ms i32
//!       | status i8 | partitions: count i32, each topic string + (count i32, partition i32...)
//!       | last_update_ms i64 | start_ms i64
//! ```
//!
//! A null value (tombstone) forgets the id.

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

/// The value of `metadata`.
pub fn encode_value(metadata: &TransactionMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
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
    buf.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut buf, topic);
        buf.put_i32(partitions.len() as i32);
        for p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i64(metadata.update_ms);
    buf.put_i64(metadata.start_ms);
    buf.freeze()
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
    fn string(&mut self) -> Result<String, RecordError> {
        let len = usize::try_from(self.i16()?).map_err(|_| RecordError::Invalid("null string"))?;
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
    if version != 0 {
        return Err(RecordError::Version(version));
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let [status] = r.take::<1>()?;
    let state = TxnState::from_id(status as i8).ok_or(RecordError::Invalid("state id"))?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        for _ in 0..r.i32()?.max(0) {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    Ok(TransactionMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        update_ms: r.i64()?,
        start_ms: r.i64()?,
    })
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
        };
        let value = encode_value(&metadata);
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
