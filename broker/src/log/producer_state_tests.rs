use super::*;
use crate::log::test_util::{encode_test_batch, TestBatch};
use bytes::Bytes;

/// A batch of `records` records from producer `pid`, at `offset`.
fn batch(pid: i64, epoch: i16, seq: i32, records: usize, offset: i64) -> Bytes {
    encode_test_batch(&TestBatch {
        base_offset: offset,
        ..TestBatch::new(records, 5).idempotent(pid, epoch, seq)
    })
}

fn header(bytes: &Bytes) -> RecordBatchHeader<'_> {
    RecordBatchHeader::parse(bytes, 0).unwrap()
}

fn check(state: &ProducerStateManager, bytes: &Bytes) -> Result<ProducerCheck, LogError> {
    state.check_batch(&header(bytes), None)
}

#[test]
fn in_sequence_batches_append_and_duplicates_return_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    let first = batch(7, 0, 0, 3, 0);
    assert_eq!(check(&state, &first).unwrap(), ProducerCheck::Append);
    state.update(&header(&first), None);
    let second = batch(7, 0, 3, 2, 3);
    assert_eq!(check(&state, &second).unwrap(), ProducerCheck::Append);
    state.update(&header(&second), None);
    assert_eq!(state.map_end_offset(), 5);

    // The same sequences again (a retry), whatever offset the client put in.
    match check(&state, &batch(7, 0, 0, 3, 0)).unwrap() {
        ProducerCheck::Duplicate(original) => {
            assert_eq!((original.first_offset, original.last_offset), (0, 2));
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
}

#[test]
fn gaps_and_new_epochs_need_the_right_sequence_and_unknown_producers_start_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    // As in Kafka: a producer the partition does not know (expired, or its segments deleted)
    // continues at whatever sequence it is at.
    assert_eq!(
        check(&state, &batch(1, 0, 5, 1, 0)).unwrap(),
        ProducerCheck::Append
    );

    state.update(&header(&batch(1, 0, 0, 2, 0)), None);
    let err = check(&state, &batch(1, 0, 3, 1, 2)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::OutOfOrderSequence {
                first_sequence: 3,
                last_sequence: 1,
                ..
            }
        ),
        "{err}"
    );

    let err = check(&state, &batch(1, 1, 2, 1, 2)).unwrap_err();
    assert!(
        matches!(err, LogError::OutOfOrderSequence { .. }),
        "new epoch must start at 0: {err}"
    );
    assert_eq!(
        check(&state, &batch(1, 1, 0, 1, 2)).unwrap(),
        ProducerCheck::Append
    );
    state.update(&header(&batch(1, 1, 0, 1, 2)), None);
    assert_eq!(state.producer(1).unwrap().epoch, 1);
    assert_eq!(
        state.producer(1).unwrap().batches().count(),
        1,
        "new epoch forgets old batches"
    );

    let err = check(&state, &batch(1, 0, 2, 1, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::InvalidProducerEpoch {
                epoch: 0,
                current_epoch: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn non_idempotent_batches_only_move_the_map_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    let plain = encode_test_batch(&TestBatch {
        base_offset: 4,
        ..TestBatch::new(2, 1)
    });
    state.update(&header(&plain), None);
    assert!(state.is_empty());
    assert_eq!(state.map_end_offset(), 6);
}

#[test]
fn sequences_wrap_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    state.update(&header(&batch(3, 0, 0, 1, 0)), None);
    // Pretend the producer has reached the top of the sequence space.
    let top = batch(3, 0, i32::MAX - 1, 3, 1);
    state
        .producers
        .get_mut(&3)
        .unwrap()
        .batches
        .back_mut()
        .unwrap()
        .last_seq = i32::MAX - 2;
    assert_eq!(check(&state, &top).unwrap(), ProducerCheck::Append);
    state.update(&header(&top), None);
    assert_eq!(
        state.producer(3).unwrap().last_seq(),
        Some(0),
        "MAX-1, MAX, then 0"
    );
    assert_eq!(
        check(&state, &batch(3, 0, 1, 1, 4)).unwrap(),
        ProducerCheck::Append
    );
}

#[test]
fn only_the_last_five_batches_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    for i in 0..6 {
        state.update(&header(&batch(9, 0, i, 1, i64::from(i))), None);
    }
    assert_eq!(
        state.producer(9).unwrap().batches().count(),
        NUM_BATCHES_TO_RETAIN
    );
    assert!(matches!(
        check(&state, &batch(9, 0, 1, 1, 0)).unwrap(),
        ProducerCheck::Duplicate(_)
    ));
    let err = check(&state, &batch(9, 0, 0, 1, 0)).unwrap_err();
    assert!(matches!(err, LogError::OutOfOrderSequence { .. }), "{err}");
}

#[test]
fn pending_batches_of_the_same_request_are_taken_into_account() {
    let dir = tempfile::tempdir().unwrap();
    let state = ProducerStateManager::new(dir.path(), 0);
    let second = batch(4, 0, 2, 1, 0);
    assert_eq!(
        state.check_batch(&header(&second), Some((0, 1))).unwrap(),
        ProducerCheck::Append
    );
    assert!(state.check_batch(&header(&second), Some((0, 5))).is_err());
}

