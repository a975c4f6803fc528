use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{as_stored, encode_test_batch, small_config, TestBatch};

fn leader(dir: &std::path::Path) -> Arc<Partition> {
    let p = open(dir);
    p.make_leader(0, 0, 0, &[0], &[0]).unwrap();
    Arc::new(p)
}

/// Partition 0 of topic `t` in `dir`, in no role yet.
fn open(dir: &std::path::Path) -> Partition {
    Partition::open(
        dir,
        Arc::from("t"),
        Uuid::new_v4(),
        0,
        small_config(),
        Arc::new(SystemClock),
    )
    .unwrap()
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
    let p = open(dir.path());
    p.make_leader(0, 0, 0, &[0, 1], &[0, 1]).unwrap();
    p.append(&encode_test_batch(&TestBatch::new(5, 20)))
        .unwrap();
    // The throttle is spent: no records, yet the follower's position (and log start) count.
    let fetched = p
        .fetch_for_follower(1, 5, 0, 0, 0, 0, true, usize::MAX)
        .unwrap();
    assert!(fetched.records.is_empty());
    assert_eq!(p.high_watermark(), 5, "the ISR advanced the high watermark");
    let fetched = p
        .fetch_for_follower(1, 0, 0, -1, 0, 1 << 20, true, usize::MAX)
        .unwrap();
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
    p.fetch_for_follower(1, 5, 3, 0, 0, 1 << 20, true, usize::MAX)
        .unwrap();
    let low = rt.block_on(p.wait_for_low_watermark(3, |_| true, Duration::from_millis(50)));
    assert_eq!(low.unwrap(), 3);
    assert!(matches!(
        p.delete_records_before(6),
        Err(PartitionError::Log(LogError::OffsetOutOfRange { .. }))
    ));
}

/// `count` records of transactional producer `producer_id`, sequences from `sequence`.
fn txn_batch(producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let record = kafka_protocol::records::Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_000,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    crate::log::test_util::encode_records(&[record], kafka_protocol::records::Compression::None)
}

fn commit(producer_id: i64, epoch: i16) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch: epoch,
        coordinator_epoch: 0,
        kind: crate::log::ControlRecordType::Commit,
    }
}

#[test]
fn a_transaction_opens_only_under_a_guard_and_a_marker_voids_the_guard() {
    let dir = tempfile::tempdir().unwrap();
    let partition = leader(dir.path());
    let first = txn_batch(7, 0, 0);
    assert!(matches!(
        partition.append_verified(&first, None, &[]),
        Err(PartitionError::UnverifiedTransaction { producer_id: 7, .. })
    ));
    let guards = partition.start_verification(&first);
    assert_eq!(guards.len(), 1);
    assert_eq!(
        partition.start_verification(&first),
        guards,
        "concurrent requests share the guard"
    );
    partition.append_verified(&first, None, &guards).unwrap();
    // The transaction is open here now: the next batch needs no guard.
    let second = txn_batch(7, 0, 1);
    assert!(partition.start_verification(&second).is_empty());
    partition.append_verified(&second, None, &[]).unwrap();

    // Once the marker closed it, a late batch of the transaction needs a verification again.
    partition.append_txn_marker(&commit(7, 0)).unwrap();
    let late = txn_batch(7, 0, 2);
    assert!(partition.append_verified(&late, None, &[]).is_err());
    assert_eq!(partition.start_verification(&late).len(), 1);

    // A guard taken before a marker is void after it: the coordinator's answer may be about
    // the transaction that marker ended, and the batch would open one nobody ends.
    let racing = txn_batch(9, 0, 0);
    let stale = partition.start_verification(&racing);
    partition.append_txn_marker(&commit(9, 0)).unwrap();
    let end = partition.log_end_offset();
    assert!(matches!(
        partition.append_verified(&racing, None, &stale),
        Err(PartitionError::UnverifiedTransaction { producer_id: 9, .. })
    ));
    assert_eq!(partition.log_end_offset(), end, "nothing appended");
    assert_eq!(
        PartitionError::UnverifiedTransaction {
            producer_id: 7,
            producer_epoch: 0
        }
        .code(),
        ResponseError::InvalidTxnState.code()
    );

    // A refused verification forgets its guard; non-transactional batches need none.
    let other = txn_batch(8, 3, 0);
    let refused = partition.start_verification(&other);
    partition.discard_verification(&refused[0]);
    assert!(partition.append_verified(&other, None, &refused).is_err());
    let plain = encode_test_batch(&TestBatch::new(1, 10));
    assert!(partition.start_verification(&plain).is_empty());
    partition.append_verified(&plain, None, &[]).unwrap();
}

