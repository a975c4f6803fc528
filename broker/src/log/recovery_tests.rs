use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::clock::SystemClock;
use crate::log::segment::segment_file;
use crate::log::test_util::{as_stored, encode_test_batch, read_all, small_config, TestBatch};
use crate::log::{EpochEntry, OffsetEntry, TimeEntry};

fn open(dir: &Path) -> Log {
    Log::open(dir, small_config(), Arc::new(SystemClock)).unwrap()
}

/// Appends one batch per entry of `sizes` (value bytes, 1..3 records); returns what the log
/// should store.
fn append_all(log: &mut Log, sizes: &[(usize, usize)]) -> Vec<u8> {
    let mut expected = Vec::new();
    for &(records, value_size) in sizes {
        let batch = encode_test_batch(&TestBatch::new(records, value_size));
        let info = log.append_as_leader(&batch, 1).unwrap();
        expected.extend(as_stored(&batch, info.first_offset, 1));
    }
    expected
}

#[test]
fn clean_reopen_skips_recovery_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let expected = append_all(&mut log, &[(2, 200); 12]);
    let (end, segments) = (log.log_end_offset(), log.num_segments());
    assert!(segments > 2);
    log.close().unwrap();
    assert!(matches!(
        log.append_as_leader(&encode_test_batch(&TestBatch::new(1, 1)), 0),
        Err(LogError::Closed { .. })
    ));
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    drop(log);

    let log = open(dir.path());
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "marker removed on open"
    );
    assert_eq!((log.log_end_offset(), log.num_segments()), (end, segments));
    assert_eq!(log.recovery_point(), end);
    assert_eq!(read_all(&log, 500), expected);
}

#[test]
fn crash_with_torn_tail_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let expected = append_all(&mut log, &[(1, 100); 5]);
    let active_base = log.segments().last().unwrap().base_offset();
    drop(log); // no close: a crash

    // A torn write: half a batch at the end of the active segment.
    let path = segment_file(dir.path(), active_base, "log");
    let half = encode_test_batch(&TestBatch::new(1, 100));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, &half[..half.len() / 2]).unwrap();

    let mut log = open(dir.path());
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(read_all(&log, 1 << 20), expected);
    let info = log
        .append_as_leader(&encode_test_batch(&TestBatch::new(1, 1)), 0)
        .unwrap();
    assert_eq!(info.first_offset, 5);
}

#[test]
fn a_crash_before_a_rolls_flush_ran_recovers_the_rolled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let expected = append_all(&mut log, &[(1, 300); 9]); // 2 batches per segment
    assert_eq!(log.num_segments(), 5);
    // The flushes the rolls queued never run: the machine dies first.
    drop(log.take_pending_flushes());
    drop(log);
    // A page of the second segment never reached the disk: its last batch is damaged in a
    // way only a full scan (CRC) finds.
    let second = segment_file(dir.path(), 2, "log");
    let mut data = std::fs::read(&second).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&second, data).unwrap();

    // The recovery point never moved past the rolled segments, so recovery scans them, finds
    // the damaged batch and drops everything after it.
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.num_segments(), 2);
    assert!(!segment_file(dir.path(), 4, "log").exists());
    let batch_len = expected.len() / 9;
    assert_eq!(read_all(&log, 1 << 20), expected[..3 * batch_len]);
}

/// The index entries of every segment, as lookups see them.
fn index_entries(log: &Log) -> Vec<(i64, Vec<OffsetEntry>, Vec<TimeEntry>)> {
    log.segments()
        .iter()
        .map(|s| {
            (
                s.base_offset(),
                s.offset_index().entries().to_vec(),
                s.time_index().entries().to_vec(),
            )
        })
        .collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn index_files_lag_until_flush_or_roll_and_a_crash_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // 2 batches of ~300 bytes per 1 KiB segment, an index entry after every 64 bytes.
    let mut expected = append_all(&mut log, &[(1, 300); 7]);
    let segments = log.num_segments();
    assert!(segments >= 3);
    let active = log.segments().last().unwrap();
    let active_index = active.offset_index().path().to_path_buf();
    let active_time_index = active.time_index().path().to_path_buf();
    // Rolled segments wrote their entries at the roll; the active one holds them in memory.
    for segment in &log.segments()[..segments - 1] {
        assert!(file_len(segment.offset_index().path()) > 0);
        assert!(file_len(segment.time_index().path()) > 0);
    }
    assert_eq!(log.segments().last().unwrap().offset_index().len(), 0);
    expected.extend(append_all(&mut log, &[(1, 20); 3]));
    let active = log.segments().last().unwrap();
    assert_eq!(active.offset_index().path(), active_index, "no roll");
    let entries = active.offset_index().len();
    assert!(entries > 0);
    assert_eq!(file_len(&active_index), 0, "appends write no index file");

    // A flush writes them (and the time index's).
    log.flush().unwrap();
    assert_eq!(file_len(&active_index), (entries * 8) as u64);
    assert!(file_len(&active_time_index) > 0);
    // More appends after the flush, then a crash: the files lag the entries.
    expected.extend(append_all(&mut log, &[(1, 20); 3]));
    let before_crash = index_entries(&log);
    let active = log.segments().last().unwrap();
    assert_eq!(active.offset_index().path(), active_index, "no roll");
    assert!(file_len(&active_index) < (active.offset_index().len() * 8) as u64);
    drop(log);

    let log = open(dir.path());
    assert_eq!(read_all(&log, 1 << 20), expected);
    assert_eq!(
        index_entries(&log),
        before_crash,
        "recovery rebuilt the same indexes"
    );
    let active = log.segments().last().unwrap();
    assert_eq!(
        file_len(active.offset_index().path()),
        (active.offset_index().len() * 8) as u64,
        "and wrote them"
    );
}

