use std::sync::Arc;

use super::*;
use crate::clock::SystemClock;
use crate::log::batch::RecordBatchHeader;
use crate::log::test_util::{
    as_stored, concat, encode_test_batch, manual_clock, read_all, small_config, TestBatch,
};
use crate::log::{LogConfig, PendingFlush};

#[test]
fn assigns_offsets_and_stamps_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    let a = encode_test_batch(&TestBatch::new(3, 10));
    let b = encode_test_batch(&TestBatch::new(2, 10));
    let info = log.append_as_leader(&a, 5).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.records_count),
        (0, 2, 3)
    );
    assert_eq!(info.valid_bytes, a.len() as u64);
    assert!(!info.duplicate);
    assert_eq!(info.log_append_time, -1);
    assert_eq!(info.max_timestamp, 1_002);
    let info = log
        .append_as_leader(&concat(&[b.clone(), b.clone()]), 6)
        .unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 6));
    assert_eq!(log.log_end_offset(), 7);

    let mut expected = as_stored(&a, 0, 5);
    expected.extend(as_stored(&b, 3, 6));
    expected.extend(as_stored(&b, 5, 6));
    assert_eq!(read_all(&log, 1 << 20), expected);
}

#[test]
fn invalid_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 1_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let mut corrupt = encode_test_batch(&TestBatch::new(2, 10)).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let err = log.append_as_leader(&Bytes::from(corrupt), 0).unwrap_err();
    assert!(matches!(err, LogError::CorruptRecord { .. }), "{err}");
    let too_big = encode_test_batch(&TestBatch::new(1, 2_000));
    let err = log.append_as_leader(&too_big, 0).unwrap_err();
    assert!(matches!(err, LogError::RecordTooLarge { .. }), "{err}");
    assert_eq!((log.log_end_offset(), log.size_in_bytes()), (0, 0));
}

#[test]
fn log_append_time_overwrites_max_timestamp_with_a_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = manual_clock(77_000);
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, clock).unwrap();
    let info = log
        .append_as_leader(&encode_test_batch(&TestBatch::new(2, 5)), 0)
        .unwrap();
    assert_eq!((info.log_append_time, info.max_timestamp), (77_000, 77_000));
    let stored = log.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    let header = RecordBatchHeader::parse(&stored, 0).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp(), 77_000);
    assert_eq!(Some(header.crc()), header.compute_crc());
    assert_eq!(
        log.fetch_offset_for_timestamp(77_000).unwrap(),
        Some((0, 77_000))
    );
}

#[test]
fn rolls_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    let batch = encode_test_batch(&TestBatch::new(1, 300)); // ~370 bytes: 2 fit in 1024
    for _ in 0..5 {
        log.append_as_leader(&batch, 0).unwrap();
    }
    let bases: Vec<i64> = log.segments().iter().map(LogSegment::base_offset).collect();
    assert_eq!(bases, vec![0, 2, 4]);
    assert!(log.segments().iter().all(|s| s.size() <= 1024));
    assert!(dir.path().join("00000000000000000004.snapshot").exists());

    // The rolls queued their flushes instead of fsyncing under the caller's lock: the recovery
    // point moves only once they ran.
    assert_eq!(log.recovery_point(), 0);
    let flushes = log.take_pending_flushes();
    assert_eq!(
        flushes.iter().map(PendingFlush::upto).collect::<Vec<_>>(),
        [2, 4]
    );
    assert!(log.take_pending_flushes().is_empty(), "taken once");
    for flush in flushes {
        assert!(flush.run().unwrap());
    }
    assert_eq!(log.recovery_point(), 4);
    assert_eq!(
        crate::log::read_offset_checkpoint(&dir.path().join("recovery-point")).unwrap(),
        Some(4)
    );
}

#[test]
fn a_queued_flush_does_not_move_the_recovery_point_over_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    let batch = encode_test_batch(&TestBatch::new(1, 300));
    for _ in 0..5 {
        log.append_as_leader(&batch, 0).unwrap();
    }
    let flushes = log.take_pending_flushes();
    // A follower cut its diverged tail (and wrote new records there) before the flush ran.
    log.truncate_to(3).unwrap();
    log.append_as_leader(&batch, 1).unwrap();
    for flush in flushes {
        assert!(!flush.run().unwrap(), "queued before the truncation");
    }
    assert_eq!(log.recovery_point(), 0);
    // Flushes queued after it still count.
    for _ in 0..3 {
        log.append_as_leader(&batch, 1).unwrap();
    }
    let flushes = log.take_pending_flushes();
    assert!(!flushes.is_empty());
    for flush in flushes {
        flush.run().unwrap();
    }
    assert_eq!(
        log.recovery_point(),
        log.segments().last().unwrap().base_offset()
    );
}

