//! End-to-end latency at a fixed rate: from the moment the producer hands a record to
//! librdkafka to the moment a consumer in the same process gets it back.
//!
//! Both ends share one monotonic clock (an `Instant` taken at the start), so the first eight
//! bytes of each value carry its send time in nanoseconds since then. The producer paces
//! itself on a schedule (every tick it sends what the rate says is due), the consumer reads
//! with `assign()` from the beginning of the fresh topic and records each latency in an HDR
//! histogram. Records sent during the warm-up are read but not counted. Every record sent must
//! come back, or the run is an error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use crate::cases::{LatencyCase, ProduceCase, Topology};
use crate::client;
use crate::consume::{self, ConsumeError};
use crate::payload::Payload;
use crate::produce::{DeliveryCounter, ProduceError};
use crate::results::LatencySummary;

/// The producer wakes up this often to send what is due.
pub(crate) const TICK: Duration = Duration::from_micros(500);
/// How long the consumer may take to read the last records once the producer is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Latencies above this are clamped into the top bucket (and show up as such).
const MAX_TRACKED_MICROS: u64 = 120_000_000;
/// Value bytes that carry the send time.
pub(crate) const STAMP_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("records must hold a {STAMP_LEN}-byte send time, got {0} bytes")]
    RecordTooSmall(usize),
    #[error(transparent)]
    Produce(#[from] ProduceError),
    #[error(transparent)]
    Consume(#[from] ConsumeError),
    #[error(transparent)]
    Topic(#[from] client::TopicError),
    #[error("sending to {topic}")]
    Send {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("{topic}: {failed} records failed delivery, {in_flight} still in flight")]
    Undelivered {
        topic: String,
        failed: u64,
        in_flight: i32,
    },
    #[error("{topic}: the consumer got {received} of {sent} records")]
    Lost {
        topic: String,
        sent: u64,
        received: u64,
    },
    #[error("{topic}: no record was sent after the warm-up")]
    NothingMeasured { topic: String },
    #[error("the consumer thread panicked")]
    ConsumerPanicked,
}

/// What the consumer thread hands back.
pub(crate) struct Received {
    histogram: Histogram<u64>,
    count: u64,
}

/// The consuming end of a latency run: a thread that reads the assigned partitions from the
/// beginning and records each stamped record's latency, until it has as many records as the
/// producer says it sent (or the drain timeout passes once it has said so).
pub(crate) struct Reader {
    thread: thread::JoinHandle<Result<Received, ConsumeError>>,
    /// Set once the producer knows how many records it sent; the consumer stops there.
    sent_total: Arc<AtomicU64>,
}

impl Reader {
    /// Assigns every partition of `topic` to `consumer` and starts reading; returns once the
    /// thread runs. Records stamped before `warmup_nanos` after `epoch` are read, not counted.
    pub(crate) fn start(
        consumer: BaseConsumer,
        topic: &str,
        partitions: i32,
        epoch: Instant,
        warmup_nanos: u64,
    ) -> Result<Reader, ConsumeError> {
        let assign_error = |source| ConsumeError::Assign {
            topic: topic.to_string(),
            source,
        };
        let list = consume::assignment(topic, partitions).map_err(assign_error)?;
        consumer.assign(&list).map_err(assign_error)?;
        let sent_total = Arc::new(AtomicU64::new(u64::MAX));
        let ready = Arc::new(AtomicBool::new(false));
        let thread = {
            let sent_total = sent_total.clone();
            let ready = ready.clone();
            let topic = topic.to_string();
            thread::spawn(move || -> Result<Received, ConsumeError> {
                let mut histogram = Histogram::<u64>::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
                    .expect("static histogram bounds are valid");
                let mut count = 0u64;
                let mut drain_deadline: Option<Instant> = None;
                ready.store(true, Ordering::Release);
                loop {
                    let total = sent_total.load(Ordering::Acquire);
                    if count >= total {
                        break;
                    }
                    if total != u64::MAX {
                        let deadline =
                            *drain_deadline.get_or_insert(Instant::now() + DRAIN_TIMEOUT);
                        if Instant::now() > deadline {
                            break;
                        }
                    }
                    match consumer.poll(Duration::from_millis(50)) {
                        Some(Ok(message)) => {
                            let now = epoch.elapsed().as_nanos() as u64;
                            count += 1;
                            let Some(stamp) = message.payload().and_then(read_stamp) else {
                                continue;
                            };
                            if stamp >= warmup_nanos {
                                histogram.saturating_record(now.saturating_sub(stamp) / 1_000);
                            }
                        }
                        Some(Err(source)) => return Err(ConsumeError::Read { topic, source }),
                        None => {}
                    }
                }
                Ok(Received { histogram, count })
            })
        };
        while !ready.load(Ordering::Acquire) {
            thread::yield_now();
        }
        Ok(Reader { thread, sent_total })
    }

    /// Tells the thread that `sent` records went out and waits for it to read them.
    pub(crate) fn finish(self, sent: u64) -> Result<Received, LatencyError> {
        self.sent_total.store(sent, Ordering::Release);
        Ok(self
            .thread
            .join()
            .map_err(|_| LatencyError::ConsumerPanicked)??)
    }

    /// Stops the thread without waiting for any record (the producer failed).
    pub(crate) fn abandon(self) {
        self.sent_total.store(0, Ordering::Release);
        let _ = self.thread.join();
    }
}

/// Runs `case` at `rate` records/s against `topic`, which it creates (replicated as
/// `topology` says).
pub fn run(
    bootstrap: &str,
    topic: &str,
    case: &LatencyCase,
    topology: &Topology,
    rate: f64,
    payload: &Payload,
) -> Result<LatencySummary, LatencyError> {
    if case.record_size < STAMP_LEN {
        return Err(LatencyError::RecordTooSmall(case.record_size));
    }
    let topic = topic.to_string();
    client::create_topic(bootstrap, &topic, case.partitions, topology)?;
    let epoch = Instant::now();
    let warmup_nanos = (case.warmup_seconds * 1e9) as u64;
    let reader = Reader::start(
        consume::consumer(bootstrap)?,
        &topic,
        case.partitions,
        epoch,
        warmup_nanos,
    )?;

    let produce_case = ProduceCase {
        record_size: case.record_size,
        acks: case.acks,
        compression: case.compression,
        partitions: case.partitions,
        records: 0,
    };
    let producer = latency_producer(bootstrap, &produce_case)?;
    let sent = send_at_rate(&producer, &topic, case, rate, payload, epoch);
    let flushed = producer.flush(DRAIN_TIMEOUT);
    let sent = match sent {
        Ok(sent) => sent,
        Err(error) => {
            reader.abandon();
            return Err(error);
        }
    };
    let received = reader.finish(sent)?;
    let failed = producer.context().failed();
    if flushed.is_err() || failed != 0 {
        return Err(LatencyError::Undelivered {
            topic,
            failed,
            in_flight: producer.in_flight_count(),
        });
    }
    summarize(topic, rate, sent, case.seconds, &received)
}

/// The percentiles of what `received` recorded, once every one of `sent` records came back.
pub(crate) fn summarize(
    topic: String,
    rate: f64,
    sent: u64,
    seconds: f64,
    received: &Received,
) -> Result<LatencySummary, LatencyError> {
    if received.count < sent {
        return Err(LatencyError::Lost {
            topic,
            sent,
            received: received.count,
        });
    }
    let h = &received.histogram;
    if h.is_empty() {
        return Err(LatencyError::NothingMeasured { topic });
    }
    let ms = |micros: u64| micros as f64 / 1_000.0;
    Ok(LatencySummary {
        target_rate: rate,
        achieved_rate: sent as f64 / seconds,
        measured: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    })
}

/// The latency producer differs from the throughput one only in `linger.ms`: 1 ms, so the
/// producer's own batching delay does not dominate what is measured.
fn latency_producer(
    bootstrap: &str,
    case: &ProduceCase,
) -> Result<ThreadedProducer<DeliveryCounter>, ProduceError> {
    client::base_config(bootstrap)
        .set("acks", case.acks.config_value())
        .set("compression.codec", case.compression.config_value())
        .set("linger.ms", "1")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .create_with_context(DeliveryCounter::default())
        .map_err(ProduceError::Create)
}

/// Sends on schedule for `case.seconds`; returns how many records went out.
fn send_at_rate(
    producer: &ThreadedProducer<DeliveryCounter>,
    topic: &str,
    case: &LatencyCase,
    rate: f64,
    payload: &Payload,
    epoch: Instant,
) -> Result<u64, LatencyError> {
    let start = Instant::now();
    let duration = Duration::from_secs_f64(case.seconds);
    let mut value = vec![0u8; case.record_size];
    let mut sent = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok(sent);
        }
        let due = due_records(rate, elapsed);
        while sent < due {
            value.copy_from_slice(payload.value(sent, case.record_size));
            loop {
                let stamp = epoch.elapsed().as_nanos() as u64;
                value[..STAMP_LEN].copy_from_slice(&stamp.to_be_bytes());
                match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&value[..])) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // Only if the broker cannot keep up with the rate; the wait shows up
                        // in the latency of this record, as it would for an application.
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((source, _)) => {
                        return Err(LatencyError::Send {
                            topic: topic.to_string(),
                            source,
                        })
                    }
                }
            }
            sent += 1;
        }
        thread::sleep(TICK);
    }
}

/// How many records the schedule says should have been sent after `elapsed`.
pub(crate) fn due_records(rate: f64, elapsed: Duration) -> u64 {
    (rate * elapsed.as_secs_f64()) as u64
}

fn read_stamp(value: &[u8]) -> Option<u64> {
    let bytes: [u8; STAMP_LEN] = value.get(..STAMP_LEN)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_linear_in_time() {
        assert_eq!(due_records(1000.0, Duration::from_millis(0)), 0);
        assert_eq!(due_records(1000.0, Duration::from_millis(1500)), 1500);
        assert_eq!(due_records(50_000.0, Duration::from_micros(100)), 5);
    }

    #[test]
    fn stamp_round_trips_and_short_values_have_none() {
        let mut value = vec![0u8; 16];
        value[..8].copy_from_slice(&123_456_789u64.to_be_bytes());
        assert_eq!(read_stamp(&value), Some(123_456_789));
        assert_eq!(read_stamp(&[1, 2, 3]), None);
    }
}
