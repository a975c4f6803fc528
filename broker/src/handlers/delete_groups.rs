//! DeleteGroups: remove empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members answers NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;

/// Answers DeleteGroups.
pub fn handle(broker: &Broker, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        request
            .groups_names
            .into_iter()
            .map(|group_id| {
                let code = broker.groups.delete_group(&group_id);
                broker.count_error("DeleteGroups", code);
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code)
            })
            .collect(),
    )
}