#[test]
fn snapshots_round_trip_and_bad_ones_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    state.update(&header(&batch(1, 2, 0, 3, 0)), None);
    state.update(&header(&batch(2, 0, 0, 1, 3)), None);
    state.take_snapshot().unwrap();
    state.update(&header(&batch(1, 2, 3, 1, 4)), None);
    state.take_snapshot().unwrap();
    let snapshot_at_5 = snapshot_file(dir.path(), 5);
    assert!(snapshot_at_5.exists());

    let mut loaded = ProducerStateManager::new(dir.path(), 0);
    assert_eq!(loaded.load_latest_snapshot(100, 0).unwrap(), Some(5));
    assert_eq!(loaded.producers, state.producers);

    // A snapshot above the log end is deleted; the older one is used.
    let mut loaded = ProducerStateManager::new(dir.path(), 0);
    assert_eq!(loaded.load_latest_snapshot(4, 0).unwrap(), Some(4));
    assert!(!snapshot_at_5.exists());
    assert_eq!(loaded.producer(1).unwrap().last_seq(), Some(2));

    // A corrupt snapshot is deleted and state falls back to empty.
    let only = snapshot_file(dir.path(), 4);
    let mut bytes = std::fs::read(&only).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&only, bytes).unwrap();
    let mut loaded = ProducerStateManager::new(dir.path(), 0);
    assert_eq!(loaded.load_latest_snapshot(100, 2).unwrap(), None);
    assert!(loaded.is_empty());
    assert_eq!(loaded.map_end_offset(), 2);
    assert!(!only.exists());
}

#[test]
fn retain_latest_snapshots_deletes_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    for i in 0..4 {
        state.update(&header(&batch(1, 0, i, 1, i64::from(i))), None);
        state.take_snapshot().unwrap();
    }
    state.retain_latest_snapshots(2).unwrap();
    let offsets: Vec<i64> = list_snapshots(dir.path())
        .unwrap()
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, vec![3, 4]);
}

/// A batch of producer `pid` whose records are stamped from `timestamp`.
fn batch_at_time(pid: i64, seq: i32, offset: i64, timestamp: i64) -> Bytes {
    encode_test_batch(&TestBatch {
        base_offset: offset,
        timestamp,
        ..TestBatch::new(2, 5).idempotent(pid, 0, seq)
    })
}

#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = ProducerStateManager::new(dir.path(), 0);
    state.update(&header(&batch_at_time(1, 0, 0, 10_000)), None);
    state.update(&header(&batch_at_time(2, 0, 2, 50_000)), None);
    // Producer 3 is idle as long as producer 1 but has a transaction open.
    let open = crate::log::test_util::encode_records(
        &[kafka_protocol::records::Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 3,
            producer_epoch: 0,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: 4,
            sequence: 0,
            timestamp: 10_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        }],
        kafka_protocol::records::Compression::None,
    );
    state.update(&header(&open), None);
    assert_eq!(state.producer(1).unwrap().last_timestamp, 10_001);

    // Expiry is measured from the last batch's max timestamp, as in Kafka.
    assert_eq!(state.remove_expired(20_000, 10_000), 0);
    assert_eq!(state.remove_expired(20_001, 10_000), 1);
    assert!(state.producer(1).is_none());
    assert!(state.producer(2).is_some());
    assert!(
        state.producer(3).is_some(),
        "an open transaction keeps its producer"
    );

    // A forgotten producer comes back at the sequence it had reached.
    assert_eq!(
        check(&state, &batch_at_time(1, 2, 6, 30_000)).unwrap(),
        ProducerCheck::Append
    );

    // The last timestamp survives a snapshot.
    state.take_snapshot().unwrap();
    let mut loaded = ProducerStateManager::new(dir.path(), 0);
    loaded
        .load_latest_snapshot(state.map_end_offset(), 0)
        .unwrap();
    assert_eq!(loaded.producer(2).unwrap().last_timestamp, 50_001);
}

#[test]
fn version_2_snapshots_are_read_with_the_last_batch_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_be_bytes()); // producers
    body.extend_from_slice(&7i64.to_be_bytes()); // id
    body.extend_from_slice(&3i16.to_be_bytes()); // epoch
    body.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
    body.extend_from_slice(&(-1i64).to_be_bytes()); // no open transaction
    body.push(1); // batches
    for v in [0i32, 4] {
        body.extend_from_slice(&v.to_be_bytes()); // first and last seq
    }
    for v in [10i64, 14, 77_000] {
        body.extend_from_slice(&v.to_be_bytes()); // first and last offset, timestamp
    }
    let mut bytes = b"WPSS".to_vec();
    bytes.extend_from_slice(&2u16.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    std::fs::write(snapshot_file(dir.path(), 15), bytes).unwrap();

    let mut loaded = ProducerStateManager::new(dir.path(), 0);
    assert_eq!(loaded.load_latest_snapshot(15, 0).unwrap(), Some(15));
    let entry = loaded.producer(7).unwrap();
    assert_eq!((entry.epoch, entry.last_seq()), (3, Some(4)));
    assert_eq!(entry.last_timestamp, 77_000);
}
