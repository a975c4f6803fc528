//! Tests of the log cleaner against real logs in temporary directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
use parking_lot::RwLock;
use proptest::prelude::*;

use super::*;
use crate::clock::ManualClock;
use crate::log::batch::RecordBatchHeader;
use crate::log::test_util::{encode_records, manual_clock};
use crate::log::{CleanupPolicy, LogConfig};

const T0: i64 = 1_000_000;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 64,
        retention_ms: -1,
        cleanup_policy: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 60_000,
        ..LogConfig::default()
    }
}

/// One update: a key and a value (`None`: a tombstone).
type Update = (String, Option<String>);

/// One batch of `updates` with `codec`, from idempotent producer `producer` if given.
fn keyed_batch(
    updates: &[Update],
    codec: Compression,
    producer: Option<(i64, i16, i32)>,
    timestamp: i64,
) -> Bytes {
    let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = updates
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch when offset - sequence changes: a plain batch
            // gets base sequence -1 with the records' sequences following it.
            sequence: if sequence < 0 {
                i as i32 - 1
            } else {
                sequence + i as i32
            },
            timestamp: timestamp + i as i64,
            key: Some(Bytes::from(key.clone())),
            value: value.clone().map(Bytes::from),
            headers: IndexMap::new(),
        })
        .collect();
    encode_records(&records, codec)
}

fn open(dir: &Path, config: LogConfig, clock: Arc<dyn crate::clock::Clock>) -> RwLock<Log> {
    RwLock::new(Log::open(dir, config, clock).unwrap())
}

/// Appends as leader and moves the high watermark to the log end (a one-replica partition).
fn append(log: &RwLock<Log>, batch: &Bytes) -> LogAppendInfoLite {
    let mut log = log.write();
    let info = log.append_as_leader(batch, 0).unwrap();
    let end = log.log_end_offset();
    log.update_high_watermark(end);
    LogAppendInfoLite {
        first: info.first_offset,
    }
}

struct LogAppendInfoLite {
    first: i64,
}

/// What the log returns from its start to its end, read after read.
fn all_reads(log: &Log) -> Vec<Bytes> {
    let mut reads = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        if read.records.is_empty() {
            break;
        }
        for item in crate::log::batch::RecordBatchIter::new(&read.records) {
            let (header, _) = item.unwrap();
            offset = offset.max(header.next_offset());
        }
        reads.push(read.records);
    }
    reads
}

/// Every record from the log start: (offset, key, value).
fn all_records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for mut bytes in all_reads(log) {
        while !bytes.is_empty() {
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            for r in set.records {
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                out.push((r.offset, key, value));
            }
        }
    }
    out.retain(|r| r.0 >= log.log_start_offset());
    out
}

fn clean(log: &RwLock<Log>) -> CleanerStats {
    Cleaner::new(CleanerConfig::default()).clean(log).unwrap()
}

fn roll(log: &RwLock<Log>) {
    log.write().roll().unwrap();
}

/// What must survive a pass: every record at or above `end`, and below it the latest record
/// of each key among the records below `end`.
fn expected_after_clean(
    written: &[(i64, String, Option<String>)],
    end: i64,
) -> Vec<(i64, String, Option<String>)> {
    let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, key, _) in written.iter().filter(|r| r.0 < end) {
        latest.insert(key, *offset);
    }
    written
        .iter()
        .filter(|(offset, key, _)| *offset >= end || latest.get(key.as_str()) == Some(offset))
        .cloned()
        .collect()
}

