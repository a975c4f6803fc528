//! The `Cluster` resource: a set of Weir brokers run as one StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::quantity::QUANTITY_PATTERN;
use super::rebalance::RebalancePhase;

/// Settings the operator itself sets on every broker; a `config` entry naming one is refused.
pub const RESERVED_CONFIG_KEYS: &[&str] = &[
    "node.id",
    "broker.id",
    "broker.rack",
    "log.dir",
    "log.dirs",
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "process.roles",
];

/// A Weir cluster: `replicas` brokers, each with its own persistent volume, managed by the
/// operator (StatefulSet, Services, PodDisruptionBudget, rebalancing and draining).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    doc = "A Weir cluster: brokers in a StatefulSet, managed by weir-operator.",
    status = "ClusterStatus",
    shortname = "wc",
    category = "weir",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Controller","type":"integer","jsonPath":".status.controllerId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.readyReplicas"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of brokers. Broker ids are the pod ordinals `0..replicas`; the first (up to)
    /// three brokers are the metadata quorum's voters (a cluster created with fewer grows to
    /// three voters once it has three ready brokers).
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// The broker container image (it must provide `weir-broker` on the PATH). Unset, the
    /// operator's default: the image it runs from itself (`weir:<version>`, what
    /// `scripts/build-images.sh` builds), or its `--default-broker-image`. Brokers without an
    /// image of their own are rolled onto the new default when the operator is upgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,

    /// Image pull policy of the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = "self in ['Always', 'IfNotPresent', 'Never']")]
    pub image_pull_policy: Option<String>,

    /// Each broker's persistent volume.
    pub storage: StorageSpec,

    /// CPU and memory for the broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Spread brokers and replicas across failure domains named by a node label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<RackSpec>,

    /// Broker settings by their Kafka names (`log.retention.ms`, `num.partitions`, ...). A change
    /// rolls the brokers one at a time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 256))]
    #[x_kube(validation = Rule::new(
        "self.all(k, !(k in ['node.id', 'broker.id', 'broker.rack', 'log.dir', 'log.dirs', 'listeners', 'advertised.listeners', 'controller.quorum.voters', 'process.roles']))"
    ).message("node.id, broker.id, broker.rack, log.dir(s), listeners, advertised.listeners, controller.quorum.voters and process.roles are set by the operator"))]
    pub config: BTreeMap<String, String>,

    /// The brokers' ports.
    #[serde(default)]
    pub listeners: ListenersSpec,

    /// How the operator moves data when brokers are added or removed.
    #[serde(default)]
    pub rebalance: RebalanceSpec,
}

/// A broker's persistent volume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Volume size, a Kubernetes quantity (`100Gi`). It can grow (the PVCs are expanded in
    /// place; the storage class must allow expansion); shrinking is refused.
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub size: String,

    /// Storage class of the volumes; the cluster default when unset. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName cannot change"))]
    pub storage_class_name: Option<String>,
}

/// Rack awareness: each broker's `broker.rack` is its node's value of `topologyKey`, pods are
/// spread over its values, and every partition's replicas over racks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// A node label, such as `topology.kubernetes.io/zone`.
    #[schemars(length(min = 1, max = 316))]
    pub topology_key: String,
}

/// The ports each broker listens on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.kafkaPort != self.internalPort && self.kafkaPort != self.metricsPort && self.internalPort != self.metricsPort"
).message("kafkaPort, internalPort and metricsPort must differ"))]
pub struct ListenersSpec {
    /// Kafka clients (PLAINTEXT).
    #[serde(default = "default_kafka_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub kafka_port: i32,
    /// Brokers among themselves and the operator: metadata quorum and admin API (gRPC).
    #[serde(default = "default_internal_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub internal_port: i32,
    /// Prometheus `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_metrics_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub metrics_port: i32,
}

fn default_kafka_port() -> i32 {
    i32::from(weir_api::DEFAULT_CLIENT_PORT)
}
fn default_internal_port() -> i32 {
    i32::from(weir_api::DEFAULT_RPC_PORT)
}
fn default_metrics_port() -> i32 {
    i32::from(weir_api::DEFAULT_METRICS_PORT)
}

impl Default for ListenersSpec {
    fn default() -> Self {
        Self {
            kafka_port: default_kafka_port(),
            internal_port: default_internal_port(),
            metrics_port: default_metrics_port(),
        }
    }
}

/// Data movement settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Replication bandwidth cap for moves (bytes/s per broker); unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub throttle_bytes_per_second: Option<i64>,
}

/// What the operator observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`, `ScaleDownBlocked`, `StorageResizeRefused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Brokers whose pods are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The StatefulSet's replica count (differs from `spec.replicas` while draining).
    #[serde(default)]
    pub current_replicas: i32,
    /// Node ids of the metadata quorum's voters: the first ordinals at creation, each voter
    /// the operator added since (recorded once the quorum counts it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub voters: Vec<i32>,
    /// The active controller (metadata quorum leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_id: Option<i32>,
    /// The Kafka cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// One entry per broker pod or registered broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// The last rebalance or drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
    /// Partitions with fewer in-sync replicas than replicas.
    #[serde(default)]
    pub under_replicated_partitions: i32,
    /// Partitions without a leader.
    #[serde(default)]
    pub offline_partitions: i32,
}

/// One broker as the operator sees it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub id: i32,
    /// Its pod, when one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// The pod is Ready.
    #[serde(default)]
    pub ready: bool,
    /// As the metadata quorum has it: `Active`, `Fenced`, `Draining`, `Unregistered`, or
    /// `Unknown` when not registered.
    pub state: String,
    /// Replicas it holds.
    #[serde(default)]
    pub replicas: i32,
    /// Partitions it is the preferred leader of.
    #[serde(default)]
    pub leaders: i32,
}

/// Progress of the data movement the operator started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// `Rebalancing` (brokers were added), `Draining` (brokers are being removed) or `Idle`.
    pub phase: RebalancePhase,
    /// The broker ids the last completed or running plan balanced over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<i32>,
    /// Replica moves the plan started.
    #[serde(default)]
    pub moves: i32,
    /// Partitions still being reassigned.
    #[serde(default)]
    pub partitions_remaining: i32,
    /// Bytes left to copy, as the brokers report.
    #[serde(default)]
    pub bytes_remaining: i64,
    /// When the plan started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it completed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<String>,
}
