//! Client quotas as users meet them: `kafka-configs --entity-type clients|users` sets,
//! describes and deletes them (and they survive a restart); a client over its
//! `producer_byte_rate` is told to wait (`throttle_time_ms`) and its connection is muted for
//! that long; librdkafka producers and consumers are held to their byte rates, with every
//! record delivered in order, and the broker's quota metrics show the throttling; a client over
//! its `request_percentage` (the share of a thread its requests took) is told to wait on any
//! request, and muted; a client over its `controller_mutation_rate` (partitions created, added
//! or deleted per second) is refused further topics with THROTTLING_QUOTA_EXCEEDED until its
//! bucket refills, and none of the refused topics is created or deleted.

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, AlterClientQuotasRequest,
    CreateTopicsRequest, DeleteTopicsRequest, DescribeClientQuotasRequest, MetadataRequest,
    ProduceRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use weir_tests::cluster::send_all;
use weir_tests::http::{get, parse_prometheus};
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::raw::{self, RawClient};
use weir_tests::{clients, unique_topic, Broker, BrokerOptions};

const CONFIGS: &str = "kafka.admin.ConfigCommand";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Sets `key` to `bytes_per_second` for client id `client` with AlterClientQuotas.
fn set_client_quota(broker: &Broker, client: &str, key: &str, bytes_per_second: f64) {
    let mut raw = RawClient::connect(broker.kafka_addr());
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        alter_client_quotas_request::EntryData::default()
            .with_entity(vec![alter_client_quotas_request::EntityData::default()
                .with_entity_type(s("client-id"))
                .with_entity_name(Some(s(client)))])
            .with_ops(vec![alter_client_quotas_request::OpData::default()
                .with_key(s(key))
                .with_value(bytes_per_second)]),
    ]);
    let response = raw.request(&request, 1).expect("AlterClientQuotas");
    assert_eq!(response.entries.len(), 1);
    assert_eq!(
        response.entries[0].error_code, 0,
        "{:?}",
        response.entries[0].error_message
    );
}

/// The sum of metric `name` over the samples labelled with `client_id`.
fn metric(broker: &Broker, name: &str, client_id: &str) -> f64 {
    let body = get(broker.metrics_addr(), "/metrics").body;
    parse_prometheus(&body)
        .iter()
        .filter(|s| s.name == name && s.label("client_id") == Some(client_id))
        .map(|s| s.value)
        .sum()
}

