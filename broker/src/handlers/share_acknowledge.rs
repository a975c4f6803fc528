//! ShareAcknowledge (KIP-932): a share consumer acknowledges records without fetching more,
//! within its share session (an epoch of 0 is INVALID_SHARE_SESSION_EPOCH: acknowledging
//! needs an open session; -1 closes it after the acknowledgements, releasing what the member
//! still holds). The acknowledgements are applied as ShareFetch's ([`super::share_fetch`]).
//! Version 2 (KIP-1222): `IsRenewAck` allows acknowledge type 4, Renew (a fresh acquisition
//! lock; INVALID_REQUEST for the partition without it), and the answer carries
//! `AcquisitionLockTimeoutMs`, the length of a renewed lock.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use uuid::Uuid;

use super::authz::Authz;
use super::share_fetch::{acknowledge, denied_topics, share_member};
use super::text;
use crate::broker::Broker;
use crate::share::manager::AcknowledgementBatch;
use crate::share::session::SharePartitionId;

/// Answers ShareAcknowledge.
pub async fn handle(
    broker: &Broker,
    request: ShareAcknowledgeRequest,
    authz: &Authz<'_>,
) -> ShareAcknowledgeResponse {
    let fail = |code: i16, message: String| {
        broker.count_error("ShareAcknowledge", code);
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(text(message)))
    };
    let (group_id, member_id) = match share_member(
        request.group_id.as_ref().map(|g| g.as_str()),
        request.member_id.as_ref().map(|m| m.as_str()),
        authz,
    ) {
        Ok(ids) => ids,
        Err((code, message)) => return fail(code, message.to_string()),
    };
    let closes =
        match broker
            .share
            .acknowledge_session(&group_id, &member_id, request.share_session_epoch)
        {
            Ok(closes) => closes,
            Err(e) => return fail(e.code(), e.to_string()),
        };
    let partitions: BTreeSet<SharePartitionId> = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let denied = denied_topics(broker, authz, &partitions);
    let mut acknowledgements = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(AcknowledgementBatch::from)
                .collect();
            acknowledgements.push(((t.topic_id, p.partition_index), batches));
        }
    }
    let codes = acknowledge(
        broker,
        &group_id,
        &member_id,
        acknowledgements,
        &denied,
        request.is_renew_ack,
    )
    .await;
    if let Some(session_partitions) = closes {
        broker
            .share
            .release_member(&group_id, &member_id, &session_partitions);
    }
    let mut topics: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic_id, index), code) in codes {
        let (leader_id, leader_epoch) = broker
            .share
            .leader(topic_id, index)
            .map_or((-1, -1), |p| (broker.node_id(), p.leader_epoch()));
        topics.entry(topic_id).or_default().push(
            PartitionData::default()
                .with_partition_index(index)
                .with_error_code(code)
                .with_current_leader(
                    LeaderIdAndEpoch::default()
                        .with_leader_id(leader_id)
                        .with_leader_epoch(leader_epoch),
                ),
        );
    }
    ShareAcknowledgeResponse::default()
        .with_acquisition_lock_timeout_ms(broker.share.lock_duration_ms(&group_id))
        .with_responses(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}
