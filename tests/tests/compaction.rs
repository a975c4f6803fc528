//! Log compaction against a real broker with a real client: a compacted topic keeps exactly
//! the latest record per key at its original offset once the cleaner has run, refuses keyless
//! records, and a broker SIGKILLed at random points while cleaning recovers a log that still
//! holds every key's latest value at its offset.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::raw::{decode_records, RawClient};
use weir_tests::segments::{log_bytes, segment_files};
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);

/// (key, value) of every produced record, by offset.
type Produced = BTreeMap<i64, (String, String)>;

fn broker(extra: &[(&str, &str)]) -> Broker {
    let mut options = BrokerOptions::default().set("log.cleaner.backoff.ms", 100);
    for (k, v) in extra {
        options = options.set(k, v);
    }
    Broker::start(options)
}

fn compacted_topic(broker: &Broker, topic: &str, segment_bytes: &str) {
    topic_with_policy(broker, topic, segment_bytes, "compact");
}

fn topic_with_policy(broker: &Broker, topic: &str, segment_bytes: &str, policy: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(clients::create_topic_with(
        broker,
        topic,
        1,
        &[
            ("cleanup.policy", policy),
            ("segment.bytes", segment_bytes),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    ));
}

/// Produces `count` updates round-robin over `keys` keys, waiting for every acknowledgement.
fn produce_updates(
    producer: &FutureProducer,
    topic: &str,
    count: usize,
    keys: usize,
    value_bytes: usize,
) -> Produced {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut pending = Vec::with_capacity(count);
        for i in 0..count {
            let key = format!("key-{:03}", i % keys);
            let mut value = format!("value-{i:07}-");
            value.extend(std::iter::repeat_n(
                '.',
                value_bytes.saturating_sub(value.len()),
            ));
            let record = FutureRecord::to(topic)
                .partition(0)
                .key(&key)
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(e, _)| panic!("enqueueing: {e}"));
            pending.push((key, value, delivery));
        }
        let mut produced = Produced::new();
        for (key, value, delivery) in pending {
            let delivered = delivery
                .await
                .expect("delivery future")
                .unwrap_or_else(|(e, _)| panic!("producing: {e}"));
            produced.insert(delivered.offset, (key, value));
        }
        produced
    })
}

/// Every record of partition 0 from its start to its end: (offset, key, value).
fn read_everything(broker: &Broker, topic: &str) -> Vec<(i64, String, String)> {
    let consumer: BaseConsumer = clients::consumer_config(broker)
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + clients::READ_TIMEOUT;
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "reading {topic} to its end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap(),
                String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
}

fn checkpoint(dir: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("cleaner-offset-checkpoint")).ok()?;
    text.lines().nth(1)?.trim().parse().ok()
}

fn active_base(dir: &Path) -> i64 {
    let last = segment_files(dir).into_iter().last().unwrap();
    last.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Every record read is one that was produced, at its offset; and each key's last value is
/// the latest produced one.
fn assert_consistent(read: &[(i64, String, String)], produced: &Produced) {
    let mut last_read: BTreeMap<&str, &str> = BTreeMap::new();
    let mut previous = -1;
    for (offset, key, value) in read {
        assert!(
            *offset > previous,
            "offsets go up: {previous} then {offset}"
        );
        previous = *offset;
        let (k, v) = produced
            .get(offset)
            .unwrap_or_else(|| panic!("offset {offset} was never produced"));
        assert_eq!((k, v), (key, value), "record at offset {offset}");
        last_read.insert(key, value);
    }
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in produced.values() {
        latest.insert(key, value);
    }
    assert_eq!(last_read, latest, "each key's latest value");
}

#[test]
fn compacted_topic_keeps_exactly_the_latest_value_per_key_at_its_offset() {
    let broker = broker(&[]);
    let topic = unique_topic("compacted");
    compacted_topic(&broker, &topic, "4096");
    let producer = clients::producer(
        &broker,
        &[("compression.type", "lz4"), ("batch.num.messages", "10")],
    );
    let produced = produce_updates(&producer, &topic, 4000, 10, 60);
    let dir = broker.partition_dir(&topic, 0);
    // The log rolled many times: most records lie below the active segment. (Not a count of
    // segment files: with the cleaner running during the produce, as it does on a slow
    // machine, cleaned segments are already merged into fewer files.)
    let rolled_past = active_base(&dir);
    assert!(
        rolled_past >= 1000,
        "the active segment starts at offset {rolled_past}: the log did not roll as expected"
    );

    // Cleaned up to the active segment: the whole log below it holds one record per key.
    let end = wait_until(
        CLEAN_TIMEOUT,
        "the cleaner reaches the active segment",
        || {
            let active = active_base(&dir);
            (checkpoint(&dir) == Some(active)).then_some(active)
        },
    );
    let read = read_everything(&broker, &topic);
    let mut latest_below: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in produced.range(..end) {
        latest_below.insert(key, *offset);
    }
    let expected: Vec<(i64, String, String)> = produced
        .iter()
        .filter(|(offset, (key, _))| {
            **offset >= end || latest_below.get(key.as_str()) == Some(offset)
        })
        .map(|(offset, (k, v))| (*offset, k.clone(), v.clone()))
        .collect();
    assert_eq!(read, expected);
    assert_consistent(&read, &produced);
    let (low, high) = clients::watermarks(&broker, &topic, 0);
    assert_eq!((low, high), (0, 4000), "offsets never change");

    // Fetching from inside a removed range returns the next retained record.
    let removed = (0..end).find(|o| !read.iter().any(|r| r.0 == *o)).unwrap();
    let next = read.iter().find(|r| r.0 > removed).unwrap().clone();
    let from_gap = clients::read_partition(&broker, &topic, 0, removed, 1);
    assert_eq!(from_gap[0].offset, next.0);

    // Metrics say what happened.
    let metrics = weir_tests::http::get(broker.metrics_addr(), "/metrics").body;
    assert!(
        metrics.contains("weir_log_cleaner_passes_total"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "weir_log_cleaner_dirty_ratio{{partition=\"0\",topic=\"{topic}\"}}"
    )));
}

