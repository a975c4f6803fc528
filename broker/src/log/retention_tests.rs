use std::sync::Arc;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{encode_test_batch, manual_clock, small_config, TestBatch};
use crate::log::LogConfig;

/// One ~375-byte batch: two fit in a 1024-byte segment.
fn batch_at_time(timestamp: i64) -> bytes::Bytes {
    encode_test_batch(&TestBatch {
        timestamp,
        ..TestBatch::new(1, 300)
    })
}

fn bases(log: &Log) -> Vec<i64> {
    log.segments().iter().map(LogSegment::base_offset).collect()
}

/// Five batches: segments [80s, 89s], [95s, 99s], [100s] (timestamps in ms).
fn five_batches(log: &mut Log) {
    for ts in [80_000, 89_000, 95_000, 99_000, 100_000] {
        log.append_as_leader(&batch_at_time(ts), 0).unwrap();
    }
    assert_eq!(bases(log), vec![0, 2, 4]);
}

#[test]
fn retention_by_time_deletes_expired_segments_then_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, dyn_clock) = manual_clock(100_000);
    let config = LogConfig {
        retention_ms: 10_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config.clone(), dyn_clock.clone()).unwrap();
    five_batches(&mut log);

    assert_eq!(
        log.delete_old_segments().unwrap(),
        1,
        "only [80s, 89s] is over 10 s old"
    );
    assert_eq!(bases(&log), vec![2, 4]);
    assert_eq!(log.log_start_offset(), 2);
    assert!(matches!(
        log.read(1, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange {
            offset: 1,
            log_start: 2,
            log_end: 5
        })
    ));

    clock.advance(10_001);
    assert_eq!(
        log.delete_old_segments().unwrap(),
        2,
        "the active segment expired too"
    );
    assert_eq!(
        bases(&log),
        vec![5],
        "an empty segment was rolled at the log end"
    );
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    assert!(log.read(5, 100, i64::MAX, true).unwrap().records.is_empty());
    assert_eq!(
        log.delete_old_segments().unwrap(),
        0,
        "an empty active segment stays"
    );
    drop(log);

    let log = Log::open(dir.path(), config, dyn_clock).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 1_000,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, Arc::new(SystemClock)).unwrap();
    five_batches(&mut log);
    assert_eq!(log.delete_old_segments().unwrap(), 1);
    assert_eq!(bases(&log), vec![2, 4]);
    assert!(log.size_in_bytes() >= 1_000);
    assert_eq!(log.delete_old_segments().unwrap(), 0);
}

#[test]
fn log_start_offset_moves_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    five_batches(&mut log);
    assert!(log.maybe_increment_log_start_offset(3).unwrap());
    assert!(!log.maybe_increment_log_start_offset(2).unwrap());
    assert!(log.maybe_increment_log_start_offset(9).is_err());
    assert_eq!(
        log.delete_old_segments().unwrap(),
        1,
        "segment [0, 2) is below the start"
    );
    assert_eq!(bases(&log), vec![2, 4]);
    assert_eq!(log.log_start_offset(), 3);
    // A read at the start returns the batch holding it.
    assert_eq!(log.read(3, 1 << 20, i64::MAX, true).unwrap().position, 375);
    drop(log);
    let log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    assert_eq!(log.log_start_offset(), 3);
}

#[test]
fn truncate_to_drops_later_segments_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    for seq in 0..5 {
        let batch = encode_test_batch(&TestBatch::new(1, 300).idempotent(8, 0, seq));
        log.append_as_leader(&batch, 0).unwrap();
    }
    assert!(log.truncate_to(3).unwrap());
    assert_eq!(bases(&log), vec![0, 2]);
    assert_eq!(log.log_end_offset(), 3);
    assert!(log.recovery_point() <= 3);
    assert_eq!(
        log.producer_state().producer(8).unwrap().last_seq(),
        Some(2)
    );
    let next = encode_test_batch(&TestBatch::new(1, 300).idempotent(8, 0, 3));
    assert_eq!(log.append_as_leader(&next, 0).unwrap().first_offset, 3);
    assert!(!log.truncate_to(100).unwrap());
}

#[test]
fn truncate_fully_restarts_the_log_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    five_batches(&mut log);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(bases(&log), vec![100]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    let info = log.append_as_leader(&batch_at_time(1), 0).unwrap();
    assert_eq!(info.first_offset, 100);
    drop(log);
    let log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 101));
}