#[test]
fn a_guard_names_its_epoch_and_a_role_change_voids_it() {
    let dir = tempfile::tempdir().unwrap();
    let partition = leader(dir.path());
    let old = partition.start_verification(&txn_batch(7, 0, 0));
    let new = partition.start_verification(&txn_batch(7, 1, 0));
    assert_ne!(old, new);
    assert!(partition
        .append_verified(&txn_batch(7, 0, 0), None, &old)
        .is_err());
    partition.make_follower(1, 1);
    partition.make_leader(0, 2, 2, &[0], &[0]).unwrap();
    assert!(partition
        .append_verified(&txn_batch(7, 1, 0), None, &new)
        .is_err());
}

/// An idempotent batch of `records` records of producer 7 at epoch 0 from `sequence`.
fn idempotent(sequence: i32, records: usize) -> Bytes {
    encode_test_batch(&TestBatch::new(records, 10).idempotent(7, 0, sequence))
}

#[test]
fn a_batch_pipelined_behind_a_refused_one_is_refused_alike_not_out_of_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    p.make_leader(0, 0, 0, &[0, 1], &[0]).unwrap();
    p.append_checked(&idempotent(0, 5), None).unwrap();
    // R1 (sequences 5..9) is refused: the ISR is below min.insync.replicas.
    let r1 = idempotent(5, 5);
    let r2 = idempotent(10, 5);
    assert!(matches!(
        p.append_checked(&r1, Some(2)),
        Err(PartitionError::NotEnoughReplicas { .. })
    ));
    // The ISR grows back before R2, sent right behind R1, arrives: R2 gets R1's retriable
    // error, not OUT_OF_ORDER_SEQUENCE_NUMBER, and nothing is appended.
    p.make_leader(0, 0, 1, &[0, 1], &[0, 1]).unwrap();
    let refused = p.append_checked(&r2, Some(2)).unwrap_err();
    assert_eq!(refused.kafka_error(), ResponseError::NotEnoughReplicas);
    assert_eq!(p.log_end_offset(), 5);
    // The client retries both in order: each lands once, in sequence.
    assert_eq!(p.append_checked(&r1, Some(2)).unwrap().first_offset, 5);
    assert_eq!(p.append_checked(&r2, Some(2)).unwrap().first_offset, 10);
    // A gap no refusal explains is still out of sequence, as in Kafka.
    let gap = p.append_checked(&idempotent(40, 1), Some(2)).unwrap_err();
    assert_eq!(gap.kafka_error(), ResponseError::OutOfOrderSequenceNumber);
}

/// An `acks=all` append is acknowledged only while its record is still in the log of the
/// leader that appended it: a wait that starts (or wakes) after the leadership moved, the
/// record was truncated and the offset refilled from the new leader must not see the refilled
/// high watermark as its own. A produce request waits for its partitions one after another, so
/// the wait for a later partition often starts long after its append.
#[tokio::test]
async fn a_replaced_record_is_not_acknowledged_by_the_high_watermark_that_passes_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    p.make_leader(0, 1, 1, &[0, 1], &[0, 1]).unwrap();
    let ours = p
        .append(&encode_test_batch(&TestBatch::new(5, 10)))
        .unwrap()
        .appended();
    assert_eq!((ours.last_offset, ours.leader_epoch), (4, 1));
    assert_eq!(p.high_watermark(), 0, "broker 1 has not fetched it");
    // Broker 1 becomes leader in epoch 2 without our batch; we truncate it away and take 7
    // records of its own, and its high watermark.
    p.make_follower(1, 2);
    p.truncate_diverged(2, 1, 0).unwrap();
    let theirs = Bytes::from(as_stored(&encode_test_batch(&TestBatch::new(7, 10)), 0, 2));
    p.append_from_leader(2, &theirs, 7, 0).unwrap();
    assert_eq!(p.high_watermark(), 7);
    let wait = Duration::from_millis(50);
    assert!(matches!(
        p.wait_for_high_watermark(ours, 1, wait).await,
        Err(PartitionError::NotLeader)
    ));
    // Leader again, in epoch 3: offset 4 now holds broker 1's record, replicated or not.
    p.make_leader(0, 3, 3, &[0, 1], &[0, 1]).unwrap();
    p.fetch_for_follower(1, 7, 0, 2, 3, 1 << 20, true, usize::MAX)
        .unwrap();
    assert_eq!(p.high_watermark(), 7);
    assert!(matches!(
        p.wait_for_high_watermark(ours, 1, wait).await,
        Err(PartitionError::NotLeader)
    ));
    // A record that survived a change of leader epoch is still acknowledged: appended in
    // epoch 3, replicated, then this broker leads again in epoch 4 without having followed.
    let kept = p
        .append(&encode_test_batch(&TestBatch::new(2, 10)))
        .unwrap()
        .appended();
    p.make_leader(0, 4, 4, &[0, 1], &[0, 1]).unwrap();
    p.fetch_for_follower(1, 9, 0, 3, 4, 1 << 20, true, usize::MAX)
        .unwrap();
    assert_eq!(p.high_watermark(), 9);
    p.wait_for_high_watermark(kept, 1, wait).await.unwrap();
}
