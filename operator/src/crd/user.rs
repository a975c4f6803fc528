//! The `User` resource: a Kafka user of a [`super::Cluster`] in the same namespace, with its
//! credentials (a SCRAM-SHA-512 password or a client certificate, written to a Secret named
//! after the user), its ACLs and its quotas. Strimzi's `KafkaUser`, with Kafka's names for ACL
//! resource types, pattern types, operations and permissions, and for quotas.
//!
//! The Kafka user name (and so the principal `User:<name>`) is the resource's name, which is
//! also the certificate's CN for `tls` users (the clients listeners map `CN=<name>` to it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka user managed through the cluster's admin API.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "User",
    namespaced,
    doc = "A Kafka user of a Weir cluster (credentials, ACLs, quotas), managed by weir-operator.",
    status = "UserStatus",
    shortname = "wu",
    category = "weir",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.clusterRef"}"#,
    printcolumn = r#"{"name":"Authentication","type":"string","jsonPath":".spec.authentication.type"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// Name of the `Cluster` (same namespace) the user belongs to. Fixed at creation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef cannot change"))]
    pub cluster_ref: String,

    /// How the user proves who it is.
    pub authentication: UserAuthentication,

    /// What the user may do. Without it the user has no ACLs of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,

    /// Byte-rate quotas of the user (the quota entity `user=<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,
}

/// The user's credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    /// `scram-sha-512`: a password (generated, or from `password`) stored as a SCRAM-SHA-512
    /// credential in the metadata log; `tls`: a client certificate signed by the cluster's
    /// clients CA, CN = the user's name.
    #[serde(rename = "type")]
    pub type_: UserAuthenticationType,

    /// `scram-sha-512` only: take the password from this Secret key instead of generating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// How a user authenticates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum UserAuthenticationType {
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    #[serde(rename = "tls")]
    Tls,
}

/// Where a password comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    pub value_from: PasswordValueFrom,
}

/// A key of a Secret in the user's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the user's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The user's ACLs. The spec owns every ACL whose principal is the user: others are removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    #[serde(default)]
    pub acls: Vec<AclRule>,
}

/// One rule: operations on a resource pattern, allowed or denied, from a host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    /// Kafka's operations (`READ`, `WRITE`, `DESCRIBE`, `ALL`, ...); one binding each.
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// The client address the rule applies to; `*` is every host.
    #[serde(default = "every_host")]
    #[schemars(length(min = 1))]
    pub host: String,
    /// `ALLOW` (the default) or `DENY`.
    #[serde(default, rename = "type")]
    pub permission: AclPermission,
}

fn every_host() -> String {
    "*".into()
}

/// A resource pattern.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// The resource name or prefix (`*`: every resource of the type). Required except for
    /// `CLUSTER`, whose one resource is `kafka-cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// `LITERAL` (the default) or `PREFIXED`.
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

/// Kafka's resource types that ACLs name.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
}

/// Kafka's pattern types of a binding.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPatternType {
    #[default]
    Literal,
    Prefixed,
}

/// Kafka's ACL operations.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

/// Kafka's permission types.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclPermission {
    #[default]
    Allow,
    Deny,
}

/// The quotas the brokers enforce, by Kafka's names (`producer_byte_rate`,
/// `consumer_byte_rate`, `request_percentage`, `controller_mutation_rate`). A quota removed
/// here is removed from the user.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// Bytes per second the user may produce, across its connections to one broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub producer_byte_rate: Option<i64>,
    /// Bytes per second the user may fetch, across its connections to one broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub consumer_byte_rate: Option<i64>,
    /// The share of one request-handling thread the user's requests may take on one broker,
    /// in percent (Kafka's `request_percentage`; 100 is a whole thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub request_percentage: Option<i64>,
    /// Partitions the user may create, add or delete per second, across the cluster's topics
    /// (Kafka's `controller_mutation_rate`; past it CreateTopics, CreatePartitions and
    /// DeleteTopics answer THROTTLING_QUOTA_EXCEEDED until the allowance refills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub controller_mutation_rate: Option<f64>,
}

impl AclResourceType {
    /// Kafka's name.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclResourceType::Topic => "TOPIC",
            AclResourceType::Group => "GROUP",
            AclResourceType::Cluster => "CLUSTER",
            AclResourceType::TransactionalId => "TRANSACTIONAL_ID",
            AclResourceType::DelegationToken => "DELEGATION_TOKEN",
        }
    }
}

impl AclPatternType {
    /// Kafka's name.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPatternType::Literal => "LITERAL",
            AclPatternType::Prefixed => "PREFIXED",
        }
    }
}

impl AclOperation {
    /// Kafka's name.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclOperation::All => "ALL",
            AclOperation::Read => "READ",
            AclOperation::Write => "WRITE",
            AclOperation::Create => "CREATE",
            AclOperation::Delete => "DELETE",
            AclOperation::Alter => "ALTER",
            AclOperation::Describe => "DESCRIBE",
            AclOperation::ClusterAction => "CLUSTER_ACTION",
            AclOperation::DescribeConfigs => "DESCRIBE_CONFIGS",
            AclOperation::AlterConfigs => "ALTER_CONFIGS",
            AclOperation::IdempotentWrite => "IDEMPOTENT_WRITE",
            AclOperation::CreateTokens => "CREATE_TOKENS",
            AclOperation::DescribeTokens => "DESCRIBE_TOKENS",
        }
    }
}

impl AclPermission {
    /// Kafka's name.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPermission::Allow => "ALLOW",
            AclPermission::Deny => "DENY",
        }
    }
}

impl User {
    /// The Kafka user name: the resource's name.
    pub fn kafka_name(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }

    /// The principal the brokers give the user.
    pub fn principal(&self) -> String {
        format!("User:{}", self.kafka_name())
    }
}

/// What the operator observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, with a reason saying what is missing when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The Kafka user name (the principal is `User:<username>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret holding the user's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
