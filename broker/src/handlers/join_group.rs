//! JoinGroup: enter a group's next generation. The answer may wait for the rest of the group
//! (the rebalance); the group state machine is in [`crate::group::rebalance`].

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{text, ClientInfo};
use crate::broker::Broker;
use crate::group::rebalance::JoinRequest;

/// Answers JoinGroup, once the group has formed its generation.
pub async fn handle(
    broker: &Broker,
    request: JoinGroupRequest,
    version: i16,
    client: &ClientInfo,
) -> JoinGroupResponse {
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: client.host(),
        session_timeout_ms: request.session_timeout_ms,
        // Every advertised version (v2+) carries a rebalance timeout.
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let group_id = request.group_id.to_string();
    let asked_as = join.member_id.clone();
    tracing::debug!(group = %group_id, member = %asked_as, client = %client.client_id, "JoinGroup received");
    let result = broker.groups.join(&request.group_id, join).await;
    tracing::debug!(group = %group_id, member = %asked_as, answered_as = %result.member_id, generation = result.generation, error_code = result.error, "JoinGroup answered");
    broker.count_error("JoinGroup", result.error);
    let members = result
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(text(m.member_id))
                .with_group_instance_id(m.group_instance_id.map(text))
                .with_metadata(m.metadata)
        })
        .collect();
    // The protocol name is nullable only from v7.
    let protocol_name = match result.protocol_name {
        None if version < 7 => Some(text("")),
        name => name.map(text),
    };
    JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation)
        .with_protocol_type(result.protocol_type.filter(|_| version >= 7).map(text))
        .with_protocol_name(protocol_name)
        .with_leader(text(result.leader))
        .with_skip_assignment(version >= 9 && result.skip_assignment)
        .with_member_id(text(result.member_id))
        .with_members(members)
}