fn codec(i: u8) -> Compression {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ][i as usize % 5]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Offsets never change, the latest record per key below the active segment survives (with
    /// its value, tombstones too while within their horizon), everything above is untouched,
    /// whatever the codec; and a second pass changes nothing.
    #[test]
    fn latest_value_per_key_survives_at_its_offset(
        batches in prop::collection::vec(
            (prop::collection::vec((0u8..6, prop::option::weighted(0.85, 0u16..1000)), 1..6), 0u8..5),
            1..40,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (_clock, dyn_clock) = manual_clock(T0);
        let log = open(dir.path(), compact_config(), dyn_clock);
        let mut written = Vec::new();
        for (updates, c) in &batches {
            let updates: Vec<Update> = updates
                .iter()
                .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                .collect();
            let first = append(&log, &keyed_batch(&updates, codec(*c), None, T0)).first;
            for (i, (k, v)) in updates.into_iter().enumerate() {
                written.push((first + i as i64, k, v));
            }
        }
        let end = log.read().segments().last().unwrap().base_offset();
        let before_end = log.read().log_end_offset();
        let stats = clean(&log);
        prop_assert!(!stats.aborted);
        prop_assert_eq!(stats.cleaned_to, end);
        let after = all_records(&log.read());
        prop_assert_eq!(&after, &expected_after_clean(&written, end));
        prop_assert_eq!(log.read().log_end_offset(), before_end);

        // Codecs are kept: every stored batch has the codec of the batch it came from.
        let codec_of_offset: BTreeMap<i64, i16> = {
            let mut m = BTreeMap::new();
            let mut next = 0;
            for (updates, c) in &batches {
                m.insert(next, codec(*c) as i16);
                next += updates.len() as i64;
            }
            m
        };
        let log_read = log.read();
        let stored = crate::log::test_util::read_all(&log_read, 1 << 30);
        for item in crate::log::batch::RecordBatchIter::new(&stored) {
            let (header, _) = item.unwrap();
            if header.records_count() > 0 {
                prop_assert_eq!(Some(&(header.attributes() & 7)), codec_of_offset.get(&header.base_offset()));
            }
        }
        drop(log_read);

        let again = clean(&log);
        prop_assert_eq!(again.records_removed, 0);
        prop_assert_eq!(all_records(&log.read()), after);
    }
}

#[test]
fn tombstones_go_after_delete_retention_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock);
    let upd = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    append(
        &log,
        &keyed_batch(
            &[upd("a", Some("1")), upd("b", Some("1"))],
            Compression::None,
            None,
            T0,
        ),
    );
    append(
        &log,
        &keyed_batch(&[upd("a", None)], Compression::None, None, T0),
    );
    roll(&log);
    append(
        &log,
        &keyed_batch(&[upd("c", Some("1"))], Compression::None, None, T0),
    );

    let stats = clean(&log);
    assert_eq!(stats.earliest_delete_horizon, Some(T0 + 60_000));
    assert_eq!(
        all_records(&log.read()),
        vec![
            (1, "b".to_string(), Some("1".to_string())),
            (2, "a".to_string(), None),
            (3, "c".to_string(), Some("1".to_string())),
        ]
    );
    clock.advance(59_999);
    clean(&log);
    assert_eq!(
        all_records(&log.read()).len(),
        3,
        "within delete.retention.ms"
    );
    clock.advance(1);
    clean(&log);
    assert_eq!(
        all_records(&log.read()),
        vec![
            (1, "b".to_string(), Some("1".to_string())),
            (3, "c".to_string(), Some("1".to_string())),
        ]
    );
    // The removed offsets read as the next batch; the log end did not move.
    let read = log.read().read(0, 1 << 20, i64::MAX, true).unwrap();
    let first = RecordBatchHeader::parse(&read.records, 0).unwrap();
    assert_eq!(first.base_offset(), 0, "the batch keeps its base offset");
    assert_eq!(first.last_offset(), 1, "and its last offset delta");
    assert_eq!(log.read().log_end_offset(), 4);
}

#[test]
fn a_producers_last_batch_stays_empty_so_its_sequence_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock.clone());
    let upd = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
    // Producer 7: sequences 0..2 and 2..4, all on key "a"; a plain producer then overwrites "a".
    append(
        &log,
        &keyed_batch(
            &[upd("a", "1"), upd("a", "2")],
            Compression::Lz4,
            Some((7, 0, 0)),
            T0,
        ),
    );
    append(
        &log,
        &keyed_batch(
            &[upd("a", "3"), upd("a", "4")],
            Compression::Lz4,
            Some((7, 0, 2)),
            T0,
        ),
    );
    append(
        &log,
        &keyed_batch(&[upd("a", "5")], Compression::None, None, T0),
    );
    roll(&log);
    append(
        &log,
        &keyed_batch(&[upd("z", "1")], Compression::None, None, T0),
    );
    let before = log.read().producer_state().producer(7).unwrap().last_seq();
    assert_eq!(before, Some(3));

    clean(&log);
    let stored = crate::log::test_util::read_all(&log.read(), 1 << 20);
    let headers: Vec<(i64, i64, i32, i32, i64)> = crate::log::batch::RecordBatchIter::new(&stored)
        .map(|b| {
            let (h, _) = b.unwrap();
            (
                h.base_offset(),
                h.last_offset(),
                h.records_count(),
                h.base_sequence(),
                h.producer_id(),
            )
        })
        .collect();
    // The first batch of producer 7 is gone; its last one stays, empty, with its sequences.
    assert_eq!(
        headers,
        vec![(2, 3, 0, 2, 7), (4, 4, 1, -1, -1), (5, 5, 1, -1, -1)]
    );

    let closed_dir = dir.path().to_path_buf();
    log.write().close().unwrap();
    drop(log);
    // Reopened uncleanly too (no marker): producer state replays from the headers.
    let _ = std::fs::remove_file(closed_dir.join(crate::log::unified_log::CLEAN_SHUTDOWN_FILE));
    for snapshot in std::fs::read_dir(&closed_dir).unwrap() {
        let path = snapshot.unwrap().path();
        if path.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let reopened = Log::open(&closed_dir, compact_config(), dyn_clock).unwrap();
    assert_eq!(
        reopened.producer_state().producer(7).unwrap().last_seq(),
        Some(3)
    );
}

