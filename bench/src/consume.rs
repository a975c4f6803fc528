//! Consumer catch-up: one consumer reads a pre-filled topic from the beginning of every
//! partition, as fast as it can, until it has every record.
//!
//! The consumer uses `assign()` and never joins its group, so this measures Fetch and nothing
//! of group coordination. The clock starts at the assignment (the connection is already up)
//! and stops at the last expected record; fewer records than expected before the deadline is
//! an error.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{self, REQUEST_TIMEOUT};
use crate::results::Throughput;

/// How long reading a whole topic may take.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("creating the consumer")]
    Create(#[source] KafkaError),
    #[error("fetching metadata of {topic}")]
    Metadata {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("assigning {topic}")]
    Assign {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("reading {topic}")]
    Read {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("{topic}: read {read} of {expected} records within {READ_TIMEOUT:?}")]
    Incomplete {
        topic: String,
        read: u64,
        expected: u64,
    },
}

/// A consumer that reads assigned partitions and never commits or joins its group.
/// librdkafka wants a `group.id` even for `assign()`; the group is never used.
pub fn consumer(bootstrap: &str) -> Result<BaseConsumer, ConsumeError> {
    reader_config(bootstrap)
        .create()
        .map_err(ConsumeError::Create)
}

/// The same consumer with `isolation.level=read_committed` said explicitly (librdkafka's
/// default, but the transactional cases depend on it): it reads up to the last stable offset
/// and skips records of aborted transactions.
pub fn read_committed_consumer(bootstrap: &str) -> Result<BaseConsumer, ConsumeError> {
    reader_config(bootstrap)
        .set("isolation.level", "read_committed")
        .create()
        .map_err(ConsumeError::Create)
}

fn reader_config(bootstrap: &str) -> rdkafka::ClientConfig {
    let mut config = client::base_config(bootstrap);
    config
        .set("group.id", "weir-bench-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// Every partition of `topic` from its first offset.
pub fn assignment(topic: &str, partitions: i32) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    Ok(list)
}

/// Reads `expected` records from all `partitions` of `topic`, timing it.
pub fn catch_up(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
) -> Result<Throughput, ConsumeError> {
    let consumer = consumer(bootstrap)?;
    consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|source| ConsumeError::Metadata {
            topic: topic.to_string(),
            source,
        })?;
    let assign_error = |source| ConsumeError::Assign {
        topic: topic.to_string(),
        source,
    };
    let list = assignment(topic, partitions).map_err(assign_error)?;
    let start = Instant::now();
    consumer.assign(&list).map_err(assign_error)?;
    let deadline = start + READ_TIMEOUT;
    let mut read = 0u64;
    let mut bytes = 0u64;
    while read < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                read += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(source)) => {
                return Err(ConsumeError::Read {
                    topic: topic.to_string(),
                    source,
                })
            }
            None => {}
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if read < expected {
        return Err(ConsumeError::Incomplete {
            topic: topic.to_string(),
            read,
            expected,
        });
    }
    Ok(Throughput {
        records: read,
        bytes,
        seconds,
    })
}
