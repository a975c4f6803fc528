//! The ACL APIs: CreateAcls (30), DeleteAcls (31), DescribeAcls (29), over the bindings in
//! the metadata log (`crate::controller::acl`).
//!
//! As a Kafka broker: without `authorizer.class.name` all three answer SECURITY_DISABLED (UIs
//! and Terraform providers read that as "ACLs are not in use"); with one, DescribeAcls needs
//! DESCRIBE on the cluster and the other two ALTER (CLUSTER_AUTHORIZATION_FAILED). A binding
//! or filter Kafka would refuse (ANY or UNKNOWN where a value is needed, an unparsable
//! principal, a CLUSTER resource not named `kafka-cluster`) is INVALID_REQUEST with the
//! reason; the others in the request are still applied.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::{
    AclBinding, AclFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};

const NO_AUTHORIZER: &str = "no authorizer is configured on this broker";

/// An enum value from its wire code; codes Kafka does not define read as UNKNOWN, which
/// validation refuses.
fn resource_type(code: i8) -> ResourceType {
    ResourceType::from_code(code).unwrap_or(ResourceType::Unknown)
}
fn pattern_type(code: i8) -> PatternType {
    PatternType::from_code(code).unwrap_or(PatternType::Unknown)
}
fn operation(code: i8) -> AclOperation {
    AclOperation::from_code(code).unwrap_or(AclOperation::Unknown)
}
fn permission(code: i8) -> AclPermissionType {
    AclPermissionType::from_code(code).unwrap_or(AclPermissionType::Unknown)
}

fn owned(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

/// The refusal of the whole request, if any: SECURITY_DISABLED without an authorizer,
/// CLUSTER_AUTHORIZATION_FAILED without `operation` on the cluster.
fn refusal(authz: &Authz, operation: AclOperation) -> Option<(ResponseError, &'static str)> {
    if !authz.enabled() {
        Some((ResponseError::SecurityDisabled, NO_AUTHORIZER))
    } else if !authz.cluster(operation) {
        Some((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

/// Answers CreateAcls.
pub async fn create(
    broker: &Broker,
    request: CreateAclsRequest,
    authz: &Authz<'_>,
) -> CreateAclsResponse {
    let result = |code: i16, message: Option<String>| {
        broker.count_error("CreateAcls", code);
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(message.map(text))
    };
    if let Some((error, message)) = refusal(authz, AclOperation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| result(error.code(), Some(message.to_string())))
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let checked: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            let binding = AclBinding {
                resource_type: resource_type(c.resource_type),
                resource_name: c.resource_name.to_string(),
                pattern_type: pattern_type(c.resource_pattern_type),
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: operation(c.operation),
                permission: permission(c.permission_type),
            };
            match binding.invalid_reason() {
                Some(reason) => Err(reason),
                None => Ok(binding),
            }
        })
        .collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let written = if valid.is_empty() {
        Ok(())
    } else {
        broker.replicas.create_acls(valid).await
    };
    let results = checked
        .into_iter()
        .map(|c| match (c, &written) {
            (Err(reason), _) => result(ResponseError::InvalidRequest.code(), Some(reason)),
            (Ok(_), Err(e)) => result(e.kafka_error().code(), Some(e.to_string())),
            (Ok(_), Ok(())) => result(0, None),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

fn matching_acl(b: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(text(b.resource_name.clone()))
        .with_pattern_type(b.pattern_type.code())
        .with_principal(text(b.principal.clone()))
        .with_host(text(b.host.clone()))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission.code())
}

/// Answers DeleteAcls: each filter's result lists the bindings it removed.
pub async fn delete(
    broker: &Broker,
    request: DeleteAclsRequest,
    authz: &Authz<'_>,
) -> DeleteAclsResponse {
    let result = |code: i16, message: Option<String>| {
        broker.count_error("DeleteAcls", code);
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(message.map(text))
    };
    if let Some((error, message)) = refusal(authz, AclOperation::Alter) {
        let results = request
            .filters
            .iter()
            .map(|_| result(error.code(), Some(message.to_string())))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let checked: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter {
                resource_type: resource_type(f.resource_type_filter),
                resource_name: owned(&f.resource_name_filter),
                pattern_type: pattern_type(f.pattern_type_filter),
                principal: owned(&f.principal_filter),
                host: owned(&f.host_filter),
                operation: operation(f.operation),
                permission: permission(f.permission_type),
            };
            match filter.invalid_reason() {
                Some(reason) => Err(reason),
                None => Ok(filter),
            }
        })
        .collect();
    let valid: Vec<AclFilter> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let written = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        broker.replicas.delete_acls(valid).await
    };
    let mut deleted = match &written {
        Ok(d) => d.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = checked
        .into_iter()
        .map(|c| match (c, &written) {
            (Err(reason), _) => result(ResponseError::InvalidRequest.code(), Some(reason)),
            (Ok(_), Err(e)) => result(e.kafka_error().code(), Some(e.to_string())),
            (Ok(_), Ok(_)) => result(0, None).with_matching_acls(
                deleted
                    .next()
                    .unwrap_or_default()
                    .iter()
                    .map(matching_acl)
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

/// Answers DescribeAcls: the bindings the filter selects, grouped by resource pattern.
pub fn describe(
    broker: &Broker,
    request: DescribeAclsRequest,
    authz: &Authz<'_>,
) -> DescribeAclsResponse {
    let answer = |error: ResponseError, message: String| {
        broker.count_error("DescribeAcls", error.code());
        DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(text(message)))
    };
    if let Some((error, message)) = refusal(authz, AclOperation::Describe) {
        return answer(error, message.to_string());
    }
    let filter = AclFilter {
        resource_type: resource_type(request.resource_type_filter),
        resource_name: owned(&request.resource_name_filter),
        pattern_type: pattern_type(request.pattern_type_filter),
        principal: owned(&request.principal_filter),
        host: owned(&request.host_filter),
        operation: operation(request.operation),
        permission: permission(request.permission_type),
    };
    if let Some(reason) = filter.invalid_reason() {
        return answer(ResponseError::InvalidRequest, reason);
    }
    let image = broker.replicas.image();
    let mut resources: BTreeMap<(i8, &str, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in image.acls.matching(&filter) {
        resources
            .entry((
                b.resource_type.code(),
                &b.resource_name,
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(b.principal.clone()))
                    .with_host(text(b.host.clone()))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
