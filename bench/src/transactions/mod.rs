//! Transactions (issue 15): a librdkafka transactional producer committing every `N` records,
//! and a `read_committed` consumer behind one.
//!
//! - [`produce`] times a transactional producer sending a case's records as fast as it can,
//!   one transaction of `N` records after another (`begin_transaction`, `N` sends,
//!   `commit_transaction`, which waits for the records and the commit);
//! - [`latency`] sends at a fixed rate through transactions and measures how long each record
//!   takes to reach a `read_committed` consumer (it becomes visible only at its commit);
//! - [`report`] renders both into the Transactions section of docs/BENCHMARKS.md.
//!
//! Both systems get the same client settings: the producer's `transactional.id` makes it
//! idempotent with `acks=all`; the topics are replicated as the run's topology says.

pub mod latency;
pub mod produce;
pub mod report;

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer};

use crate::client;
use crate::consume::ConsumeError;
use crate::latency::LatencyError;
use crate::produce::DeliveryCounter;

/// How often [`flush`] wakes librdkafka's broker threads.
const FLUSH_STEP: Duration = Duration::from_millis(1);

/// How long a transaction may stay open before the coordinator aborts it.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `init_transactions` and `commit_transaction` may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error(transparent)]
    Topic(#[from] client::TopicError),
    #[error("creating the transactional producer {transactional_id}")]
    Create {
        transactional_id: String,
        #[source]
        source: KafkaError,
    },
    #[error("fetching metadata of {topic} before the run")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("init_transactions of {transactional_id}")]
    Init {
        transactional_id: String,
        #[source]
        source: KafkaError,
    },
    #[error("begin_transaction of transaction {transaction} ({transactional_id})")]
    Begin {
        transactional_id: String,
        transaction: u64,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("sending record {sequence} to {topic} in transaction {transaction}")]
    Send {
        topic: String,
        transaction: u64,
        sequence: u64,
        #[source]
        source: Box<KafkaError>,
    },
    #[error(
        "commit_transaction of transaction {transaction} ({transactional_id}) after {elapsed:?}"
    )]
    Commit {
        transactional_id: String,
        transaction: u64,
        elapsed: Duration,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("{topic}: {failed} records failed delivery although their transactions committed")]
    Undelivered { topic: String, failed: u64 },
    // Boxed: the scenario errors are large, and every Result of this module carries this type.
    #[error(transparent)]
    Consume(Box<ConsumeError>),
    #[error(transparent)]
    Latency(Box<LatencyError>),
}

impl From<ConsumeError> for TransactionError {
    fn from(error: ConsumeError) -> TransactionError {
        TransactionError::Consume(Box::new(error))
    }
}

impl From<LatencyError> for TransactionError {
    fn from(error: LatencyError) -> TransactionError {
        TransactionError::Latency(Box::new(error))
    }
}

/// A transactional producer: `transactional.id` (hence idempotence and `acks=all`), batching
/// as the plain producer rows have it (1 MB batches) with `linger_ms`; `init_transactions` has
/// been called.
///
/// A `BaseProducer`, served by the caller's own polls: delivery reports reach the thread that
/// waits for them. Commit through [`commit`], not `commit_transaction` alone.
pub fn producer(
    bootstrap: &str,
    transactional_id: &str,
    linger_ms: u32,
) -> Result<BaseProducer<DeliveryCounter>, TransactionError> {
    let producer: BaseProducer<DeliveryCounter> = client::base_config(bootstrap)
        .set("transactional.id", transactional_id)
        .set("acks", "all")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set(
            "transaction.timeout.ms",
            TRANSACTION_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(DeliveryCounter::default())
        .map_err(|source| TransactionError::Create {
            transactional_id: transactional_id.to_string(),
            source,
        })?;
    producer
        .init_transactions(CALL_TIMEOUT)
        .map_err(|source| TransactionError::Init {
            transactional_id: transactional_id.to_string(),
            source,
        })?;
    Ok(producer)
}

/// Waits until every record handed to `producer` is acknowledged, or `timeout` passes.
///
/// Not the rdkafka crate's `flush` (which `commit_transaction` starts with): that one calls
/// librdkafka's flush without waiting, then polls for up to 100 ms. In a transaction the
/// records wait for their partitions to be added (AddPartitionsToTxn), and librdkafka does not
/// wake its broker threads when that answer arrives, only when a flush starts; with no delivery
/// report to end the poll early, every commit sat out the whole 100 ms step on both systems,
/// a client artefact that hid the brokers. Flushing in steps of `FLUSH_STEP` keeps waking
/// them.
pub fn flush(
    producer: &BaseProducer<DeliveryCounter>,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match producer.flush(FLUSH_STEP) {
            Ok(()) => return Ok(()),
            Err(error) if std::time::Instant::now() >= deadline => return Err(error),
            Err(_) => {}
        }
    }
}

/// [`flush`], then `commit_transaction` (whose own flush then finds nothing to wait for).
/// Returns how long the flush took.
pub fn commit(
    producer: &BaseProducer<DeliveryCounter>,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<Duration> {
    let start = std::time::Instant::now();
    flush(producer, timeout)?;
    let flushed = start.elapsed();
    producer.commit_transaction(timeout.saturating_sub(flushed))?;
    Ok(flushed)
}
