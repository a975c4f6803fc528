//! Producer throughput: one librdkafka producer sends a case's records as fast as it can and
//! waits for every delivery report.
//!
//! The clock starts once the producer has its connection and metadata, and stops when the
//! last delivery report is in, so it measures the broker's append path under a full pipeline,
//! not connection set-up. A run with any failed delivery is an error, never a number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::cases::{ProduceCase, Topology};
use crate::client::{self, REQUEST_TIMEOUT};
use crate::payload::Payload;
use crate::results::Throughput;

/// How long the last deliveries may take once everything is sent.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Topic(#[from] client::TopicError),
    #[error("creating the producer")]
    Create(#[source] KafkaError),
    #[error("fetching metadata of {topic} before the run")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("sending record {sequence} to {topic}")]
    Send {
        topic: String,
        sequence: u64,
        #[source]
        source: KafkaError,
    },
    #[error("{topic}: {failed} of {records} records failed delivery, {in_flight} still in flight after {FLUSH_TIMEOUT:?}")]
    Undelivered {
        topic: String,
        records: u64,
        failed: u64,
        in_flight: i32,
    },
}

/// Counts failed delivery reports, so a run that lost records says so instead of reporting
/// a speed.
#[derive(Debug, Default)]
pub struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl DeliveryCounter {
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A throughput producer for `case`: large batches, a deep queue, no idempotence (neither
/// broker is asked to track producer state in these rows).
pub fn producer(
    bootstrap: &str,
    case: &ProduceCase,
) -> Result<ThreadedProducer<DeliveryCounter>, ProduceError> {
    producer_with(bootstrap, case, &[])
}

/// [`producer`] with `extra` client settings on top (a listener's security settings).
pub fn producer_with(
    bootstrap: &str,
    case: &ProduceCase,
    extra: &[(String, String)],
) -> Result<ThreadedProducer<DeliveryCounter>, ProduceError> {
    let mut config = client::base_config(bootstrap);
    for (name, value) in extra {
        config.set(name, value);
    }
    config
        .set("acks", case.acks.config_value())
        .set("compression.codec", case.compression.config_value())
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000")
        .create_with_context(DeliveryCounter::default())
        .map_err(ProduceError::Create)
}

/// Creates `topic` with the case's partitions, replicated as `topology` says, and fills it,
/// timing the sends.
pub fn run(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    topology: &Topology,
    payload: &Payload,
) -> Result<Throughput, ProduceError> {
    client::create_topic(bootstrap, topic, case.partitions, topology)?;
    fill(bootstrap, topic, case, payload)
}

/// Fills `topic` (which exists, with the case's partitions) with the case's records, timing
/// the sends.
pub fn fill(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
) -> Result<Throughput, ProduceError> {
    fill_with(bootstrap, topic, case, payload, &[])
}

/// [`fill`] by a producer with `extra` client settings (see [`producer_with`]).
pub fn fill_with(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
    extra: &[(String, String)],
) -> Result<Throughput, ProduceError> {
    send_all(bootstrap, topic, case, payload, extra, |_| None)
}

/// Sends one record of the case's size to every partition of `topic` (which exists, with
/// `case.partitions`), each addressed to its partition, and waits until all are acknowledged:
/// the moment a new topic takes records everywhere, whether its brokers answered Metadata
/// before or after their logs were ready (a producer retries a partition that is not).
pub fn one_per_partition(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
) -> Result<Throughput, ProduceError> {
    let case = ProduceCase {
        records: case.partitions as u64,
        ..*case
    };
    // Retried partitions come back soon: the default backoff would count 100 ms steps.
    let extra = [("retry.backoff.ms".to_string(), "10".to_string())];
    send_all(bootstrap, topic, &case, payload, &extra, |sequence| {
        Some(sequence as i32)
    })
}

/// Sends the case's records, to the partition `partition_of` says (`None`: librdkafka's
/// choice), timing the sends until every one is acknowledged.
fn send_all(
    bootstrap: &str,
    topic: &str,
    case: &ProduceCase,
    payload: &Payload,
    extra: &[(String, String)],
    partition_of: impl Fn(u64) -> Option<i32>,
) -> Result<Throughput, ProduceError> {
    let topic = topic.to_string();
    let producer = producer_with(bootstrap, case, extra)?;
    producer
        .client()
        .fetch_metadata(Some(&topic), REQUEST_TIMEOUT)
        .map_err(|source| ProduceError::Metadata {
            topic: topic.clone(),
            source,
        })?;
    let start = Instant::now();
    for sequence in 0..case.records {
        // Unless addressed, librdkafka picks the partition (consistent-random: no key, so
        // sticky batches).
        let mut record =
            BaseRecord::<(), [u8]>::to(&topic).payload(payload.value(sequence, case.record_size));
        if let Some(partition) = partition_of(sequence) {
            record = record.partition(partition);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The pipeline is full: let delivery reports drain it.
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((source, _)) => {
                    return Err(ProduceError::Send {
                        topic,
                        sequence,
                        source,
                    })
                }
            }
        }
    }
    // A flush timeout shows up below as records still in flight.
    let _ = producer.flush(FLUSH_TIMEOUT);
    let seconds = start.elapsed().as_secs_f64();
    let failed = producer.context().failed();
    let in_flight = producer.in_flight_count();
    if failed != 0 || in_flight != 0 {
        return Err(ProduceError::Undelivered {
            topic,
            records: case.records,
            failed,
            in_flight,
        });
    }
    Ok(Throughput {
        records: case.records,
        bytes: case.bytes(),
        seconds,
    })
}
