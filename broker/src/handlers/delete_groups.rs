//! DeleteGroups: remove empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members answers NON_EMPTY_GROUP. A share group's
//! share-partition state is deleted at its share coordinators first
//! ([`super::share_group_offsets::delete_share_group_state`]).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::authz::Authz;
use super::share_group_offsets;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Answers DeleteGroups.
pub async fn handle(
    broker: &Broker,
    request: DeleteGroupsRequest,
    authz: &Authz<'_>,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        // DELETE on each group, as Kafka.
        let code = if !authz.group(AclOperation::Delete, &group_id) {
            kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()
        } else {
            match share_group_offsets::delete_share_group_state(broker, &group_id).await {
                Some(code) if code != 0 => code,
                _ => broker.groups.delete_group(&group_id),
            }
        };
        broker.count_error("DeleteGroups", code);
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