#[test]
fn cleaned_segments_are_grouped_so_their_count_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock);
    for i in 0..200 {
        let update = (format!("k{}", i % 3), Some(format!("value-{i:05}")));
        append(&log, &keyed_batch(&[update], Compression::None, None, T0));
    }
    let segments_before = log.read().num_segments();
    assert!(segments_before > 20, "{segments_before}");
    let first = clean(&log);
    // Grouping goes by the segments' sizes as they are: full segments are rewritten one by
    // one, and the next pass (as in Kafka) merges the now small ones.
    assert_eq!(first.segments_out, first.segments_in);
    let second = clean(&log);
    assert!(second.segments_out < second.segments_in, "{second:?}");
    assert_eq!(second.segments_out, 1);
    // Three keys are left below the active segment: one cleaned segment holds them.
    assert_eq!(log.read().num_segments(), 2);
    let active_base = log.read().segments()[1].base_offset();
    let cleaned: Vec<_> = all_records(&log.read())
        .into_iter()
        .filter(|r| r.0 < active_base)
        .collect();
    assert_eq!(cleaned.len(), 3, "{cleaned:?}");
}

#[test]
fn compact_alone_disables_retention_and_compact_delete_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (clock, dyn_clock) = manual_clock(T0);
    let config = LogConfig {
        retention_ms: 10,
        ..compact_config()
    };
    let log = open(dir.path(), config.clone(), dyn_clock);
    for i in 0..20 {
        append(
            &log,
            &keyed_batch(
                &[(format!("k{i}"), Some("x".repeat(100)))],
                Compression::None,
                None,
                T0,
            ),
        );
    }
    clock.advance(1_000);
    let segments = log.read().num_segments();
    assert_eq!(log.write().delete_old_segments().unwrap(), 0);
    assert_eq!(log.read().num_segments(), segments);
    log.write().update_config(LogConfig {
        cleanup_policy: CleanupPolicy::parse("compact,delete"),
        ..config
    });
    assert!(log.write().delete_old_segments().unwrap() > 0);
}

#[test]
fn keyless_records_are_refused_on_a_compacted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock);
    let keyless =
        crate::log::test_util::encode_test_batch(&crate::log::test_util::TestBatch::new(1, 10));
    // test_util batches carry keys; build one without.
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: T0,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: IndexMap::new(),
    };
    let keyless_batch = encode_records(&[record], Compression::Gzip);
    let err = log.write().append_as_leader(&keyless_batch, 0).unwrap_err();
    assert_eq!(err.kafka_code(), 87, "{err}");
    assert!(err
        .to_string()
        .contains("Compacted topic cannot accept message without key"));
    log.write().append_as_leader(&keyless, 0).unwrap();
}

/// Copies every regular file of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn reopen_records(
    dir: &Path,
    clock: Arc<dyn crate::clock::Clock>,
) -> Vec<(i64, String, Option<String>)> {
    let log = Log::open(dir, compact_config(), clock).unwrap();
    all_records(&log)
}