/// A produce request (acks=1) of one batch of `count` records of `size` bytes each.
fn produce(topic: &str, count: usize, size: usize) -> ProduceRequest {
    let value = vec![b'q'; size];
    let values: Vec<&[u8]> = vec![value.as_slice(); count];
    raw::produce_request(topic, 0, raw::record_batch(&values, None), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_produce_quota_is_told_to_wait_and_its_connection_is_muted() {
    // Two one-second windows: the rate is measured over at least one second.
    let broker = Broker::start(
        BrokerOptions::default()
            .set("quota.window.num", 2)
            .set("quota.window.size.seconds", 1),
    );
    let topic = unique_topic("quota-raw");
    clients::create_topic(&broker, &topic, 1).await;
    // The raw client's id is `weir-raw-client`.
    set_client_quota(&broker, "weir-raw-client", "producer_byte_rate", 100_000.0);
    let mut raw = RawClient::connect(broker.kafka_addr());
    // ~300 KB at once: three times the quota over the one-second minimum, so two seconds of
    // silence bring it back (Kafka's (rate - quota) / quota * window).
    let first = raw
        .request(&produce(&topic, 300, 1000), 9)
        .expect("a produce over the quota");
    let sent_at = Instant::now();
    let partition = &first.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    assert_eq!(
        partition.base_offset, 0,
        "the records are appended all the same"
    );
    let throttle = Duration::from_millis(first.throttle_time_ms as u64);
    assert!(
        throttle >= Duration::from_millis(1500) && throttle <= Duration::from_secs(2),
        "throttle_time_ms {}",
        first.throttle_time_ms
    );
    // The next request on the connection is read only once the throttle has passed.
    let second = raw
        .request(&produce(&topic, 1, 10), 9)
        .expect("a produce after the throttle");
    assert!(
        sent_at.elapsed() >= throttle.mul_f64(0.9),
        "answered {:?} after a throttle of {throttle:?}",
        sent_at.elapsed()
    );
    assert_eq!(second.responses[0].partition_responses[0].base_offset, 300);
    assert!(
        metric(
            &broker,
            "kafka_server_produce_throttle_time_ms_total",
            "weir-raw-client"
        ) >= throttle.as_millis() as f64
    );
    // A client without a quota is neither measured nor throttled.
    assert_eq!(
        metric(&broker, "kafka_server_produce_byte_rate", "someone-else"),
        0.0
    );
}

/// A request quota (`request_percentage`) holds a client to a share of one thread's time,
/// whatever it asks: Metadata requests from a client allowed 0.01 % (0.1 ms of handling a
/// second) soon get `throttle_time_ms`, the connection reads nothing more for that long, the
/// metrics show it; a client without a quota is not measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_request_percentage_is_throttled_on_any_request() {
    let broker = Broker::start(
        BrokerOptions::default()
            .set("quota.window.num", 2)
            .set("quota.window.size.seconds", 1),
    );
    set_client_quota(&broker, "weir-raw-client", "request_percentage", 0.01);
    let mut raw = RawClient::connect(broker.kafka_addr());
    let metadata = MetadataRequest::default().with_topics(Some(Vec::new()));
    let mut throttled = None;
    for _ in 0..200 {
        let response = raw.request(&metadata, 12).expect("Metadata");
        if response.throttle_time_ms > 0 {
            throttled = Some((
                Duration::from_millis(response.throttle_time_ms as u64),
                Instant::now(),
            ));
            break;
        }
    }
    let (throttle, at) = throttled.expect("no Metadata response was throttled in 200 requests");
    assert!(
        throttle <= Duration::from_secs(2),
        "capped at the measured period: {throttle:?}"
    );
    raw.request(&metadata, 12)
        .expect("Metadata after the throttle");
    assert!(
        at.elapsed() >= throttle.mul_f64(0.9),
        "answered {:?} after a throttle of {throttle:?}",
        at.elapsed()
    );
    assert!(
        metric(
            &broker,
            "kafka_server_request_throttle_time_ms_total",
            "weir-raw-client"
        ) >= throttle.as_millis() as f64
    );
    assert!(
        metric(
            &broker,
            "kafka_server_request_request_time",
            "weir-raw-client"
        ) > 0.0
    );
    assert_eq!(
        metric(&broker, "kafka_server_request_request_time", "someone-else"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_producers_and_consumers_are_held_to_their_byte_rates() {
    // Six one-second windows: the rate is measured over at least five seconds, long beside a
    // request, so the client is held to its quota (with two windows a client sending 1 MiB
    // requests gets a second of credit after each throttle and runs well above it).
    let (window_num, quota) = (6u32, 256.0 * 1024.0);
    let broker = Broker::start(
        BrokerOptions::default()
            .set("quota.window.num", window_num)
            .set("quota.window.size.seconds", 1),
    );
    let topic = unique_topic("quota-rates");
    clients::create_topic(&broker, &topic, 1).await;
    set_client_quota(&broker, "capped-producer", "producer_byte_rate", quota);
    set_client_quota(&broker, "capped-consumer", "consumer_byte_rate", quota);
    // 3 MiB in 1 KiB records; the first (windows - 1) seconds of quota pass as a burst.
    let total = 3 * 1024 * 1024;
    let values: Vec<String> = (0..total / 1024)
        .map(|i| format!("{i:08}{}", "v".repeat(1016)))
        .collect();
    let least = Duration::from_secs_f64((total as f64 - quota * f64::from(window_num - 1)) / quota);

    let producer = clients::producer(
        &broker,
        &[
            ("client.id", "capped-producer"),
            ("linger.ms", "5"),
            ("batch.size", "65536"),
        ],
    );
    let started = Instant::now();
    let acked = send_all(&producer, &topic, 0, &values).await;
    let produce_time = started.elapsed();
    assert_eq!(acked.len(), values.len(), "every record acknowledged");
    assert!(
        produce_time >= least.mul_f64(0.75),
        "3 MiB produced in {produce_time:?} at a quota of 256 KiB/s (at least {least:?} expected)"
    );
    assert!(
        metric(
            &broker,
            "kafka_server_produce_throttle_time_ms_total",
            "capped-producer"
        ) > 0.0
    );

    let consumer: BaseConsumer = clients::consumer_config(&broker)
        .set("client.id", "capped-consumer")
        .set("message.max.bytes", "65536")
        .set("fetch.max.bytes", "131072")
        .set("max.partition.fetch.bytes", "131072")
        .create()
        .expect("creating a consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut consumed = Vec::with_capacity(values.len());
    while consumed.len() < values.len() {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {}",
            consumed.len(),
            values.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("a record");
            assert_eq!(message.offset(), consumed.len() as i64, "in order, no gap");
            consumed.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    let consume_time = started.elapsed();
    assert_eq!(consumed, values, "every byte, in order");
    assert!(
        consume_time >= least.mul_f64(0.75),
        "3 MiB consumed in {consume_time:?} at a quota of 256 KiB/s (at least {least:?} expected)"
    );
    assert!(
        metric(
            &broker,
            "kafka_server_fetch_throttle_time_ms_total",
            "capped-consumer"
        ) > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_configs_sets_describes_and_deletes_quotas_and_they_survive_a_restart() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let mut broker = Broker::start(BrokerOptions::default());
    let run = |bootstrap: &str, args: &[&str]| {
        tools.run(
            CONFIGS,
            &[&["--bootstrap-server", bootstrap], args].concat(),
        )
    };
    let run_ok = |bootstrap: &str, args: &[&str]| {
        let out = run(bootstrap, args);
        assert!(out.success, "kafka-configs {args:?}: {out:?}");
        out.stdout
    };
    let bootstrap = broker.bootstrap();
    let configs = |args: &[&str]| run_ok(&bootstrap, args);
    let out = configs(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--alter",
        "--add-config",
        "producer_byte_rate=1048576,consumer_byte_rate=2097152",
    ]);
    assert!(
        out.contains("Completed updating config for client app"),
        "{out}"
    );
    configs(&[
        "--entity-type",
        "users",
        "--entity-default",
        "--alter",
        "--add-config",
        "producer_byte_rate=500000",
    ]);
    configs(&[
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--alter",
        "--add-config",
        "consumer_byte_rate=4096",
    ]);
    let out = configs(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--describe",
    ]);
    assert!(
        out.contains("consumer_byte_rate=2097152") && out.contains("producer_byte_rate=1048576"),
        "{out}"
    );
    // --describe of users also lists SCRAM credentials (DescribeUserScramCredentials).
    let out = configs(&["--entity-type", "users", "--describe"]);
    assert!(out.contains("producer_byte_rate=500000"), "{out}");
    let out = configs(&[
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
        "--entity-type",
        "clients",
        "--describe",
    ]);
    assert!(out.contains("consumer_byte_rate=4096"), "{out}");

    // The controller mutation rate is a quota like the others.
    let set = run(
        &bootstrap,
        &[
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
            "--alter",
            "--add-config",
            "controller_mutation_rate=50",
        ],
    );
    assert!(set.success, "{set:?}");
    let out = configs(&[
        "--entity-type",
        "clients",
        "--entity-name",
        "app",
        "--describe",
    ]);
    assert!(out.contains("controller_mutation_rate=50"), "{out}");
    // A byte rate that is not a whole number is refused, saying so, as Kafka's controller does.
    let refused = run(
        &bootstrap,
        &[
            "--entity-type",
            "clients",
            "--entity-name",
            "app",
            "--alter",
            "--add-config",
            "producer_byte_rate=1.5",
        ],
    );
    assert!(!refused.success);
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("whole number"),
        "{refused:?}"
    );

    // The quotas are in the metadata log: a restart keeps them.
    broker.restart();
    let bootstrap = broker.bootstrap();
    let describe = DescribeClientQuotasRequest::default().with_components(vec![
        describe_client_quotas_request::ComponentData::default()
            .with_entity_type(s("client-id"))
            .with_match_type(0)
            .with_match(Some(s("app"))),
    ]);
    let mut raw = RawClient::connect(broker.kafka_addr());
    let described = raw.request(&describe, 1).expect("DescribeClientQuotas");
    let entries = described.entries.expect("entries");
    // Not strict: both `app` and `alice`/`app` match.
    assert_eq!(entries.len(), 2, "{entries:?}");

    let app = ["--entity-type", "clients", "--entity-name", "app"];
    let out = run_ok(
        &bootstrap,
        &[
            &app[..],
            &["--alter", "--delete-config", "producer_byte_rate"],
        ]
        .concat(),
    );
    assert!(
        out.contains("Completed updating config for client app"),
        "{out}"
    );
    let out = run_ok(&bootstrap, &[&app[..], &["--describe"]].concat());
    assert!(
        out.contains("consumer_byte_rate=2097152") && !out.contains("producer_byte_rate"),
        "{out}"
    );
}

/// CreateTopics of `(name, partitions)`: each topic's error code, and the throttle time.
fn create_topics(broker: &Broker, topics: &[(&str, i32)], version: i16) -> (Vec<i16>, Duration) {
    let request = CreateTopicsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    CreatableTopic::default()
                        .with_name(raw::topic_name(name))
                        .with_num_partitions(*partitions)
                        .with_replication_factor(1)
                })
                .collect(),
        )
        .with_timeout_ms(30_000);
    // A connection per request: a throttled one is muted for the throttle time.
    let mut raw = RawClient::connect(broker.kafka_addr());
    let response = raw.request(&request, version).expect("CreateTopics");
    (
        response.topics.iter().map(|t| t.error_code).collect(),
        Duration::from_millis(response.throttle_time_ms.max(0) as u64),
    )
}

/// Partition counts of `topics` (absent ones missing).
fn partition_counts(broker: &Broker, topics: &[&str]) -> Vec<(String, usize)> {
    let mut raw = RawClient::connect(broker.kafka_addr());
    let request = MetadataRequest::default().with_topics(None);
    let response = raw.request(&request, 12).expect("Metadata");
    let mut counts: Vec<(String, usize)> = response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let name = t.name.as_ref()?.to_string();
            let partitions = t.partitions.len();
            topics
                .contains(&name.as_str())
                .then_some((name, partitions))
        })
        .collect();
    counts.sort();
    counts
}

