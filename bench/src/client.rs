//! librdkafka clients as every scenario configures them, and topic set-up.
//!
//! All scenarios talk to the broker under test through these helpers so that Weir and Apache
//! Kafka see byte-for-byte the same client settings. Topics are created explicitly, with the
//! replication of the run's [`Topology`], and the bench waits until every partition has a
//! leader and a full in-sync replica set before it starts a clock: a freshly created topic can
//! take a moment to elect leaders and for followers to join, and that is set-up, not
//! throughput.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::cases::Topology;

/// Timeout for one admin or metadata request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a created topic may take to have a leader for every partition.
const LEADER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("creating an admin client for {bootstrap}")]
    Client {
        bootstrap: String,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic}")]
    Create {
        topic: String,
        #[source]
        source: KafkaError,
    },
    #[error("creating topic {topic}: the broker answered {code}")]
    Rejected { topic: String, code: String },
    #[error("topic {topic}: not every one of its {partitions} partitions had a leader and {replicas} in-sync replicas after {timeout:?}")]
    NoLeaders {
        topic: String,
        partitions: i32,
        replicas: i32,
        timeout: Duration,
    },
    #[error("starting a runtime for the admin client")]
    Runtime(#[source] std::io::Error),
}

/// The settings every client starts from: the broker's address, IPv4, a client id that shows
/// up in broker logs, and librdkafka's own logging kept to warnings.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("client.id", "weir-bench")
        .set("log_level", "4");
    config
}

/// Creates `topic` with `partitions` partitions, replicated as `topology` says, and waits
/// until each partition has a leader and every replica in sync.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    topology: &Topology,
) -> Result<(), TopicError> {
    create_topic_within(bootstrap, topic, partitions, topology, LEADER_TIMEOUT)
}

/// [`create_topic`], waiting up to `timeout` for the leaders and in-sync replicas (tens of
/// thousands of partitions take longer than the default).
pub fn create_topic_within(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    topology: &Topology,
    timeout: Duration,
) -> Result<(), TopicError> {
    let admin = admin(bootstrap)?;
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let min_insync_replicas = topology.min_insync_replicas.to_string();
    let new_topic = NewTopic::new(
        topic,
        partitions.min(PARTITIONS_PER_REQUEST),
        TopicReplication::Fixed(topology.replication_factor),
    )
    .set("min.insync.replicas", &min_insync_replicas);
    let results = block_on(admin.create_topics(&[new_topic], &options))?.map_err(|source| {
        TopicError::Create {
            topic: topic.to_string(),
            source,
        }
    })?;
    check_created(topic, results)?;
    // The rest in CreatePartitions requests of at most PARTITIONS_PER_REQUEST each.
    let mut created = partitions.min(PARTITIONS_PER_REQUEST);
    while created < partitions {
        created = (created + PARTITIONS_PER_REQUEST).min(partitions);
        let more = NewPartitions::new(topic, created as usize);
        let results = block_on(admin.create_partitions(&[more], &options))?.map_err(|source| {
            TopicError::Create {
                topic: topic.to_string(),
                source,
            }
        })?;
        check_created(topic, results)?;
    }
    wait_led_within(&admin, topic, partitions, topology, timeout)
}

/// The answers of a CreateTopics or CreatePartitions: refusals are errors; a timeout is not (the
/// creation goes on in the broker, many partitions on a loaded machine: the caller waits for
/// the leaders instead).
fn check_created(
    topic: &str,
    results: Vec<Result<String, (String, rdkafka::types::RDKafkaErrorCode)>>,
) -> Result<(), TopicError> {
    for result in results {
        if let Err((_, code)) = result {
            if code != rdkafka::types::RDKafkaErrorCode::RequestTimedOut {
                return Err(TopicError::Rejected {
                    topic: topic.to_string(),
                    code: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// The most partitions one admin request creates: Apache Kafka's controller refuses an
/// operation of more than 10,000 metadata records (`POLICY_VIOLATION`), and a topic of N
/// partitions is N + 1 of them. Larger topics are created at this size and grown with
/// CreatePartitions, on both systems alike.
pub const PARTITIONS_PER_REQUEST: i32 = 5_000;

/// Waits until every one of the `partitions` partitions of `topic` has a leader and a full
/// in-sync replica set (after a create, or after a restart of the brokers).
pub fn wait_led(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    topology: &Topology,
) -> Result<(), TopicError> {
    wait_led_within(admin, topic, partitions, topology, LEADER_TIMEOUT)
}

/// [`wait_led`], giving up after `timeout`.
pub fn wait_led_within(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
    topology: &Topology,
    timeout: Duration,
) -> Result<(), TopicError> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(metadata) = admin.inner().fetch_metadata(Some(topic), REQUEST_TIMEOUT) {
            let replicas = topology.replication_factor as usize;
            let led = metadata.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| {
                        p.leader() >= 0 && p.error().is_none() && p.isr().len() == replicas
                    })
            });
            if led {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(TopicError::NoLeaders {
        topic: topic.to_string(),
        partitions,
        replicas: topology.replication_factor,
        timeout,
    })
}

/// An admin client of `bootstrap`.
pub fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, TopicError> {
    base_config(bootstrap)
        .create()
        .map_err(|source| TopicError::Client {
            bootstrap: bootstrap.to_string(),
            source,
        })
}

/// Runs one future of the rdkafka admin API to completion. The admin client polls on its own
/// thread; the runtime only waits for the answer.
fn block_on<F: Future>(future: F) -> Result<F::Output, TopicError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(TopicError::Runtime)?;
    Ok(runtime.block_on(future))
}
