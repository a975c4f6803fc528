//! ConsumerGroupHeartbeat (KIP-848, `group.protocol=consumer`): a member joins (epoch 0),
//! heartbeats with its epoch and owned partitions, or leaves (-1, or -2 for a static member);
//! the answer carries its epoch and, when it changed, its assignment. The request is checked
//! here as Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid` does (INVALID_REQUEST,
//! UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION); the group logic is in
//! [`crate::group::consumer`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::ClientInfo;
use crate::broker::Broker;
use crate::group::assignor::{Assignment, Assignor};
use crate::group::consumer::{
    compile_regex, Heartbeat, HeartbeatError, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};

/// Answers ConsumerGroupHeartbeat.
pub async fn handle(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client: &ClientInfo,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.to_string();
    let answer = match validate(&request, version) {
        Err(e) => Err(e),
        Ok(()) => {
            let heartbeat = Heartbeat {
                member_id: request.member_id.to_string(),
                member_epoch: request.member_epoch,
                instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
                rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
                rebalance_timeout_ms: request.rebalance_timeout_ms,
                subscribed_topic_names: request
                    .subscribed_topic_names
                    .as_ref()
                    .map(|names| names.iter().map(|n| n.to_string()).collect()),
                subscribed_topic_regex: request
                    .subscribed_topic_regex
                    .as_ref()
                    .map(|s| s.to_string()),
                server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
                owned: request.topic_partitions.as_ref().map(|tps| {
                    let mut owned = Assignment::new();
                    for tp in tps {
                        owned
                            .entry(tp.topic_id)
                            .or_default()
                            .extend(tp.partitions.iter().copied());
                    }
                    owned
                }),
                client_id: client.client_id.clone(),
                client_host: client.host(),
            };
            broker
                .groups
                .consumer_group_heartbeat(&group_id, heartbeat)
                .await
        }
    };
    heartbeat_response!(
        consumer_group_heartbeat_response,
        ConsumerGroupHeartbeatResponse,
        "ConsumerGroupHeartbeat",
        broker,
        group_id,
        request,
        answer
    )
}

fn invalid(message: &str) -> HeartbeatError {
    HeartbeatError {
        code: ResponseError::InvalidRequest.code(),
        message: message.to_string(),
    }
}

/// Kafka's checks of a heartbeat's fields.
fn validate(request: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), HeartbeatError> {
    if request.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if request.instance_id.as_ref().is_some_and(|i| i.is_empty()) {
        return Err(invalid("InstanceId can't be empty."));
    }
    if request.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
        return Err(invalid("RackId can't be empty."));
    }
    // From v1 the client generates its member id.
    if version >= 1 && request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    match request.member_epoch {
        0 => {
            if request.rebalance_timeout_ms == -1 {
                return Err(invalid(
                    "RebalanceTimeoutMs must be provided in first request.",
                ));
            }
            if request
                .topic_partitions
                .as_ref()
                .is_none_or(|t| !t.is_empty())
            {
                return Err(invalid("TopicPartitions must be empty when (re-)joining."));
            }
            if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none()
            {
                return Err(invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
        }
        epoch if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            return Err(invalid("MemberEpoch is invalid."));
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH if request.instance_id.is_none() => {
            return Err(invalid("InstanceId can't be null when MemberEpoch is -2."));
        }
        _ if request.member_id.is_empty() => {
            return Err(invalid("MemberId can't be empty."));
        }
        _ => {}
    }
    if let Some(name) = request.server_assignor.as_deref() {
        if Assignor::parse(name).is_none() {
            return Err(HeartbeatError {
                code: ResponseError::UnsupportedAssignor.code(),
                message: format!(
                    "ServerAssignor {name} is not supported. Supported assignors: uniform, range."
                ),
            });
        }
    }
    if let Some(regex) = request.subscribed_topic_regex.as_deref() {
        if !regex.is_empty() {
            compile_regex(regex)?;
        }
    }
    Ok(())
}
