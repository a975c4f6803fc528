//! SyncGroup: the leader hands in everyone's assignment; every member gets its own once it
//! is stored in `__consumer_offsets`.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::text;
use crate::broker::Broker;

/// Answers SyncGroup, once the leader's assignment is stored.
pub async fn handle(broker: &Broker, request: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let result = broker
        .groups
        .sync(
            &request.group_id,
            request.generation_id,
            &request.member_id,
            request.group_instance_id.as_deref(),
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
        )
        .await;
    tracing::debug!(group = %request.group_id.as_str(), member = %request.member_id.as_str(), generation = request.generation_id, error_code = result.error, "SyncGroup answered");
    broker.count_error("SyncGroup", result.error);
    let v5 = version >= 5;
    SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_protocol_type(result.protocol_type.filter(|_| v5).map(text))
        .with_protocol_name(result.protocol_name.filter(|_| v5).map(text))
        .with_assignment(result.assignment)
}
