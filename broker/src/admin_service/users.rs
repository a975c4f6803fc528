//! Users over the admin API: SCRAM credentials, ACLs and quotas of one principal, for the
//! operator's `User` resource.
//!
//! Every write goes through the replica manager's methods the Kafka handlers use
//! (AlterUserScramCredentials, CreateAcls, DeleteAcls, AlterClientQuotas), so a user made here
//! is the same metadata as one made with kafka-configs and kafka-acls. Requests are checked in
//! full first (Kafka's names, [`AclBinding::invalid_reason`], the quota checks of
//! AlterClientQuotas) and refused with INVALID_ARGUMENT before anything is written.

use std::collections::BTreeSet;

use weir_api::proto::admin as pb;

use super::AdminError;
use crate::broker::Broker;
use crate::controller::acl::{
    AclBinding, AclFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};
use crate::controller::client_quotas::{quota_operation, EntityName, QuotaEntity};
use crate::controller::image::ScramCredential;

type Result<T> = std::result::Result<T, AdminError>;

/// The SCRAM mechanisms, by the names the metadata image keys credentials with (those of
/// `security::scram::ScramMechanism`, a layer above this one).
const MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];
/// The iterations Kafka (and AlterUserScramCredentials) accepts.
const ITERATIONS: std::ops::RangeInclusive<i32> = 4096..=16384;

fn user_name(user: &str) -> Result<&str> {
    if user.is_empty() {
        return Err(AdminError::InvalidArgument(
            "the user name must not be empty".into(),
        ));
    }
    Ok(user)
}

fn mechanism(name: &str) -> Result<&str> {
    MECHANISMS.into_iter().find(|m| *m == name).ok_or_else(|| {
        AdminError::InvalidArgument(format!(
            "unknown SCRAM mechanism `{name}` (SCRAM-SHA-256 or SCRAM-SHA-512)"
        ))
    })
}

fn user_entity(user: &str) -> QuotaEntity {
    QuotaEntity {
        user: Some(EntityName::Named(user.to_string())),
        ..QuotaEntity::default()
    }
}

fn parsed<T>(value: Option<T>, what: &str, name: &str) -> Result<T> {
    value.ok_or_else(|| AdminError::InvalidArgument(format!("unknown {what} `{name}`")))
}

/// A binding from its wire form, checked as CreateAcls checks it.
fn binding(b: &pb::AclBinding) -> Result<AclBinding> {
    let binding = AclBinding {
        resource_type: parsed(
            ResourceType::from_name(&b.resource_type),
            "resource type",
            &b.resource_type,
        )?,
        resource_name: b.resource_name.clone(),
        pattern_type: parsed(
            PatternType::from_name(&b.pattern_type),
            "pattern type",
            &b.pattern_type,
        )?,
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: parsed(
            AclOperation::from_name(&b.operation),
            "operation",
            &b.operation,
        )?,
        permission: parsed(
            AclPermissionType::from_name(&b.permission),
            "permission",
            &b.permission,
        )?,
    };
    match binding.invalid_reason() {
        Some(why) => Err(AdminError::InvalidArgument(why)),
        None => Ok(binding),
    }
}

fn wire(b: &AclBinding) -> pb::AclBinding {
    pb::AclBinding {
        resource_type: b.resource_type.name().into(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.name().into(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.name().into(),
        permission: b.permission.name().into(),
    }
}

/// The filter that selects exactly `b`.
fn exact(b: &AclBinding) -> AclFilter {
    AclFilter {
        resource_type: b.resource_type,
        resource_name: Some(b.resource_name.clone()),
        pattern_type: b.pattern_type,
        principal: Some(b.principal.clone()),
        host: Some(b.host.clone()),
        operation: b.operation,
        permission: b.permission,
    }
}

fn acls_of(broker: &Broker, principal: &str) -> Vec<pb::AclBinding> {
    broker
        .replicas
        .image()
        .acls
        .bindings()
        .iter()
        .filter(|b| b.principal == principal)
        .map(wire)
        .collect()
}

/// DescribeUser.
pub(super) fn describe(
    broker: &Broker,
    request: pb::DescribeUserRequest,
) -> Result<pb::DescribeUserResponse> {
    let user = user_name(&request.user)?;
    let image = broker.replicas.image();
    let scram_credentials = image
        .scram_credentials
        .get(user)
        .into_iter()
        .flatten()
        .map(|(mechanism, credential)| pb::ScramCredentialInfo {
            mechanism: mechanism.clone(),
            iterations: credential.iterations,
        })
        .collect();
    let quotas = image
        .client_quotas
        .get(&user_entity(user))
        .into_iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0))
        .collect();
    Ok(pb::DescribeUserResponse {
        scram_credentials,
        acls: acls_of(broker, &format!("User:{user}")),
        quotas,
    })
}

