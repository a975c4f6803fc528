use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::clock::SystemClock;
use crate::log::test_util::{
    as_stored, concat, encode_test_batch, fetch_from, read_all, small_config, truncate_to_leader,
    TestBatch,
};
use crate::log::unified_log::{CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE};
use crate::log::{LogConfig, LEADER_EPOCH_CHECKPOINT_FILE};

fn open(dir: &Path) -> Log {
    Log::open(dir, small_config(), Arc::new(SystemClock)).unwrap()
}

fn epochs(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epoch_cache()
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// A batch of `records` records whose values are `value_size` bytes.
fn batch(records: usize, value_size: usize) -> Bytes {
    encode_test_batch(&TestBatch::new(records, value_size))
}

/// Appends one batch per `(records, value_size, leader epoch)`.
fn append_in_epochs(log: &mut Log, batches: &[(usize, usize, i32)]) {
    for &(records, value_size, epoch) in batches {
        log.append_as_leader(&batch(records, value_size), epoch)
            .unwrap();
    }
}

#[test]
fn leader_appends_record_each_new_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!(log.latest_epoch(), None);
    append_in_epochs(
        &mut log,
        &[(2, 10, 0), (1, 10, 0), (3, 10, 2), (1, 10, 2), (1, 10, 5)],
    );
    assert_eq!(epochs(&log), vec![(0, 0), (2, 3), (5, 7)]);
    assert_eq!(log.latest_epoch(), Some(5));
    assert_eq!(log.end_offset_for_epoch(0), (0, 3));
    assert_eq!(log.end_offset_for_epoch(1), (0, 3));
    assert_eq!(log.end_offset_for_epoch(2), (2, 7));
    assert_eq!(log.end_offset_for_epoch(5), (5, 8));
    assert_eq!(
        log.end_offset_for_epoch(6),
        (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap(),
        "0\n3\n0 0\n2 3\n5 7\n"
    );
}

#[test]
fn follower_appends_keep_the_leaders_bytes_epochs_and_producer_state() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path());
    let mut follower = open(follower_dir.path());
    for (i, epoch) in [0, 0, 1, 1, 1, 4].into_iter().enumerate() {
        let idempotent = encode_test_batch(&TestBatch::new(2, 150).idempotent(9, 0, 2 * i as i32));
        leader.append_as_leader(&idempotent, epoch).unwrap();
        leader.append_as_leader(&batch(1, 200), epoch).unwrap();
    }
    assert!(leader.num_segments() > 2, "small segments roll");

    assert!(fetch_from(&leader, &mut follower, 700, 100));
    assert_eq!(read_all(&follower, 1 << 20), read_all(&leader, 1 << 20));
    assert_eq!(epochs(&follower), epochs(&leader));
    assert_eq!(epochs(&follower), vec![(0, 0), (1, 6), (4, 15)]);
    assert_eq!(
        follower.producer_state().producer(9),
        leader.producer_state().producer(9)
    );
    assert!(follower.num_segments() > 2, "the follower rolls too");
    // Its index finds offsets inside any segment.
    for offset in [0, 4, 7, 13, 17] {
        let mine = follower.read(offset, 1, i64::MAX, true).unwrap().records;
        let theirs = leader.read(offset, 1, i64::MAX, true).unwrap().records;
        assert_eq!(mine, theirs, "offset {offset}");
    }
}

#[test]
fn follower_append_results_describe_what_was_written() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path());
    let mut follower = open(follower_dir.path());
    append_in_epochs(&mut leader, &[(3, 10, 2), (2, 10, 2)]);
    let fetched = leader.read(0, 1 << 20, i64::MAX, true).unwrap().records;
    let info = follower.append_as_follower(&fetched).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(info.records_count, 5);
    assert_eq!(info.valid_bytes, fetched.len() as u64);
    assert_eq!(
        (info.max_timestamp, info.offset_of_max_timestamp),
        (1_002, 2)
    );
    assert_eq!(info.log_append_time, -1);

    let empty = follower.append_as_follower(&Bytes::new()).unwrap();
    assert_eq!((empty.records_count, empty.valid_bytes), (0, 0));
    assert_eq!(follower.log_end_offset(), 5);
}

#[test]
fn follower_appends_across_a_compacted_leaders_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path());
    follower
        .append_as_follower(&Bytes::from(as_stored(&batch(2, 10), 0, 1)))
        .unwrap();
    // The leader's cleaner removed offsets 2..5: the next batch it serves starts at 5.
    let after_gap = concat(&[
        Bytes::from(as_stored(&batch(1, 10), 5, 1)),
        Bytes::from(as_stored(&batch(1, 10), 9, 1)),
    ]);
    follower.append_as_follower(&after_gap).unwrap();
    assert_eq!(follower.log_end_offset(), 10);
    let read = follower.read(2, 1 << 20, i64::MAX, true).unwrap();
    let first = crate::log::batch::RecordBatchHeader::parse(&read.records, 0).unwrap();
    assert_eq!(first.base_offset(), 5);
}