/// The two sides of the commit point: `.cleaned` files without a manifest are discarded and
/// the old segments stay; with the manifest the swap is completed at open, even when it had
/// already done part of its work.
#[test]
fn interrupted_swaps_recover_to_the_old_or_the_cleaned_log() {
    let root = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let original = root.path().join("original");
    {
        let log = open(&original, compact_config(), dyn_clock.clone());
        for i in 0..40 {
            let update = (format!("k{}", i % 4), Some(format!("v{i}")));
            append(&log, &keyed_batch(&[update], Compression::Snappy, None, T0));
        }
        log.write().close().unwrap();
    }
    let before = reopen_records(&original, dyn_clock.clone());
    let cleaned_dir = root.path().join("cleaned");
    copy_dir(&original, &cleaned_dir);
    let (group, after) = {
        let log = open(&cleaned_dir, compact_config(), dyn_clock.clone());
        let bases: Vec<i64> = log
            .read()
            .segments()
            .iter()
            .map(|s| s.base_offset())
            .collect();
        clean(&log);
        clean(&log);
        assert_eq!(log.read().num_segments(), 2);
        let records = all_records(&log.read());
        log.write().close().unwrap();
        (bases[..bases.len() - 1].to_vec(), records)
    };
    assert_ne!(before, after);
    let suffixes = ["log", "index", "timeindex"];
    let stage = |name: &str, manifest: bool, renamed: &[&str]| {
        let dir = root.path().join(name);
        copy_dir(&original, &dir);
        std::fs::remove_file(dir.join(crate::log::unified_log::CLEAN_SHUTDOWN_FILE)).ok();
        for suffix in suffixes {
            let from = cleaned_dir.join(format!("{:020}.{suffix}", group[0]));
            let to = if renamed.contains(&suffix) {
                dir.join(format!("{:020}.{suffix}", group[0]))
            } else {
                dir.join(format!("{:020}.{suffix}.cleaned", group[0]))
            };
            std::fs::copy(from, to).unwrap();
        }
        if manifest {
            let list: Vec<String> = group.iter().map(i64::to_string).collect();
            std::fs::write(dir.join(format!("{:020}.swap", group[0])), list.join("\n")).unwrap();
        }
        dir
    };
    assert_eq!(
        reopen_records(&stage("no-manifest", false, &[]), dyn_clock.clone()),
        before
    );
    assert_eq!(
        reopen_records(&stage("manifest", true, &[]), dyn_clock.clone()),
        after
    );
    assert_eq!(
        reopen_records(
            &stage("half-renamed", true, &["index", "timeindex"]),
            dyn_clock.clone()
        ),
        after
    );
    let dir = stage("log-renamed", true, &["index", "timeindex", "log"]);
    // Some old segments were already deleted when the crash came.
    std::fs::remove_file(dir.join(format!("{:020}.log", group[1]))).unwrap();
    assert_eq!(reopen_records(&dir, dyn_clock.clone()), after);
    assert!(!dir.join(format!("{:020}.swap", group[0])).exists());
}

#[test]
fn appends_and_truncation_during_a_pass_are_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock);
    for i in 0..30 {
        append(
            &log,
            &keyed_batch(
                &[(format!("k{}", i % 2), Some(format!("v{i}")))],
                Compression::None,
                None,
                T0,
            ),
        );
    }
    // A truncation below the cleaned range between snapshot and swap aborts the swap.
    let snapshot: Vec<pass::SegmentSnapshot> = log.read().segments()[..2]
        .iter()
        .map(pass::SegmentSnapshot::of_for_tests)
        .collect();
    let cut = snapshot[1].base_offset + 1;
    log.write().truncate_to(cut).unwrap();
    assert!(!log.write().replace_segments(&snapshot).unwrap());
}

#[test]
fn the_manager_picks_the_dirtiest_due_log() {
    let root = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_config()
    };
    let logs: Vec<RwLock<Log>> = (0..3)
        .map(|i| {
            open(
                &root.path().join(format!("t-{i}")),
                config.clone(),
                dyn_clock.clone(),
            )
        })
        .collect();
    for (i, log) in logs.iter().enumerate() {
        for j in 0..(10 * (i + 1)) {
            append(
                log,
                &keyed_batch(
                    &[("k".to_string(), Some(format!("v{j}")))],
                    Compression::None,
                    None,
                    T0,
                ),
            );
        }
    }
    let manager = LogCleanerManager::new();
    let (chosen, in_progress) = manager.grab_filthiest(&logs, |l| l).unwrap();
    let chosen_dir = chosen.read().dir().to_path_buf();
    // While one is in progress, another thread gets another log.
    let (other, other_progress) = manager.grab_filthiest(&logs, |l| l).unwrap();
    assert_ne!(other.read().dir(), chosen_dir);
    drop(other_progress);
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let stats = manager
        .clean(&mut cleaner, chosen, in_progress, || T0)
        .unwrap();
    assert!(stats.records_removed > 0);
    assert_eq!(manager.totals().passes, 1);
    // The cleaned log is no longer dirty enough.
    let after = chosen
        .read()
        .log_to_clean(read_cleaner_checkpoint(&chosen_dir).unwrap(), T0);
    assert!(after.dirty_ratio() <= 0.5, "{after:?}");
    let _unused: Option<Arc<ManualClock>> = None;
}

