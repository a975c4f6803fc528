//! DeleteGroups: remove empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members answers NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::authz::Authz;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Answers DeleteGroups.
pub fn handle(
    broker: &Broker,
    request: DeleteGroupsRequest,
    authz: &Authz<'_>,
) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        request
            .groups_names
            .into_iter()
            .map(|group_id| {
                // DELETE on each group, as Kafka.
                let code = if authz.group(AclOperation::Delete, &group_id) {
                    broker.groups.delete_group(&group_id)
                } else {
                    kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code()
                };
                broker.count_error("DeleteGroups", code);
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code)
            })
            .collect(),
    )
}
