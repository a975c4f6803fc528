//! Segments and retention: the log rolls into segment files named by their base offset once
//! `segment.bytes` is reached, and retention by size (`retention.bytes`) and by time
//! (`retention.ms`, against each segment's newest record timestamp) deletes whole segments
//! from the oldest, moving the log start offset. Retention is switched on with
//! IncrementalAlterConfigs after producing, so the segments it acts on are known exactly.

use std::path::Path;
use std::time::Duration;

use weir_tests::raw::{decode_records, error_code, now_ms, record_batch_at, RawClient};
use weir_tests::segments::{read_batches, segment_files, StoredBatch};
use weir_tests::{unique_topic, wait_until, Broker, BrokerOptions};

const SEGMENT_BYTES: usize = 4096;
const VALUE_BYTES: usize = 500;
const RECORDS: i64 = 60;
/// How long retention may take to act once enabled (the check runs every 100 ms).
const RETENTION_TIMEOUT: Duration = Duration::from_secs(30);

fn value_of(offset: i64) -> Vec<u8> {
    let mut value = format!("retained-{offset:04}-").into_bytes();
    value.resize(VALUE_BYTES, b'.');
    value
}

fn broker_with_small_segments() -> Broker {
    Broker::start(
        BrokerOptions::default()
            .set("log.segment.bytes", SEGMENT_BYTES)
            .set("log.retention.check.interval.ms", 100),
    )
}

/// One stored segment: its base offset (from the file name), size and batches.
#[derive(Debug)]
struct Segment {
    base_offset: i64,
    size: usize,
    batches: Vec<StoredBatch>,
}

fn segments(partition_dir: &Path) -> Vec<Segment> {
    segment_files(partition_dir)
        .into_iter()
        .map(|file| {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                stem.len(),
                20,
                "segment file {} is not named by a 20-digit offset",
                file.display()
            );
            Segment {
                base_offset: stem.parse().unwrap(),
                size: std::fs::metadata(&file).unwrap().len() as usize,
                batches: read_batches(&file),
            }
        })
        .collect()
}

/// Produces RECORDS one-record batches with `timestamp_of(offset)` and checks how they were
/// laid out in segments.
fn produce_and_check_segments(
    broker: &Broker,
    client: &mut RawClient,
    topic: &str,
    timestamp_of: impl Fn(i64) -> i64,
) -> Vec<Segment> {
    client.create_topic_ok(topic, 1);
    for offset in 0..RECORDS {
        let batch = record_batch_at(&[&value_of(offset)], None, timestamp_of(offset));
        let response = client.produce(topic, 0, batch, -1);
        assert_eq!((response.error_code, response.base_offset), (0, offset));
    }
    let layout = segments(&broker.partition_dir(topic, 0));
    assert!(layout.len() >= 4, "{RECORDS} batches of ~{VALUE_BYTES} bytes did not roll into several {SEGMENT_BYTES}-byte segments: {layout:?}");
    let mut next_offset = 0;
    for segment in &layout {
        assert!(
            segment.size <= SEGMENT_BYTES,
            "segment {} holds {} bytes, over segment.bytes",
            segment.base_offset,
            segment.size
        );
        let first = segment
            .batches
            .first()
            .expect("an empty segment before the active one");
        assert_eq!(
            first.base_offset, segment.base_offset,
            "segment file name vs its first batch"
        );
        for batch in &segment.batches {
            assert_eq!(batch.base_offset, next_offset);
            next_offset = batch.last_offset() + 1;
        }
        let dir = broker.partition_dir(topic, 0);
        for index in ["index", "timeindex"] {
            let file = dir.join(format!("{:020}.{index}", segment.base_offset));
            assert!(file.exists(), "{} is missing", file.display());
        }
    }
    assert_eq!(next_offset, RECORDS);
    layout
}

