//! rdkafka (librdkafka) clients pointed at a test broker, and helpers to read what a
//! partition holds.
//!
//! Consumers here use `assign` with explicit offsets and never join their group, so reading a
//! partition does not depend on the group coordinator.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::Broker;

/// Timeout for one client operation (metadata, admin request, watermarks).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading an expected set of records may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The config every client starts from: the broker's address, IPv4 only.
pub fn base_config(broker: &Broker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", broker.bootstrap())
        .set("broker.address.family", "v4")
        .set("client.id", "weir-tests");
    config
}

/// Producer defaults: acks=all, short linger, generous delivery timeout.
pub fn producer_config(broker: &Broker) -> ClientConfig {
    let mut config = base_config(broker);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    config
}

/// A producer with [`producer_config`] plus `overrides`.
pub fn producer(broker: &Broker, overrides: &[(&str, &str)]) -> FutureProducer {
    let mut config = producer_config(broker);
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.create().expect("creating an rdkafka producer")
}

/// Consumer defaults: no auto commit, start from the earliest offset, and verify the CRC of
/// every batch the broker serves. librdkafka needs a `group.id` even for `assign`; the group
/// is never joined.
pub fn consumer_config(broker: &Broker) -> ClientConfig {
    let mut config = base_config(broker);
    config
        .set("group.id", crate::unique_topic("weir-tests-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("check.crcs", "true");
    config
}

pub fn consumer(broker: &Broker) -> BaseConsumer {
    consumer_config(broker)
        .create()
        .expect("creating an rdkafka consumer")
}

pub fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    base_config(broker)
        .create()
        .expect("creating an rdkafka admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(CLIENT_TIMEOUT))
}

/// Creates a topic with replication factor 1 and waits for the answer; panics on an error.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    create_topic_with(broker, topic, partitions, &[]).await
}

/// [`create_topic`] with topic configs.
pub async fn create_topic_with(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = admin(broker)
        .create_topics(&[new_topic], &admin_options())
        .await
        .unwrap_or_else(|e| panic!("CreateTopics {topic}: {e}"));
    assert_eq!(results.len(), 1);
    if let Err((name, code)) = &results[0] {
        panic!("CreateTopics {name}: {code:?}");
    }
    wait_for_partitions(broker, topic, partitions);
}

/// Waits until metadata shows `topic` with `partitions` partitions, each with a leader.
pub fn wait_for_partitions(broker: &Broker, topic: &str, partitions: i32) {
    let consumer = consumer(broker);
    crate::wait_until(
        CLIENT_TIMEOUT,
        &format!("metadata shows {topic} with {partitions} led partitions"),
        || {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()?;
            let described = metadata.topics().iter().find(|t| t.name() == topic)?;
            (described.error().is_none()
                && described.partitions().len() == partitions as usize
                && described.partitions().iter().all(|p| p.leader() >= 0))
            .then_some(())
        },
    )
}

/// Sends `values` (each its own key and value) round-robin over `partitions` partitions of
/// `topic` (value `i` to partition `i % partitions`) and flushes: all acknowledged, or a panic.
/// For transactional producers, whose records must be delivered before the commit.
pub fn send_round_robin(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    partitions: i32,
    values: &[String],
) {
    use rdkafka::producer::{BaseRecord, Producer};
    for (i, value) in values.iter().enumerate() {
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .partition(i as i32 % partitions)
                    .key(value)
                    .payload(value),
            )
            .map_err(|(e, _)| e)
            .expect("enqueueing");
    }
    producer.flush(CLIENT_TIMEOUT).expect("flushing");
}

/// Produces one record and waits for its acknowledgement; returns (partition, offset).
pub async fn produce_one(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: &[u8],
) -> (i32, i64) {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(value);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    match producer.send(record, Duration::from_secs(10)).await {
        Ok(delivery) => (delivery.partition, delivery.offset),
        Err((error, _)) => panic!("producing to {topic}: {error}"),
    }
}

/// An owned, comparable copy of one consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Milliseconds since the epoch, if the record carries a timestamp.
    pub timestamp: Option<i64>,
}

/// Reads `count` records of one partition starting at offset `from`. Panics if they do not
/// all arrive within [`READ_TIMEOUT`].
pub fn read_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
    from: i64,
    count: usize,
) -> Vec<Consumed> {
    let consumer = consumer(broker);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(from))
        .unwrap();
    consumer.assign(&assignment).expect("assigning a partition");
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut records = Vec::with_capacity(count);
    let mut last_error = None;
    while records.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count} records from {topic}-{partition} at offset {from} within \
             {READ_TIMEOUT:?}; last consumer error: {last_error:?}",
            records.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(Consumed {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec),
                headers: message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: message.timestamp().to_millis(),
            }),
            Some(Err(error)) => last_error = Some(error),
            None => {}
        }
    }
    records
}

/// (low, high) watermarks of one partition: log start offset and high watermark.
pub fn watermarks(broker: &Broker, topic: &str, partition: i32) -> (i64, i64) {
    consumer(broker)
        .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets earliest/latest for {topic}-{partition}: {e}"))
}

/// Reads a whole partition (from its log start to its high watermark) and checks the high
/// watermark did not move while reading.
pub fn read_all(broker: &Broker, topic: &str, partition: i32) -> Vec<Consumed> {
    let (low, high) = watermarks(broker, topic, partition);
    let records = read_partition(broker, topic, partition, low, (high - low) as usize);
    assert_eq!(
        watermarks(broker, topic, partition).1,
        high,
        "high watermark of {topic}-{partition} moved while nothing was produced"
    );
    records
}

/// Asserts that `records` have the offsets `first, first + 1, ...` without a gap.
pub fn assert_contiguous_offsets(records: &[Consumed], first: i64) {
    for (index, record) in records.iter().enumerate() {
        assert_eq!(
            record.offset,
            first + index as i64,
            "record #{index} of partition {} has a gap or a reorder before it",
            record.partition
        );
    }
}

/// The certificate (DER) a TLS listener at `addr` presents on a fresh handshake to a client
/// that trusts the CA certificates in `ca_pem` (one or more) and checks `server_name` (a DNS
/// name or an IP address).
pub fn served_certificate(addr: std::net::SocketAddr, ca_pem: &str, server_name: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while connection.is_handshaking() {
        connection.complete_io(&mut socket).expect("TLS handshake");
    }
    connection.peer_certificates().unwrap()[0].to_vec()
}
