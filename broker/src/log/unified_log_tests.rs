use std::sync::Arc;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{as_stored, encode_test_batch, small_config, TestBatch};
use kafka_protocol::records::Compression;

fn log_with(batches: &[TestBatch]) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), Arc::new(SystemClock)).unwrap();
    for batch in batches {
        log.append_as_leader(&encode_test_batch(batch), 0).unwrap();
    }
    (dir, log)
}

#[test]
fn read_bounds_and_high_watermark() {
    let a = TestBatch::new(3, 10);
    let (_dir, log) = log_with(&[a, a]);
    let stored_a = as_stored(&encode_test_batch(&a), 0, 0);
    let err = log.read(7, 100, i64::MAX, true).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OffsetOutOfRange {
                offset: 7,
                log_start: 0,
                log_end: 6
            }
        ),
        "{err}"
    );
    assert!(log.read(6, 100, i64::MAX, true).unwrap().records.is_empty());
    let mid = log.read(1, 1 << 20, 3, true).unwrap();
    assert_eq!(
        &mid.records[..],
        &stored_a[..],
        "from the batch holding 1, below the HW"
    );
    assert_eq!(mid.segment_base_offset, 0);
    assert!(
        log.read(3, 1 << 20, 3, true).unwrap().records.is_empty(),
        "at the HW"
    );
    assert!(
        log.read(3, 1 << 20, 5, true).unwrap().records.is_empty(),
        "batch 3..5 straddles the HW"
    );
}

#[test]
fn reads_continue_into_the_next_segment() {
    let (_dir, log) = log_with(&[TestBatch::new(1, 300); 5]);
    assert_eq!(log.num_segments(), 3);
    let read = log.read(2, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(read.segment_base_offset, 2);
    assert_eq!(read.position, 0);
}

#[test]
fn offset_for_timestamp_finds_the_exact_record_even_compressed() {
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let batches: Vec<TestBatch> = (0..20)
            .map(|i| TestBatch {
                timestamp: 10_000 + i * 100,
                compression,
                ..TestBatch::new(4, 50)
            })
            .collect();
        // Batch i holds offsets 4i..4i+3 with timestamps 10000 + 100i + (0..4).
        let (_dir, log) = log_with(&batches);
        assert_eq!(
            log.fetch_offset_for_timestamp(0).unwrap(),
            Some((0, 10_000)),
            "{compression:?}"
        );
        assert_eq!(
            log.fetch_offset_for_timestamp(10_702).unwrap(),
            Some((30, 10_702)),
            "{compression:?}"
        );
        assert_eq!(
            log.fetch_offset_for_timestamp(10_704).unwrap(),
            Some((32, 10_800)),
            "{compression:?}"
        );
        assert_eq!(
            log.fetch_offset_for_timestamp(12_000).unwrap(),
            None,
            "{compression:?}"
        );
        assert_eq!(
            log.max_timestamp_and_offset().unwrap(),
            Some((79, 11_903)),
            "{compression:?}"
        );
    }
}

#[test]
fn max_timestamp_is_the_first_record_carrying_it() {
    let (_dir, log) = log_with(&[
        TestBatch {
            timestamp: 500,
            ..TestBatch::new(2, 5)
        },
        TestBatch {
            timestamp: 900,
            ..TestBatch::new(3, 5)
        },
        TestBatch {
            timestamp: 100,
            ..TestBatch::new(2, 5)
        },
    ]);
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((4, 902)));
    let (_dir, empty) = log_with(&[]);
    assert_eq!(empty.max_timestamp_and_offset().unwrap(), None);
    assert_eq!(empty.fetch_offset_for_timestamp(0).unwrap(), None);
}

#[test]
fn delete_dir_removes_the_partition() {
    let (dir, log) = log_with(&[TestBatch::new(1, 1)]);
    let path = dir.path().to_path_buf();
    log.delete_dir().unwrap();
    assert!(!path.exists());
}

#[test]
fn concurrent_fetches_share_a_read_lock_while_appends_go_on() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();

    let (_dir, log) = log_with(&[]);
    let log = Arc::new(parking_lot::RwLock::new(log));
    let batch = encode_test_batch(&TestBatch::new(2, 100));
    let appended = 200;
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for _ in 0..appended {
                log.write().append_as_leader(&batch, 0).unwrap();
            }
        });
        for _ in 0..2 {
            scope.spawn(|| {
                let mut offset = 0;
                while offset < 2 * appended {
                    let guard = log.read();
                    let fetched = guard
                        .read(offset, 4096, guard.log_end_offset(), true)
                        .unwrap();
                    for item in crate::log::batch::RecordBatchIter::new(&fetched.records) {
                        let header = item.unwrap().0;
                        assert_eq!(header.base_offset(), offset, "continuous offsets");
                        offset = header.next_offset();
                    }
                }
            });
        }
        writer.join().unwrap();
    });
    assert_eq!(log.read().log_end_offset(), 2 * appended);
}
