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
