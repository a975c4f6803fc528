//! Ordering: records of one partition come back in the order they were acknowledged, with
//! contiguous offsets, across several partitions at once; a key always lands on the same
//! partition, whichever producer sends it.

use std::collections::HashMap;

use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_tests::{clients, unique_topic, Broker};

const PARTITIONS: i32 = 4;
const KEYS: usize = 40;
const RECORDS: usize = 4000;

/// Enqueues `(key, value)` pairs on `producer` and returns their (partition, offset) in order.
async fn send_keyed(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, String)],
) -> Vec<(i32, i64)> {
    let mut pending = Vec::with_capacity(records.len());
    for (key, value) in records {
        let record = FutureRecord::to(topic).key(key).payload(value);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueueing"),
        );
    }
    let mut acknowledged = Vec::with_capacity(records.len());
    for (index, delivery) in pending.into_iter().enumerate() {
        let delivery = delivery
            .await
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| panic!("record #{index}: {e}"));
        acknowledged.push((delivery.partition, delivery.offset));
    }
    acknowledged
}

fn keyed_records(range: std::ops::Range<usize>, tag: &str) -> Vec<(String, String)> {
    range
        .map(|index| {
            let key = format!("key-{}", index % KEYS);
            let value = format!("{tag}:{key}:{index}");
            (key, value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_keeps_acknowledgement_order() {
    let broker = Broker::start_default();
    let topic = unique_topic("ordering");
    clients::create_topic(&broker, &topic, PARTITIONS).await;
    let producer = clients::producer(
        &broker,
        &[
            ("partitioner", "murmur2_random"),
            ("linger.ms", "10"),
            ("enable.idempotence", "true"),
        ],
    );
    let records = keyed_records(0..RECORDS, "p1");
    let acknowledged = send_keyed(&producer, &topic, &records).await;

    // Per partition, in send order: offsets 0, 1, 2, ... and the values sent.
    let mut sent_per_partition: HashMap<i32, Vec<&str>> = HashMap::new();
    let mut key_partition: HashMap<&str, i32> = HashMap::new();
    for ((key, value), &(partition, offset)) in records.iter().zip(&acknowledged) {
        let sent = sent_per_partition.entry(partition).or_default();
        assert_eq!(
            offset,
            sent.len() as i64,
            "acknowledged offset of {value} in partition {partition}: a gap or reorder"
        );
        sent.push(value);
        let first = *key_partition.entry(key).or_insert(partition);
        assert_eq!(
            first, partition,
            "key {key} moved from partition {first} to {partition}"
        );
    }
    assert!(
        sent_per_partition.len() > 1,
        "{KEYS} keys all hashed to one partition: the topic's partition count is not seen"
    );

    let mut total = 0;
    for partition in 0..PARTITIONS {
        let sent = sent_per_partition.remove(&partition).unwrap_or_default();
        let consumed = clients::read_all(&broker, &topic, partition);
        clients::assert_contiguous_offsets(&consumed, 0);
        let values: Vec<String> = consumed
            .iter()
            .map(|record| String::from_utf8(record.value.clone().unwrap()).unwrap())
            .collect();
        assert_eq!(
            values, sent,
            "records of partition {partition} in offset order"
        );
        total += values.len();
    }
    assert_eq!(total, RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_lands_on_the_same_partition_from_every_producer() {
    let broker = Broker::start_default();
    let topic = unique_topic("sticky-keys");
    clients::create_topic(&broker, &topic, PARTITIONS).await;

    let mut partition_of_key: Vec<HashMap<String, i32>> = Vec::new();
    for producer_index in 0..2 {
        // A fresh producer (and librdkafka instance) each time.
        let producer = clients::producer(&broker, &[("partitioner", "murmur2_random")]);
        let records = keyed_records(0..KEYS * 3, &format!("producer{producer_index}"));
        let acknowledged = send_keyed(&producer, &topic, &records).await;
        let mut map = HashMap::new();
        for ((key, _), (partition, _)) in records.iter().zip(acknowledged) {
            let first = *map.entry(key.clone()).or_insert(partition);
            assert_eq!(
                first, partition,
                "producer {producer_index}: key {key} changed partition"
            );
        }
        partition_of_key.push(map);
    }
    assert_eq!(
        partition_of_key[0], partition_of_key[1],
        "key → partition differs between producers"
    );

    // What each partition holds agrees with the acknowledgements.
    let mut stored = 0;
    for partition in 0..PARTITIONS {
        for record in clients::read_all(&broker, &topic, partition) {
            let key = String::from_utf8(record.key.unwrap()).unwrap();
            assert_eq!(
                partition_of_key[0][&key], partition,
                "key {key} stored in partition {partition}"
            );
            stored += 1;
        }
    }
    assert_eq!(stored, 2 * KEYS * 3);
}
