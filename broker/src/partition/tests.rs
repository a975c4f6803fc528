use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{encode_test_batch, small_config, TestBatch};

fn leader(dir: &std::path::Path) -> Arc<Partition> {
    let p = Partition::open(
        dir,
        Arc::from("t"),
        Uuid::new_v4(),
        0,
        small_config(),
        Arc::new(SystemClock),
    )
    .unwrap();
    p.make_leader(0, 0, 0, &[0], &[0]).unwrap();
    Arc::new(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_under_load_flush_in_the_background_and_move_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let partition = leader(dir.path());
    let batch: Bytes = encode_test_batch(&TestBatch::new(2, 200));
    // Two producers, ~1 KiB segments: a roll every other append or so.
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let (p, batch) = (partition.clone(), batch.clone());
            tokio::task::spawn_blocking(move || {
                for _ in 0..200 {
                    p.append(&batch).unwrap();
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.unwrap();
    }
    let stats = partition.stats();
    assert_eq!(stats.log_end_offset, 800);
    assert!(stats.segments > 100, "{} segments", stats.segments);
    // The queued flushes run on blocking threads; once they are done the recovery point is the
    // start of the active segment, and it is checkpointed.
    let active_base = partition
        .log
        .read()
        .segments()
        .last()
        .unwrap()
        .base_offset();
    crate::wait_for_condition(|| partition.stats().recovery_point == active_base).await;
    assert_eq!(
        crate::log::read_offset_checkpoint(&dir.path().join("t-0").join("recovery-point")).unwrap(),
        Some(active_base)
    );
}

#[test]
fn a_follower_fetch_with_no_bytes_left_returns_nothing_but_counts_and_delete_records_waits_for_it()
{
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        Arc::from("t"),
        Uuid::new_v4(),
        0,
        small_config(),
        Arc::new(SystemClock),
    )
    .unwrap();
    p.make_leader(0, 0, 0, &[0, 1], &[0, 1]).unwrap();
    p.append(&encode_test_batch(&TestBatch::new(5, 20)))
        .unwrap();
    // The throttle is spent: no records, yet the follower's position (and log start) count.
    let fetched = p.fetch_for_follower(1, 5, 0, 0, 0, 0, true).unwrap();
    assert!(fetched.records.is_empty());
    assert_eq!(p.high_watermark(), 5, "the ISR advanced the high watermark");
    let fetched = p.fetch_for_follower(1, 0, 0, -1, 0, 1 << 20, true).unwrap();
    assert!(
        !fetched.records.is_empty(),
        "with bytes allowed the batch comes"
    );

    // DeleteRecords: the leader moves at once, the low watermark waits for the follower.
    assert_eq!(p.delete_records_before(3).unwrap(), 3);
    assert_eq!(p.log_start_offset(), 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let waited = rt.block_on(p.wait_for_low_watermark(3, |_| true, Duration::from_millis(50)));
    assert!(matches!(waited, Err(PartitionError::Timeout)), "{waited:?}");
    // A dead follower does not count.
    let low = rt.block_on(p.wait_for_low_watermark(3, |id| id != 1, Duration::from_millis(50)));
    assert_eq!(low.unwrap(), 3);
    p.fetch_for_follower(1, 5, 3, 0, 0, 1 << 20, true).unwrap();
    let low = rt.block_on(p.wait_for_low_watermark(3, |_| true, Duration::from_millis(50)));
    assert_eq!(low.unwrap(), 3);
    assert!(matches!(
        p.delete_records_before(6),
        Err(PartitionError::Log(LogError::OffsetOutOfRange { .. }))
    ));
}
