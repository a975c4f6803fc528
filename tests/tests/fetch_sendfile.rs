//! Fetch responses whose records the kernel sends from the segment files (`sendfile`) on a
//! plaintext listener, and reads into memory on a TLS listener: a librdkafka consumer that
//! checks every batch's CRC gets the same records, byte for byte and in offset order, over
//! both, from the active segment and from rolled ones; the broker's
//! `weir_fetch_sendfile_bytes_total` says which path served them.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::tls::Pki;
use weir_tests::{clients, http, unique_topic, Broker, BrokerOptions};

const PARTITIONS: i32 = 3;
const RECORDS: usize = 6_000;

/// Record `i`'s value: its index, then 1–3 KiB of bytes that depend on it.
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("record-{i:06}-").into_bytes();
    let len = 1024 + (i * 7919) % 2048;
    v.extend((0..len).map(|j| ((i * 31 + j * 17) % 251) as u8));
    v
}

fn sendfile_bytes(broker: &Broker) -> f64 {
    let page = http::get(broker.metrics_addr(), "/metrics");
    http::parse_prometheus(&page.body)
        .into_iter()
        .find(|s| s.name == "weir_fetch_sendfile_bytes_total")
        .map(|s| s.value)
        .expect("weir_fetch_sendfile_bytes_total on /metrics")
}

/// Reads every partition of `topic` from offset 0 with `consumer` until it has `RECORDS`
/// records; returns (partition, offset, value) per record in arrival order.
fn read_everything(consumer: &BaseConsumer, topic: &str) -> Vec<(i32, i64, Vec<u8>)> {
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut got = Vec::with_capacity(RECORDS);
    while got.len() < RECORDS {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {RECORDS} records",
            got.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push((m.partition(), m.offset(), m.payload().unwrap().to_vec())),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    got
}

/// Every record came back once, with the value it was sent with, each partition's offsets
/// running 0, 1, 2, ... in the order they arrived.
fn assert_all_records(got: &[(i32, i64, Vec<u8>)], sent_to: &[(i32, usize)]) {
    assert_eq!(got.len(), RECORDS);
    let mut next = vec![0i64; PARTITIONS as usize];
    let mut by_partition: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS as usize];
    for &(p, i) in sent_to {
        by_partition[p as usize].push(i);
    }
    for (p, offset, v) in got {
        let p = *p as usize;
        assert_eq!(*offset, next[p], "partition {p}: offsets in order, no gap");
        let index = by_partition[p][*offset as usize];
        assert!(
            *v == value(index),
            "partition {p} offset {offset}: value of record {index}"
        );
        next[p] += 1;
    }
}

#[tokio::test]
async fn records_sent_from_segment_files_and_read_over_tls_are_the_same() {
    let pki = Pki::new();
    pki.issue("server", "localhost", 1);
    // Small segments: the reads cross rolled segments as well as the active one.
    let mut broker = Broker::start(
        BrokerOptions::default()
            .set("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0")
            .set("inter.broker.listener.name", "PLAINTEXT")
            .set("ssl.keystore.location", pki.server())
            .set("log.segment.bytes", 2 * 1024 * 1024),
    );
    let topic = unique_topic("sendfile");
    clients::create_topic(&broker, &topic, PARTITIONS).await;

    let producer: ThreadedProducer<_> = clients::producer_config(&broker)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let mut sent_to = Vec::with_capacity(RECORDS);
    let values: Vec<Vec<u8>> = (0..RECORDS).map(value).collect();
    for (i, v) in values.iter().enumerate() {
        // Runs of 50 records per partition, so batches are large.
        let partition = ((i / 50) % PARTITIONS as usize) as i32;
        sent_to.push((partition, i));
        producer
            .send(
                BaseRecord::<(), [u8]>::to(&topic)
                    .partition(partition)
                    .payload(v),
            )
            .map_err(|(e, _)| e)
            .expect("enqueueing");
    }
    producer.flush(clients::CLIENT_TIMEOUT).expect("flushing");
    let total: usize = values.iter().map(Vec::len).sum();

    let before = sendfile_bytes(&broker);
    let plaintext = clients::consumer(&broker);
    assert_all_records(&read_everything(&plaintext, &topic), &sent_to);
    let from_files = sendfile_bytes(&broker) - before;
    // Batches of 50 records of 1-3 KiB are 50-150 KiB: every catch-up fetch sends from the
    // files. Not all of the log: the last fetches of each partition may be smaller.
    assert!(
        from_files >= total as f64 / 2.0,
        "plaintext: {from_files} of about {total} record bytes sent from the segment files"
    );

    let before = sendfile_bytes(&broker);
    let tls: BaseConsumer = clients::consumer_config(&broker)
        .set("bootstrap.servers", broker.listener_addr("SSL").to_string())
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", pki.ca())
        .create()
        .unwrap();
    assert_all_records(&read_everything(&tls, &topic), &sent_to);
    assert_eq!(
        sendfile_bytes(&broker),
        before,
        "TLS: nothing sent from the files unencrypted"
    );
    broker.assert_alive();
}