/// KIP-599's controller mutation quota: `controller_mutation_rate=2` over 5 windows of 1 s is a
/// bucket of 10 partitions refilled at 2 a second. Topics are admitted while it is not empty
/// (the one that empties it past zero too, and the response is not throttled); then, from the
/// versions that know the error, each further topic is THROTTLING_QUOTA_EXCEEDED and not
/// created (or not deleted), with the time until the bucket is back at zero; older versions
/// are admitted and throttled. Once it has refilled, the refused topic is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_controller_mutation_rate_is_refused_further_topics() {
    const THROTTLED: i16 = 89; // THROTTLING_QUOTA_EXCEEDED
    let broker = Broker::start(
        BrokerOptions::default()
            .set("quota.window.num", 5)
            .set("quota.window.size.seconds", 1),
    );
    set_client_quota(&broker, "weir-raw-client", "controller_mutation_rate", 2.0);
    let name = |n: &str| format!("{}-{n}", unique_topic("mutations"));
    let (a, b, c, d, e) = (name("a"), name("b"), name("c"), name("d"), name("e"));

    // 4 + 4 + 4 partitions from a bucket of 10: all three admitted, the last one past zero.
    let (codes, throttle) = create_topics(&broker, &[(&a, 4), (&b, 4), (&c, 4)], 7);
    assert_eq!(codes, [0, 0, 0]);
    assert_eq!(
        throttle,
        Duration::ZERO,
        "a strict quota admits without throttling"
    );

    // The bucket is 2 below zero: the next topic is refused, with about a second to wait.
    let refused_at = Instant::now();
    let (codes, throttle) = create_topics(&broker, &[(&d, 1)], 7);
    assert_eq!(codes, [THROTTLED]);
    assert!(
        throttle > Duration::ZERO && throttle <= Duration::from_secs(1),
        "throttle {throttle:?}"
    );
    // Deleting is a mutation too: refused, the topic stays.
    let mut raw = RawClient::connect(broker.kafka_addr());
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![raw::topic_name(&a)])
        .with_timeout_ms(30_000);
    let response = raw.request(&delete, 5).expect("DeleteTopics");
    assert_eq!(response.responses[0].error_code, THROTTLED);
    let all = [a.as_str(), b.as_str(), c.as_str(), d.as_str(), e.as_str()];
    assert_eq!(
        partition_counts(&broker, &all),
        vec![(a.clone(), 4), (b.clone(), 4), (c.clone(), 4)],
        "a refused topic was created or deleted"
    );

    // Once the bucket has refilled the refused topic goes through.
    weir_tests::wait_until(Duration::from_secs(15), "the bucket to refill", || {
        let (codes, _) = create_topics(&broker, &[(&d, 1)], 7);
        (codes == [0]).then_some(())
    });
    assert!(refused_at.elapsed() >= throttle.mul_f64(0.9));

    // An older version (v5) is never refused: admitted past zero and throttled by the debt.
    let (codes, throttle) = create_topics(&broker, &[(&e, 6)], 5);
    assert_eq!(codes, [0]);
    assert!(
        throttle > Duration::ZERO,
        "a permissive quota throttles past zero"
    );
    assert_eq!(
        partition_counts(&broker, &all).len(),
        5,
        "every admitted topic exists"
    );
    assert!(
        metric(
            &broker,
            "kafka_server_controller_mutation_throttle_time_ms_total",
            "weir-raw-client"
        ) > 0.0
    );
}
