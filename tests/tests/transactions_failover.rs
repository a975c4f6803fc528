//! Transactions on three brokers (RF 3, `min.insync.replicas=2`) under failures: a commit
//! whose markers cannot reach a paused partition leader, and whose coordinator is then
//! SIGKILLed, is completed by the next coordinator (which loads PrepareCommit and writes the
//! markers to the partitions' new leaders); every committed record is read exactly once by a
//! `read_committed` consumer, nothing of an aborted transaction is, and every partition's
//! last stable offset reaches its high watermark on the new leaders.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::cluster::Cluster;
use weir_tests::{clients, unique_topic, wait_until};

const TIMEOUT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 3;

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: &[String]) {
    clients::send_round_robin(producer, topic, PARTITIONS, values);
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_survives_a_paused_leader_and_a_killed_coordinator() {
    let mut cluster = Cluster::start(3, &[("replica.lag.time.max.ms", "2000")]);
    let topic = unique_topic("txn-failover");
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    let created = admin
        .create_topics(
            &[
                NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3))
                    .set("min.insync.replicas", "2"),
            ],
            &clients::admin_options(),
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    for p in 0..PARTITIONS {
        cluster.wait_partition(&topic, p, TIMEOUT, "a leader with a full ISR", |v| {
            v.leader >= 0 && v.isr.len() == 3
        });
    }
    let id = unique_topic("txn-id");
    let producer: ThreadedProducer<DefaultProducerContext> = cluster
        .client_config()
        .set("transactional.id", &id)
        .set("acks", "all")
        .set("transaction.timeout.ms", "120000")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();

    let first = values("first", 30);
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &first);
    producer.commit_transaction(TIMEOUT).expect("first commit");
    let aborted = values("aborted", 30);
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &aborted);
    producer.abort_transaction(TIMEOUT).expect("abort");

    // The second transaction's records are acknowledged; then a data leader that is not the
    // coordinator stops, so its partition cannot take the COMMIT marker.
    let second = values("second", 30);
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &second);
    let coordinator = cluster.transaction_coordinator(&id, None, TIMEOUT);
    // Placement spreads the three partitions' leaders over the three brokers; a metadata
    // answer may miss a partition now and then, so ask until one shows another leader.
    let paused = wait_until(TIMEOUT, "a data leader other than the coordinator", || {
        (0..PARTITIONS)
            .filter_map(|p| cluster.partition(&topic, p).map(|v| v.leader))
            .find(|&leader| leader >= 0 && leader != coordinator)
    });
    cluster.pause(paused as usize);
    producer
        .commit_transaction(TIMEOUT)
        .expect("the commit is decided once PrepareCommit is replicated");
    // The coordinator dies before it could write every marker; its successor loads
    // PrepareCommit and finishes the commit on the partitions' new leaders.
    // (The paused broker comes back at once: with one voter killed and one paused, the
    // metadata quorum could not move any leadership.)
    cluster.kill9(coordinator as usize);
    cluster.resume(paused as usize);
    let successor = cluster.transaction_coordinator(&id, Some(coordinator), TIMEOUT);
    assert_ne!(successor, coordinator);
    cluster.restart(coordinator as usize);

    let consumer: BaseConsumer = cluster
        .client_config()
        .set("group.id", unique_topic("reader"))
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: Vec<String> = Vec::new();
    wait_until(TIMEOUT, "both committed transactions read", || {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consuming");
            seen.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
        (seen.len() >= 60).then_some(())
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            seen.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    let expected: BTreeSet<String> = first.iter().chain(&second).cloned().collect();
    assert_eq!(
        seen.len(),
        60,
        "each committed record exactly once: {seen:?}"
    );
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);

    // Every partition is stable again: LSO (read_committed LATEST) = high watermark.
    let uncommitted: BaseConsumer = cluster
        .client_config()
        .set("group.id", unique_topic("hw"))
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        wait_until(TIMEOUT, "the LSO at the high watermark", || {
            let (_, lso) = consumer.fetch_watermarks(&topic, p, TIMEOUT).ok()?;
            let (_, hw) = uncommitted.fetch_watermarks(&topic, p, TIMEOUT).ok()?;
            (lso == hw).then_some(())
        });
    }
}