#[test]
fn follower_appends_that_do_not_continue_the_log_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open(dir.path());
    let first = Bytes::from(as_stored(&batch(2, 10), 0, 1));
    follower.append_as_follower(&first).unwrap();
    let size = follower.size_in_bytes();

    let cases = [
        ("an overlap", first.clone(), 0, 2),
        (
            "a step back after a good batch",
            concat(&[
                Bytes::from(as_stored(&batch(1, 10), 2, 1)),
                Bytes::from(as_stored(&batch(1, 10), 2, 1)),
            ]),
            2,
            3,
        ),
    ];
    for (what, records, base_offset, expected) in cases {
        let err = follower.append_as_follower(&records).unwrap_err();
        assert!(
            matches!(err, LogError::UnexpectedAppendOffset { base_offset: b, expected: e, .. } if b == base_offset && e == expected),
            "{what}: {err}"
        );
    }

    let mut corrupt = as_stored(&batch(1, 10), 2, 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    let err = follower
        .append_as_follower(&Bytes::from(corrupt))
        .unwrap_err();
    assert!(matches!(err, LogError::CorruptRecord { .. }), "{err}");

    let whole = as_stored(&batch(1, 10), 2, 1);
    let torn = Bytes::from(whole[..whole.len() - 3].to_vec());
    let err = follower.append_as_follower(&torn).unwrap_err();
    assert!(matches!(err, LogError::TruncatedBatch { .. }), "{err}");

    assert_eq!(
        (follower.log_end_offset(), follower.size_in_bytes()),
        (2, size)
    );
    assert_eq!(epochs(&follower), vec![(1, 0)]);
}

#[test]
fn follower_appends_ignore_max_message_bytes_and_accept_control_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 100,
        ..small_config()
    };
    let mut follower = Log::open(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let big = Bytes::from(as_stored(&batch(1, 500), 0, 0));
    follower.append_as_follower(&big).unwrap();
    let control = encode_test_batch(&TestBatch {
        control: true,
        ..TestBatch::new(1, 0).idempotent(4, 0, 0)
    });
    follower
        .append_as_follower(&Bytes::from(as_stored(&control, 1, 0)))
        .unwrap();
    assert_eq!(follower.log_end_offset(), 2);
}

/// KIP-101's example: a follower that copied only part of the old leader's last epoch, and an
/// old leader that wrote records nobody copied, both end up with the new leader's log.
#[test]
fn a_follower_truncates_to_where_it_diverged_then_appends_without_forking() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut a = open(dirs[0].path());
    let mut b = open(dirs[1].path());
    // A leads epoch 0 and writes 3 batches; B copies the first two.
    append_in_epochs(&mut a, &[(1, 100, 0), (1, 101, 0)]);
    assert!(fetch_from(&a, &mut b, 1 << 20, 10));
    append_in_epochs(&mut a, &[(1, 102, 0)]);
    // A dies; B leads epoch 1 and writes different records at offset 2 onwards.
    b.maybe_assign_epoch_start_offset(1, b.log_end_offset())
        .unwrap();
    append_in_epochs(&mut b, &[(2, 103, 1), (1, 104, 1)]);

    // A returns as a follower: epoch 0 ends at 2 on B, so A drops its offset 2.
    assert_eq!(b.end_offset_for_epoch(0), (0, 2));
    assert_eq!(truncate_to_leader(&b, &mut a), 1);
    assert_eq!(a.log_end_offset(), 2);
    assert_eq!(epochs(&a), vec![(0, 0)]);
    assert!(fetch_from(&b, &mut a, 1 << 20, 10));
    assert_eq!(read_all(&a, 1 << 20), read_all(&b, 1 << 20));
    assert_eq!(epochs(&a), vec![(0, 0), (1, 2)]);

    // Truncating again changes nothing; appending again keeps the logs equal.
    assert_eq!(truncate_to_leader(&b, &mut a), 1);
    append_in_epochs(&mut b, &[(3, 50, 1)]);
    assert!(fetch_from(&b, &mut a, 1 << 20, 10));
    assert_eq!(read_all(&a, 1 << 20), read_all(&b, 1 << 20));
}

