//! What a `User` spec asks of the cluster, against what the brokers have: pure, unit-tested.
//!
//! The spec owns the user's ACLs (every binding whose principal is `User:<name>`) and its
//! quotas on the entity `user=<name>`: bindings and quotas the spec does not name are removed,
//! as the `Topic` spec owns its topic's settings.

use std::collections::{BTreeMap, BTreeSet};

use weir_api::proto::admin as pb;

use crate::crd::user::{AclResourceType, UserQuotas, UserSpec};

/// The one name of the CLUSTER resource.
pub const CLUSTER_RESOURCE: &str = "kafka-cluster";
/// Kafka's quota names.
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";

/// One ACL binding, ordered so that sets of them compare and diff.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub principal: String,
    pub host: String,
    pub operation: String,
    pub permission: String,
}

impl From<&pb::AclBinding> for Acl {
    fn from(b: &pb::AclBinding) -> Self {
        Acl {
            resource_type: b.resource_type.clone(),
            resource_name: b.resource_name.clone(),
            pattern_type: b.pattern_type.clone(),
            principal: b.principal.clone(),
            host: b.host.clone(),
            operation: b.operation.clone(),
            permission: b.permission.clone(),
        }
    }
}

impl From<&Acl> for pb::AclBinding {
    fn from(a: &Acl) -> Self {
        pb::AclBinding {
            resource_type: a.resource_type.clone(),
            resource_name: a.resource_name.clone(),
            pattern_type: a.pattern_type.clone(),
            principal: a.principal.clone(),
            host: a.host.clone(),
            operation: a.operation.clone(),
            permission: a.permission.clone(),
        }
    }
}

/// A spec the schema let through but the brokers would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("acls[{0}]: a {1} resource needs a name")]
    MissingName(usize, &'static str),
    #[error("acls[{0}]: the CLUSTER resource is named {CLUSTER_RESOURCE}, not `{1}`")]
    ClusterName(usize, String),
    #[error("authentication.password is only for scram-sha-512 users")]
    PasswordWithoutScram,
}

/// The bindings the spec asks for: one per rule and operation, for `principal`.
pub fn desired_acls(spec: &UserSpec, principal: &str) -> Result<BTreeSet<Acl>, SpecError> {
    let mut out = BTreeSet::new();
    let rules = spec.authorization.iter().flat_map(|a| a.acls.iter());
    for (index, rule) in rules.enumerate() {
        let kind = rule.resource.type_;
        let name = match (kind, rule.resource.name.as_deref()) {
            (AclResourceType::Cluster, None) => CLUSTER_RESOURCE.to_string(),
            (AclResourceType::Cluster, Some(CLUSTER_RESOURCE)) => CLUSTER_RESOURCE.to_string(),
            (AclResourceType::Cluster, Some(other)) => {
                return Err(SpecError::ClusterName(index, other.to_string()))
            }
            (_, Some(name)) => name.to_string(),
            (_, None) => return Err(SpecError::MissingName(index, kind.kafka_name())),
        };
        for operation in &rule.operations {
            out.insert(Acl {
                resource_type: kind.kafka_name().into(),
                resource_name: name.clone(),
                pattern_type: rule.resource.pattern_type.kafka_name().into(),
                principal: principal.to_string(),
                host: rule.host.clone(),
                operation: operation.kafka_name().into(),
                permission: rule.permission.kafka_name().into(),
            });
        }
    }
    Ok(out)
}

/// Checks what the schema cannot: ACL resource names, a password source on a `tls` user.
pub fn validate(spec: &UserSpec, principal: &str) -> Result<BTreeSet<Acl>, SpecError> {
    use crate::crd::user::UserAuthenticationType;
    if spec.authentication.type_ != UserAuthenticationType::ScramSha512
        && spec.authentication.password.is_some()
    {
        return Err(SpecError::PasswordWithoutScram);
    }
    desired_acls(spec, principal)
}

/// ACL bindings to add and to remove.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AclChanges {
    pub add: Vec<Acl>,
    pub remove: Vec<Acl>,
}

impl AclChanges {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// What turns `current` (the brokers' bindings of the principal) into `desired`.
pub fn acl_changes(desired: &BTreeSet<Acl>, current: &[pb::AclBinding]) -> AclChanges {
    let current: BTreeSet<Acl> = current.iter().map(Acl::from).collect();
    AclChanges {
        add: desired.difference(&current).cloned().collect(),
        remove: current.difference(desired).cloned().collect(),
    }
}

/// Quotas to set and to remove.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuotaChanges {
    pub set: BTreeMap<String, f64>,
    pub remove: Vec<String>,
}