#[test]
fn a_clean_close_writes_index_entries_below_a_raised_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // Small batches in one segment: its index entries are only in memory.
    append_all(&mut log, &[(1, 20); 3]);
    let segments = log.num_segments();
    let active = log.segments().last().unwrap();
    let entries = active.offset_index().len();
    assert!(entries > 0);
    assert_eq!(file_len(active.offset_index().path()), 0);
    // DeleteRecords up to the log end raises the recovery point over the active segment.
    let log_end = log.log_end_offset();
    assert!(log.maybe_increment_log_start_offset(log_end).unwrap());
    assert_eq!(log.recovery_point(), log_end);
    let before = index_entries(&log);
    log.close().unwrap();
    drop(log);

    let log = open(dir.path());
    assert_eq!(log.num_segments(), segments);
    assert_eq!(
        index_entries(&log),
        before,
        "the clean close wrote every entry"
    );
}

#[test]
fn corruption_mid_log_drops_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let expected = append_all(&mut log, &[(1, 300); 9]); // 2 batches per segment
    assert_eq!(log.num_segments(), 5);
    drop(log);
    // Recovery point 0 (no file): every segment gets scanned.
    let _ = std::fs::remove_file(dir.path().join(RECOVERY_POINT_FILE));
    let second = segment_file(dir.path(), 2, "log");
    let mut data = std::fs::read(&second).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff; // last byte of offset 3's batch
    std::fs::write(&second, data).unwrap();

    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.num_segments(), 2);
    assert!(!segment_file(dir.path(), 4, "log").exists());
    let batch_len = expected.len() / 9;
    assert_eq!(read_all(&log, 1 << 20), expected[..3 * batch_len]);
}

#[test]
fn stray_and_orphan_files_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    for name in [
        "00000000000000000000.log.deleted",
        "x.cleaned",
        "recovery-point.tmp",
        "00000000000000000099.index",
    ] {
        std::fs::write(dir.path().join(name), b"junk").unwrap();
    }
    let log = open(dir.path());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "00000000000000000000.index",
            "00000000000000000000.log",
            "00000000000000000000.timeindex",
        ]
    );
    // An empty log whose checkpoints would all say 0 writes none of them (a missing one reads
    // as 0): creating many partitions does not pay their fsyncs.
    assert_eq!(log.log_end_offset(), 0);
}

fn idempotent(pid: i64, seq: i32) -> Bytes {
    encode_test_batch(&TestBatch::new(2, 300).idempotent(pid, 0, seq))
}

