//! librdkafka's idempotent producer against a broker that stops answering: requests time out
//! and are retried (over new connections) while the broker is frozen with SIGSTOP; once it
//! resumes it sees the originals and the retries, and must keep exactly one copy of each
//! record, in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientContext;
use weir_tests::{clients, unique_topic, wait_until, Broker};

/// Collects librdkafka's count of timed-out requests from its statistics callback. The raw
/// JSON is scanned (rather than rdkafka's typed `Statistics`) so a field added by a newer
/// librdkafka cannot make the parse, and with it this test, fail.
#[derive(Debug, Default, Clone)]
struct TimeoutCounter {
    request_timeouts: Arc<AtomicU64>,
}

impl ClientContext for TimeoutCounter {
    fn stats_raw(&self, statistics: &[u8]) {
        let text = String::from_utf8_lossy(statistics);
        let total: u64 = text
            .split("\"req_timeouts\":")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u64>().ok()
            })
            .sum();
        self.request_timeouts.fetch_max(total, Ordering::SeqCst);
    }
}

fn enqueue(
    producer: &FutureProducer<TimeoutCounter>,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Vec<DeliveryFuture> {
    range
        .map(|index| {
            let value = format!("record-{index:06}");
            producer
                .send_result(
                    FutureRecord::<(), String>::to(topic)
                        .partition(0)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueueing")
        })
        .collect()
}

async fn await_offsets(deliveries: Vec<DeliveryFuture>, first_index: usize) -> Vec<i64> {
    let mut offsets = Vec::new();
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let delivery = delivery
            .await
            .expect("delivery future dropped")
            .unwrap_or_else(|(e, _)| {
                panic!("record-{:06} was not delivered: {e}", first_index + index)
            });
        offsets.push(delivery.offset);
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_after_request_timeouts_store_each_record_once() {
    const BEFORE: usize = 100;
    const DURING: usize = 300;
    let mut broker = Broker::start_default();
    let topic = unique_topic("idempotent");
    clients::create_topic(&broker, &topic, 1).await;

    let counter = TimeoutCounter::default();
    let producer: FutureProducer<TimeoutCounter> = clients::producer_config(&broker)
        .set("enable.idempotence", "true")
        // librdkafka times a produce request out after socket.timeout.ms (request.timeout.ms
        // is only what it asks of the broker).
        .set("socket.timeout.ms", "1000")
        .set("request.timeout.ms", "1000")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "100")
        .set("statistics.interval.ms", "100")
        .create_with_context(counter.clone())
        .expect("creating an idempotent producer");

    let offsets = await_offsets(enqueue(&producer, &topic, 0..BEFORE), 0).await;
    assert_eq!(offsets, (0..BEFORE as i64).collect::<Vec<_>>());

    broker.pause();
    let pending = enqueue(&producer, &topic, BEFORE..BEFORE + DURING);
    // librdkafka's statistics report a request that timed out: it will be retried.
    wait_until(
        Duration::from_secs(60),
        "a produce request to time out",
        || (counter.request_timeouts.load(Ordering::SeqCst) >= 1).then_some(()),
    );
    broker.resume();

    let offsets = await_offsets(pending, BEFORE).await;
    assert_eq!(
        offsets,
        (BEFORE as i64..(BEFORE + DURING) as i64).collect::<Vec<_>>(),
        "acknowledged offsets after the retries"
    );

    let consumed = clients::read_all(&broker, &topic, 0);
    let values: Vec<String> = consumed
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap()).unwrap())
        .collect();
    let expected: Vec<String> = (0..BEFORE + DURING)
        .map(|index| format!("record-{index:06}"))
        .collect();
    assert_eq!(
        values.len(),
        expected.len(),
        "records stored: duplicates or losses"
    );
    assert_eq!(values, expected, "every record exactly once, in order");
    clients::assert_contiguous_offsets(&consumed, 0);
}