impl QuotaChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// The spec's quotas by Kafka's names.
pub fn desired_quotas(quotas: Option<&UserQuotas>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if let Some(q) = quotas {
        if let Some(rate) = q.producer_byte_rate {
            out.insert(PRODUCER_BYTE_RATE.to_string(), rate as f64);
        }
        if let Some(rate) = q.consumer_byte_rate {
            out.insert(CONSUMER_BYTE_RATE.to_string(), rate as f64);
        }
        if let Some(percent) = q.request_percentage {
            out.insert(REQUEST_PERCENTAGE.to_string(), percent as f64);
        }
        if let Some(rate) = q.controller_mutation_rate {
            out.insert(CONTROLLER_MUTATION_RATE.to_string(), rate);
        }
    }
    out
}

/// What turns `current` (the user entity's quotas) into `desired`.
pub fn quota_changes(
    desired: &BTreeMap<String, f64>,
    current: &BTreeMap<String, f64>,
) -> QuotaChanges {
    QuotaChanges {
        set: desired
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        remove: current
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::user::{
        AclOperation, AclPatternType, AclPermission, AclResource, AclRule, UserAuthentication,
        UserAuthenticationType, UserAuthorization,
    };

    const ALICE: &str = "User:alice";

    fn rule(
        kind: AclResourceType,
        name: Option<&str>,
        pattern: AclPatternType,
        operations: &[AclOperation],
        permission: AclPermission,
    ) -> AclRule {
        AclRule {
            resource: AclResource {
                type_: kind,
                name: name.map(str::to_string),
                pattern_type: pattern,
            },
            operations: operations.to_vec(),
            host: "*".into(),
            permission,
        }
    }

    fn spec(rules: Vec<AclRule>) -> UserSpec {
        UserSpec {
            cluster_ref: "c".into(),
            authentication: UserAuthentication {
                type_: UserAuthenticationType::ScramSha512,
                password: None,
            },
            authorization: Some(UserAuthorization { acls: rules }),
            quotas: None,
        }
    }

    fn binding(kind: &str, name: &str, operation: &str, permission: &str) -> pb::AclBinding {
        pb::AclBinding {
            resource_type: kind.into(),
            resource_name: name.into(),
            pattern_type: "LITERAL".into(),
            principal: ALICE.into(),
            host: "*".into(),
            operation: operation.into(),
            permission: permission.into(),
        }
    }

    #[test]
    fn each_operation_of_a_rule_is_one_binding_with_kafkas_names() {
        let s = spec(vec![rule(
            AclResourceType::Topic,
            Some("orders"),
            AclPatternType::Literal,
            &[AclOperation::Write, AclOperation::Describe],
            AclPermission::Allow,
        )]);
        let acls = desired_acls(&s, ALICE).unwrap();
        let ops: Vec<&str> = acls.iter().map(|a| a.operation.as_str()).collect();
        assert_eq!(ops, ["DESCRIBE", "WRITE"]);
        assert!(acls.iter().all(|a| a.resource_type == "TOPIC"
            && a.pattern_type == "LITERAL"
            && a.permission == "ALLOW"
            && a.principal == ALICE));
    }

    #[test]
    fn the_cluster_resource_is_named_for_the_user_and_other_names_are_refused() {
        let s = spec(vec![rule(
            AclResourceType::Cluster,
            None,
            AclPatternType::Literal,
            &[AclOperation::Describe],
            AclPermission::Allow,
        )]);
        let acls = desired_acls(&s, ALICE).unwrap();
        assert_eq!(acls.iter().next().unwrap().resource_name, CLUSTER_RESOURCE);
        let bad = spec(vec![rule(
            AclResourceType::Cluster,
            Some("mine"),
            AclPatternType::Literal,
            &[AclOperation::Describe],
            AclPermission::Allow,
        )]);
        assert_eq!(
            desired_acls(&bad, ALICE),
            Err(SpecError::ClusterName(0, "mine".into()))
        );
    }

    #[test]
    fn a_topic_rule_without_a_name_is_refused() {
        let s = spec(vec![rule(
            AclResourceType::Topic,
            None,
            AclPatternType::Prefixed,
            &[AclOperation::Read],
            AclPermission::Deny,
        )]);
        assert_eq!(
            desired_acls(&s, ALICE),
            Err(SpecError::MissingName(0, "TOPIC"))
        );
    }

    #[test]
    fn a_password_source_on_a_tls_user_is_refused() {
        let mut s = spec(vec![]);
        s.authentication.type_ = UserAuthenticationType::Tls;
        s.authentication.password = Some(crate::crd::user::PasswordSource {
            value_from: crate::crd::user::PasswordValueFrom {
                secret_key_ref: crate::crd::user::SecretKeyRef {
                    name: "s".into(),
                    key: "k".into(),
                },
            },
        });
        assert_eq!(validate(&s, ALICE), Err(SpecError::PasswordWithoutScram));
    }

    #[test]
    fn acls_in_place_need_nothing() {
        let s = spec(vec![rule(
            AclResourceType::Topic,
            Some("orders"),
            AclPatternType::Literal,
            &[AclOperation::Write],
            AclPermission::Allow,
        )]);
        let desired = desired_acls(&s, ALICE).unwrap();
        let changes = acl_changes(&desired, &[binding("TOPIC", "orders", "WRITE", "ALLOW")]);
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn missing_acls_are_added_and_acls_the_spec_dropped_are_removed() {
        let s = spec(vec![rule(
            AclResourceType::Topic,
            Some("orders"),
            AclPatternType::Literal,
            &[AclOperation::Write, AclOperation::Read],
            AclPermission::Allow,
        )]);
        let desired = desired_acls(&s, ALICE).unwrap();
        let current = [
            binding("TOPIC", "orders", "WRITE", "ALLOW"),
            binding("TOPIC", "payments", "WRITE", "ALLOW"),
            // Same resource and operation, other permission: a different binding.
            binding("TOPIC", "orders", "READ", "DENY"),
        ];
        let changes = acl_changes(&desired, &current);
        assert_eq!(
            changes.add,
            vec![Acl::from(&binding("TOPIC", "orders", "READ", "ALLOW"))]
        );
        let removed: BTreeSet<(String, String)> = changes
            .remove
            .iter()
            .map(|a| (a.resource_name.clone(), a.permission.clone()))
            .collect();
        assert_eq!(
            removed,
            BTreeSet::from([
                ("orders".to_string(), "DENY".to_string()),
                ("payments".to_string(), "ALLOW".to_string())
            ])
        );
    }

    #[test]
    fn a_user_without_authorization_loses_every_acl() {
        let mut s = spec(vec![]);
        s.authorization = None;
        let desired = desired_acls(&s, ALICE).unwrap();
        let changes = acl_changes(&desired, &[binding("GROUP", "app", "READ", "ALLOW")]);
        assert!(changes.add.is_empty());
        assert_eq!(changes.remove.len(), 1);
    }

    #[test]
    fn quotas_are_set_changed_and_removed() {
        let desired = desired_quotas(Some(&UserQuotas {
            producer_byte_rate: Some(1_048_576),
            consumer_byte_rate: None,
            request_percentage: Some(25),
            controller_mutation_rate: Some(2.5),
        }));
        assert_eq!(desired[PRODUCER_BYTE_RATE], 1_048_576.0);
        assert_eq!(desired[REQUEST_PERCENTAGE], 25.0);
        assert_eq!(desired[CONTROLLER_MUTATION_RATE], 2.5);
        let current = BTreeMap::from([
            (PRODUCER_BYTE_RATE.to_string(), 1024.0),
            (CONSUMER_BYTE_RATE.to_string(), 2048.0),
        ]);
        let changes = quota_changes(&desired, &current);
        assert_eq!(
            changes.set,
            BTreeMap::from([
                (PRODUCER_BYTE_RATE.to_string(), 1_048_576.0),
                (REQUEST_PERCENTAGE.to_string(), 25.0),
                (CONTROLLER_MUTATION_RATE.to_string(), 2.5)
            ])
        );
        assert_eq!(changes.remove, vec![CONSUMER_BYTE_RATE.to_string()]);
        assert!(quota_changes(&desired, &desired).is_empty());
        assert!(quota_changes(&desired_quotas(None), &BTreeMap::new()).is_empty());
    }
}
