//! ListGroups: every group this broker coordinates, optionally filtered by state (v4+) and
//! type (v5+: `classic`, or `consumer` for KIP-848 consumer groups, whose states are
//! Kafka's consumer-group states: Empty, Assigning, Reconciling, Stable).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Answers ListGroups.
pub fn handle(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
    authz: &Authz<'_>,
) -> ListGroupsResponse {
    // As Kafka: DESCRIBE on the cluster lists every group, else those the principal may
    // DESCRIBE.
    let all = authz.cluster(AclOperation::Describe);
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    let listed = match broker.groups.list(&states, &types) {
        Err(code) => {
            broker.count_error("ListGroups", code);
            return ListGroupsResponse::default().with_error_code(code);
        }
        Ok(listed) => listed,
    };
    ListGroupsResponse::default().with_groups(
        listed
            .into_iter()
            .filter(|g| all || authz.group(AclOperation::Describe, &g.group_id))
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(text(g.group_id)))
                    .with_protocol_type(text(g.protocol_type))
                    .with_group_state(text(if version >= 4 { g.state_name } else { "" }))
                    .with_group_type(text(if version >= 5 { g.group_type } else { "" }))
            })
            .collect(),
    )
}