#[test]
fn producer_state_survives_clean_and_unclean_restarts() {
    for clean in [true, false] {
        for with_snapshots in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = open(dir.path());
            for seq in [0, 2, 4, 6, 8] {
                log.append_as_leader(&idempotent(21, seq), 0).unwrap();
            }
            assert!(log.num_segments() > 2, "rolls wrote snapshots");
            if clean {
                log.close().unwrap();
            }
            drop(log);
            if !with_snapshots {
                for (_, path) in crate::log::producer_state::list_snapshots(dir.path()).unwrap() {
                    std::fs::remove_file(path).unwrap();
                }
            }
            let mut log = open(dir.path());
            let case = format!("clean={clean} snapshots={with_snapshots}");
            let retry = log.append_as_leader(&idempotent(21, 6), 0).unwrap();
            assert!(retry.duplicate, "{case}");
            assert_eq!((retry.first_offset, retry.last_offset), (6, 7), "{case}");
            let err = log.append_as_leader(&idempotent(21, 12), 0).unwrap_err();
            assert!(
                matches!(
                    err,
                    LogError::OutOfOrderSequence {
                        last_sequence: 9,
                        ..
                    }
                ),
                "{case}: {err}"
            );
            assert_eq!(
                log.append_as_leader(&idempotent(21, 10), 0)
                    .unwrap()
                    .first_offset,
                10,
                "{case}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn append_reopen_read_back_is_identical(
        sizes in proptest::collection::vec((1usize..4, 0usize..400), 1..30),
        clean in any::<bool>(),
        fetch_size in 100usize..3000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        let expected = append_all(&mut log, &sizes);
        let records: usize = sizes.iter().map(|s| s.0).sum();
        prop_assert_eq!(log.log_end_offset(), records as i64);
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let log = open(dir.path());
        prop_assert_eq!(log.log_end_offset(), records as i64);
        prop_assert_eq!(read_all(&log, fetch_size), expected);
        // Offsets are continuous across batches and segments.
        let mut next = 0;
        let all = log.read(0, usize::MAX, i64::MAX, true).unwrap().records;
        prop_assert!(all.len() <= log.segments()[0].size() as usize);
        for segment in log.segments() {
            prop_assert_eq!(segment.base_offset(), next);
            next = segment.next_offset();
        }
    }
}

/// A new partition's log costs no fsync to create: its directory's entries, the epoch its
/// leader starts and the producer snapshot of a roll are written and left for the flush that
/// moves the recovery point past them, which fsyncs them before it writes the checkpoint.
/// Reopened after a crash (the page cache kept), nothing is missing.
#[test]
fn a_new_log_leaves_its_fsyncs_to_the_flush_that_covers_them() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("t-0");
    let mut log = open(&dir);
    assert!(log.recovery_point.has_unsynced(), "the new directory");
    assert!(
        !dir.join(RECOVERY_POINT_FILE).exists(),
        "nothing checkpointed yet"
    );
    log.flush().unwrap();
    assert!(!log.recovery_point.has_unsynced());

    // A new epoch: the checkpoint is written at once, fsynced with the next flush.
    log.maybe_assign_epoch_start_offset(1, 0).unwrap();
    assert!(log.recovery_point.has_unsynced());
    assert_eq!(
        LeaderEpochFileCache::load(&dir)
            .unwrap()
            .unwrap()
            .latest_epoch(),
        Some(1)
    );
    let expected = append_all(&mut log, &[(2, 200); 12]);
    assert!(log.num_segments() > 2, "rolled");
    // Each roll queued a flush; the first one run fsyncs the deferred files, snapshots too.
    let flushes = log.take_pending_flushes();
    assert!(!flushes.is_empty());
    for flush in flushes {
        flush.run().unwrap();
    }
    assert!(!log.recovery_point.has_unsynced());
    let end = log.log_end_offset();
    drop(log); // a crash

    let log = open(&dir);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        log.leader_epoch_cache().entries(),
        &[EpochEntry {
            epoch: 1,
            start_offset: 0
        }]
    );
    assert_eq!(read_all(&log, 500), expected);
}

/// The checkpoint of the recovery point is never written while a deferred file is unsynced,
/// also by a flush done in place (no roll queued one).
#[test]
fn a_flush_in_place_fsyncs_the_deferred_files_first() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("t-1");
    let mut log = open(&dir);
    append_all(&mut log, &[(1, 10)]);
    log.write_file_unsynced("partition.metadata", b"version: 0\n")
        .unwrap();
    assert!(log.recovery_point.has_unsynced());
    log.flush().unwrap();
    assert!(!log.recovery_point.has_unsynced());
    assert_eq!(
        read_offset_checkpoint(&dir.join(RECOVERY_POINT_FILE)).unwrap(),
        Some(1)
    );
    assert_eq!(
        std::fs::read(dir.join("partition.metadata")).unwrap(),
        b"version: 0\n"
    );
}

/// The periodic checkpoint's flush is queued: the log's lock is held only to write index
/// entries; appends go on meanwhile, and the recovery point moves to where the log ended when
/// the flush was queued once the queued fsyncs complete, with the index files complete.
#[test]
fn a_queued_flush_moves_the_recovery_point_when_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let mut expected = append_all(&mut log, &[(2, 100); 3]);
    // Rolls of the small test segments queued flushes of their own: out of the way first.
    for flush in log.take_pending_flushes() {
        flush.run().unwrap();
    }
    let before = log.recovery_point();
    let queued_at = log.log_end_offset();
    assert!(before < queued_at);
    log.queue_flush().unwrap();
    assert_eq!(log.recovery_point(), before, "nothing fsynced yet");
    assert_eq!(
        log.active().unwritten_index_entries(),
        0,
        "index entries written"
    );
    let flushes = log.take_pending_flushes();
    assert_eq!(flushes.len(), 1);
    assert_eq!(flushes[0].upto(), queued_at);
    // Appends go on before the queued flush runs.
    expected.extend(append_all(&mut log, &[(1, 50); 2]));
    for flush in flushes {
        assert!(flush.run().unwrap());
    }
    assert_eq!(log.recovery_point(), queued_at);
    assert_eq!(
        read_offset_checkpoint(&dir.path().join(RECOVERY_POINT_FILE)).unwrap(),
        Some(queued_at)
    );
    // Nothing new since: nothing queued.
    drop(log.take_pending_flushes());
    log.flush().unwrap();
    log.queue_flush().unwrap();
    assert!(log.take_pending_flushes().is_empty());
    let end = log.log_end_offset();
    drop(log); // a crash: recovery from the recovery point finds everything
    let log = open(dir.path());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log, 1 << 20), expected);
}
