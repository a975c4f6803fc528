//! Record values: text-like bytes that compress about as well as typical JSON or log lines.
//!
//! All-identical bytes would make the lz4 rows measure a codec that shrinks 1 KiB to a few
//! bytes; pure random bytes would not compress at all. The pool is words drawn from a small
//! vocabulary by a fixed-seed generator, so runs are repeatable and both brokers get the same
//! bytes. Records are slices of the pool at different offsets, so the hot loop neither
//! generates nor copies anything (librdkafka copies the slice into its own buffer).

use bytes::Bytes;

/// Words the pool is made of: lz4 finds repeats but not a trivial pattern.
const VOCABULARY: [&str; 32] = [
    "offset",
    "partition",
    "leader",
    "epoch",
    "segment",
    "index",
    "batch",
    "record",
    "broker",
    "topic",
    "producer",
    "consumer",
    "timestamp",
    "key",
    "value",
    "header",
    "replica",
    "fetch",
    "commit",
    "group",
    "2026",
    "17",
    "true",
    "false",
    "null",
    "{\"id\":",
    "\"ts\":",
    "\"v\":",
    "ERROR",
    "INFO",
    "ok",
    "42",
];

/// A repeatable pool of value bytes.
#[derive(Debug, Clone)]
pub struct Payload {
    pool: Bytes,
}

impl Payload {
    /// A pool large enough to give `max_record_size`-byte records many distinct offsets.
    pub fn new(max_record_size: usize) -> Payload {
        let len = (max_record_size * 64).max(1 << 20);
        let mut pool = Vec::with_capacity(len + 16);
        // xorshift64*: a fixed seed, so both brokers see the same bytes in every run.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        while pool.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = VOCABULARY[(state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 59) as usize];
            pool.extend_from_slice(word.as_bytes());
            pool.push(b' ');
        }
        pool.truncate(len);
        Payload {
            pool: Bytes::from(pool),
        }
    }

    /// The value of record `sequence`: `size` bytes starting at an offset that moves with the
    /// sequence number. Panics if `size` exceeds the pool (a record larger than `Payload::new`
    /// was told).
    pub fn value(&self, sequence: u64, size: usize) -> &[u8] {
        &self.pool[self.range(sequence, size)]
    }

    /// [`Payload::value`] as a `Bytes` sharing the pool (no copy), for encoders that take
    /// owned values.
    pub fn shared_value(&self, sequence: u64, size: usize) -> Bytes {
        self.pool.slice(self.range(sequence, size))
    }

    fn range(&self, sequence: u64, size: usize) -> std::ops::Range<usize> {
        let starts = self.pool.len() - size + 1;
        // An odd stride walks through every start offset before repeating one.
        let start = (sequence.wrapping_mul(7919) % starts as u64) as usize;
        start..start + size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_size_asked_and_differ() {
        let payload = Payload::new(1024);
        let a = payload.value(0, 1024);
        let b = payload.value(1, 1024);
        assert_eq!(a.len(), 1024);
        assert_eq!(b.len(), 1024);
        assert_ne!(a, b);
        assert_eq!(payload.value(5, 100).len(), 100);
        assert_eq!(&payload.shared_value(1, 1024)[..], b);
    }

    #[test]
    fn pool_is_the_same_every_time() {
        assert_eq!(
            Payload::new(100).value(123, 100),
            Payload::new(100).value(123, 100)
        );
    }

    #[test]
    fn pool_is_not_one_repeated_byte() {
        let payload = Payload::new(1024);
        let value = payload.value(3, 1024);
        let distinct: std::collections::HashSet<u8> = value.iter().copied().collect();
        assert!(
            distinct.len() > 20,
            "only {} distinct bytes",
            distinct.len()
        );
    }
}
