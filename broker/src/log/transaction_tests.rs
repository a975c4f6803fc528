//! Transactions in the log: the last stable offset, markers, the aborted-transaction index,
//! and all of it surviving restarts (clean and not) and truncation.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, TimestampType};

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{encode_records, encode_test_batch, small_config, TestBatch};

/// `count` records of a transactional producer, sequences from `sequence`.
fn txn_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: 1_000,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from_static(b"v")),
            headers: IndexMap::new(),
        })
        .collect();
    encode_records(&records, Compression::None)
}

fn marker(producer_id: i64, kind: ControlRecordType) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        kind,
    }
}

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, small_config(), Arc::new(SystemClock)).unwrap()
}

fn everything_replicated(log: &mut Log) {
    let end = log.log_end_offset();
    log.maybe_increment_high_watermark(end);
}

/// Producer 1 commits 0..=1, producer 2 aborts 2..=3 (with 4..=5 of producer 1's second
/// transaction in between), a plain batch at 6, producer 1's abort at 7; producer 3 leaves a
/// transaction open at 8.
fn build(log: &mut Log) {
    log.append_as_leader(&txn_batch(1, 0, 0, 2), 0).unwrap(); // 0..=1
    log.append_as_leader(&txn_batch(2, 0, 0, 2), 0).unwrap(); // 2..=3
    log.append_marker_as_leader(&marker(1, ControlRecordType::Commit), 0)
        .unwrap(); // 4
    log.append_as_leader(&txn_batch(1, 0, 2, 1), 0).unwrap(); // 5
    log.append_marker_as_leader(&marker(2, ControlRecordType::Abort), 0)
        .unwrap(); // 6
    log.append_as_leader(&encode_test_batch(&TestBatch::new(1, 3)), 0)
        .unwrap(); // 7
    log.append_marker_as_leader(&marker(1, ControlRecordType::Abort), 0)
        .unwrap(); // 8
    log.append_as_leader(&txn_batch(3, 0, 0, 1), 0).unwrap(); // 9
}

fn assert_state(log: &Log) {
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.last_stable_offset(), 9, "producer 3's open transaction");
    assert_eq!(
        log.collect_aborted_txns(0, 10),
        vec![
            AbortedTxn {
                producer_id: 2,
                first_offset: 2,
                last_offset: 6,
                // Producer 1's second transaction (from 5) was open when this abort landed.
                last_stable_offset: 5,
            },
            AbortedTxn {
                producer_id: 1,
                first_offset: 5,
                last_offset: 8,
                last_stable_offset: 9,
            },
        ]
    );
    assert_eq!(
        log.collect_aborted_txns(7, 8).len(),
        1,
        "only producer 1's second transaction overlaps [7, 8)"
    );
    let p3 = log.producer_state().producer(3).unwrap();
    assert_eq!(p3.current_txn_first_offset, Some(9));
    assert_eq!(
        log.producer_state()
            .producer(1)
            .unwrap()
            .current_txn_first_offset,
        None
    );
}

#[test]
fn the_last_stable_offset_waits_for_open_and_unreplicated_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append_as_leader(&txn_batch(1, 0, 0, 3), 0).unwrap();
    log.append_as_leader(&encode_test_batch(&TestBatch::new(2, 3)), 0)
        .unwrap();
    everything_replicated(&mut log);
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(
        log.last_stable_offset(),
        0,
        "the open transaction starts at 0"
    );
    log.append_marker_as_leader(&marker(1, ControlRecordType::Commit), 0)
        .unwrap();
    assert_eq!(
        log.last_stable_offset(),
        0,
        "a marker above the high watermark is not stable yet"
    );
    everything_replicated(&mut log);
    assert_eq!(log.last_stable_offset(), 6);
    assert!(
        log.collect_aborted_txns(0, 6).is_empty(),
        "a commit aborts nothing"
    );
}

#[test]
fn markers_and_the_aborted_index_survive_clean_and_unclean_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    build(&mut log);
    everything_replicated(&mut log);
    assert_state(&log);
    log.close().unwrap();
    let mut log = open(dir.path());
    log.maybe_increment_high_watermark(10);
    assert_state(&log);
    drop(log);

    // Unclean: no producer snapshot and no transaction index, as after a crash before either
    // reached the disk; both are rebuilt from the batches.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "snapshot" || ext == "txnindex" {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut log = open(dir.path());
    log.maybe_increment_high_watermark(10);
    assert_state(&log);
}

#[test]
fn truncating_below_a_marker_reopens_its_transaction_and_drops_its_abort() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    build(&mut log);
    log.truncate_to(8).unwrap();
    everything_replicated(&mut log);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(
        log.last_stable_offset(),
        5,
        "producer 1's second transaction is open again"
    );
    assert_eq!(
        log.collect_aborted_txns(0, 8)
            .iter()
            .map(|t| t.producer_id)
            .collect::<Vec<_>>(),
        vec![2]
    );
    // The same marker again (the coordinator retries) completes it once more.
    log.append_marker_as_leader(&marker(1, ControlRecordType::Abort), 0)
        .unwrap();
    everything_replicated(&mut log);
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.collect_aborted_txns(0, 9).len(), 2);
}

#[test]
fn a_marker_from_a_fenced_producer_epoch_or_coordinator_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    log.append_as_leader(&txn_batch(1, 3, 0, 1), 0).unwrap();
    let old_epoch = TxnMarker {
        producer_epoch: 2,
        ..marker(1, ControlRecordType::Abort)
    };
    assert!(matches!(
        log.append_marker_as_leader(&old_epoch, 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    let newer = TxnMarker {
        producer_epoch: 3,
        coordinator_epoch: 5,
        ..marker(1, ControlRecordType::Commit)
    };
    log.append_marker_as_leader(&newer, 0).unwrap();
    let stale_coordinator = TxnMarker {
        coordinator_epoch: 4,
        ..newer
    };
    assert!(matches!(
        log.append_marker_as_leader(&stale_coordinator, 0),
        Err(LogError::TransactionCoordinatorFenced { .. })
    ));
}
