//! `message.max.bytes`: a batch larger than the broker's limit is refused with
//! MESSAGE_TOO_LARGE; the client's own limit is set higher so the broker is the one deciding.
//! `fetch.max.bytes`: a Fetch response holds no more record bytes than the broker's cap,
//! whatever the consumer asks, except a first batch larger than it, which comes whole.

use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;
use weir_tests::raw::{record_batch, RawClient};
use weir_tests::{clients, unique_topic, Broker, BrokerOptions};

const BROKER_LIMIT: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_message_max_bytes_is_rejected() {
    let broker = Broker::start(BrokerOptions::default().set("message.max.bytes", BROKER_LIMIT));
    let topic = unique_topic("max-bytes");
    clients::create_topic(&broker, &topic, 1).await;
    let producer = clients::producer(
        &broker,
        &[
            ("message.max.bytes", "1000000"),
            ("compression.codec", "none"),
            ("linger.ms", "0"),
            ("retries", "0"),
        ],
    );

    let small = vec![b's'; BROKER_LIMIT / 2];
    assert_eq!(
        clients::produce_one(&producer, &topic, Some(0), None, &small).await,
        (0, 0)
    );

    // Not compressible anyway (no codec), and twice the limit.
    let large: Vec<u8> = (0..BROKER_LIMIT * 2).map(|i| (i * 7 % 251) as u8).collect();
    let result = producer
        .send(
            FutureRecord::<(), _>::to(&topic)
                .partition(0)
                .payload(&large),
            Duration::from_secs(10),
        )
        .await;
    match result {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        Err((error, _)) => panic!("expected MessageSizeTooLarge from the broker, got {error}"),
        Ok(delivery) => panic!(
            "a {}-byte record was accepted at offset {}",
            large.len(),
            delivery.offset
        ),
    }

    // Nothing of the rejected batch is stored, and the partition still takes records.
    assert_eq!(clients::watermarks(&broker, &topic, 0), (0, 1));
    assert_eq!(
        clients::produce_one(&producer, &topic, Some(0), None, &small).await,
        (0, 1)
    );
    let stored = clients::read_all(&broker, &topic, 0);
    assert_eq!(stored.len(), 2);
    assert!(stored
        .iter()
        .all(|r| r.value.as_deref() == Some(&small[..])));
}

#[test]
fn a_fetch_response_stays_within_the_brokers_fetch_max_bytes() {
    const CAP: usize = 4096;
    let broker = Broker::start(BrokerOptions::default().set("fetch.max.bytes", CAP));
    let topic = unique_topic("fetch-cap");
    let mut raw = RawClient::connect(broker.kafka_addr());
    raw.create_topic_ok(&topic, 1);
    // Three batches of about 1.5 KiB, then one of 6 KiB (over the cap on its own).
    let mut batches = Vec::new();
    for value in [
        [b'a'; 1500].as_slice(),
        &[b'b'; 1500],
        &[b'c'; 1500],
        &[b'd'; 6000],
    ] {
        let batch = record_batch(&[value], None);
        assert_eq!(raw.produce(&topic, 0, batch.clone(), -1).error_code, 0);
        batches.push(batch);
    }
    // The consumer asks for 64 MiB; the broker's cap holds two of the first three batches.
    let first = raw.fetch(&topic, 0, 0, Duration::from_millis(10), 1);
    let records = first.records.unwrap_or_default();
    assert_eq!(records.len(), batches[0].len() + batches[1].len());
    assert!(records.len() <= CAP);
    // The first batch as sent, from its magic byte on (the broker sets its offset and leader
    // epoch).
    assert_eq!(&records[16..batches[0].len()], &batches[0][16..]);
    // From the third batch: it, and not the fourth, which would pass the cap.
    let second = raw.fetch(&topic, 0, 2, Duration::from_millis(10), 1);
    assert_eq!(second.records.unwrap_or_default().len(), batches[2].len());
    // The fourth is larger than the cap and comes whole (the consumer would never get past it
    // otherwise).
    let third = raw.fetch(&topic, 0, 3, Duration::from_millis(10), 1);
    let records = third.records.unwrap_or_default();
    assert_eq!(records.len(), batches[3].len());
    assert!(records.len() > CAP);
}
