//! ShareGroupHeartbeat (KIP-932): a share consumer joins (epoch 0, with the member id it made),
//! heartbeats with its epoch, or leaves (-1); the answer carries its epoch and, when it
//! changed, the partitions it fetches from. The request is checked here as Kafka's
//! `throwIfShareGroupHeartbeatRequestIsInvalid` does (INVALID_REQUEST); the group logic is in
//! [`crate::share::group`].

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};

use super::ClientInfo;
use crate::broker::Broker;
use crate::group::consumer::HeartbeatError;
use crate::share::group::{ShareHeartbeat, LEAVE_GROUP_MEMBER_EPOCH};

/// Answers ShareGroupHeartbeat.
pub async fn handle(
    broker: &Broker,
    request: ShareGroupHeartbeatRequest,
    client: &ClientInfo,
) -> ShareGroupHeartbeatResponse {
    let group_id = request.group_id.to_string();
    let answer = match validate(&request) {
        Err(e) => Err(e),
        Ok(()) => {
            let heartbeat = ShareHeartbeat {
                member_id: request.member_id.to_string(),
                member_epoch: request.member_epoch,
                rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
                subscribed_topic_names: request
                    .subscribed_topic_names
                    .as_ref()
                    .map(|names| names.iter().map(|n| n.to_string()).collect()),
                client_id: client.client_id.clone(),
                client_host: client.host(),
            };
            broker
                .groups
                .share_group_heartbeat(&group_id, heartbeat)
                .await
        }
    };
    heartbeat_response!(
        share_group_heartbeat_response,
        ShareGroupHeartbeatResponse,
        "ShareGroupHeartbeat",
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

/// Kafka's checks of a share heartbeat's fields.
fn validate(request: &ShareGroupHeartbeatRequest) -> Result<(), HeartbeatError> {
    if request.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if request.rack_id.as_ref().is_some_and(|r| r.is_empty()) {
        return Err(invalid("RackId can't be empty."));
    }
    if request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    let subscribed = request
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|names| !names.is_empty());
    match request.member_epoch {
        0 if !subscribed => {
            return Err(invalid(
                "SubscribedTopicNames must be set in first request.",
            ));
        }
        epoch if epoch < LEAVE_GROUP_MEMBER_EPOCH => {
            return Err(invalid("MemberEpoch is invalid."));
        }
        _ => {}
    }
    Ok(())
}
