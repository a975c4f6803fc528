//! DeleteRecords through librdkafka's AdminClient, as Kafka Streams purges its repartition
//! topics: the log start moves, consumers and ListOffsets see it, it survives a restart, the
//! retention pass drops the segments below it, and on a replicated topic the answer comes only
//! once every live replica moved (a new leader never serves a deleted record).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::raw::RawClient;
use weir_tests::segments::segment_files;
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(30);

/// DeleteRecords of `(partition, offset)` pairs of `topic`; per partition, the low watermark
/// answered or the error.
async fn delete_records(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    offsets: &[(i32, Offset)],
) -> Vec<(i32, Result<i64, RDKafkaErrorCode>)> {
    let mut tpl = TopicPartitionList::new();
    for (partition, offset) in offsets {
        tpl.add_partition_offset(topic, *partition, *offset)
            .unwrap();
    }
    let result = admin
        .delete_records(&tpl, &clients::admin_options())
        .await
        .expect("DeleteRecords request");
    let mut answers: Vec<_> = result
        .elements()
        .iter()
        .map(|e| {
            let answer = match (e.error(), e.offset()) {
                (Err(rdkafka::error::KafkaError::OffsetFetch(code)), _) => Err(code),
                (Err(other), _) => panic!("DeleteRecords {topic}-{}: {other}", e.partition()),
                (Ok(()), Offset::Offset(low)) => Ok(low),
                (Ok(()), other) => panic!("DeleteRecords answered {other:?}"),
            };
            (e.partition(), answer)
        })
        .collect();
    answers.sort_by_key(|(p, _)| *p);
    answers
}

