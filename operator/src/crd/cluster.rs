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
    "listener.security.protocol.map",
    "inter.broker.listener.name",
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
        "self.all(k, !(k in ['node.id', 'broker.id', 'broker.rack', 'log.dir', 'log.dirs', 'listeners', 'advertised.listeners', 'controller.quorum.voters', 'process.roles', 'listener.security.protocol.map', 'inter.broker.listener.name']))"
    ).message("node.id, broker.id, broker.rack, log.dir(s), listeners, advertised.listeners, listener.security.protocol.map, inter.broker.listener.name, controller.quorum.voters and process.roles are set by the operator"))]
    pub config: BTreeMap<String, String>,

    /// The brokers' ports, and the listeners clients connect to.
    #[serde(default)]
    pub listeners: ListenersSpec,

    /// The certificate authorities of TLS listeners, and how long certificates live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesSpec>,

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
///
/// Without `clients`, `kafkaPort` is the one PLAINTEXT listener for clients and brokers (what
/// every cluster had before listeners could be named). With `clients`, `kafkaPort` becomes the
/// brokers' own `REPLICATION` listener (TLS, each side presenting its broker certificate) and
/// clients use the listeners named there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.kafkaPort != self.internalPort && self.kafkaPort != self.metricsPort && self.internalPort != self.metricsPort"
).message("kafkaPort, internalPort and metricsPort must differ"))]
#[x_kube(validation = Rule::new(
    "!has(self.clients) || self.clients.all(a, self.clients.exists_one(b, b.name == a.name))"
).message("client listener names must be unique"))]
#[x_kube(validation = Rule::new(
    "!has(self.clients) || self.clients.all(a, self.clients.exists_one(b, b.port == a.port) && a.port != self.kafkaPort && a.port != self.internalPort && a.port != self.metricsPort)"
).message("client listener ports must be unique and differ from kafkaPort, internalPort and metricsPort"))]
pub struct ListenersSpec {
    /// Kafka clients (PLAINTEXT) when `clients` is empty; else the brokers' TLS replication
    /// listener.
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
    /// Named listeners for clients, each with TLS on or off and its authentication.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub clients: Vec<ClientListener>,
}

/// One listener for Kafka clients.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.authentication) || self.authentication.type != 'tls' || self.tls"
).message("authentication type tls needs tls: true"))]
#[x_kube(validation = Rule::new(
    "!has(self.authentication) || self.authentication.type != 'oauth' || has(self.authentication.jwksSecret)"
).message("authentication type oauth needs jwksSecret"))]
pub struct ClientListener {
    /// Lower-case letters and digits; the broker's listener name is its upper-case form
    /// (`external` → `EXTERNAL`, settings under `listener.name.external.`).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9]{0,14}$"), length(min = 1, max = 15))]
    #[x_kube(validation = Rule::new("!(self in ['replication', 'kafka', 'internal', 'metrics'])").message("replication, kafka, internal and metrics name the brokers' own ports"))]
    pub name: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Whether the listener speaks TLS (SSL or SASL_SSL), with a certificate signed by the
    /// cluster CA.
    #[serde(default)]
    pub tls: bool,
    /// How clients prove who they are; anonymous when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<ListenerAuthentication>,
}

impl ClientListener {
    /// A listener with `authentication` of `type_` (no OAuth key set: see `jwks_secret`).
    pub fn new(name: &str, port: i32, tls: bool, type_: Option<AuthenticationType>) -> Self {
        Self {
            name: name.into(),
            port,
            tls,
            authentication: type_.map(|type_| ListenerAuthentication {
                type_,
                jwks_secret: None,
            }),
        }
    }
}

/// A listener's authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerAuthentication {
    /// `scram-sha-512` (SASL SCRAM, users from `User` resources), `tls` (client certificates
    /// signed by the clients CA; the principal is the certificate's CN) or `oauth` (SASL
    /// OAUTHBEARER, tokens checked against `jwksSecret`).
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
    /// `oauth` only: a Secret whose key `jwks.json` holds the issuer's JSON Web Key Set
    /// (mounted, so a change reaches the brokers without a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub jwks_secret: Option<String>,
}

/// The authentication kinds of a client listener.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AuthenticationType {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
    #[serde(rename = "oauth")]
    Oauth,
}

/// The certificate authorities and validity periods (Strimzi's defaults).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesSpec {
    /// Signs the brokers' certificates; clients trust it.
    #[serde(default)]
    pub cluster_ca: CaSpec,
    /// Signs the client certificates of `User`s with `tls` authentication; brokers trust it.
    #[serde(default)]
    pub clients_ca: CaSpec,
}

/// One certificate authority.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.renewalDays < self.validityDays").message("renewalDays must be less than validityDays"))]
pub struct CaSpec {
    /// How long the CA (when the operator makes it) and the certificates it signs are valid.
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub validity_days: i32,
    /// Renew a certificate this many days before it expires.
    #[serde(default = "default_renewal_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub renewal_days: i32,
    /// A Secret of your own in the cluster's namespace holding the CA (PEM), in cert-manager's
    /// shape (`tls.crt`: the CA certificate then any chain above it, `tls.key`: its PKCS#8 key,
    /// `ca.crt`: the root clients trust; what a cert-manager `Certificate` with `isCA: true`
    /// writes) or as `ca.crt` and `ca.key`. The operator signs with it and never renews it;
    /// when its content changes (cert-manager renewed it, or you replaced it) the new CA is
    /// trusted beside the old one before certificates are reissued with it, and the old one is
    /// dropped once none is left. A missing or unusable Secret is reported in the condition
    /// `CertificateAuthoritiesValid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

fn default_validity_days() -> i32 {
    365
}
fn default_renewal_days() -> i32 {
    30
}

impl Default for CaSpec {
    fn default() -> Self {
        Self {
            validity_days: default_validity_days(),
            renewal_days: default_renewal_days(),
            secret_name: None,
        }
    }
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
            clients: Vec::new(),
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
    /// The CAs and broker certificates, with TLS listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,
    /// The brokers' internal port (the metadata quorum, registration, the admin API) runs TLS
    /// with the cluster CA's certificates, a client certificate required of every caller.
    /// Decided when the StatefulSet is created: on for a cluster created with client
    /// listeners; a cluster created without keeps a plaintext internal port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_tls: Option<bool>,
}

/// The certificates as the operator last saw them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    pub cluster_ca: CaStatus,
    pub clients_ca: CaStatus,
    /// The earliest expiry of a broker certificate (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_not_after: Option<String>,
}

/// One CA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaStatus {
    /// `Current`, or the renewal's phase: `TrustingNewCa`, `ReissuingCertificates` (also when
    /// a CA of the user's own changed).
    pub phase: String,
    /// When the signing CA expires (RFC 3339); empty when its Secret cannot be used.
    pub not_after: String,
    /// The user's own CA (never renewed by the operator).
    #[serde(default)]
    pub user_provided: bool,
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
