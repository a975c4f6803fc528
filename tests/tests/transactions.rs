//! Transactions with librdkafka's transactional producer against one broker: commit and
//! abort across partitions, `read_committed` and `read_uncommitted` consumers, an open
//! transaction holding the last stable offset, zombie fencing, `sendOffsetsToTransaction`
//! (exactly-once consume-process-produce), and the coordinator aborting a transaction that
//! outlived its timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::{clients, unique_topic, wait_until, Broker, BrokerOptions};

const TIMEOUT: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 3;

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn transactional_producer(broker: &Broker, transactional_id: &str) -> TxnProducer {
    let producer: TxnProducer = clients::producer_config(broker)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("creating a transactional producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("InitProducerId with a transactional id");
    producer
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: &[String]) {
    clients::send_round_robin(producer, topic, PARTITIONS, values);
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i:04}")).collect()
}

fn reader(broker: &Broker, isolation: &str) -> BaseConsumer {
    clients::consumer_config(broker)
        .set("isolation.level", isolation)
        .create()
        .expect("creating a consumer")
}

/// Reads every partition of `topic` from the start until `expected` records arrived (or, with
/// `expected` 0, for a while), then checks nothing more comes; the values per partition, in
/// offset order.
fn read_all(consumer: &BaseConsumer, topic: &str, expected: usize) -> BTreeMap<i32, Vec<String>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let mut count = 0;
    let poll = |count: &mut usize, seen: &mut BTreeMap<i32, Vec<(i64, String)>>| {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consuming");
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            seen.entry(m.partition())
                .or_default()
                .push((m.offset(), value));
            *count += 1;
        }
    };
    wait_until(TIMEOUT, &format!("{expected} records of {topic}"), || {
        poll(&mut count, &mut seen);
        (count >= expected).then_some(())
    });
    // Nothing beyond: a few more polls return no record.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        poll(&mut count, &mut seen);
    }
    assert_eq!(count, expected, "records of {topic}: {seen:?}");
    seen.into_iter()
        .map(|(p, records)| {
            assert!(
                records.windows(2).all(|w| w[0].0 < w[1].0),
                "offsets rise in {topic}-{p}: {records:?}"
            );
            (p, records.into_iter().map(|(_, v)| v).collect())
        })
        .collect()
}

/// `values` as [`read_all`] would see them when sent by [`send`].
fn by_partition(batches: &[&[String]]) -> BTreeMap<i32, Vec<String>> {
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for batch in batches {
        for (i, value) in batch.iter().enumerate() {
            expected
                .entry(i as i32 % PARTITIONS)
                .or_default()
                .push(value.clone());
        }
    }
    expected
}