#[test]
fn list_offsets_by_timestamp_and_truncation_work_across_removed_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, dyn_clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), dyn_clock);
    // Offsets 0..30, record i at timestamp T0 + 10 * i, key i % 3, one record a batch.
    for i in 0..30i64 {
        let update = (format!("k{}", i % 3), Some(format!("v{i}")));
        append(
            &log,
            &keyed_batch(&[update], Compression::Zstd, None, T0 + 10 * i),
        );
    }
    roll(&log);
    clean(&log);
    let kept: Vec<i64> = all_records(&log.read()).iter().map(|r| r.0).collect();
    assert_eq!(kept, vec![27, 28, 29]);
    // A timestamp of a removed record finds the next retained one.
    let found = log.read().fetch_offset_for_timestamp(T0 + 55).unwrap();
    assert_eq!(found, Some((27, T0 + 270)));
    assert_eq!(log.read().log_start_offset(), 0);
    assert_eq!(log.read().log_end_offset(), 30);
    // Truncating inside the removed range keeps what lies below it and cuts the rest.
    log.write().truncate_to(28).unwrap();
    let kept: Vec<i64> = all_records(&log.read()).iter().map(|r| r.0).collect();
    assert_eq!(kept, vec![27]);
    assert_eq!(log.read().log_end_offset(), 28);
    // Below it only removed offsets are left: the log end lands at or below the target (the
    // end of what remains), and the log goes on from there.
    log.write().truncate_to(10).unwrap();
    assert!(all_records(&log.read()).is_empty());
    let end = log.read().log_end_offset();
    assert!(end <= 10, "{end}");
    let next = append(
        &log,
        &keyed_batch(
            &[("k9".to_string(), Some("x".to_string()))],
            Compression::None,
            None,
            T0,
        ),
    )
    .first;
    assert_eq!(next, end);
}

/// One transactional record of producer `producer_id` (epoch 0, sequence `sequence`).
fn txn_record(producer_id: i64, sequence: i32, key: &str, value: &str) -> Bytes {
    encode_records(
        &[Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence,
            timestamp: T0,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: IndexMap::new(),
        }],
        Compression::None,
    )
}

fn end_txn(log: &RwLock<Log>, producer_id: i64, kind: crate::log::ControlRecordType) {
    let mut log = log.write();
    let marker = crate::log::TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        kind,
    };
    log.append_marker_as_leader(&marker, 0).unwrap();
    let end = log.log_end_offset();
    log.update_high_watermark(end);
}

/// Kafka's cleaner rules for transactions: an aborted record is removed and never supersedes
/// a committed one, a committed transactional record compacts like any other, and nothing
/// from the first offset of an open transaction on is cleaned (it may still abort).
#[test]
fn aborted_records_go_without_superseding_and_open_transactions_are_not_cleaned() {
    use crate::log::ControlRecordType::{Abort, Commit};
    let dir = tempfile::tempdir().unwrap();
    let (_clock, clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), clock);
    let plain = |updates: &[(&str, &str)]| {
        let updates: Vec<Update> = updates
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        keyed_batch(&updates, Compression::None, None, T0)
    };
    append(&log, &plain(&[("k1", "v1"), ("k2", "v1")])); // 0, 1
    append(&log, &txn_record(5, 0, "k1", "aborted")); // 2
    end_txn(&log, 5, Abort); // 3
    append(&log, &txn_record(6, 0, "k2", "committed")); // 4
    end_txn(&log, 6, Commit); // 5
    append(&log, &txn_record(7, 0, "k1", "open")); // 6
    append(&log, &plain(&[("k3", "v1")])); // 7
    roll(&log);
    append(&log, &plain(&[("k4", "v1")])); // 8, in the active segment
    assert_eq!(log.read().last_stable_offset(), 6);

    clean(&log);
    let data: Vec<_> = all_records(&log.read())
        .into_iter()
        .filter(|(_, key, _)| key.starts_with('k'))
        .map(|(offset, key, value)| (offset, key, value.unwrap()))
        .collect();
    let expect = |o: i64, k: &str, v: &str| (o, k.to_string(), v.to_string());
    assert_eq!(
        data,
        vec![
            expect(0, "k1", "v1"),
            expect(4, "k2", "committed"),
            expect(6, "k1", "open"),
            expect(7, "k3", "v1"),
            expect(8, "k4", "v1"),
        ]
    );
    // Both markers stay, and so does the index entry of the abort.
    let reopened = {
        let mut guard = log.write();
        guard.close().unwrap();
        drop(guard);
        Log::open(dir.path(), compact_config(), manual_clock(T0).1).unwrap()
    };
    assert_eq!(reopened.collect_aborted_txns(0, 9).len(), 1);
    assert_eq!(
        reopened
            .producer_state()
            .producer(7)
            .unwrap()
            .current_txn_first_offset,
        Some(6),
        "the open transaction survives cleaning and a restart"
    );
}

