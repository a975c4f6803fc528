//! A clean restart of a broker leading many partitions: the controller moves their
//! leaderships away at the controlled shutdown and back when the broker returns, and the broker
//! takes them all at once (on several threads, past a few dozen). Every partition must be led
//! again, every record read back at its offset, and every partition's leader-epoch checkpoint
//! must hold the new epoch from the log end on, durably on disk.

use rdkafka::producer::{DefaultProducerContext, ThreadedProducer};
use weir_tests::{clients, unique_topic, Broker};

/// More than the broker takes one after another.
const PARTITIONS: i32 = 48;
const RECORDS_PER_PARTITION: usize = 5;

/// The last `(epoch, start offset)` of a partition's `leader-epoch-checkpoint`.
fn last_epoch(broker: &Broker, topic: &str, partition: i32) -> (i32, i64) {
    let path = broker
        .partition_dir(topic, partition)
        .join("leader-epoch-checkpoint");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let last = text.lines().last().expect("a checkpoint line");
    let mut fields = last.split_whitespace().map(|f| f.parse::<i64>().unwrap());
    let (epoch, start) = (fields.next().unwrap(), fields.next().unwrap());
    (epoch as i32, start)
}

fn send(broker: &Broker, topic: &str, round: usize) -> Vec<String> {
    let producer: ThreadedProducer<DefaultProducerContext> =
        clients::producer_config(broker).create().unwrap();
    let values: Vec<String> = (0..PARTITIONS as usize)
        .map(|p| format!("round-{round}-partition-{p}"))
        .collect();
    clients::send_round_robin(&producer, topic, PARTITIONS, &values);
    values
}

#[tokio::test]
async fn a_broker_restarted_cleanly_leads_all_its_partitions_again_in_a_new_epoch() {
    let mut broker = Broker::start_default();
    let topic = unique_topic("clean-restart");
    clients::create_topic(&broker, &topic, PARTITIONS).await;
    let mut sent: Vec<Vec<String>> = Vec::new();
    for round in 0..RECORDS_PER_PARTITION {
        sent.push(send(&broker, &topic, round));
    }
    let before: Vec<(i32, i64)> = (0..PARTITIONS)
        .map(|p| last_epoch(&broker, &topic, p))
        .collect();

    broker.restart();
    clients::wait_for_partitions(&broker, &topic, PARTITIONS);
    sent.push(send(&broker, &topic, RECORDS_PER_PARTITION));

    for p in 0..PARTITIONS {
        let (epoch, start) = last_epoch(&broker, &topic, p);
        assert!(
            epoch > before[p as usize].0,
            "partition {p}: epoch {epoch} after the restart, {} before",
            before[p as usize].0
        );
        assert_eq!(
            start, RECORDS_PER_PARTITION as i64,
            "partition {p}: the new epoch starts at the log end of before the restart"
        );
        let records = clients::read_all(&broker, &topic, p);
        clients::assert_contiguous_offsets(&records, 0);
        let values: Vec<&[u8]> = records
            .iter()
            .map(|r| r.value.as_deref().unwrap())
            .collect();
        let expected: Vec<&[u8]> = sent
            .iter()
            .map(|round| round[p as usize].as_bytes())
            .collect();
        assert_eq!(values, expected, "partition {p}: every record, in order");
    }
    broker.assert_alive();
}