async fn topic(broker: &Broker, prefix: &str) -> String {
    let topic = unique_topic(prefix);
    clients::create_topic(broker, &topic, PARTITIONS).await;
    topic
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_read_and_aborted_ones_are_not() {
    let broker = Broker::start_default();
    let topic = topic(&broker, "txn").await;
    let producer = transactional_producer(&broker, &unique_topic("txn-id"));
    let (first, aborted, last) = (values("a", 30), values("b", 30), values("c", 30));

    producer.begin_transaction().unwrap();
    send(&producer, &topic, &first);
    producer.commit_transaction(TIMEOUT).expect("commit");
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &aborted);
    producer.abort_transaction(TIMEOUT).expect("abort");
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &last);
    producer.commit_transaction(TIMEOUT).expect("commit");

    let committed = read_all(&reader(&broker, "read_committed"), &topic, 60);
    assert_eq!(committed, by_partition(&[&first, &last]));
    let everything = read_all(&reader(&broker, "read_uncommitted"), &topic, 90);
    assert_eq!(everything, by_partition(&[&first, &aborted, &last]));

    // The same after a restart: markers, the aborted index and the producer state are on disk.
    let mut broker = broker;
    broker.restart();
    let committed = read_all(&reader(&broker, "read_committed"), &topic, 60);
    assert_eq!(committed, by_partition(&[&first, &last]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_read_committed_consumers_at_the_last_stable_offset() {
    let broker = Broker::start_default();
    let topic = topic(&broker, "txn-open").await;
    let plain = clients::producer(&broker, &[]);
    let producer = transactional_producer(&broker, &unique_topic("txn-id"));
    producer.begin_transaction().unwrap();
    let open = values("open", 3);
    send(&producer, &topic, &open);
    // A plain record after the open transaction's first record, on partition 0.
    clients::produce_one(&plain, &topic, Some(0), None, b"after").await;

    let committed = reader(&broker, "read_committed");
    let uncommitted = reader(&broker, "read_uncommitted");
    // ListOffsets: the high watermark for read_uncommitted, the LSO for read_committed.
    let (_, high) = uncommitted
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("watermarks");
    let (_, stable) = committed
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!(
        (high, stable),
        (2, 0),
        "the open transaction starts at offset 0"
    );
    assert!(read_all(&committed, &topic, 0).is_empty());
    assert_eq!(read_all(&uncommitted, &topic, 4).len(), 3);

    producer.commit_transaction(TIMEOUT).expect("commit");
    let seen = read_all(&reader(&broker, "read_committed"), &topic, 4);
    assert_eq!(seen[&0], vec![open[0].clone(), "after".to_string()]);
    let (_, stable) = committed
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!(stable, 3, "records 0 and 1 and the marker at 2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_with_the_same_id_fences_the_zombie_and_aborts_its_transaction() {
    let broker = Broker::start_default();
    let topic = topic(&broker, "txn-zombie").await;
    let id = unique_topic("txn-id");
    let zombie = transactional_producer(&broker, &id);
    zombie.begin_transaction().unwrap();
    send(&zombie, &topic, &values("zombie", 6));

    let successor = transactional_producer(&broker, &id);
    let result = zombie.commit_transaction(TIMEOUT);
    match result {
        Err(KafkaError::Transaction(e)) => assert!(
            e.is_fatal() || e.txn_requires_abort(),
            "the zombie's commit must fail for good: {e}"
        ),
        other => panic!("the zombie committed after being fenced: {other:?}"),
    }
    successor.begin_transaction().unwrap();
    let kept = values("kept", 6);
    send(&successor, &topic, &kept);
    successor.commit_transaction(TIMEOUT).expect("commit");
    let committed = read_all(&reader(&broker, "read_committed"), &topic, 6);
    assert_eq!(committed, by_partition(&[&kept]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_commit_and_abort_with_it() {
    let broker = Broker::start_default();
    let input = topic(&broker, "txn-in").await;
    let output = topic(&broker, "txn-out").await;
    let group = unique_topic("txn-group");
    let plain = clients::producer(&broker, &[]);
    for p in 0..PARTITIONS {
        for i in 0..5 {
            let value = format!("in-{p}-{i}");
            clients::produce_one(&plain, &input, Some(p), None, value.as_bytes()).await;
        }
    }
    let consumer: BaseConsumer = clients::consumer_config(&broker)
        .set("group.id", &group)
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let producer = transactional_producer(&broker, &unique_topic("txn-id"));

    // Transaction 1: the first 3 records of each partition, processed and committed.
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&input, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut taken: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    wait_until(TIMEOUT, "3 input records per partition", || {
        while let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let records = taken.entry(m.partition()).or_default();
            if records.len() < 3 {
                records.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
            }
        }
        (taken.len() == PARTITIONS as usize && taken.values().all(|r| r.len() == 3)).then_some(())
    });
    let commit_at = |n: i64| {
        let mut offsets = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            offsets
                .add_partition_offset(&input, p, Offset::Offset(n))
                .unwrap();
        }
        offsets
    };
    producer.begin_transaction().unwrap();
    let processed: Vec<String> = taken
        .values()
        .flatten()
        .map(|v| format!("out-{v}"))
        .collect();
    send(&producer, &output, &processed);
    producer
        .send_offsets_to_transaction(&commit_at(3), &consumer.group_metadata().unwrap(), TIMEOUT)
        .expect("sendOffsetsToTransaction");
    producer.commit_transaction(TIMEOUT).expect("commit");

    // Transaction 2: offsets 5, aborted: the group's offsets stay at 3.
    producer.begin_transaction().unwrap();
    send(&producer, &output, &values("discarded", 3));
    producer
        .send_offsets_to_transaction(&commit_at(5), &consumer.group_metadata().unwrap(), TIMEOUT)
        .expect("sendOffsetsToTransaction");
    producer.abort_transaction(TIMEOUT).expect("abort");

    let committed = wait_until(TIMEOUT, "the group's committed offsets", || {
        consumer.committed(TIMEOUT).ok()
    });
    for p in 0..PARTITIONS {
        let offset = committed
            .find_partition(&input, p)
            .map(|e| e.offset())
            .unwrap();
        assert_eq!(offset, Offset::Offset(3), "{input}-{p}");
    }
    let out = read_all(&reader(&broker, "read_committed"), &output, processed.len());
    assert_eq!(out, by_partition(&[&processed]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_aborts_a_transaction_that_outlives_its_timeout() {
    let broker = Broker::start(BrokerOptions::default().set(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        200,
    ));
    let topic = topic(&broker, "txn-timeout").await;
    let producer: TxnProducer = clients::producer_config(&broker)
        .set("transactional.id", unique_topic("txn-id"))
        .set("transaction.timeout.ms", "2000")
        .set("message.timeout.ms", "2000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, &topic, &values("late", 3));
    let committed = reader(&broker, "read_committed");
    // The coordinator aborts it: the LSO passes the transaction's marker on every partition.
    wait_until(TIMEOUT, "the timed-out transaction aborted", || {
        (0..PARTITIONS)
            .all(|p| {
                committed
                    .fetch_watermarks(&topic, p, TIMEOUT)
                    .is_ok_and(|(_, stable)| stable == 2)
            })
            .then_some(())
    });
    assert!(read_all(&committed, &topic, 0).is_empty());
    assert!(
        producer.commit_transaction(TIMEOUT).is_err(),
        "a producer whose transaction was aborted by the coordinator cannot commit it"
    );
}
