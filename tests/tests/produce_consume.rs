//! Produce/consume round trips through librdkafka for every compression codec: keys, values,
//! headers and timestamps come back byte for byte, offsets run from 0 without a gap, and the
//! stored batches keep the producer's compression.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use weir_tests::{clients, segments, unique_topic, Broker};

const RECORDS: usize = 300;
/// A fixed base timestamp (2024-01-01T00:00:00Z) so timestamps are checked exactly.
const BASE_TIMESTAMP: i64 = 1_704_067_200_000;

/// What one produced record should look like when read back.
#[derive(Debug, Clone)]
struct Expected {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn expected_record(index: usize) -> Expected {
    // Every byte value appears, then a compressible run so every batch compresses.
    let mut value = format!("value-{index:05}-").into_bytes();
    value.extend(0..=255u8);
    value.extend(b"weir compressible filler ".repeat(40));
    let key = (index % 10 != 3).then(|| format!("key-{}", index % 7).into_bytes());
    let value = (index % 50 != 17).then_some(value); // some tombstones (null values)
    let headers = match index % 4 {
        0 => Vec::new(),
        1 => vec![("seq".to_string(), Some(index.to_be_bytes().to_vec()))],
        2 => vec![
            ("empty".to_string(), Some(Vec::new())),
            ("null".to_string(), None),
        ],
        _ => vec![
            ("a".to_string(), Some(b"1".to_vec())),
            ("a".to_string(), Some(b"2".to_vec())), // repeated keys keep their order
            ("binary".to_string(), Some(vec![0, 255, 0, 1])),
        ],
    };
    Expected {
        key,
        value,
        headers,
        timestamp: BASE_TIMESTAMP + index as i64,
    }
}

async fn round_trip(codec: &str, codec_id: i16) {
    let mut broker = Broker::start_default();
    let topic = unique_topic(&format!("codec-{codec}"));
    clients::create_topic(&broker, &topic, 1).await;

    let producer = clients::producer(
        &broker,
        &[("compression.codec", codec), ("linger.ms", "20")],
    );
    let expected: Vec<Expected> = (0..RECORDS).map(expected_record).collect();
    let mut deliveries = Vec::new();
    for record in &expected {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &record.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_ref(),
            });
        }
        let mut future_record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic)
            .partition(0)
            .timestamp(record.timestamp)
            .headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key);
        }
        if let Some(value) = &record.value {
            future_record = future_record.payload(value);
        }
        deliveries.push(
            producer
                .send_result(future_record)
                .map_err(|(e, _)| e)
                .expect("enqueueing a record"),
        );
    }
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let delivery = delivery
            .await
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| panic!("record #{index} with {codec}: {e}"));
        assert_eq!(
            (delivery.partition, delivery.offset),
            (0, index as i64),
            "acknowledged offset of record #{index} ({codec})"
        );
    }

    let consumed = clients::read_all(&broker, &topic, 0);
    assert_eq!(consumed.len(), RECORDS, "records read back ({codec})");
    clients::assert_contiguous_offsets(&consumed, 0);
    for (index, (got, want)) in consumed.iter().zip(&expected).enumerate() {
        assert_eq!(got.key, want.key, "key of record #{index} ({codec})");
        assert_eq!(got.value, want.value, "value of record #{index} ({codec})");
        assert_eq!(
            got.headers, want.headers,
            "headers of record #{index} ({codec})"
        );
        assert_eq!(
            got.timestamp,
            Some(want.timestamp),
            "timestamp of record #{index} ({codec})"
        );
    }

    assert_stored_codec(&mut broker, &topic, codec, codec_id, RECORDS as i64);
}

/// Stops the broker cleanly so everything is on disk, then checks the stored batches: v2,
/// compressed with `codec_id` as the producer sent them (every batch of more than one record),
/// contiguous from offset 0 to `records`.
fn assert_stored_codec(broker: &mut Broker, topic: &str, codec: &str, codec_id: i16, records: i64) {
    broker.stop();
    let mut next_offset = 0;
    let mut compressed = 0;
    for segment in segments::segment_files(&broker.partition_dir(topic, 0)) {
        for batch in segments::read_batches(&segment) {
            assert_eq!(
                batch.magic,
                2,
                "stored batch magic in {}",
                segment.display()
            );
            // librdkafka sends a batch uncompressed when compressing would not shrink it,
            // which happens when linger leaves a lone record (a tombstone, say) in a batch.
            if batch.record_count > 1 {
                assert_eq!(
                    batch.compression(),
                    codec_id,
                    "stored batch at offset {} ({} records) is not {codec}-compressed: the \
                     broker must keep the producer's compression",
                    batch.base_offset,
                    batch.record_count
                );
            }
            compressed += usize::from(batch.compression() == codec_id);
            assert_eq!(
                batch.base_offset, next_offset,
                "stored batches are not contiguous"
            );
            next_offset = batch.last_offset() + 1;
        }
    }
    assert_eq!(next_offset, records, "records stored in the segment files");
    assert!(compressed > 0, "no stored batch is {codec}-compressed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_uncompressed() {
    round_trip("none", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_gzip() {
    round_trip("gzip", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_snappy() {
    round_trip("snappy", 2).await;
}

/// librdkafka compresses with lz4 only when the broker advertises FindCoordinator (its lz4
/// feature check dates from Kafka 0.8.2); the stored batches are checked to really be lz4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_lz4() {
    round_trip("lz4", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_zstd() {
    round_trip("zstd", 4).await;
}
