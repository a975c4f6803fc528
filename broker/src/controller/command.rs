//! Commands of the metadata log and what applying them returns.
//!
//! A command is a request to change the image; [`super::image::MetadataImage::apply`] decides
//! whether it still holds when its turn comes (stale epochs are refused there, not by the
//! proposer), so a command written with out-of-date knowledge can never corrupt the image.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::acl::{AclBinding, AclFilter};
use super::client_quotas::QuotaAlteration;
use super::image::{ListenerEndpoint, PartitionImage, ScramCredential, TopicPartition};

/// Replicas of one partition in preference order.
pub type ReplicaAssignment = Vec<i32>;

/// An ISR change proposed by a partition leader (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The proposing leader.
    pub leader: i32,
    /// The leader epoch it leads in.
    pub leader_epoch: i32,
    /// The partition epoch it last saw.
    pub partition_epoch: i32,
    /// The new ISR.
    pub isr: Vec<i32>,
}

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// Sets the cluster id if none is set yet.
    InitCluster {
        /// Proposed id.
        cluster_id: String,
    },
    /// A broker process started and announces itself (fenced until it catches up).
    RegisterBroker {
        /// Node id.
        id: i32,
        /// Random id of this process.
        incarnation: Uuid,
        /// `broker.rack`.
        rack: Option<String>,
        /// Advertised Kafka host.
        host: String,
        /// Advertised Kafka port.
        port: u16,
        /// Internal RPC address.
        rpc_addr: String,
        /// The directory id of its storage (`meta.properties`); `None` from brokers that
        /// predate directory ids.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        directory_id: Option<Uuid>,
        /// Every Kafka listener's advertised address; `host`/`port` are the inter-broker
        /// listener's. Empty from brokers that predate listeners.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<ListenerEndpoint>,
    },
    /// Removes a broker from the cluster.
    UnregisterBroker {
        /// Node id.
        id: i32,
    },
    /// A broker missed its session (or is not caught up): it leaves ISRs and leaderships.
    FenceBroker {
        /// Node id.
        id: i32,
        /// Its registration epoch.
        epoch: i64,
    },
    /// A registered broker caught up with the metadata log and heartbeats.
    UnfenceBroker {
        /// Node id.
        id: i32,
        /// Its registration epoch.
        epoch: i64,
    },
    /// A broker is shutting down: move its leaderships away first.
    ControlledShutdown {
        /// Node id.
        id: i32,
        /// Its registration epoch.
        epoch: i64,
    },
    /// Marks a broker as draining (no new replicas) or not.
    SetDraining {
        /// Node id.
        id: i32,
        /// Draining or not.
        draining: bool,
    },
    /// Creates a topic with a replica assignment per partition.
    CreateTopic {
        /// Name.
        name: String,
        /// Topic id.
        id: Uuid,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Replicas per partition.
        assignment: Vec<ReplicaAssignment>,
    },
    /// Appends partitions to a topic.
    CreatePartitions {
        /// Name.
        name: String,
        /// Replicas of each new partition.
        assignment: Vec<ReplicaAssignment>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Replaces a topic's config overrides.
    AlterTopicConfigs {
        /// Name.
        name: String,
        /// The new overrides.
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic broker settings of one broker (`Some(id)`) or the cluster-wide
    /// ones (`None`); an empty set removes them.
    AlterBrokerConfigs {
        /// The broker, or `None` for every broker.
        broker: Option<i32>,
        /// The new settings.
        configs: BTreeMap<String, String>,
    },
    /// Replaces a group's dynamic configs (Kafka's GROUP config resource: `share.*` settings
    /// of one share group); an empty set removes them.
    AlterGroupConfigs {
        /// The group id.
        group: String,
        /// The new settings.
        configs: BTreeMap<String, String>,
    },
    /// Sets and removes SCRAM credentials (AlterUserScramCredentials); removing one that
    /// does not exist does nothing.
    AlterScramCredentials {
        /// (user, mechanism name, credential) to set.
        upsertions: Vec<(String, String, ScramCredential)>,
        /// (user, mechanism name) to remove.
        deletions: Vec<(String, String)>,
    },
    /// Sets and removes client quotas (AlterClientQuotas).
    AlterClientQuotas {
        /// Per entity: settings to set (`Some`) or remove (`None`).
        alterations: Vec<QuotaAlteration>,
    },
    /// Adds ACL bindings (CreateAcls); one that exists already is left as it is.
    CreateAcls {
        /// The bindings, each valid ([`AclBinding::invalid_reason`]).
        bindings: Vec<AclBinding>,
    },
    /// Removes the ACL bindings each filter selects (DeleteAcls), evaluated when applied;
    /// returns [`CommandResult::DeletedAcls`].
    DeleteAcls {
        /// The filters.
        filters: Vec<AclFilter>,
    },
    /// An ISR change from a partition leader.
    AlterPartition(PartitionChange),
    /// Moves leadership to the preferred replica where it is in sync.
    ElectPreferredLeaders {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// Starts (`Some`) or cancels (`None`) a reassignment of one partition.
    Reassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Target replicas.
        target: Option<ReplicaAssignment>,
    },
    /// Sets (`Some`) or removes (`None`) the cap on the bytes per second each broker copies
    /// for replicas being added by reassignments.
    SetReassignmentThrottle {
        /// Bytes per second per broker.
        bytes_per_second: Option<u64>,
    },
    /// Hands a block of producer ids to a broker.
    AllocateProducerIds {
        /// The broker asking.
        broker_id: i32,
    },
}

/// What applying a command returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Done.
    Ok,
    /// Refused, with the Kafka error code that says why (a number: this is the form in the
    /// metadata log).
    Error {
        /// Kafka error code ([`ResponseError::code`]).
        code: i16,
        /// Human-readable reason.
        message: String,
    },
    /// The cluster id in force.
    ClusterId(String),
    /// A registration's broker epoch.
    BrokerEpoch(i64),
    /// The partition after an ISR change.
    Partition(PartitionImage),
    /// Per-partition outcome of leader elections (0 = elected).
    Elections(Vec<(TopicPartition, i16)>),
    /// The bindings each DeleteAcls filter removed, in filter order.
    DeletedAcls(Vec<Vec<AclBinding>>),
    /// A block of producer ids `start..start + len`.
    ProducerIds {
        /// First id.
        start: i64,
        /// Number of ids.
        len: i64,
    },
}

impl CommandResult {
    /// An error result: `error`'s code, as the log stores it.
    pub fn error(error: ResponseError, message: impl Into<String>) -> Self {
        CommandResult::Error {
            code: error.code(),
            message: message.into(),
        }
    }
}
