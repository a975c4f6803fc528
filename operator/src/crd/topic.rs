//! The `Topic` resource: a Kafka topic in a [`super::Cluster`] of the same namespace.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The annotation that keeps the Kafka topic (and its data) when the `Topic` is deleted.
pub const DELETION_PROTECTION_ANNOTATION: &str = "weir.dev/deletion-protection";

/// A Kafka topic managed through the cluster's admin API.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    doc = "A Kafka topic in a Weir cluster, managed by weir-operator.",
    status = "TopicStatus",
    shortname = "wt",
    category = "weir",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".spec.partitions"}"#,
    printcolumn = r#"{"name":"RF","type":"integer","jsonPath":".spec.replicationFactor"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Name of the `Cluster` (same namespace) the topic lives in. Fixed at creation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef cannot change"))]
    pub cluster_ref: String,

    /// The Kafka topic name, when it differs from `metadata.name` (Kafka allows `_` and upper
    /// case letters, Kubernetes names do not). Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("topicName cannot change"))]
    pub topic_name: Option<String>,

    /// Number of partitions. It can grow; a decrease is refused (Kafka cannot remove
    /// partitions).
    #[schemars(range(min = 1, max = 100000))]
    pub partitions: i32,

    /// Replicas of each partition; at most the number of brokers.
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,

    /// Topic settings by their Kafka names (`retention.ms`, `cleanup.policy`,
    /// `min.insync.replicas`, ...). Settings removed here return to the broker defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl Topic {
    /// The Kafka topic name: `spec.topicName`, else the resource's name.
    pub fn kafka_name(&self) -> String {
        self.spec
            .topic_name
            .clone()
            .or_else(|| self.metadata.name.clone())
            .unwrap_or_default()
    }

    /// Whether deleting this resource leaves the Kafka topic in place.
    pub fn deletion_protected(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DELETION_PROTECTION_ANNOTATION))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, plus `PartitionDecreaseRefused` / `ReplicationFactorChangeRefused` when the spec
    /// asks for what cannot be done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Kafka topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The Kafka topic name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_name: Option<String>,
    /// Per partition: replicas (preferred leader first), leader and in-sync replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionStatus>,
}

/// One partition's assignment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub partition: i32,
    pub replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    pub isr: Vec<i32>,
}
