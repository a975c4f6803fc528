//! The values placement reads and writes: brokers, replica assignments, and plans.
//!
//! An assignment is Kafka's: per partition an ordered replica list whose first entry is the
//! preferred leader. Partition ids are the list indexes, so they are always `0..count` as in
//! Kafka. These types carry no rules themselves; [`super::validate()`] says whether an assignment
//! keeps them.

use std::collections::BTreeMap;
use std::fmt;

/// A broker id as Kafka has it (`node.id`).
pub type BrokerId = i32;

/// What placement needs to know about a broker: its id and its `broker.rack`.
///
/// A broker without a rack (or with an empty one) is its own failure domain: placement treats
/// it as a rack of one. See `docs/placement.md`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerInfo {
    pub id: BrokerId,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn new(id: BrokerId, rack: Option<&str>) -> Self {
        Self {
            id,
            rack: rack.map(str::to_owned),
        }
    }
}

/// The replica lists of one topic's partitions: `partitions[p]` is partition `p`'s replicas,
/// preferred leader first. Nothing here forbids duplicates or empty lists; `validate` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicAssignment {
    pub partitions: Vec<Vec<BrokerId>>,
}

impl TopicAssignment {
    pub fn new(partitions: Vec<Vec<BrokerId>>) -> Self {
        Self { partitions }
    }

    /// Number of partitions, as Kafka counts them (`i32`).
    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }

    /// Partition `partition`'s replicas, or `None` if the topic has no such partition.
    pub fn replicas(&self, partition: i32) -> Option<&[BrokerId]> {
        let index = usize::try_from(partition).ok()?;
        self.partitions.get(index).map(Vec::as_slice)
    }
}

/// The replica assignment of a whole cluster, by topic name (ordered, so every walk over it is
/// deterministic).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub topics: BTreeMap<String, TopicAssignment>,
}

impl Assignment {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) one topic's assignment; returns `self` for chaining in tests and tools.
    pub fn with_topic(mut self, topic: impl Into<String>, assignment: TopicAssignment) -> Self {
        self.topics.insert(topic.into(), assignment);
        self
    }

    pub fn topic(&self, topic: &str) -> Option<&TopicAssignment> {
        self.topics.get(topic)
    }

    /// Every partition as `(topic, partition, replicas)`, in topic then partition order.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, i32, &[BrokerId])> + '_ {
        self.topics.iter().flat_map(|(topic, assignment)| {
            assignment
                .partitions
                .iter()
                .enumerate()
                .map(move |(p, replicas)| (topic.as_str(), partition_id(p), replicas.as_slice()))
        })
    }

    /// How many replicas each broker holds (brokers holding none are absent).
    pub fn replica_counts(&self) -> BTreeMap<BrokerId, usize> {
        let mut counts = BTreeMap::new();
        for (_, _, replicas) in self.partitions() {
            for &broker in replicas {
                *counts.entry(broker).or_default() += 1;
            }
        }
        counts
    }

    /// How many partitions each broker is the preferred leader of (brokers leading none are absent).
    pub fn leader_counts(&self) -> BTreeMap<BrokerId, usize> {
        let mut counts = BTreeMap::new();
        for (_, _, replicas) in self.partitions() {
            if let Some(&leader) = replicas.first() {
                *counts.entry(leader).or_default() += 1;
            }
        }
        counts
    }
}

/// Converts a partition index back to Kafka's `i32` partition id.
pub(crate) fn partition_id(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// A topic and partition, printed the Kafka way (`orders-3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One partition whose replica list changes: the request Kafka's AlterPartitionReassignments
/// (and the admin API's ReassignPartitions) takes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub current: Vec<BrokerId>,
    pub target: Vec<BrokerId>,
}

impl Reassignment {
    /// Brokers that gain a replica (in target order): each needs a full copy of the log.
    pub fn adding(&self) -> Vec<BrokerId> {
        self.target
            .iter()
            .copied()
            .filter(|b| !self.current.contains(b))
            .collect()
    }

    /// Brokers that lose their replica (in current order).
    pub fn removing(&self) -> Vec<BrokerId> {
        let mut seen = Vec::new();
        let mut removing = Vec::new();
        for &broker in &self.current {
            // A duplicate entry in an invalid current list is a slot that moves too.
            if !self.target.contains(&broker) || seen.contains(&broker) {
                removing.push(broker);
            }
            seen.push(broker);
        }
        removing
    }

    /// True when only the order (the preferred leader) changes: no data has to move.
    pub fn is_leader_only(&self) -> bool {
        self.adding().is_empty() && self.removing().is_empty()
    }
}

/// One replica slot changing broker: the unit the planner minimises, since each one copies a
/// partition's log to a new broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaMove {
    pub topic: String,
    pub partition: i32,
    pub from: BrokerId,
    pub to: BrokerId,
}

/// The result of [`super::rebalance_plan`] or [`super::drain_plan`]: the full target assignment
/// and the partitions whose replica lists change to get there (moves and preferred-leader
/// changes alike), in topic then partition order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub target: Assignment,
    pub reassignments: Vec<Reassignment>,
}

impl Plan {
    /// True when the current assignment already is the target.
    pub fn is_empty(&self) -> bool {
        self.reassignments.is_empty()
    }

    /// Every replica slot that changes broker; a removed replica is paired with an added one
    /// in order.
    pub fn moves(&self) -> Vec<ReplicaMove> {
        self.reassignments
            .iter()
            .flat_map(|r| {
                r.removing()
                    .into_iter()
                    .zip(r.adding())
                    .map(|(from, to)| ReplicaMove {
                        topic: r.topic.clone(),
                        partition: r.partition,
                        from,
                        to,
                    })
            })
            .collect()
    }

    /// Number of replica moves (data copies) the plan needs.
    pub fn move_count(&self) -> usize {
        self.reassignments.iter().map(|r| r.adding().len()).sum()
    }

    /// Partitions whose preferred leader (first replica) changes.
    pub fn leader_change_count(&self) -> usize {
        self.reassignments
            .iter()
            .filter(|r| r.current.first() != r.target.first())
            .count()
    }
}