/// Waits until the log starts at `expected_start`, then checks what is served and stored.
fn assert_log_starts_at(
    broker: &Broker,
    client: &mut RawClient,
    topic: &str,
    expected_start: i64,
    why: &str,
) {
    wait_until(
        RETENTION_TIMEOUT,
        &format!("log start offset {expected_start} ({why})"),
        || {
            let (code, start) = client.list_offset(topic, 0, -2);
            assert_eq!(code, 0, "ListOffsets earliest error code");
            assert!(start <= expected_start, "{why}: retention deleted too much: log starts at {start}, expected {expected_start}");
            (start == expected_start).then_some(())
        },
    );
    assert_eq!(
        client.log_end_offset(topic, 0),
        RECORDS,
        "retention moved the log end"
    );
    let remaining = segments(&broker.partition_dir(topic, 0));
    assert_eq!(
        remaining.first().map(|s| s.base_offset),
        Some(expected_start),
        "{why}: first segment on disk"
    );

    let below = client.fetch(topic, 0, 0, Duration::ZERO, 0);
    assert_eq!(
        below.error_code,
        error_code::OFFSET_OUT_OF_RANGE,
        "Fetch below the log start offset"
    );
    let mut offset = expected_start;
    while offset < RECORDS {
        let data = client.fetch(topic, 0, offset, Duration::ZERO, 0);
        assert_eq!(data.error_code, 0);
        assert_eq!(
            data.log_start_offset, expected_start,
            "log start offset in Fetch responses"
        );
        let records = decode_records(&data.records.unwrap_or_default());
        assert!(!records.is_empty(), "no records served at offset {offset}");
        let from = offset;
        for record in records.into_iter().filter(|r| r.offset >= from) {
            assert_eq!(record.offset, offset);
            assert_eq!(record.value.as_deref(), Some(&value_of(offset)[..]));
            offset += 1;
        }
    }
}

#[test]
fn retention_by_size_deletes_the_oldest_segments() {
    let broker = broker_with_small_segments();
    let topic = unique_topic("retention-bytes");
    let mut client = RawClient::connect(broker.kafka_addr());
    let layout = produce_and_check_segments(&broker, &mut client, &topic, |_| now_ms());

    // Keep about three segments' worth. Kafka's rule: delete the oldest non-active segment
    // while the log minus that segment is still at least retention.bytes.
    let retention_bytes = 3 * SEGMENT_BYTES;
    let mut excess = layout.iter().map(|s| s.size).sum::<usize>() as i64 - retention_bytes as i64;
    let mut expected_start = 0;
    for segment in &layout[..layout.len() - 1] {
        if excess - (segment.size as i64) < 0 {
            break;
        }
        excess -= segment.size as i64;
        expected_start = layout
            .iter()
            .find(|s| s.base_offset > segment.base_offset)
            .unwrap()
            .base_offset;
    }
    assert!(
        expected_start > 0,
        "the test must make retention delete something: {layout:?}"
    );

    let retention_text = retention_bytes.to_string();
    assert_eq!(
        client.alter_topic_configs(&topic, &[("retention.bytes", Some(&retention_text))]),
        0
    );
    assert_log_starts_at(
        &broker,
        &mut client,
        &topic,
        expected_start,
        "retention.bytes",
    );
}

#[test]
fn retention_by_time_deletes_segments_whose_newest_record_is_too_old() {
    let broker = broker_with_small_segments();
    let topic = unique_topic("retention-ms");
    let mut client = RawClient::connect(broker.kafka_addr());
    let now = now_ms();
    const OLD: i64 = 25;
    // The first OLD records are two hours old, the rest current.
    let layout = produce_and_check_segments(&broker, &mut client, &topic, |offset| {
        if offset < OLD {
            now - 2 * 3_600_000 + offset
        } else {
            now
        }
    });
    // Segments whose newest timestamp is older than retention.ms (one hour) go; the first
    // segment holding a current record stays, and everything after it.
    let expected_start = layout
        .iter()
        .find(|s| s.batches.iter().any(|b| b.max_timestamp >= now))
        .unwrap()
        .base_offset;
    assert!(expected_start > 0 && expected_start <= OLD);

    assert_eq!(
        client.alter_topic_configs(&topic, &[("retention.ms", Some("3600000"))]),
        0
    );
    assert_log_starts_at(&broker, &mut client, &topic, expected_start, "retention.ms");
}
