//! Long-poll Fetch over the raw protocol: with `min_bytes=1` the broker holds the request
//! until data arrives (and answers as soon as it does), or until `max_wait` passes.

use std::time::{Duration, Instant};

use weir_tests::raw::{decode_records, record_batch, RawClient};
use weir_tests::{unique_topic, Broker};

#[test]
fn a_waiting_fetch_returns_records_produced_while_it_waits() {
    const MAX_WAIT: Duration = Duration::from_secs(10);
    let broker = Broker::start_default();
    let topic = unique_topic("long-poll");
    let mut producer = RawClient::connect(broker.kafka_addr());
    producer.create_topic_ok(&topic, 1);

    let addr = broker.kafka_addr();
    let fetch_topic = topic.clone();
    let fetcher = std::thread::spawn(move || {
        let mut consumer = RawClient::connect(addr);
        let started = Instant::now();
        let data = consumer.fetch(&fetch_topic, 0, 0, MAX_WAIT, 1);
        (data, started.elapsed())
    });
    let produced = producer.produce(&topic, 0, record_batch(&[b"wake up"], None), -1);
    assert_eq!((produced.error_code, produced.base_offset), (0, 0));

    let (data, elapsed) = fetcher.join().expect("fetch thread");
    assert_eq!(data.error_code, 0, "Fetch partition error code");
    let records = decode_records(&data.records.unwrap_or_default());
    let values: Vec<_> = records.iter().map(|r| r.value.clone().unwrap()).collect();
    assert_eq!(values, [&b"wake up"[..]], "records in the long-poll answer");
    assert_eq!(data.high_watermark, 1);
    assert!(
        elapsed < MAX_WAIT * 8 / 10,
        "the fetch waited {elapsed:?}: it must answer when data arrives, not at max_wait ({MAX_WAIT:?})"
    );
}

#[test]
fn a_fetch_without_data_waits_for_max_wait() {
    const MAX_WAIT: Duration = Duration::from_secs(3);
    let broker = Broker::start_default();
    let topic = unique_topic("long-poll-empty");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 1);

    let started = Instant::now();
    let data = client.fetch(&topic, 0, 0, MAX_WAIT, 1);
    let elapsed = started.elapsed();
    assert_eq!(data.error_code, 0, "Fetch partition error code");
    assert!(
        decode_records(&data.records.unwrap_or_default()).is_empty(),
        "records in an empty partition"
    );
    assert!(
        elapsed >= MAX_WAIT * 8 / 10,
        "an empty fetch with min_bytes=1 answered after {elapsed:?}, before max_wait ({MAX_WAIT:?})"
    );

    // The connection is still usable afterwards.
    assert_eq!(client.log_end_offset(&topic, 0), 0);
}
