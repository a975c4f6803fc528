//! [`OffsetMap`]: key → latest offset, bounded in memory (Kafka's `SkimpyOffsetMap`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Bytes one entry counts for, as Kafka sizes its map: a 16-byte key hash and an 8-byte offset.
pub const BYTES_PER_ENTRY: usize = 24;

/// The latest offset of each key seen in the dirty part of a log, keyed by a 128-bit hash of
/// the key (two independent SipHash-1-3 passes), not the key itself, so memory does not grow
/// with key size. As in Kafka, two keys with the same hash are one key to the cleaner; at 128
/// bits that is not expected to happen in the life of a cluster.
///
/// Invariants: at most `capacity` entries; every offset put is larger than the previous one
/// ([`OffsetMap::latest_offset`] is the last put).
///
/// Not shared: each cleaner thread owns one and clears it between passes.
#[derive(Debug)]
pub struct OffsetMap {
    entries: HashMap<u128, i64>,
    capacity: usize,
    latest_offset: i64,
}

/// The 128-bit hash a key is stored under.
pub fn key_hash(key: &[u8]) -> u128 {
    // The map lives for one pass in one process, so the hasher need not be stable across
    // Rust releases; two seeds make two independent 64-bit halves.
    let half = |seed: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x5745_4952)) << 64) | u128::from(half(0x434c_4541_4e45))
}

impl OffsetMap {
    /// A map of at most `memory_bytes / BYTES_PER_ENTRY * load_factor` entries (Kafka's
    /// sizing of `log.cleaner.dedupe.buffer.size` split among the cleaner threads).
    pub fn with_memory(memory_bytes: usize, load_factor: f64) -> Self {
        let slots = memory_bytes / BYTES_PER_ENTRY;
        Self {
            entries: HashMap::new(),
            capacity: ((slots as f64) * load_factor.clamp(0.0, 1.0)) as usize,
            latest_offset: -1,
        }
    }

    /// Entries the map may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Room left for this many more keys.
    pub fn has_room_for(&self, keys: usize) -> bool {
        self.entries.len().saturating_add(keys) <= self.capacity
    }

    /// Records `offset` as the latest of `key_hash`.
    pub fn put(&mut self, key_hash: u128, offset: i64) {
        self.entries.insert(key_hash, offset);
        self.latest_offset = self.latest_offset.max(offset);
    }

    /// The latest offset of the key, if it was put.
    pub fn get(&self, key_hash: u128) -> Option<i64> {
        self.entries.get(&key_hash).copied()
    }

    /// The largest offset put, -1 if none.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Forgets every entry (keeps the allocation for the next pass).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.latest_offset = -1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_like_kafka_and_latest_offset_wins() {
        let mut map = OffsetMap::with_memory(24 * 100, 0.9);
        assert_eq!(map.capacity(), 90);
        map.put(key_hash(b"a"), 1);
        map.put(key_hash(b"b"), 2);
        map.put(key_hash(b"a"), 3);
        assert_eq!(map.get(key_hash(b"a")), Some(3));
        assert_eq!(map.get(key_hash(b"c")), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.latest_offset(), 3);
        assert!(map.has_room_for(88) && !map.has_room_for(89));
        assert_ne!(key_hash(b"ab"), key_hash(b"ba"));
    }
}