/// SetScramCredential: an AlterUserScramCredentials upsertion.
pub(super) async fn set_scram(
    broker: &Broker,
    request: pb::SetScramCredentialRequest,
) -> Result<pb::SetScramCredentialResponse> {
    let user = user_name(&request.user)?;
    let mechanism = mechanism(&request.mechanism)?;
    let iterations = request.iterations;
    if !ITERATIONS.contains(&iterations) {
        return Err(AdminError::InvalidArgument(format!(
            "iterations must be within {}..={}, not {iterations}",
            ITERATIONS.start(),
            ITERATIONS.end()
        )));
    }
    if request.salt.is_empty() || request.stored_key.is_empty() || request.server_key.is_empty() {
        return Err(AdminError::InvalidArgument(
            "the salt, stored key and server key must not be empty".into(),
        ));
    }
    let credential = ScramCredential {
        salt: request.salt,
        stored_key: request.stored_key,
        server_key: request.server_key,
        iterations,
    };
    broker
        .replicas
        .alter_scram_credentials(
            vec![(user.to_string(), mechanism.to_string(), credential)],
            vec![],
        )
        .await?;
    Ok(pb::SetScramCredentialResponse {})
}

/// DeleteScramCredential: an AlterUserScramCredentials deletion; none to delete is success.
pub(super) async fn delete_scram(
    broker: &Broker,
    request: pb::DeleteScramCredentialRequest,
) -> Result<pb::DeleteScramCredentialResponse> {
    let user = user_name(&request.user)?;
    let mechanism = mechanism(&request.mechanism)?;
    let exists = broker
        .replicas
        .image()
        .scram_credentials
        .get(user)
        .is_some_and(|m| m.contains_key(mechanism));
    if exists {
        broker
            .replicas
            .alter_scram_credentials(vec![], vec![(user.to_string(), mechanism.to_string())])
            .await?;
    }
    Ok(pb::DeleteScramCredentialResponse {})
}

/// CreateAcls.
pub(super) async fn create_acls(
    broker: &Broker,
    request: pb::CreateAclsRequest,
) -> Result<pb::CreateAclsResponse> {
    let bindings = request
        .bindings
        .iter()
        .map(binding)
        .collect::<Result<BTreeSet<_>>>()?;
    if !bindings.is_empty() {
        broker
            .replicas
            .create_acls(bindings.into_iter().collect())
            .await?;
    }
    Ok(pb::CreateAclsResponse {})
}

/// DeleteAcls of exact bindings.
pub(super) async fn delete_acls(
    broker: &Broker,
    request: pb::DeleteAclsRequest,
) -> Result<pb::DeleteAclsResponse> {
    let filters = request
        .bindings
        .iter()
        .map(|b| binding(b).map(|b| exact(&b)))
        .collect::<Result<Vec<_>>>()?;
    if filters.is_empty() {
        return Ok(pb::DeleteAclsResponse::default());
    }
    let removed = broker.replicas.delete_acls(filters).await?;
    Ok(pb::DeleteAclsResponse {
        removed: removed.iter().flatten().map(wire).collect(),
    })
}

/// DescribeAcls of one principal.
pub(super) fn describe_acls(
    broker: &Broker,
    request: pb::DescribeAclsRequest,
) -> Result<pb::DescribeAclsResponse> {
    if request.principal.is_empty() {
        return Err(AdminError::InvalidArgument(
            "the principal must not be empty".into(),
        ));
    }
    Ok(pb::DescribeAclsResponse {
        bindings: acls_of(broker, &request.principal),
    })
}

/// AlterUserQuotas: an AlterClientQuotas entry for the entity `user=<name>`.
pub(super) async fn alter_quotas(
    broker: &Broker,
    request: pb::AlterUserQuotasRequest,
) -> Result<pb::AlterUserQuotasResponse> {
    let user = user_name(&request.user)?;
    let mut ops = Vec::new();
    for (key, value) in &request.set {
        ops.push(quota_operation(key, *value, false).map_err(AdminError::InvalidArgument)?);
    }
    for key in &request.remove {
        if request.set.contains_key(key) {
            return Err(AdminError::InvalidArgument(format!(
                "quota `{key}` is both set and removed"
            )));
        }
        ops.push(quota_operation(key, 0.0, true).map_err(AdminError::InvalidArgument)?);
    }
    if !ops.is_empty() {
        broker
            .replicas
            .alter_client_quotas(vec![(user_entity(user), ops)])
            .await?;
    }
    Ok(pb::AlterUserQuotasResponse {})
}