fn values(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// Every record of `topic`/`partition` from its log start, as (offset, value).
fn read_from_start(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    count: usize,
) -> Vec<(i64, String)> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut records = Vec::new();
    wait_until(
        TIMEOUT,
        &format!("{count} records of {topic}-{partition}"),
        || {
            while let Some(m) = consumer.poll(Duration::from_millis(100)) {
                let m = m.expect("consuming");
                let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                records.push((m.offset(), value));
            }
            (records.len() >= count).then_some(())
        },
    );
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_for_readers_restarts_and_retention() {
    let mut broker = Broker::start(
        BrokerOptions::default()
            .set("log.segment.bytes", 2048)
            .set("log.retention.check.interval.ms", 100),
    );
    let topic = unique_topic("delete-records");
    clients::create_topic(&broker, &topic, 2).await;
    let producer = clients::producer(&broker, &[]);
    // One batch per record, 100 bytes each: several segments of 2 KiB.
    let sent: Vec<String> = values(100, "a")
        .iter()
        .map(|v| format!("{v:-<100}"))
        .collect();
    for partition in 0..2 {
        for value in &sent {
            clients::produce_one(&producer, &topic, Some(partition), None, value.as_bytes()).await;
        }
    }
    let segments_before = segment_files(&broker.partition_dir(&topic, 0)).len();
    assert!(
        segments_before > 3,
        "records span several segments ({segments_before})"
    );

    let admin = clients::admin(&broker);
    let answers =
        delete_records(&admin, &topic, &[(0, Offset::Offset(40)), (1, Offset::End)]).await;
    assert_eq!(answers, vec![(0, Ok(40)), (1, Ok(100))]);
    assert_eq!(clients::watermarks(&broker, &topic, 0), (40, 100));
    assert_eq!(clients::watermarks(&broker, &topic, 1), (100, 100));

    // A reader from the beginning starts at the new log start, with the records as written.
    let records = clients::read_partition(&broker, &topic, 0, 40, 60);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, 40 + i as i64);
        assert_eq!(r.value.as_deref(), Some(sent[40 + i].as_bytes()));
    }
    let consumer: BaseConsumer = clients::consumer_config(&broker).create().unwrap();
    let from_start = read_from_start(&consumer, &topic, 0, 60);
    assert_eq!(
        from_start.first().map(|r| r.0),
        Some(40),
        "auto reset lands on the log start"
    );

    // Going backwards does nothing; past the high watermark is refused.
    let answers = delete_records(&admin, &topic, &[(0, Offset::Offset(10))]).await;
    assert_eq!(answers, vec![(0, Ok(40))]);
    let answers = delete_records(&admin, &topic, &[(0, Offset::Offset(101))]).await;
    assert_eq!(answers, vec![(0, Err(RDKafkaErrorCode::OffsetOutOfRange))]);

    // The retention pass drops the segments wholly below the log start.
    wait_until(TIMEOUT, "segments below offset 40 deleted", || {
        let files = segment_files(&broker.partition_dir(&topic, 0));
        let bases: Vec<i64> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_str().unwrap().parse().unwrap())
            .collect();
        // The first remaining segment holds offset 40: the next one starts after it.
        (bases.len() < segments_before && bases.get(1).is_none_or(|b| *b > 40)).then_some(())
    });

    // The log start is durable.
    drop(consumer);
    broker.restart();
    assert_eq!(clients::watermarks(&broker, &topic, 0), (40, 100));
    assert_eq!(clients::watermarks(&broker, &topic, 1), (100, 100));
    let records = clients::read_partition(&broker, &topic, 0, 40, 60);
    assert_eq!(records.last().map(|r| r.offset), Some(99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_refuses_compacted_internal_and_unknown_partitions() {
    let broker = Broker::start_default();
    let compacted = unique_topic("delete-records-compacted");
    clients::create_topic_with(&broker, &compacted, 1, &[("cleanup.policy", "compact")]).await;
    let producer = clients::producer(&broker, &[]);
    clients::produce_one(&producer, &compacted, Some(0), Some(b"k"), b"v").await;
    let admin = clients::admin(&broker);
    let answers = delete_records(&admin, &compacted, &[(0, Offset::Offset(1))]).await;
    assert_eq!(answers, vec![(0, Err(RDKafkaErrorCode::PolicyViolation))]);
    assert_eq!(clients::watermarks(&broker, &compacted, 0), (0, 1));

    // librdkafka checks partitions against its metadata first: ask the broker directly.
    let mut raw = RawClient::connect(broker.kafka_addr());
    let request = |topic: &str, partition: i32| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(5_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(0)])])
    };
    let mut code = |topic: &str, partition: i32| {
        let response = raw
            .request(&request(topic, partition), 2)
            .expect("DeleteRecords");
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(
        code(&compacted, 5),
        (ResponseError::UnknownTopicOrPartition.code(), -1)
    );
    assert_eq!(
        code("no-such-topic", 0),
        (ResponseError::UnknownTopicOrPartition.code(), -1)
    );
    assert_eq!(
        code("__consumer_offsets", 0),
        (ResponseError::InvalidTopicException.code(), -1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_replicated_topic_the_answer_waits_until_a_new_leader_would_serve_no_deleted_record() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("delete-records-rf3");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    cluster.wait_partition(&topic, 0, TIMEOUT, "a full ISR", |v| v.isr.len() == 3);

    let mut config = cluster.client_config();
    config.set("acks", "all").set("enable.idempotence", "true");
    let producer = config.create().expect("producer");
    let sent = values(200, "r");
    assert_eq!(
        send_all(&producer, &topic, 0, &sent).await.len(),
        sent.len()
    );

    let answers = delete_records(&admin, &topic, &[(0, Offset::Offset(150))]).await;
    assert_eq!(
        answers,
        vec![(0, Ok(150))],
        "answered with every replica's start moved"
    );

    // Whichever replica leads next starts at 150.
    let leader = cluster.partition(&topic, 0).expect("metadata").leader;
    cluster.kill9(leader as usize);
    let view = cluster.wait_partition(&topic, 0, TIMEOUT, "a new leader", |v| {
        v.leader >= 0 && v.leader != leader
    });
    let mut config = cluster.client_config();
    config
        .set("group.id", unique_topic("delete-records-reader"))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    wait_until(TIMEOUT, "watermarks from the new leader", || {
        consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .ok()
            .filter(|w| *w == (150, 200))
    });
    let records = read_from_start(&consumer, &topic, 0, 50);
    let expected: Vec<(i64, String)> = (150..200).map(|o| (o, sent[o as usize].clone())).collect();
    assert_eq!(
        records, expected,
        "new leader {} serves 150.. exactly",
        view.leader
    );
}
