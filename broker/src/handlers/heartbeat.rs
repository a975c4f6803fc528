//! Heartbeat: a member says it is alive; the answer tells it when to rejoin
//! (REBALANCE_IN_PROGRESS) or that it is out (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//! FENCED_INSTANCE_ID).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;

/// Answers Heartbeat.
pub fn handle(broker: &Broker, request: HeartbeatRequest) -> HeartbeatResponse {
    let code = broker.groups.heartbeat(
        &request.group_id,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    );
    if code != 0 {
        tracing::debug!(group = %request.group_id.as_str(), member = %request.member_id.as_str(), generation = request.generation_id, error_code = code, "Heartbeat refused");
    }
    broker.count_error("Heartbeat", code);
    HeartbeatResponse::default().with_error_code(code)
}
