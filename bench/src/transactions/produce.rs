//! Transactional producer throughput: transactions of a case's size, one after another, as
//! fast as one producer commits them.
//!
//! The clock starts once the producer has its metadata and its producer id
//! (`init_transactions` is set-up, as connecting is for the plain rows) and stops when the last
//! commit returns. Each `commit_transaction` is timed too: it flushes the transaction's last
//! records and waits for EndTxn, so its duration is what a transaction costs beyond its sends.
//! A failed send, begin or commit ends the case with an error (after an abort is attempted),
//! never a number.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{TransactionError, CALL_TIMEOUT};
use crate::cases::{Topology, TransactionCase};
use crate::client::{self, REQUEST_TIMEOUT};
use crate::payload::Payload;
use crate::produce::DeliveryCounter;
use crate::results::{Throughput, TransactionMeasurement};

/// Commit durations above this many microseconds are clamped into the top bucket.
const MAX_TRACKED_COMMIT_MICROS: u64 = 600_000_000;

/// Creates `topic` (partitions and replication from `case` and `topology`) and sends `case`'s
/// records through a producer with `transactional_id`.
pub fn run(
    bootstrap: &str,
    topic: &str,
    transactional_id: &str,
    case: &TransactionCase,
    topology: &Topology,
    payload: &Payload,
) -> Result<TransactionMeasurement, TransactionError> {
    client::create_topic(bootstrap, topic, case.partitions, topology)?;
    let producer = super::producer(bootstrap, transactional_id, 5)?;
    producer
        .client()
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|source| TransactionError::Metadata {
            topic: topic.to_string(),
            source,
        })?;
    let histogram = || {
        Histogram::<u64>::new_with_bounds(1, MAX_TRACKED_COMMIT_MICROS, 3)
            .expect("static histogram bounds are valid")
    };
    let (mut commits, mut flushes) = (histogram(), histogram());
    let per_transaction = case.records_per_transaction.max(1);
    let start = Instant::now();
    let mut sequence = 0u64;
    let mut transaction = 0u64;
    while sequence < case.records {
        let end = (sequence + per_transaction).min(case.records);
        let result = one_transaction(
            &producer,
            topic,
            transactional_id,
            transaction,
            sequence..end,
            case,
            payload,
        );
        match result {
            Ok(timing) => {
                commits.saturating_record(timing.commit.as_micros() as u64);
                flushes.saturating_record(timing.flush.as_micros() as u64);
            }
            Err(error) => {
                // Leaves the transactional id clean for whoever uses it next; the error that
                // matters is the first one.
                let _ = producer.abort_transaction(CALL_TIMEOUT);
                return Err(error);
            }
        }
        sequence = end;
        transaction += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let failed = producer.context().failed();
    if failed != 0 {
        return Err(TransactionError::Undelivered {
            topic: topic.to_string(),
            failed,
        });
    }
    let ms = |micros: u64| micros as f64 / 1_000.0;
    Ok(TransactionMeasurement {
        case: *case,
        throughput: Throughput {
            records: case.records,
            bytes: case.bytes(),
            seconds,
        },
        transactions: transaction,
        commit_p50_ms: ms(commits.value_at_quantile(0.50)),
        commit_p99_ms: ms(commits.value_at_quantile(0.99)),
        flush_p50_ms: Some(ms(flushes.value_at_quantile(0.50))),
    })
}

/// Where a commit's time went.
struct CommitTiming {
    /// The whole commit: the flush, then `commit_transaction` (EndTxn).
    commit: Duration,
    /// Waiting for the transaction's records to be acknowledged (AddPartitionsToTxn and
    /// Produce), before EndTxn.
    flush: Duration,
}

/// Begins a transaction, sends `sequences`, commits; returns how long the commit took.
fn one_transaction(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    transactional_id: &str,
    transaction: u64,
    sequences: std::ops::Range<u64>,
    case: &TransactionCase,
    payload: &Payload,
) -> Result<CommitTiming, TransactionError> {
    producer
        .begin_transaction()
        .map_err(|source| TransactionError::Begin {
            transactional_id: transactional_id.to_string(),
            transaction,
            source: Box::new(source),
        })?;
    for sequence in sequences {
        send(
            producer,
            topic,
            transaction,
            sequence,
            payload.value(sequence, case.record_size),
        )?;
    }
    let commit_start = Instant::now();
    let failed = |source| TransactionError::Commit {
        transactional_id: transactional_id.to_string(),
        transaction,
        elapsed: commit_start.elapsed(),
        source: Box::new(source),
    };
    let flush = super::commit(producer, CALL_TIMEOUT).map_err(failed)?;
    Ok(CommitTiming {
        commit: commit_start.elapsed(),
        flush,
    })
}

/// Hands one record to librdkafka, waiting while its queue is full.
pub(super) fn send(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    transaction: u64,
    sequence: u64,
    value: &[u8],
) -> Result<(), TransactionError> {
    // librdkafka picks the partition (no key: sticky batches, as the plain rows).
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((source, _)) => {
                return Err(TransactionError::Send {
                    topic: topic.to_string(),
                    transaction,
                    sequence,
                    source: Box::new(source),
                })
            }
        }
    }
}