#[test]
fn rolls_by_time_from_the_first_append() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, dyn_clock) = manual_clock(1_000_000);
    let config = LogConfig {
        segment_ms: 60_000,
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, dyn_clock).unwrap();
    let batch = encode_test_batch(&TestBatch::new(1, 10));
    clock.advance(120_000); // time before the first append does not count
    log.append_as_leader(&batch, 0).unwrap();
    clock.advance(60_000);
    log.append_as_leader(&batch, 0).unwrap();
    assert_eq!(log.num_segments(), 1, "exactly segment.ms old: not yet");
    clock.advance(1);
    log.append_as_leader(&batch, 0).unwrap();
    assert_eq!(log.num_segments(), 2);
    assert_eq!(log.segments()[1].base_offset(), 2);
}

#[test]
fn rolls_when_the_index_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        index_interval_bytes: 1,
        segment_index_bytes: 24, // 3 offset entries, 2 time entries
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let batch = encode_test_batch(&TestBatch::new(1, 10));
    for _ in 0..4 {
        log.append_as_leader(&batch, 0).unwrap();
    }
    assert_eq!(log.num_segments(), 1);
    assert!(
        log.segments()[0].is_index_full(),
        "batches 2..4 fill the 3-entry offset index"
    );
    log.append_as_leader(&batch, 0).unwrap();
    assert_eq!(log.num_segments(), 2);
    assert_eq!(log.segments()[1].base_offset(), 4);
}

#[test]
fn flush_messages_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 3,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let batch = encode_test_batch(&TestBatch::new(2, 10));
    log.append_as_leader(&batch, 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append_as_leader(&batch, 0).unwrap();
    assert_eq!(log.recovery_point(), 4);
}

#[test]
fn flush_ms_is_honoured_by_the_periodic_check() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, dyn_clock) = manual_clock(0);
    let config = LogConfig {
        flush_ms: 1_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, dyn_clock).unwrap();
    log.append_as_leader(&encode_test_batch(&TestBatch::new(2, 10)), 0)
        .unwrap();
    log.maybe_flush_by_time().unwrap();
    assert_eq!(log.recovery_point(), 0);
    clock.advance(1_000);
    log.maybe_flush_by_time().unwrap();
    assert_eq!(log.recovery_point(), 2);
}

fn idempotent(pid: i64, epoch: i16, seq: i32, records: usize) -> Bytes {
    encode_test_batch(&TestBatch::new(records, 8).idempotent(pid, epoch, seq))
}

#[test]
fn duplicate_batches_return_the_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    log.append_as_leader(&encode_test_batch(&TestBatch::new(4, 8)), 0)
        .unwrap();
    let first = log.append_as_leader(&idempotent(11, 0, 0, 3), 0).unwrap();
    assert_eq!((first.first_offset, first.last_offset), (4, 6));
    log.append_as_leader(&idempotent(11, 0, 3, 1), 0).unwrap();

    let retry = log.append_as_leader(&idempotent(11, 0, 0, 3), 0).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.last_offset), (4, 6));
    assert_eq!(log.log_end_offset(), 8, "nothing appended");

    let err = log
        .append_as_leader(&idempotent(11, 0, 6, 1), 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OutOfOrderSequence {
                first_sequence: 6,
                last_sequence: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(log.log_end_offset(), 8);
    // A producer the log does not know may start anywhere (Kafka's rule since KIP-360).
    let unknown = log.append_as_leader(&idempotent(12, 0, 1, 1), 0).unwrap();
    assert_eq!((unknown.first_offset, unknown.duplicate), (8, false));
}

#[test]
fn several_batches_of_one_producer_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    let request = concat(&[idempotent(5, 0, 0, 2), idempotent(5, 0, 2, 2)]);
    let info = log.append_as_leader(&request, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 3));
    assert_eq!(
        log.producer_state().producer(5).unwrap().last_seq(),
        Some(3)
    );
    let gap = concat(&[idempotent(5, 0, 4, 1), idempotent(5, 0, 6, 1)]);
    assert!(matches!(
        log.append_as_leader(&gap, 0),
        Err(LogError::OutOfOrderSequence { .. })
    ));
    assert_eq!(log.log_end_offset(), 4);
}
