//! `message.max.bytes`: a batch larger than the broker's limit is refused with
//! MESSAGE_TOO_LARGE; the client's own limit is set higher so the broker is the one deciding.

use rdkafka::error::KafkaError;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;
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