/// KIP-279: the leader answers with an epoch the follower never saw, so the follower needs a
/// second round to find where the logs agree.
#[test]
fn truncation_takes_several_rounds_when_the_leader_answers_an_unknown_epoch() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut leader = open(dirs[0].path());
    let mut follower = open(dirs[1].path());
    // Both have epoch 0's offsets 0..2; the leader then wrote epoch 2 at 2 and epoch 4 at 4;
    // the follower wrote epoch 0's offsets 2..4 and epoch 3 from 4 (as an old leader).
    append_in_epochs(&mut leader, &[(2, 10, 0)]);
    assert!(fetch_from(&leader, &mut follower, 1 << 20, 10));
    append_in_epochs(&mut leader, &[(2, 20, 2), (2, 20, 4)]);
    append_in_epochs(&mut follower, &[(2, 30, 0), (2, 30, 3)]);

    // Round 1: the leader says epoch 2 ends at 4; the follower does not know epoch 2 and cuts
    // at the end of its epoch 0 (4), not complete. Round 2: epoch 0 ends at 2 on the leader.
    assert_eq!(leader.end_offset_for_epoch(3), (2, 4));
    assert_eq!(
        follower.offset_truncation_state(2, 4),
        OffsetTruncationState {
            offset: 4,
            truncation_completed: false
        }
    );
    assert_eq!(truncate_to_leader(&leader, &mut follower), 2);
    assert_eq!(follower.log_end_offset(), 2);
    assert!(fetch_from(&leader, &mut follower, 1 << 20, 10));
    assert_eq!(read_all(&follower, 1 << 20), read_all(&leader, 1 << 20));
    assert_eq!(epochs(&follower), epochs(&leader));
}

#[test]
fn offset_truncation_state_follows_kafkas_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_in_epochs(&mut log, &[(2, 10, 1), (2, 10, 3), (2, 10, 5)]);
    log.update_high_watermark(3);
    let state = |log: &Log, epoch, offset| {
        let s = log.offset_truncation_state(epoch, offset);
        (s.offset, s.truncation_completed)
    };
    assert_eq!(
        state(&log, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
        (3, true),
        "to the HW"
    );
    assert_eq!(
        state(&log, 5, UNDEFINED_EPOCH_OFFSET),
        (3, true),
        "to the HW"
    );
    assert_eq!(state(&log, UNDEFINED_EPOCH, 4), (4, true), "leader offset");
    assert_eq!(
        state(&log, UNDEFINED_EPOCH, 40),
        (6, true),
        "capped at the log end"
    );
    assert_eq!(
        state(&log, 5, 5),
        (5, true),
        "same latest epoch, leader shorter"
    );
    assert_eq!(
        state(&log, 5, 9),
        (6, true),
        "same latest epoch, leader longer"
    );
    assert_eq!(
        state(&log, 3, 3),
        (3, true),
        "epoch 3 ends at 3 there, 4 here"
    );
    assert_eq!(
        state(&log, 3, 5),
        (4, true),
        "epoch 3 ends at 5 there, 4 here"
    );
    assert_eq!(
        state(&log, 4, 5),
        (4, false),
        "unknown epoch 4: end of epoch 3"
    );
    assert_eq!(
        state(&log, 0, 1),
        (0, true),
        "older than all known: ends where they start"
    );
    assert_eq!(
        state(&log, 7, 9),
        (6, true),
        "newer than all known: leader offset"
    );
}

#[test]
fn a_new_leaders_epoch_is_answered_before_it_appends_and_dropped_when_it_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_in_epochs(&mut log, &[(3, 10, 1)]);
    assert!(matches!(
        log.maybe_assign_epoch_start_offset(4, 4),
        Err(LogError::InvalidEpochEntry { .. })
    ));
    log.maybe_assign_epoch_start_offset(4, 3).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(1), (1, 3));
    assert_eq!(log.end_offset_for_epoch(4), (4, 3));
    // Deposed before any append: following someone else drops the unused epoch.
    assert!(!log.truncate_to(3).unwrap());
    assert_eq!(epochs(&log), vec![(1, 0)]);
    assert_eq!(
        LeaderEpochFileCache::load(dir.path())
            .unwrap()
            .unwrap()
            .entries()
            .len(),
        1
    );
}

#[test]
fn truncation_trims_epochs_at_the_new_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_in_epochs(&mut log, &[(2, 10, 0), (3, 10, 1), (2, 10, 2), (2, 10, 3)]);
    assert_eq!(epochs(&log), vec![(0, 0), (1, 2), (2, 5), (3, 7)]);
    // Offset 6 lies inside the epoch-2 batch 5..6: the whole batch goes, and so does epoch 2.
    assert!(log.truncate_to(6).unwrap());
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(epochs(&log), vec![(0, 0), (1, 2)]);
    log.truncate_fully_and_start_at(20).unwrap();
    assert_eq!(epochs(&log), vec![]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap(),
        "0\n0\n"
    );
}

