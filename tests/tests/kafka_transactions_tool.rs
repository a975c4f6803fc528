//! Apache Kafka's `kafka-transactions` tool (TransactionsCommand from the kafka-tools jar)
//! against Weir, as an operator finds and ends a hanging transaction: `list` and `describe`
//! show an open transaction from its coordinator, `describe-producers` shows where it started
//! in a partition (DescribeProducers), and `abort` ends it with an ABORT marker written through
//! WriteTxnMarkers, after which `read_committed` consumers move past it and never see its
//! records.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::Message;
use weir_tests::kafka_tools::KafkaTools;
use weir_tests::{clients, unique_topic, wait_until, Broker};

const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";
const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_transactions_lists_describes_and_aborts_a_hanging_transaction() {
    let Some(tools) = KafkaTools::find() else {
        return;
    };
    let broker = Broker::start_default();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("tools-txn");
    clients::create_topic(&broker, &topic, 1).await;
    let id = unique_topic("hanging");
    let producer: ThreadedProducer<DefaultProducerContext> = clients::producer_config(&broker)
        .set("transactional.id", &id)
        .set("transaction.timeout.ms", "600000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..3 {
        let value = format!("hanging-{i}");
        producer
            .send(
                BaseRecord::<(), str>::to(&topic)
                    .partition(0)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();

    let list = tools.run_ok(TRANSACTIONS, &["--bootstrap-server", &bootstrap, "list"]);
    let line = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("{id} not listed:\n{list}"));
    assert!(line.contains("Ongoing"), "{list}");

    let describe = tools.run_ok(
        TRANSACTIONS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "describe",
            "--transactional-id",
            &id,
        ],
    );
    assert!(
        describe.contains("Ongoing") && describe.contains(&format!("{topic}-0")),
        "{describe}"
    );

    let producers = tools.run_ok(
        TRANSACTIONS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "describe-producers",
            "--topic",
            &topic,
            "--partition",
            "0",
        ],
    );
    // ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp
    // CurrentTransactionStartOffset: the open transaction starts at offset 0.
    let row = producers
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no producer:\n{producers}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(columns.get(3), Some(&"2"), "last sequence: {producers}");
    assert_eq!(columns.last(), Some(&"0"), "transaction start: {producers}");

    let reader = clients::consumer_config(&broker)
        .set("isolation.level", "read_committed")
        .create::<rdkafka::consumer::BaseConsumer>()
        .unwrap();
    let (_, stable) = reader.fetch_watermarks(&topic, 0, TIMEOUT).unwrap();
    assert_eq!(stable, 0, "the hanging transaction holds the LSO at 0");

    tools.run_ok(
        TRANSACTIONS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "abort",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
    );
    wait_until(TIMEOUT, "the LSO past the abort marker", || {
        let (_, stable) = reader.fetch_watermarks(&topic, 0, TIMEOUT).ok()?;
        (stable == 4).then_some(())
    });
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    reader.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Some(m) = reader.poll(Duration::from_millis(100)) {
            panic!(
                "read_committed saw an aborted record: {:?}",
                m.map(|m| m.offset())
            );
        }
    }
}
