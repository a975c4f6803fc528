//! DescribeGroups: state, protocol and members (with metadata and assignment once `Stable`),
//! as `kafka-consumer-groups.sh --describe` shows them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;

/// Answers DescribeGroups.
pub fn handle(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
    authz: &Authz<'_>,
) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let base = DescribedGroup::default().with_group_id(group_id.clone());
            // DESCRIBE on each group, as Kafka.
            if !authz.group(AclOperation::Describe, &group_id) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let described = match broker.groups.describe(&group_id) {
                // A KIP-848 consumer group is not a classic group: described as Kafka does,
                // Dead and (v6+) GROUP_ID_NOT_FOUND; ConsumerGroupDescribe describes it.
                Err(code) if code == ResponseError::GroupIdNotFound.code() && version < 6 => {
                    base.with_group_state(text("Dead"))
                }
                Err(code) if code == ResponseError::GroupIdNotFound.code() => base
                    .with_group_state(text("Dead"))
                    .with_error_code(code)
                    .with_error_message(Some(text(format!(
                        "Group {} is not a classic group.",
                        &*group_id
                    )))),
                Err(code) => base.with_error_code(code),
                // Before v6 an unknown group is described as Dead without an error.
                Ok(None) if version < 6 => base.with_group_state(text("Dead")),
                Ok(None) => base
                    .with_group_state(text("Dead"))
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(text(format!("group {} not found", &*group_id)))),
                Ok(Some(d)) => base
                    .with_group_state(text(d.state.name()))
                    .with_protocol_type(text(d.protocol_type))
                    .with_protocol_data(text(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(text))
                                    .with_client_id(text(m.client_id))
                                    .with_client_host(text(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            };
            broker.count_error("DescribeGroups", described.error_code);
            described
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
