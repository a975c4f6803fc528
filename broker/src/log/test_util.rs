//! Builders of valid record batches for tests, encoded by `kafka-protocol` (which computes the
//! CRC) so the storage layer is checked against an independent encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// What [`encode_test_batch`] builds: one v2 batch of `records` records of `value_size` bytes.
#[derive(Debug, Clone, Copy)]
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
    encode_records(&records, batch.compression)
}

/// Encodes `records` as record batch v2 with `compression` (the encoder starts a new batch
/// wherever offset minus sequence changes).
pub fn encode_records(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("test records encode");
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

/// A config with small segments and a dense index, so tests roll and index often.
pub fn small_config() -> crate::log::LogConfig {
    crate::log::LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 64,
        retention_ms: -1,
        ..crate::log::LogConfig::default()
    }
}

/// A manual clock at `now_ms` and the same clock as a `dyn Clock`.
pub fn manual_clock(
    now_ms: i64,
) -> (
    std::sync::Arc<crate::clock::ManualClock>,
    std::sync::Arc<dyn crate::clock::Clock>,
) {
    let clock = std::sync::Arc::new(crate::clock::ManualClock::new(now_ms));
    let dyn_clock: std::sync::Arc<dyn crate::clock::Clock> = clock.clone();
    (clock, dyn_clock)
}

/// What a leader stores for `batch` appended at `offset` in `leader_epoch`.
pub fn as_stored(batch: &Bytes, offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut stored = batch.to_vec();
    crate::log::batch::set_base_offset(&mut stored, offset);
    crate::log::batch::set_partition_leader_epoch(&mut stored, leader_epoch);
    stored
}

/// Every byte of the log from its start, read in fetches of `max_bytes`.
pub fn read_all(log: &crate::log::Log, max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let fetched = log.read(offset, max_bytes, i64::MAX, true).expect("read");
        assert!(
            !fetched.records.is_empty(),
            "no progress at offset {offset}"
        );
        let mut last_next = offset;
        for item in crate::log::batch::RecordBatchIter::new(&fetched.records) {
            last_next = item.expect("whole batches").0.next_offset();
        }
        out.extend_from_slice(&fetched.records);
        offset = last_next;
    }
    out
}

/// What a replica fetcher does after a leader change: asks `leader` for the end of the
/// follower's latest epoch, truncates the follower where [`crate::log::Log::offset_truncation_state`]
/// says, and repeats until truncation is complete. Returns the number of rounds.
pub fn truncate_to_leader(leader: &crate::log::Log, follower: &mut crate::log::Log) -> usize {
    for round in 1..=64 {
        let epoch = follower
            .latest_epoch()
            .unwrap_or(crate::log::UNDEFINED_EPOCH);
        let (leader_epoch, leader_end) = leader.end_offset_for_epoch(epoch);
        let state = follower.offset_truncation_state(leader_epoch, leader_end);
        follower.truncate_to(state.offset).expect("truncate");
        if state.truncation_completed {
            return round;
        }
    }
    panic!("truncation did not complete in 64 rounds");
}

/// Copies what `follower` lacks from `leader` in at most `fetches` fetches of `max_bytes`
/// (at least one whole batch each), as a replica fetcher does; restarts the follower at the
/// leader's log start if it is below it. Returns whether the follower caught up.
pub fn fetch_from(
    leader: &crate::log::Log,
    follower: &mut crate::log::Log,
    max_bytes: usize,
    fetches: usize,
) -> bool {
    for _ in 0..fetches {
        let offset = follower.log_end_offset();
        if offset >= leader.log_end_offset() {
            return true;
        }
        if offset < leader.log_start_offset() {
            follower
                .truncate_fully_and_start_at(leader.log_start_offset())
                .expect("restart at the leader's log start");
            continue;
        }
        let fetched = leader
            .read(offset, max_bytes, i64::MAX, true)
            .expect("leader read");
        follower
            .append_as_follower(&fetched.records)
            .expect("follower append");
    }
    follower.log_end_offset() >= leader.log_end_offset()
}

/// A temporary directory on tmpfs (`/dev/shm`) where there is one, else the usual one: for
/// property tests that write thousands of small checkpoint files, whose fsyncs would otherwise
/// dominate the run on a busy disk. What they check is logic, not durability.
pub fn tmpfs_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary directory")
}
