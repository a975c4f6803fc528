//! OffsetForLeaderEpoch for clients (KIP-320): after a leader change a consumer asks the new
//! leader where the epoch of its position ended, to detect truncation. Checked with exact
//! requests against a 3-broker cluster across a leader kill, and with librdkafka, which
//! validates its position that way when it sees the new leader epoch.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::http::{get, parse_prometheus};
use weir_tests::raw::RawClient;
use weir_tests::{clients, unique_topic, wait_until};

const TIMEOUT: Duration = Duration::from_secs(30);

/// (error code, epoch, end offset) the broker `node` answers for `topic`-0 and `epoch`.
fn ask(
    cluster: &Cluster,
    node: usize,
    topic: &str,
    current_leader_epoch: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    let mut raw = RawClient::connect(cluster.brokers[node].kafka_addr());
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(epoch)])]);
    let response = raw.request(&request, 4).expect("OffsetForLeaderEpoch");
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

async fn create_replicated_topic(cluster: &Cluster, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    cluster.wait_partition(topic, 0, TIMEOUT, "a full ISR", |v| v.isr.len() == 3);
}

fn producer(cluster: &Cluster) -> rdkafka::producer::FutureProducer {
    let mut config = cluster.client_config();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000");
    config.create().expect("producer")
}

fn requests_of(cluster: &Cluster, node: usize, api: &str) -> f64 {
    let body = get(cluster.brokers[node].metrics_addr(), "/metrics").body;
    parse_prometheus(&body)
        .iter()
        .filter(|s| s.name == "weir_requests_total" && s.label("api") == Some(api))
        .map(|s| s.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_answers_where_each_epoch_ended_across_a_leader_change() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("ofle");
    create_replicated_topic(&cluster, &topic).await;
    let producer = producer(&cluster);
    let first: Vec<String> = (0..10).map(|i| format!("first-{i}")).collect();
    assert_eq!(send_all(&producer, &topic, 0, &first).await.len(), 10);
    let before = cluster.partition(&topic, 0).expect("metadata");
    let old_leader = before.leader as usize;
    assert_eq!(
        ask(&cluster, old_leader, &topic, -1, before.leader_epoch),
        (0, before.leader_epoch, 10),
        "the latest epoch ends at the log end"
    );

    cluster.kill9(old_leader);
    let after = cluster.wait_partition(&topic, 0, TIMEOUT, "a new leader", |v| {
        v.leader >= 0 && v.leader as usize != old_leader
    });
    let second: Vec<String> = (0..5).map(|i| format!("second-{i}")).collect();
    assert_eq!(send_all(&producer, &topic, 0, &second).await.len(), 5);
    let leader = after.leader as usize;
    assert!(after.leader_epoch > before.leader_epoch);
    // The old epoch ended where the new one began; the new one at the log end.
    assert_eq!(
        ask(
            &cluster,
            leader,
            &topic,
            after.leader_epoch,
            before.leader_epoch
        ),
        (0, before.leader_epoch, 10)
    );
    assert_eq!(
        ask(&cluster, leader, &topic, -1, after.leader_epoch),
        (0, after.leader_epoch, 15)
    );
    // A client with an older current epoch is fenced; a newer one is unknown; a follower
    // refuses; an epoch older than the log's first gets no answer.
    assert_eq!(
        ask(
            &cluster,
            leader,
            &topic,
            before.leader_epoch,
            before.leader_epoch
        )
        .0,
        ResponseError::FencedLeaderEpoch.code()
    );
    assert_eq!(
        ask(
            &cluster,
            leader,
            &topic,
            after.leader_epoch + 1,
            after.leader_epoch
        )
        .0,
        ResponseError::UnknownLeaderEpoch.code()
    );
    let follower = (0..3).find(|n| *n != leader && *n != old_leader).unwrap();
    assert_eq!(
        ask(&cluster, follower, &topic, -1, after.leader_epoch).0,
        ResponseError::NotLeaderOrFollower.code()
    );
    if before.leader_epoch > 0 {
        assert_eq!(ask(&cluster, leader, &topic, -1, -1), (0, -1, -1));
    }
    let unknown = ask(&cluster, leader, "no-such-topic", -1, 0);
    assert_eq!(unknown.0, ResponseError::UnknownTopicOrPartition.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librdkafka_consumer_validates_its_position_with_the_new_leader_and_reads_on() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("ofle-consumer");
    create_replicated_topic(&cluster, &topic).await;
    let producer = producer(&cluster);
    let first: Vec<String> = (0..50).map(|i| format!("first-{i}")).collect();
    assert_eq!(send_all(&producer, &topic, 0, &first).await.len(), 50);

    let mut config = cluster.client_config();
    config
        .set("group.id", unique_topic("ofle-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut read = Vec::new();
    let poll_until = |count: usize, read: &mut Vec<(i64, String)>| {
        wait_until(TIMEOUT, &format!("{count} records read"), || {
            while let Some(m) = consumer.poll(Duration::from_millis(100)) {
                // The killed leader's connection fails: the consumer reports it and goes on.
                let Ok(m) = m else { continue };
                let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                read.push((m.offset(), value));
            }
            (read.len() >= count).then_some(())
        })
    };
    poll_until(50, &mut read);

    let old_leader = cluster.partition(&topic, 0).expect("metadata").leader as usize;
    cluster.kill9(old_leader);
    let leader = cluster
        .wait_partition(&topic, 0, TIMEOUT, "a new leader", |v| {
            v.leader >= 0 && v.leader as usize != old_leader
        })
        .leader as usize;
    let second: Vec<String> = (0..50).map(|i| format!("second-{i}")).collect();
    assert_eq!(send_all(&producer, &topic, 0, &second).await.len(), 50);
    poll_until(100, &mut read);

    let expected: Vec<(i64, String)> = first
        .iter()
        .chain(&second)
        .enumerate()
        .map(|(o, v)| (o as i64, v.clone()))
        .collect();
    assert_eq!(
        read, expected,
        "every record once, in order, across the leader change"
    );
    assert!(
        requests_of(&cluster, leader, "OffsetForLeaderEpoch") >= 1.0,
        "the consumer validated its position with the new leader"
    );
}