#[test]
fn keyless_records_are_refused_with_invalid_record() {
    let broker = broker(&[]);
    let topic = unique_topic("compacted-keyless");
    compacted_topic(&broker, &topic, "4096");
    let producer = clients::producer(&broker, &[("retries", "0")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(
        producer.send(
            FutureRecord::<[u8], [u8]>::to(&topic)
                .partition(0)
                .payload(b"no key"),
            Duration::from_secs(10),
        ),
    );
    match result {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    let (_, offset) = rt.block_on(clients::produce_one(
        &producer,
        &topic,
        Some(0),
        Some(b"k"),
        b"v",
    ));
    assert_eq!(offset, 0);
}

/// SIGKILL at several points of a throttled cleaning pass, then restart: the log recovers
/// with every key's latest value, every record at its original offset, and the log end where
/// it was.
#[test]
fn sigkill_while_cleaning_leaves_a_log_that_recovers() {
    let mut interrupted = Vec::new();
    // Delays after the first `.cleaned` file shows up; the throttle makes a pass take seconds.
    // At 100 kB/s a pass over this topic takes about 2.3 s, its rewrite the second half.
    for delay_ms in [0u64, 100, 250, 450, 700, 1000] {
        let mut broker = broker(&[("log.cleaner.io.max.bytes.per.second", "100000")]);
        let topic = unique_topic("compacted-crash");
        // Written under `delete`, then switched to `compact` at runtime, so the first pass
        // starts after production, with the whole log dirty.
        topic_with_policy(&broker, &topic, "8192", "delete");
        let producer = clients::producer(
            &broker,
            &[("compression.type", "gzip"), ("batch.num.messages", "10")],
        );
        let produced = produce_updates(&producer, &topic, 6000, 25, 200);
        drop(producer);
        let dir = broker.partition_dir(&topic, 0);
        let mut raw = RawClient::connect(broker.kafka_addr());
        assert_eq!(
            raw.alter_topic_configs(&topic, &[("cleanup.policy", Some("compact"))]),
            0
        );
        wait_until(CLEAN_TIMEOUT, "the cleaner writes a segment", || {
            (!dir_entries(&dir, ".cleaned").is_empty()).then_some(())
        });
        // The fault's timing, not a synchronisation: where in the pass the kill lands.
        std::thread::sleep(Duration::from_millis(delay_ms));
        broker.kill9();
        let cleaned_files = dir_entries(&dir, ".cleaned").len();
        let swaps = dir_entries(&dir, ".swap").len();
        broker.restart();
        eprintln!(
            "kill at +{delay_ms} ms: {cleaned_files} .cleaned files, {swaps} swap manifests left"
        );
        if cleaned_files + swaps > 0 {
            interrupted.push(delay_ms);
        }
        let read = read_everything(&broker, &topic);
        assert_consistent(&read, &produced);
        let (_, high) = clients::watermarks(&broker, &topic, 0);
        assert_eq!(high, 6000, "log end after the kill at +{delay_ms} ms");
        let leftovers = dir_entries(&dir, ".swap");
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // The restarted broker finishes the job (the topic's policy applies after a restart).
        wait_until(
            CLEAN_TIMEOUT,
            "cleaning completes after the restart",
            || (checkpoint(&dir) == Some(active_base(&dir))).then_some(()),
        );
        assert_consistent(&read_everything(&broker, &topic), &produced);
        broker.stop();
    }
    assert!(
        !interrupted.is_empty(),
        "no kill landed inside a pass (with its files on disk)"
    );
}

fn dir_entries(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

/// `__consumer_offsets` is created compacted: once the cleaner ran (made eager here with a low
/// `min.cleanable.dirty.ratio`; the policy itself is the topic's own), the partition is a
/// fraction of its size and a restarted broker's coordinator loads the group's latest committed
/// offset from what compaction left.
#[test]
fn a_compacted_offsets_topic_still_loads_the_latest_commits() {
    use rdkafka::consumer::CommitMode;
    let mut broker = broker(&[
        ("offsets.topic.num.partitions", "1"),
        ("offsets.topic.segment.bytes", "4096"),
    ]);
    let topic = unique_topic("committed");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(clients::create_topic(&broker, &topic, 2));
    let group = unique_topic("group");
    let consumer: BaseConsumer = clients::consumer_config(&broker)
        .set("group.id", &group)
        .create()
        .unwrap();
    const COMMITS: i64 = 400;
    for i in 1..=COMMITS {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&topic, 0, Offset::Offset(i))
            .unwrap();
        offsets
            .add_partition_offset(&topic, 1, Offset::Offset(2 * i))
            .unwrap();
        consumer.commit(&offsets, CommitMode::Sync).unwrap();
    }
    drop(consumer);
    let dir = broker.partition_dir("__consumer_offsets", 0);
    let size = |dir: &Path| -> u64 {
        segment_files(dir)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    };
    let mut raw = RawClient::connect(broker.kafka_addr());
    assert_eq!(
        raw.alter_topic_configs(
            "__consumer_offsets",
            &[("min.cleanable.dirty.ratio", Some("0.01"))],
        ),
        0
    );
    wait_until(
        CLEAN_TIMEOUT,
        "the cleaner reaches the active segment",
        || (checkpoint(&dir) == Some(active_base(&dir))).then_some(()),
    );
    // Every commit wrote records; what is left is the latest per key (and the active segment).
    let written = raw.log_end_offset("__consumer_offsets", 0);
    let fetched = raw.fetch("__consumer_offsets", 0, 0, Duration::from_millis(100), 1);
    let kept = fetched
        .records
        .as_ref()
        .map_or(0, |bytes| decode_records(bytes).len()) as i64;
    eprintln!(
        "__consumer_offsets-0 after {COMMITS} commits of 2 partitions: {written} records written, {kept} kept, {} bytes on disk",
        size(&dir)
    );
    assert!(kept * 4 < written, "{written} records written, {kept} kept");

    broker.restart();
    let consumer: BaseConsumer = clients::consumer_config(&broker)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    wanted.add_partition(&topic, 1);
    let committed = wait_until(CLEAN_TIMEOUT, "the coordinator answers OffsetFetch", || {
        consumer
            .committed_offsets(wanted.clone(), Duration::from_secs(5))
            .ok()
    });
    let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
    assert_eq!(
        offsets,
        vec![Offset::Offset(COMMITS), Offset::Offset(2 * COMMITS)]
    );
}

/// A follower that was down while its leader compacted catches up across the offsets the
/// leader's cleaner removed, holds every key's latest value at its offset, and then compacts
/// its own copy.
#[test]
fn a_follower_catches_up_from_a_compacted_leader() {
    use weir_tests::cluster::Cluster;
    let mut cluster = Cluster::start(3, &[("log.cleaner.backoff.ms", "100")]);
    let topic = unique_topic("compacted-replicated");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            cluster.client_config().create().unwrap();
        let new =
            rdkafka::admin::NewTopic::new(&topic, 1, rdkafka::admin::TopicReplication::Fixed(3))
                .set("cleanup.policy", "compact")
                .set("segment.bytes", "4096")
                .set("min.cleanable.dirty.ratio", "0.01");
        for r in admin
            .create_topics([&new], &clients::admin_options())
            .await
            .unwrap()
        {
            r.unwrap();
        }
    });
    let view = cluster.wait_partition(&topic, 0, CLEAN_TIMEOUT, "a full ISR", |v| {
        v.leader >= 0 && v.isr.len() == 3
    });
    let leader = view.leader as usize;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    cluster.kill9(follower);
    let producer: FutureProducer = cluster
        .client_config()
        .set("acks", "1")
        .set("batch.num.messages", "10")
        .set("compression.type", "snappy")
        .create()
        .unwrap();
    let produced = produce_updates(&producer, &topic, 3000, 10, 60);
    let leader_dir = cluster.brokers[leader].partition_dir(&topic, 0);
    wait_until(CLEAN_TIMEOUT, "the leader compacts", || {
        let cleaned = checkpoint(&leader_dir)?;
        (cleaned > 1000 && cleaned == active_base(&leader_dir)).then_some(())
    });
    cluster.restart(follower);
    let follower_dir = cluster.brokers[follower].partition_dir(&topic, 0);
    let read = wait_until(CLEAN_TIMEOUT, "the follower catches up", || {
        let records = decode_records(&bytes::Bytes::from(log_bytes(&follower_dir)));
        let last = records.last()?.offset;
        (last == 2999).then_some(records)
    });
    let read: Vec<(i64, String, String)> = read
        .into_iter()
        .map(|r| {
            let text = |b: Option<bytes::Bytes>| String::from_utf8(b.unwrap().to_vec()).unwrap();
            (r.offset, text(r.key), text(r.value))
        })
        .collect();
    assert!(read.len() < 3000, "the follower fetched a compacted log");
    assert_consistent(&read, &produced);
    // What the follower fetched fits in its active segment; more updates roll it, and its own
    // cleaner then compacts them.
    produce_updates(&producer, &topic, 2000, 10, 60);
    wait_until(CLEAN_TIMEOUT, "the follower compacts its own copy", || {
        checkpoint(&follower_dir).map(|_| ())
    });
}