#[test]
fn high_watermark_stays_within_the_log_and_moves_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    assert_eq!(log.high_watermark(), 0);
    append_in_epochs(&mut log, &[(1, 300, 0); 6]);
    assert_eq!(log.high_watermark(), 0, "appends do not move it");
    assert_eq!(log.update_high_watermark(4), 4);
    assert_eq!(log.update_high_watermark(60), 6, "capped at the log end");
    assert_eq!(
        log.update_high_watermark(2),
        2,
        "a follower may move it back"
    );
    assert_eq!(log.maybe_increment_high_watermark(1), None);
    assert_eq!(log.maybe_increment_high_watermark(5), Some(2));
    assert_eq!(log.maybe_increment_high_watermark(99), Some(5));
    assert_eq!(log.high_watermark(), 6);

    assert!(log.truncate_to(3).unwrap());
    assert_eq!(log.high_watermark(), 3, "down with the log end");
    append_in_epochs(&mut log, &[(1, 300, 0); 3]);
    log.update_high_watermark(2);
    assert!(log.maybe_increment_log_start_offset(4).unwrap());
    assert_eq!(log.high_watermark(), 4, "up with the log start");
    assert_eq!(log.update_high_watermark(1), 4, "never below the log start");
    log.truncate_fully_and_start_at(50).unwrap();
    assert_eq!(log.high_watermark(), 50);
}

#[test]
fn high_watermark_is_checkpointed_by_flush_and_reloaded_within_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(HIGH_WATERMARK_FILE);
    let mut log = open(dir.path());
    append_in_epochs(&mut log, &[(2, 100, 0); 4]);
    log.update_high_watermark(6);
    assert!(!path.exists(), "appends and updates do not write it");
    log.flush().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n6\n");
    log.update_high_watermark(7);
    log.close().unwrap();
    drop(log);
    assert_eq!(open(dir.path()).high_watermark(), 7);

    // A checkpoint above what survived recovery comes down to the log end.
    std::fs::write(&path, "0\n1000\n").unwrap();
    let log = open(dir.path());
    assert_eq!(log.high_watermark(), log.log_end_offset());
    drop(log);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        open(dir.path()).high_watermark(),
        0,
        "missing: the log start"
    );
}

#[test]
fn a_missing_or_corrupt_epoch_file_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    let mut log = open(dir.path());
    append_in_epochs(
        &mut log,
        &[
            (1, 300, 0),
            (1, 300, 0),
            (1, 300, 3),
            (1, 300, 3),
            (1, 300, 7),
        ],
    );
    assert!(log.num_segments() > 2);
    let expected = epochs(&log);
    log.close().unwrap();
    drop(log);

    for damage in ["delete", "garbage", "unordered"] {
        match damage {
            "delete" => std::fs::remove_file(&path).unwrap(),
            "garbage" => std::fs::write(&path, "0\n2\n0 0\n").unwrap(),
            _ => std::fs::write(&path, "0\n2\n7 0\n3 4\n").unwrap(),
        }
        let log = open(dir.path());
        assert_eq!(epochs(&log), expected, "{damage}");
        assert_eq!(
            epochs(&log),
            LeaderEpochFileCache::load(dir.path())
                .unwrap()
                .unwrap()
                .entries()
                .iter()
                .map(|e| (e.epoch, e.start_offset))
                .collect::<Vec<_>>(),
            "{damage}: rewritten"
        );
    }
}

#[test]
fn rebuilt_epochs_start_no_lower_than_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_in_epochs(
        &mut log,
        &[(2, 300, 1), (2, 300, 1), (2, 300, 2), (2, 300, 2)],
    );
    log.maybe_increment_log_start_offset(3).unwrap();
    assert_eq!(epochs(&log), vec![(1, 3), (2, 4)]);
    drop(log);
    std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    assert_eq!(epochs(&open(dir.path())), vec![(1, 3), (2, 4)]);
}

#[test]
fn recovery_drops_epochs_past_a_torn_tail_and_adds_ones_the_file_missed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    append_in_epochs(
        &mut log,
        &[(1, 100, 0), (1, 100, 0), (1, 100, 2), (1, 100, 5)],
    );
    let active = log.segments().last().unwrap().log_path().to_path_buf();
    let torn_len = std::fs::metadata(&active).unwrap().len() - 10;
    drop(log); // a crash

    // The last batch (epoch 5's only one) is torn; the file also lost epoch 2 (as if written
    // by an older run), which the batches past the recovery point still show.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    file.set_len(torn_len).unwrap();
    std::fs::write(
        dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE),
        "0\n2\n0 0\n5 3\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(RECOVERY_POINT_FILE), "0\n0\n").unwrap();
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 2)]);
}
