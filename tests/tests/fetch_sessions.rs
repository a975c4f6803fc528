//! Fetch sessions (KIP-227) with real clients: the Java client consumes a topic of many
//! partitions through incremental fetches (the broker's `weir_incremental_fetch_requests_total`
//! counts them) and reads every record once, in order; a full session cache, a broker restart
//! under a live session and partitions added to and removed from an assignment leave nothing
//! skipped or repeated; followers replicate through sessions, and one that stops for half the
//! lag after a long quiet spell (its partition skipped by the leader's session meanwhile)
//! stays in the ISR. librdkafka does not use sessions (it sends epoch -1) and still reads
//! everything. A raw client gets only changed partitions from an incremental fetch, and
//! Kafka's errors for a wrong epoch and an unknown session.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use weir_tests::broker::BrokerOptions;
use weir_tests::clients::{
    admin_options, consumer_config, producer_config, wait_for_partitions, READ_TIMEOUT,
};
use weir_tests::cluster::Cluster;
use weir_tests::http::{get, parse_prometheus};
use weir_tests::raw::{record_batch, topic_name, RawClient};
use weir_tests::{java, unique_topic, Broker};

const PARTITIONS: i32 = 240;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// A metric's value from the broker's `/metrics` (0 when absent).
fn metric(broker: &Broker, name: &str) -> f64 {
    let body = get(broker.metrics_addr(), "/metrics").body;
    parse_prometheus(&body)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// Creates `topic` with [`PARTITIONS`] partitions. A CreateTopics that times out (on a loaded
/// machine) goes on in the broker, as in Kafka: then wait for the partitions' leaders.
async fn create_many_partitions(broker: &Broker, topic: &str) {
    let results = weir_tests::clients::admin(broker)
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &admin_options(),
        )
        .await
        .expect("CreateTopics");
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::RequestTimedOut)) => {}
            Err((name, code)) => panic!("CreateTopics {name}: {code:?}"),
        }
    }
    wait_for_partitions(broker, topic, PARTITIONS);
}

fn incremental_fetches(broker: &Broker) -> f64 {
    metric(broker, "weir_incremental_fetch_requests_total")
}

fn threaded_producer(
    broker: &Broker,
) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    producer_config(broker)
        .create()
        .expect("creating an rdkafka producer")
}

/// Produces values `from..to` ("v{i}"), value `i` to partition `i % PARTITIONS`, and flushes.
fn produce(broker: &Broker, topic: &str, from: usize, to: usize) {
    let producer = threaded_producer(broker);
    for i in from..to {
        let value = format!("v{i}");
        let partition = (i % PARTITIONS as usize) as i32;
        loop {
            match producer.send(
                BaseRecord::<(), str>::to(topic)
                    .partition(partition)
                    .payload(&value),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "send: {e}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// What one consumer read: per partition, (offset, value) in arrival order.
#[derive(Default)]
struct Read(BTreeMap<i32, Vec<(i64, String)>>);

impl Read {
    fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Polls until `count` records arrived in total (panics after [`READ_TIMEOUT`]).
    fn poll_until(&mut self, consumer: &BaseConsumer, count: usize) {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut last_error = None;
        while self.len() < count {
            assert!(
                Instant::now() < deadline,
                "read {} of {count} records; last error {last_error:?}",
                self.len()
            );
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into();
                    self.0
                        .entry(m.partition())
                        .or_default()
                        .push((m.offset(), value));
                }
                Some(Err(e)) => last_error = Some(e),
                None => {}
            }
        }
    }

    /// Every value `0..total` exactly once, at offset `i / PARTITIONS` of partition
    /// `i % PARTITIONS`, in offset order.
    fn assert_exactly(&self, total: usize) {
        assert_eq!(self.len(), total, "records read");
        for (partition, records) in &self.0 {
            for (index, (offset, value)) in records.iter().enumerate() {
                assert_eq!(
                    *offset, index as i64,
                    "partition {partition}: gap or repeat"
                );
                let i = index * PARTITIONS as usize + *partition as usize;
                assert_eq!(
                    value,
                    &format!("v{i}"),
                    "partition {partition} offset {offset}"
                );
            }
        }
    }
}

fn assign_all(consumer: &BaseConsumer, topic: &str, partitions: std::ops::Range<i32>) {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
}

fn many_partitions_consumer(broker: &Broker) -> BaseConsumer {
    let mut config: ClientConfig = consumer_config(broker);
    config.set("fetch.wait.max.ms", "50");
    config.create().expect("consumer")
}

/// `tests/java/SessionConsumer.java` on `PARTITIONS` partitions of a topic, driven over its
/// stdin.
struct JavaConsumer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl JavaConsumer {
    /// `None` when Java is not installed (the test is skipped; a failure under `CI`).
    fn start(broker: &Broker, topic: &str) -> Option<JavaConsumer> {
        let classpath = java::client_classpath()?;
        let program =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("java/SessionConsumer.java");
        let mut child = Command::new("java")
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["-cp", &classpath])
            .arg(program)
            .args([
                broker.bootstrap(),
                topic.to_string(),
                PARTITIONS.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting java");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Some(JavaConsumer {
            child,
            stdin,
            stdout,
        })
    }

    fn assign(&mut self, partitions: std::ops::Range<i32>) {
        writeln!(self.stdin, "assign {} {}", partitions.start, partitions.end).expect("write");
    }

    /// Reads until `total` records arrived in all (the program gives up after 60 s).
    fn read(&mut self, total: usize) {
        writeln!(self.stdin, "read {total}").expect("write");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), format!("READ {total}"), "SessionConsumer.java");
    }
}

