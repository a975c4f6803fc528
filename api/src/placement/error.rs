//! Why a placement request cannot be answered. Each variant names the input at fault, so the
//! controller can turn it into a Kafka error message and the operator into a status condition.

use super::types::{BrokerId, TopicPartition};

/// A placement request that has no valid answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no brokers are available to place replicas on")]
    NoBrokers,

    #[error("broker id {0} is listed more than once")]
    DuplicateBroker(BrokerId),

    #[error("a topic needs at least one partition, got {0}")]
    InvalidPartitionCount(i32),

    #[error("replication factor must be at least 1, got {0}")]
    InvalidReplicationFactor(i16),

    #[error(
        "replication factor {replication_factor} is larger than the number of available brokers ({available})"
    )]
    ReplicationFactorTooLarge {
        replication_factor: i16,
        available: usize,
    },

    #[error("topic {0} does not exist")]
    UnknownTopic(String),

    #[error("topic {topic} has {current} partitions; the new count {requested} must be larger")]
    PartitionCountNotIncreasing {
        topic: String,
        current: i32,
        requested: i32,
    },

    #[error("{partition} has no replicas")]
    NoReplicas { partition: TopicPartition },

    #[error("{partition} has a replica on broker {broker}, which is not a known broker")]
    UnknownBroker {
        partition: TopicPartition,
        broker: BrokerId,
    },

    #[error("broker {0} cannot be drained: it is not a known broker")]
    UnknownDrainingBroker(BrokerId),

    #[error(
        "{} partition(s) have more replicas than the {available} broker(s) left: {}",
        .partitions.len(),
        describe_too_wide(.partitions)
    )]
    NotEnoughBrokers {
        available: usize,
        /// Each partition that does not fit, with its replication factor.
        partitions: Vec<(TopicPartition, usize)>,
    },

    #[error("{replicas} replicas on {brokers} brokers is more than the planner handles")]
    TooLarge { replicas: usize, brokers: usize },
}

/// "orders-0 (RF 3), orders-1 (RF 3)", shortened after a handful so a log line stays readable.
fn describe_too_wide(partitions: &[(TopicPartition, usize)]) -> String {
    const SHOWN: usize = 8;
    let mut text = partitions
        .iter()
        .take(SHOWN)
        .map(|(tp, rf)| format!("{tp} (RF {rf})"))
        .collect::<Vec<_>>()
        .join(", ");
    if partitions.len() > SHOWN {
        text.push_str(&format!(" and {} more", partitions.len() - SHOWN));
    }
    text
}