/// Offsets of the control batches (transaction markers) in the log.
fn marker_offsets(log: &Log) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for read in all_reads(log) {
        for item in crate::log::batch::RecordBatchIter::new(&read) {
            let (header, _) = item.unwrap();
            // A read may start inside a batch the previous one returned.
            if header.is_control() && out.last().is_none_or(|&o| header.base_offset() > o) {
                out.push(header.base_offset());
            }
        }
    }
    out
}

/// Kafka's rule for markers: one goes once nothing of its transaction is left before it
/// (aborted data removed, committed data superseded) and `delete.retention.ms` has passed
/// since a pass first found it so; a marker that is its producer's last batch stays, and the
/// aborted-transaction index entry goes with its marker.
#[test]
fn a_marker_goes_once_its_transaction_is_gone_and_delete_retention_has_passed() {
    use crate::log::ControlRecordType::{Abort, Commit};
    let dir = tempfile::tempdir().unwrap();
    let (manual, clock) = manual_clock(T0);
    let log = open(dir.path(), compact_config(), clock);
    append(&log, &txn_record(5, 0, "k1", "aborted")); // 0
    end_txn(&log, 5, Abort); // 1
    append(&log, &txn_record(6, 0, "k2", "old")); // 2
    end_txn(&log, 6, Commit); // 3
    append(&log, &txn_record(5, 1, "k3", "kept")); // 4
    end_txn(&log, 5, Commit); // 5: producer 5's last batch
    append(&log, &txn_record(6, 1, "k2", "new")); // 6
    end_txn(&log, 6, Commit); // 7: producer 6's last batch
    roll(&log);
    let plain = keyed_batch(
        &[("k9".to_string(), Some("v".to_string()))],
        Compression::None,
        None,
        T0,
    );
    append(&log, &plain); // 8, in the active segment

    let data = |log: &Log| -> Vec<(i64, String)> {
        all_records(log)
            .into_iter()
            .filter(|(_, key, _)| key.starts_with('k'))
            .map(|(offset, key, _)| (offset, key))
            .collect()
    };
    let kept = vec![
        (4, "k3".to_string()),
        (6, "k2".to_string()),
        (8, "k9".to_string()),
    ];

    // First pass: the aborted record and the superseded committed one go; their markers get
    // a delete horizon and stay, for consumers that read the transactions' data.
    let first = clean(&log);
    assert_eq!(data(&log.read()), kept);
    assert_eq!(marker_offsets(&log.read()), vec![1, 3, 5, 7]);
    assert_eq!(log.read().collect_aborted_txns(0, 9).len(), 1);
    assert_eq!(first.earliest_delete_horizon, Some(T0 + 60_000));

    // Before the horizon nothing more goes.
    manual.advance(59_999);
    clean(&log);
    assert_eq!(marker_offsets(&log.read()), vec![1, 3, 5, 7]);

    // After it the two markers go, the abort's index entry with its marker; the producers'
    // last batches stay.
    manual.advance(1);
    clean(&log);
    assert_eq!(marker_offsets(&log.read()), vec![5, 7]);
    assert_eq!(data(&log.read()), kept);
    assert_eq!(log.read().collect_aborted_txns(0, 9), vec![]);

    // A restart rebuilds the same state: no transaction open, the LSO at the high watermark.
    let reopened = {
        let mut guard = log.write();
        guard.close().unwrap();
        drop(guard);
        Log::open(dir.path(), compact_config(), manual_clock(T0 + 60_000).1).unwrap()
    };
    for producer in [5, 6] {
        let state = reopened.producer_state().producer(producer).unwrap();
        assert_eq!(state.current_txn_first_offset, None, "producer {producer}");
    }
    assert_eq!(marker_offsets(&reopened), vec![5, 7]);
    assert!(reopened.collect_aborted_txns(0, 9).is_empty());
}
