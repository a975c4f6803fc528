//! End-to-end latency through transactions: a transactional producer sends on a fixed
//! schedule and commits every `N` records; a `read_committed` consumer in the same process
//! reads them.
//!
//! A record becomes visible to `read_committed` only once its transaction's commit marker is
//! written and the last stable offset moves past it, so its latency holds the wait for the
//! rest of its transaction (at rate `R`, up to `N / R`), the commit (EndTxn and the markers on
//! every partition) and the fetch. While a commit runs the producer sends nothing: records
//! that fall due meanwhile go out after it, late, so each value carries the time its record
//! fell due on the schedule, not the time it went out, and that wait counts in its latency, as
//! it would for an application. The stamps are read by the consuming end of
//! [`crate::latency`], which this reuses.

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use super::{TransactionError, CALL_TIMEOUT};
use crate::cases::{Topology, TransactionLatencyCase};
use crate::client;
use crate::consume;
use crate::latency::{self, LatencyError, Reader, STAMP_LEN, TICK};
use crate::payload::Payload;
use crate::produce::DeliveryCounter;
use crate::results::LatencySummary;

/// Runs `case` against `topic`, which it creates, with a producer of `transactional_id`.
pub fn run(
    bootstrap: &str,
    topic: &str,
    transactional_id: &str,
    case: &TransactionLatencyCase,
    topology: &Topology,
    payload: &Payload,
) -> Result<LatencySummary, TransactionError> {
    if case.record_size < STAMP_LEN {
        return Err(LatencyError::RecordTooSmall(case.record_size).into());
    }
    client::create_topic(bootstrap, topic, case.partitions, topology)?;
    // linger.ms=1 as the plain latency producer: its own batching delay is not what is measured.
    let producer = super::producer(bootstrap, transactional_id, 1)?;
    let epoch = Instant::now();
    let reader = Reader::start(
        consume::read_committed_consumer(bootstrap)?,
        topic,
        case.partitions,
        epoch,
        (case.warmup_seconds * 1e9) as u64,
    )?;
    let sent = match send_at_rate(&producer, topic, transactional_id, case, payload, epoch) {
        Ok(sent) => sent,
        Err(error) => {
            let _ = producer.abort_transaction(CALL_TIMEOUT);
            reader.abandon();
            return Err(error);
        }
    };
    let received = reader.finish(sent)?;
    let failed = producer.context().failed();
    if failed != 0 {
        return Err(TransactionError::Undelivered {
            topic: topic.to_string(),
            failed,
        });
    }
    Ok(latency::summarize(
        topic.to_string(),
        case.rate,
        sent,
        case.seconds,
        &received,
    )?)
}

/// Sends on schedule for `case.seconds`, a transaction every `records_per_transaction`
/// records, and commits the last, shorter one; returns how many records went out.
fn send_at_rate(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    transactional_id: &str,
    case: &TransactionLatencyCase,
    payload: &Payload,
    epoch: Instant,
) -> Result<u64, TransactionError> {
    let per_transaction = case.records_per_transaction.max(1);
    let start = Instant::now();
    let duration = Duration::from_secs_f64(case.seconds);
    let mut value = vec![0u8; case.record_size];
    let mut sent = 0u64;
    let mut transaction = 0u64;
    let mut open = 0u64;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = latency::due_records(case.rate, elapsed);
        while sent < due {
            if open == 0 {
                begin(producer, transactional_id, transaction)?;
            }
            value.copy_from_slice(payload.value(sent, case.record_size));
            // The time the record fell due, not the time it went out: a record held back by
            // a commit counts that wait (no coordinated omission).
            let stamp = due_nanos(start.duration_since(epoch), case.rate, sent);
            value[..STAMP_LEN].copy_from_slice(&stamp.to_be_bytes());
            super::produce::send(producer, topic, transaction, sent, &value)?;
            sent += 1;
            open += 1;
            if open == per_transaction {
                commit(producer, transactional_id, transaction)?;
                transaction += 1;
                open = 0;
            }
        }
        // Serves the delivery reports (a BaseProducer's), waiting at most a tick.
        producer.poll(TICK);
    }
    if open > 0 {
        commit(producer, transactional_id, transaction)?;
    }
    Ok(sent)
}

/// When record `sequence` falls due on a schedule of `rate` records/s that starts `offset`
/// after the epoch, in nanoseconds since the epoch.
fn due_nanos(offset: Duration, rate: f64, sequence: u64) -> u64 {
    offset.as_nanos() as u64 + (sequence as f64 / rate * 1e9) as u64
}

fn begin(
    producer: &BaseProducer<DeliveryCounter>,
    transactional_id: &str,
    transaction: u64,
) -> Result<(), TransactionError> {
    producer
        .begin_transaction()
        .map_err(|source| TransactionError::Begin {
            transactional_id: transactional_id.to_string(),
            transaction,
            source: Box::new(source),
        })
}

fn commit(
    producer: &BaseProducer<DeliveryCounter>,
    transactional_id: &str,
    transaction: u64,
) -> Result<(), TransactionError> {
    let start = Instant::now();
    super::commit(producer, CALL_TIMEOUT)
        .map(drop)
        .map_err(|source| TransactionError::Commit {
            transactional_id: transactional_id.to_string(),
            transaction,
            elapsed: start.elapsed(),
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_stamped_when_due_not_when_sent() {
        let offset = Duration::from_millis(5);
        assert_eq!(due_nanos(offset, 250.0, 0), 5_000_000);
        // Record 250 at 250 records/s falls due a second after the start, however late it goes.
        assert_eq!(due_nanos(offset, 250.0, 250), 1_005_000_000);
    }
}
