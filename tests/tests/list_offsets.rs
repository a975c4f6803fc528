//! ListOffsets: by timestamp (rdkafka `offsets_for_times`) on records produced with explicit
//! timestamps, earliest/latest watermarks, and the max-timestamp lookup (-3) over the raw
//! protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::ApiKey;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::raw::RawClient;
use weir_tests::{clients, unique_topic, Broker};

const RECORDS: i64 = 60;
const STEP_MS: i64 = 1000;

/// Ten minutes ago, whole seconds: recent enough for any timestamp validation.
fn base_timestamp() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now - 600_000) / 1000 * 1000
}

/// Produces records with the given timestamps to partition 0: the first half one batch each
/// (awaited one by one), the second half enqueued together so they share batches.
async fn produce_with_timestamps(producer: &FutureProducer, topic: &str, timestamps: &[i64]) {
    let half = timestamps.len() / 2;
    for (index, &timestamp) in timestamps[..half].iter().enumerate() {
        let value = format!("ts-record-{index}");
        let record = FutureRecord::<(), String>::to(topic)
            .partition(0)
            .payload(&value)
            .timestamp(timestamp);
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(delivery.offset, index as i64);
    }
    let mut pending = Vec::new();
    for (index, &timestamp) in timestamps.iter().enumerate().skip(half) {
        let value = format!("ts-record-{index}");
        let record = FutureRecord::<(), String>::to(topic)
            .partition(0)
            .payload(&value)
            .timestamp(timestamp);
        pending.push((
            index,
            producer.send_result(record).map_err(|(e, _)| e).unwrap(),
        ));
    }
    for (index, delivery) in pending {
        let delivery = delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        assert_eq!(delivery.offset, index as i64);
    }
}

/// The offset rdkafka's `offsets_for_times` answers for `timestamp` (-1 for "none").
fn offset_for_time(broker: &Broker, topic: &str, timestamp: i64) -> i64 {
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset(topic, 0, Offset::Offset(timestamp))
        .unwrap();
    let answer = clients::consumer(broker)
        .offsets_for_times(query, clients::CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets for timestamp {timestamp}: {e}"));
    let element = answer
        .find_partition(topic, 0)
        .expect("partition in the answer");
    assert!(
        element.error().is_ok(),
        "ListOffsets error: {:?}",
        element.error()
    );
    match element.offset() {
        Offset::Offset(offset) => offset,
        Offset::End => -1,
        other => panic!("unexpected offset {other:?} for timestamp {timestamp}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_and_watermarks() {
    let broker = Broker::start_default();
    let topic = unique_topic("by-time");
    clients::create_topic(&broker, &topic, 1).await;
    assert_eq!(
        clients::watermarks(&broker, &topic, 0),
        (0, 0),
        "watermarks of an empty partition"
    );
    let base = base_timestamp();
    let timestamps: Vec<i64> = (0..RECORDS).map(|i| base + i * STEP_MS).collect();
    produce_with_timestamps(&clients::producer(&broker, &[]), &topic, &timestamps).await;

    assert_eq!(
        clients::watermarks(&broker, &topic, 0),
        (0, RECORDS),
        "earliest/latest offsets"
    );
    assert_eq!(
        offset_for_time(&broker, &topic, base - 3_600_000),
        0,
        "before every record"
    );
    for index in [0, 1, 17, 29, 30, 31, 45, RECORDS - 1] {
        let exact = base + index * STEP_MS;
        assert_eq!(
            offset_for_time(&broker, &topic, exact),
            index,
            "timestamp of record {index} exactly"
        );
        if index + 1 < RECORDS {
            assert_eq!(
                offset_for_time(&broker, &topic, exact + 1),
                index + 1,
                "just after record {index}"
            );
        }
    }
    assert_eq!(
        offset_for_time(&broker, &topic, base + RECORDS * STEP_MS),
        -1,
        "after the newest record there is no offset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_timestamps_follow_kafka_semantics() {
    let broker = Broker::start_default();
    let topic = unique_topic("by-time-unordered");
    clients::create_topic(&broker, &topic, 1).await;
    let base = base_timestamp();
    // Record 20 carries the newest timestamp of all, out of order.
    const NEWEST: i64 = 20;
    let newest_timestamp = base + 100 * RECORDS * STEP_MS;
    let timestamps: Vec<i64> = (0..RECORDS)
        .map(|i| {
            if i == NEWEST {
                newest_timestamp
            } else {
                base + i * STEP_MS
            }
        })
        .collect();
    produce_with_timestamps(&clients::producer(&broker, &[]), &topic, &timestamps).await;

    // "The earliest offset whose timestamp is >= the target": record 20 for targets after 19.
    assert_eq!(offset_for_time(&broker, &topic, base + 19 * STEP_MS), 19);
    assert_eq!(
        offset_for_time(&broker, &topic, base + 19 * STEP_MS + 1),
        NEWEST
    );
    assert_eq!(
        offset_for_time(&broker, &topic, base + 40 * STEP_MS),
        NEWEST
    );
    assert_eq!(offset_for_time(&broker, &topic, newest_timestamp), NEWEST);
    assert_eq!(offset_for_time(&broker, &topic, newest_timestamp + 1), -1);

    // ListOffsets v7+ knows MAX_TIMESTAMP (-3): the offset of the record with the newest timestamp.
    let mut client = RawClient::connect(broker.kafka_addr());
    let (_, max_version) = client
        .advertised(ApiKey::ListOffsets)
        .expect("ListOffsets advertised");
    if max_version >= 7 {
        assert_eq!(
            client.list_offset(&topic, 0, -3),
            (0, NEWEST),
            "ListOffsets MAX_TIMESTAMP"
        );
    }
    assert_eq!(
        client.list_offset(&topic, 0, -2),
        (0, 0),
        "ListOffsets EARLIEST"
    );
    assert_eq!(
        client.list_offset(&topic, 0, -1),
        (0, RECORDS),
        "ListOffsets LATEST"
    );
}
