//! Recovery of a damaged segment tail: after a crash (SIGKILL, so the broker must recover the
//! log on start), the tail of the last `.log` segment is damaged on purpose: garbage appended,
//! a byte flipped inside the last batch, the last batch cut short. The restarted broker must
//! truncate exactly the damage, serve every record before it, and append after it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use weir_tests::raw::{record_batch, RawClient};
use weir_tests::segments::{read_batches, segment_files};
use weir_tests::{clients, unique_topic, Broker};

const RECORDS: i64 = 20;

fn value_of(index: i64) -> Vec<u8> {
    format!("intact-{index:03}").into_bytes()
}

/// Produces RECORDS one-record batches, kills the broker and returns the last segment.
fn crashed_broker_with_records() -> (Broker, String, PathBuf) {
    let mut broker = Broker::start_default();
    let topic = unique_topic("corrupt-tail");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);
    for index in 0..RECORDS {
        let response = client.produce(&topic, 0, record_batch(&[&value_of(index)], None), -1);
        assert_eq!((response.error_code, response.base_offset), (0, index));
    }
    broker.kill9();
    let segment = segment_files(&broker.partition_dir(&topic, 0))
        .pop()
        .expect("a .log segment in the partition directory");
    let batches = read_batches(&segment);
    assert_eq!(
        batches.len() as i64,
        RECORDS,
        "batches in {} before damaging it",
        segment.display()
    );
    (broker, topic, segment)
}

/// Restarts and checks the partition holds exactly records 0..surviving, then appends one.
fn assert_recovered(
    broker: &mut Broker,
    topic: &str,
    segment: &Path,
    surviving: i64,
    damage: &str,
) {
    broker.restart();
    let stored = clients::read_all(broker, topic, 0);
    let values: Vec<Vec<u8>> = stored.iter().map(|r| r.value.clone().unwrap()).collect();
    let expected: Vec<Vec<u8>> = (0..surviving).map(value_of).collect();
    assert_eq!(
        values, expected,
        "records served after recovering from {damage}"
    );
    clients::assert_contiguous_offsets(&stored, 0);

    let mut client = RawClient::connect(broker.kafka_addr());
    let next = client.produce(topic, 0, record_batch(&[b"after recovery"], None), -1);
    assert_eq!(
        (next.error_code, next.base_offset),
        (0, surviving),
        "first offset after recovering from {damage}"
    );

    // On disk: whole batches only, the damage gone, the new batch right after the last good
    // one (in the damaged segment or a new one).
    broker.stop();
    let mut next_offset = 0;
    for file in segment_files(&broker.partition_dir(topic, 0)) {
        let length = std::fs::metadata(&file).unwrap().len() as usize;
        let batches = read_batches(&file);
        let end = batches.last().map_or(0, |b| b.end_position());
        assert_eq!(
            end,
            length,
            "{damage}: {} has bytes after its last whole batch",
            file.display()
        );
        for batch in batches {
            assert_eq!(
                batch.base_offset, next_offset,
                "{damage}: stored batches are not contiguous"
            );
            next_offset = batch.last_offset() + 1;
        }
    }
    assert_eq!(
        next_offset,
        surviving + 1,
        "{damage}: records on disk after recovery and one append"
    );
    assert!(
        segment.exists(),
        "the damaged segment was removed instead of truncated"
    );
}

#[test]
fn garbage_after_the_last_batch_is_truncated() {
    let (mut broker, topic, segment) = crashed_broker_with_records();
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    // A torn batch header (plausible base offset and length) followed by noise.
    let mut garbage = RECORDS.to_be_bytes().to_vec();
    garbage.extend_from_slice(&500i32.to_be_bytes());
    garbage.extend((0..137u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    file.write_all(&garbage).unwrap();
    drop(file);
    assert_recovered(
        &mut broker,
        &topic,
        &segment,
        RECORDS,
        "garbage appended to the segment",
    );
}

#[test]
fn a_flipped_byte_in_the_last_batch_truncates_that_batch() {
    let (mut broker, topic, segment) = crashed_broker_with_records();
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = read_batches(&segment).pop().unwrap();
    // Inside the record's value: only the CRC can tell.
    let position = last.end_position() - 3;
    bytes[position] ^= 0x5a;
    std::fs::write(&segment, &bytes).unwrap();
    assert_recovered(
        &mut broker,
        &topic,
        &segment,
        RECORDS - 1,
        "a flipped byte in the last batch",
    );
}

#[test]
fn a_half_written_last_batch_is_truncated() {
    let (mut broker, topic, segment) = crashed_broker_with_records();
    let last = read_batches(&segment).pop().unwrap();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len((last.position + 30) as u64).unwrap();
    drop(file);
    assert_recovered(
        &mut broker,
        &topic,
        &segment,
        RECORDS - 1,
        "a half-written last batch",
    );
}