impl Drop for JavaConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn java_consumer_reads_many_partitions_through_incremental_fetches() {
    let broker = Broker::start_default();
    let topic = unique_topic("sessions-java");
    create_many_partitions(&broker, &topic).await;
    let Some(mut java) = JavaConsumer::start(&broker, &topic) else {
        return;
    };
    produce(&broker, &topic, 0, 2_400);
    java.assign(0..PARTITIONS);
    java.read(2_400);
    // A trickle over all partitions arrives through the session.
    for round in 0..5 {
        produce(&broker, &topic, 2_400 + round * 240, 2_640 + round * 240);
        java.read(2_640 + round * 240);
    }
    assert!(
        incremental_fetches(&broker) > 0.0,
        "no incremental fetch was answered"
    );
    assert!(
        metric(
            &broker,
            "kafka_server_fetch_session_cache_num_incremental_fetch_partitions_cached"
        ) >= PARTITIONS as f64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_java_consumer_progresses_without_a_slot() {
    let broker =
        Broker::start(BrokerOptions::default().set("max.incremental.fetch.session.cache.slots", 1));
    let topic = unique_topic("sessions-full");
    create_many_partitions(&broker, &topic).await;
    // A raw client takes the only slot; the consumer's session cannot evict it (a young
    // session is evictable only by a follower's), so the consumer keeps sending full fetches.
    let mut raw = RawClient::connect(broker.kafka_addr());
    let holder = raw
        .request(&session_fetch(&topic, 0..1, 0, 0), 12)
        .expect("full fetch");
    assert_ne!(holder.session_id, 0);
    let Some(mut java) = JavaConsumer::start(&broker, &topic) else {
        return;
    };
    produce(&broker, &topic, 0, 1_200);
    java.assign(0..PARTITIONS);
    java.read(1_200);
    produce(&broker, &topic, 1_200, 1_800);
    java.read(1_800);
    assert_eq!(incremental_fetches(&broker), 0.0);
    assert_eq!(
        metric(
            &broker,
            "kafka_server_fetch_session_cache_num_incremental_fetch_sessions"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_under_a_live_session_skips_nothing() {
    let mut broker = Broker::start_default();
    let topic = unique_topic("sessions-restart");
    create_many_partitions(&broker, &topic).await;
    let Some(mut java) = JavaConsumer::start(&broker, &topic) else {
        return;
    };
    produce(&broker, &topic, 0, 1_200);
    java.assign(0..PARTITIONS);
    java.read(1_200);
    produce(&broker, &topic, 1_200, 1_440);
    java.read(1_440);
    assert!(incremental_fetches(&broker) > 0.0);
    // The restarted broker knows no session: the consumer's next incremental fetch gets
    // FETCH_SESSION_ID_NOT_FOUND and it starts over with a full fetch.
    broker.restart();
    produce(&broker, &topic, 1_440, 2_400);
    java.read(2_400);
    produce(&broker, &topic, 2_400, 2_640);
    java.read(2_640);
    weir_tests::wait_until(
        Duration::from_secs(30),
        "an incremental fetch after the restart",
        || (incremental_fetches(&broker) > 0.0).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_added_and_removed_under_a_live_session() {
    let broker = Broker::start_default();
    let topic = unique_topic("sessions-assign");
    create_many_partitions(&broker, &topic).await;
    let Some(mut java) = JavaConsumer::start(&broker, &topic) else {
        return;
    };
    produce(&broker, &topic, 0, 2_400);
    let half = PARTITIONS / 2;
    java.assign(0..half);
    java.read(1_200);
    // The other half joins the live session (sent as added partitions).
    java.assign(0..PARTITIONS);
    java.read(2_400);
    // The first half leaves it (forgotten partitions): only the second half's new records
    // arrive, each once (the program checks offsets and values).
    java.assign(half..PARTITIONS);
    produce(&broker, &topic, 2_400, 4_800);
    java.read(3_600);
    produce(&broker, &topic, 4_800, 5_040);
    java.read(3_720);
    assert!(incremental_fetches(&broker) > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_fetches_without_sessions_and_reads_everything() {
    // librdkafka does not implement KIP-227: it sends epoch -1, which opens no session.
    let broker = Broker::start_default();
    let topic = unique_topic("sessions-rdkafka");
    create_many_partitions(&broker, &topic).await;
    produce(&broker, &topic, 0, 2_400);
    let consumer = many_partitions_consumer(&broker);
    assign_all(&consumer, &topic, 0..PARTITIONS);
    let mut read = Read::default();
    read.poll_until(&consumer, 2_400);
    produce(&broker, &topic, 2_400, 3_000);
    read.poll_until(&consumer, 3_000);
    read.assert_exactly(3_000);
    assert_eq!(
        metric(
            &broker,
            "kafka_server_fetch_session_cache_num_incremental_fetch_sessions"
        ),
        0.0
    );
}

/// A v12 full fetch (epoch 0) of `partitions` of `topic` from offset 0.
fn session_fetch(
    topic: &str,
    partitions: std::ops::Range<i32>,
    id: i32,
    epoch: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1024 * 1024)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                partitions
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1024 * 1024)
                    })
                    .collect(),
            )])
}

#[test]
fn raw_sessions_answer_changes_and_check_epochs() {
    let broker = Broker::start_default();
    let topic = unique_topic("sessions-raw");
    let mut client = RawClient::connect(broker.kafka_addr());
    client.create_topic_ok(&topic, 3);
    let full = client
        .request(&session_fetch(&topic, 0..3, 0, 0), 12)
        .expect("full fetch");
    assert_eq!(full.error_code, 0);
    assert_ne!(full.session_id, 0, "a full fetch opens a session");
    assert_eq!(full.responses[0].partitions.len(), 3);
    let id = full.session_id;
    // Nothing changed: the incremental answer holds no partition.
    let empty = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_session_id(id)
        .with_session_epoch(1);
    let answer = client.request(&empty, 12).expect("incremental fetch");
    assert_eq!((answer.error_code, answer.session_id), (0, id));
    assert!(answer.responses.is_empty(), "{answer:?}");
    // A record in partition 1: only partition 1 answers.
    assert_eq!(
        client
            .produce(&topic, 1, record_batch(&[b"one"], None), -1)
            .error_code,
        0
    );
    let answer = client
        .request(&empty.clone().with_session_epoch(2), 12)
        .expect("incremental fetch");
    let answered: Vec<i32> = answer
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect();
    assert_eq!(answered, vec![1]);
    // The same epoch again, or a skipped one: INVALID_FETCH_SESSION_EPOCH, no partitions.
    for epoch in [2, 9] {
        let refused = client
            .request(&empty.clone().with_session_epoch(epoch), 12)
            .expect("fetch");
        assert_eq!(refused.error_code, INVALID_FETCH_SESSION_EPOCH);
        assert!(refused.responses.is_empty());
    }
    let unknown = client
        .request(
            &empty
                .clone()
                .with_session_id(id ^ 0x55)
                .with_session_epoch(1),
            12,
        )
        .expect("fetch");
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // Epoch -1 closes the session; it is then unknown.
    let closed = client
        .request(&session_fetch(&topic, 0..1, id, -1), 12)
        .expect("final fetch");
    assert_eq!((closed.error_code, closed.session_id), (0, 0));
    let gone = client
        .request(&empty.clone().with_session_epoch(3), 12)
        .expect("fetch");
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_replicate_through_sessions() {
    let cluster = Cluster::start(3, &[]);
    let topic = unique_topic("sessions-followers");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(&topic, 12, TopicReplication::Fixed(3))],
            &admin_options(),
        )
        .await
        .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..12 {
        cluster.wait_partition(&topic, p, Duration::from_secs(30), "a full ISR", |v| {
            v.leader >= 0 && v.isr.len() == 3
        });
    }
    // Each broker leads some partitions and follows the others: each holds its followers'
    // sessions and answers their incremental fetches (records keep the ISR full).
    let producer: FutureProducer = cluster.client_config().create().expect("producer");
    for i in 0..120 {
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::<(), str>::to(&topic)
                    .partition(i % 12)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .expect("acks");
    }
    weir_tests::wait_until(
        Duration::from_secs(30),
        "every broker answering its followers' incremental fetches",
        || {
            cluster
                .brokers
                .iter()
                .all(|b| {
                    incremental_fetches(b) > 0.0
                        && metric(
                            b,
                            "kafka_server_fetch_session_cache_num_incremental_fetch_sessions",
                        ) >= 2.0
                })
                .then_some(())
        },
    );
    for p in 0..12 {
        cluster.wait_partition(&topic, p, Duration::from_secs(30), "a full ISR", |v| {
            v.isr.len() == 3
        });
    }
}

/// A leader's fetch session skips a follower's settled partitions until they change, yet the
/// follower must count as caught up for as long as it keeps fetching them, as in Kafka: after
/// a quiet spell twice `replica.lag.time.max.ms` long, a follower that then stops for about
/// half that lag stays in the ISR when records arrive meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_quiet_for_longer_than_the_lag_stays_in_the_isr() {
    // The leader looks for lagging followers every half lag (5 s): a pause of 6.5 s meets at
    // least one look, and leaves a follower that fetched until it well inside the lag.
    const MAX_LAG_MS: u64 = 10_000;
    const PAUSE_MS: u64 = 6_500;
    let lag = MAX_LAG_MS.to_string();
    // Broker 0 alone is the metadata quorum: pausing broker 2 moves no controller; its
    // broker session outlasts the pause, so the controller does not fence it either.
    let mut cluster = Cluster::start_with_voters(
        3,
        1,
        &[
            ("replica.lag.time.max.ms", &lag),
            ("broker.session.timeout.ms", "30000"),
        ],
    );
    let topic = unique_topic("sessions-quiet");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    for r in admin
        .create_topics(
            [&NewTopic::new(
                &topic,
                1,
                TopicReplication::Variable(&[&[0, 1, 2]]),
            )],
            &admin_options(),
        )
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    cluster.wait_partition(
        &topic,
        0,
        Duration::from_secs(30),
        "a full ISR led by 0",
        |v| v.leader == 0 && v.isr.len() == 3,
    );
    let mut leader = RawClient::connect(cluster.brokers[0].kafka_addr());
    let first = leader.produce(&topic, 0, record_batch(&[b"before"], None), -1);
    assert_eq!(first.error_code, 0, "{first:?}");
    // Quiet for twice the lag, while the followers' sessions keep fetching a partition that
    // does not change (the leader answers their incremental fetches all along).
    let fetches_before = incremental_fetches(&cluster.brokers[0]);
    let quiet_until = Instant::now() + Duration::from_millis(2 * MAX_LAG_MS);
    weir_tests::wait_until(
        Duration::from_secs(60),
        "a quiet spell of twice the lag",
        || {
            (Instant::now() >= quiet_until
                && incremental_fetches(&cluster.brokers[0]) >= fetches_before + 8.0)
                .then_some(())
        },
    );
    let shrinks = |cluster: &Cluster| metric(&cluster.brokers[0], "weir_isr_shrinks_total");
    let expands = |cluster: &Cluster| metric(&cluster.brokers[0], "weir_isr_expands_total");
    assert_eq!(
        shrinks(&cluster),
        0.0,
        "no follower left the ISR while quiet"
    );
    cluster.wait_partition(
        &topic,
        0,
        Duration::from_secs(30),
        "a full ISR after the quiet",
        |v| v.isr.len() == 3,
    );
    let expands_before = expands(&cluster);
    // Broker 2 stops fetching for about half the lag; a record arrives meanwhile.
    cluster.pause(2);
    let during = leader.produce(&topic, 0, record_batch(&[b"during"], None), 1);
    assert_eq!(during.error_code, 0, "{during:?}");
    // The pause's length is the scenario, not a wait for a condition.
    tokio::time::sleep(Duration::from_millis(PAUSE_MS)).await;
    cluster.resume(2);
    // It catches up; the leader never dropped it.
    let after = leader.produce(&topic, 0, record_batch(&[b"after"], None), -1);
    assert_eq!((after.error_code, after.base_offset), (0, 2), "{after:?}");
    cluster.wait_partition(&topic, 0, Duration::from_secs(30), "a full ISR", |v| {
        v.isr.len() == 3
    });
    assert_eq!(
        (shrinks(&cluster), expands(&cluster)),
        (0.0, expands_before),
        "a follower paused for about half the lag after a quiet spell left the ISR"
    );
}
