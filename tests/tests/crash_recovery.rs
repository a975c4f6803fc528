//! Crash safety: a producer streams records, the broker is SIGKILLed mid-stream and restarted
//! on the same data directory. Every acknowledged record must be there, at the offset it was
//! acknowledged with, in production order, with no gap in the offsets; the log then carries
//! on from where it ended.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use weir_tests::{clients, unique_topic, wait_until, Broker};

const PARTITIONS: i32 = 2;
/// Acknowledged records to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 3000;
/// At most this many records in flight, so the kill lands mid-stream, not mid-backlog.
const MAX_PENDING: usize = 500;

/// The fate of one produced record: `Some((partition, offset))` if acknowledged.
type Outcomes = Arc<Mutex<Vec<(usize, Option<(i32, i64)>)>>>;

fn value_of(index: usize) -> String {
    format!("rec-{index:08}")
}

fn index_of(value: &[u8]) -> usize {
    std::str::from_utf8(value)
        .unwrap()
        .strip_prefix("rec-")
        .unwrap()
        .parse()
        .unwrap()
}

/// Streams records (record `i` to partition `i % PARTITIONS`) until `stop`, then waits for
/// every outstanding delivery to resolve.
async fn stream_records(
    producer: FutureProducer,
    topic: String,
    stop: Arc<AtomicBool>,
    outcomes: Outcomes,
) {
    async fn settle(index: usize, delivery: DeliveryFuture, outcomes: &Outcomes) {
        let outcome = match delivery.await {
            Ok(Ok(delivery)) => Some((delivery.partition, delivery.offset)),
            _ => None,
        };
        outcomes.lock().unwrap().push((index, outcome));
    }
    let mut pending: VecDeque<(usize, DeliveryFuture)> = VecDeque::new();
    let mut index = 0;
    while !stop.load(Ordering::SeqCst) {
        if pending.len() >= MAX_PENDING {
            let (oldest, delivery) = pending.pop_front().unwrap();
            settle(oldest, delivery, &outcomes).await;
            continue;
        }
        let value = value_of(index);
        let record = FutureRecord::<(), String>::to(&topic)
            .partition(index as i32 % PARTITIONS)
            .payload(&value);
        match producer.send_result(record) {
            Ok(delivery) => {
                pending.push_back((index, delivery));
                index += 1;
            }
            Err(_) => {
                // Local queue full: make room by waiting for the oldest record.
                if let Some((oldest, delivery)) = pending.pop_front() {
                    settle(oldest, delivery, &outcomes).await;
                }
            }
        }
    }
    while let Some((oldest, delivery)) = pending.pop_front() {
        settle(oldest, delivery, &outcomes).await;
    }
}

async fn acknowledged_records_survive_sigkill(acks: &str) {
    let mut broker = Broker::start_default();
    let topic = unique_topic(&format!("crash-acks{acks}"));
    clients::create_topic(&broker, &topic, PARTITIONS).await;
    let producer = clients::producer(
        &broker,
        &[
            ("acks", acks),
            ("linger.ms", "2"),
            // Records in flight at the kill fail quickly instead of retrying into the
            // restarted broker (retries without idempotence could reorder them).
            ("message.timeout.ms", "5000"),
            ("retries", "0"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let streamer = tokio::spawn(stream_records(
        producer,
        topic.clone(),
        stop.clone(),
        outcomes.clone(),
    ));

    wait_until(
        Duration::from_secs(120),
        "records to be acknowledged before the kill",
        || {
            let acked = outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, o)| o.is_some())
                .count();
            (acked >= ACKED_BEFORE_KILL).then_some(())
        },
    );
    broker.kill9();
    stop.store(true, Ordering::SeqCst);
    streamer.await.expect("producer task");
    broker.restart();

    let outcomes = outcomes.lock().unwrap().clone();
    let acked: Vec<(usize, i32, i64)> = outcomes
        .iter()
        .filter_map(|&(index, outcome)| {
            outcome.map(|(partition, offset)| (index, partition, offset))
        })
        .collect();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    for partition in 0..PARTITIONS {
        let stored = clients::read_all(&broker, &topic, partition);
        clients::assert_contiguous_offsets(&stored, 0);
        let stored_indexes: Vec<usize> = stored
            .iter()
            .map(|r| index_of(r.value.as_deref().unwrap()))
            .collect();
        assert!(
            stored_indexes.windows(2).all(|pair| pair[0] < pair[1]),
            "partition {partition} after recovery is not in production order (or has duplicates)"
        );
        let mut previous_offset = -1;
        for &(index, _, offset) in acked.iter().filter(|(_, p, _)| *p == partition) {
            assert!(
                offset > previous_offset,
                "acknowledged offsets went backwards at record {index}"
            );
            previous_offset = offset;
            let record = stored.get(offset as usize).unwrap_or_else(|| {
                panic!(
                    "record {index} was acknowledged at {partition}/{offset} (acks={acks}) but the \
                     recovered partition ends at offset {}",
                    stored.len()
                )
            });
            assert_eq!(
                record.value.as_deref(),
                Some(value_of(index).as_bytes()),
                "acknowledged record {index} is not at {partition}/{offset} after the crash"
            );
        }
        // The log continues right after what was recovered.
        let producer = clients::producer(&broker, &[]);
        let next =
            clients::produce_one(&producer, &topic, Some(partition), None, b"after the crash")
                .await;
        assert_eq!(
            next,
            (partition, stored.len() as i64),
            "first offset after recovery"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_with_acks_1() {
    acknowledged_records_survive_sigkill("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_sigkill_with_acks_all() {
    acknowledged_records_survive_sigkill("all").await;
}
