//! Produce-time validation of record batches: the broker stores batches as they arrive, so it
//! must refuse those whose CRC does not match, or whose header disagrees with their records
//! (record count, lengths), before they reach the log and later readers (Fetch, ListOffsets
//! by time, recovery) trip over them.

use bytes::Bytes;
use weir_tests::raw::{error_code, record_batch, RawClient};
use weir_tests::{unique_topic, Broker};

const CORRUPT_MESSAGE: i16 = 2;
const INVALID_RECORD: i16 = 87;
/// Where the CRC-covered part of a batch v2 starts (attributes), and the fields patched here.
const CRC_POSITION: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const RECORD_COUNT_POSITION: usize = 57;

/// Recomputes the CRC-32C of a batch after its header was edited.
fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[CRC_COVERED_FROM..]);
    batch[CRC_POSITION..CRC_POSITION + 4].copy_from_slice(&crc.to_be_bytes());
}

fn three_records() -> Vec<u8> {
    record_batch(&[b"one", b"two", b"three"], None).to_vec()
}

/// Produces `batch` and expects it refused with one of `codes`; nothing may be appended.
fn assert_refused(client: &mut RawClient, topic: &str, batch: Vec<u8>, codes: &[i16], what: &str) {
    let response = client.produce(topic, 0, Bytes::from(batch), -1);
    assert!(
        codes.contains(&response.error_code),
        "{what}: error code {} (base offset {}), expected one of {codes:?}",
        response.error_code,
        response.base_offset
    );
    assert_eq!(
        client.log_end_offset(topic, 0),
        0,
        "{what}: something was appended"
    );
}

#[test]
fn batches_inconsistent_with_their_header_are_refused() {
    let mut broker = Broker::start_default();
    let topic = unique_topic("validation");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);

    let mut bad_crc = three_records();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x01;
    assert_refused(
        &mut client,
        &topic,
        bad_crc,
        &[CORRUPT_MESSAGE],
        "a batch with a wrong CRC",
    );

    // A valid CRC over a header that claims a billion records (three are present): a reader
    // that trusts the count reserves memory for a billion records.
    let mut lying_count = three_records();
    lying_count[RECORD_COUNT_POSITION..RECORD_COUNT_POSITION + 4]
        .copy_from_slice(&1_000_000_000i32.to_be_bytes());
    fix_crc(&mut lying_count);
    assert_refused(
        &mut client,
        &topic,
        lying_count,
        &[CORRUPT_MESSAGE, INVALID_RECORD],
        "a batch whose record count says 1e9 but holds 3 records",
    );

    let mut too_few = three_records();
    too_few[RECORD_COUNT_POSITION..RECORD_COUNT_POSITION + 4].copy_from_slice(&2i32.to_be_bytes());
    fix_crc(&mut too_few);
    assert_refused(
        &mut client,
        &topic,
        too_few,
        &[CORRUPT_MESSAGE, INVALID_RECORD],
        "a batch whose record count says 2 but holds 3 records",
    );

    // The batch length field says more bytes than were sent.
    let mut long_length = three_records();
    let declared = i32::from_be_bytes(long_length[8..12].try_into().unwrap());
    long_length[8..12].copy_from_slice(&(declared + 100).to_be_bytes());
    assert_refused(
        &mut client,
        &topic,
        long_length,
        &[CORRUPT_MESSAGE, INVALID_RECORD],
        "a batch whose length field exceeds the bytes sent",
    );

    // The log is intact and readable: a good batch lands at offset 0, time lookups work.
    broker.assert_alive();
    let good = client.produce(&topic, 0, record_batch(&[b"good"], None), -1);
    assert_eq!((good.error_code, good.base_offset), (error_code::NONE, 0));
    assert_eq!(
        client.list_offset(&topic, 0, 0),
        (0, 0),
        "ListOffsets by timestamp 0"
    );
    broker.assert_alive();
}
