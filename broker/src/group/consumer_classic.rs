//! Classic-protocol members of a KIP-848 consumer group, as Kafka 4 keeps them during an online
//! migration (`group.consumer.migration.policy`): a member still on `group.protocol=classic`
//! goes on sending JoinGroup, SyncGroup, Heartbeat and LeaveGroup, but its assignment comes
//! from the group's server-side assignor, like everyone else's.
//!
//! - **JoinGroup** updates the member (its subscription and owned partitions come from the
//!   embedded consumer protocol), moves the group epoch if the subscription changed, computes
//!   the target assignment and reconciles the member, all at once: the answer is never parked.
//!   Its generation is the member epoch; there is no leader (nobody runs a client assignor).
//! - **SyncGroup** hands out the member's assigned partitions (ConsumerProtocolAssignment).
//! - **Heartbeat** answers REBALANCE_IN_PROGRESS when the member must rejoin: the group epoch
//!   moved past it, it has partitions to give up, or partitions it waited for are free now.
//!   That is how a classic member revokes: it rejoins without them.
//! - **LeaveGroup** removes it, as a consumer member's leave.
//!
//! Pure, like [`super::consumer`]: time and the topics of the image come in.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

use super::assignor::Assignment;
use super::consumer::{ConsumerGroup, ConsumerGroupConfig, Heartbeat, TopicImage};
use super::consumer_member::{overlaps, ClassicMemberMetadata, ConsumerMember, MemberState};
use super::member::JoinResult;
use super::rebalance::JoinRequest;

/// The embedded protocol type of consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A classic member's subscription, decoded from its JoinGroup metadata: the embedded protocol
/// version and the ConsumerProtocolSubscription. None if it is not one.
pub fn decode_subscription(metadata: &[u8]) -> Option<(i16, ConsumerProtocolSubscription)> {
    if metadata.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    let mut body = Bytes::copy_from_slice(&metadata[2..]);
    let sub = ConsumerProtocolSubscription::decode(&mut body, version.clamp(0, 3)).ok()?;
    Some((version, sub))
}

/// A classic assignment (ConsumerProtocolAssignment) as topic ids; topics the image does not
/// know are dropped. Malformed bytes read as no partitions.
pub fn decode_assignment(bytes: &[u8], topics: &TopicImage) -> Assignment {
    let mut out = Assignment::new();
    if bytes.len() < 2 {
        return out;
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    let mut body = Bytes::copy_from_slice(&bytes[2..]);
    let Ok(a) = ConsumerProtocolAssignment::decode(&mut body, version.clamp(0, 3)) else {
        return out;
    };
    for tp in a.assigned_partitions {
        if let Some((id, _)) = topics.get(tp.topic.0.as_str()) {
            out.entry(*id).or_default().extend(tp.partitions);
        }
    }
    out
}

/// Topic-name partitions (a subscription's owned partitions) as topic ids.
fn owned_by_id(
    owned: &[kafka_protocol::messages::consumer_protocol_subscription::TopicPartition],
    topics: &TopicImage,
) -> Assignment {
    let mut out = Assignment::new();
    for tp in owned {
        if let Some((id, _)) = topics.get(tp.topic.0.as_str()) {
            out.entry(*id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
    }
    out
}

/// `assignment` as a ConsumerProtocolAssignment of `version` (the member's embedded protocol
/// version), topic ids named from `names`.
pub fn encode_assignment(
    assignment: &Assignment,
    names: &HashMap<Uuid, String>,
    version: i16,
) -> Bytes {
    let version = version.clamp(0, 3);
    let message = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .filter_map(|(id, partitions)| {
                let name = names.get(id)?;
                Some(
                    consumer_protocol_assignment::TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(name.clone())))
                        .with_partitions(partitions.iter().copied().collect()),
                )
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&version.to_be_bytes());
    if message.encode(&mut buf, version).is_err() {
        // Only a field too long for its length prefix fails; no such field here.
        return Bytes::new();
    }
    buf.freeze()
}

/// The embedded protocol version a classic member speaks (that of its preferred protocol's
/// metadata), for the assignments sent to it.
fn protocol_version(classic: &ClassicMemberMetadata) -> i16 {
    classic
        .protocols
        .first()
        .filter(|(_, m)| m.len() >= 2)
        .map_or(0, |(_, m)| i16::from_be_bytes([m[0], m[1]]))
}

/// Whether the classic JoinGroup `req` brings back, under a new member id, the instance of
/// `existing`, a static consumer-protocol member (which it replaces).
pub fn replaces_static_consumer_member(
    existing: Option<&ConsumerMember>,
    req: &JoinRequest,
) -> bool {
    req.member_id.is_empty()
        && req.group_instance_id.is_some()
        && existing
            .is_some_and(|m| !m.uses_classic_protocol() && m.instance_id == req.group_instance_id)
}

fn is_fenced(member: &ConsumerMember, member_id: &str) -> bool {
    !member_id.is_empty() && member.member_id != member_id
}

impl ConsumerGroup {
    /// Whether every classic member supports one of `protocols` (Kafka's
    /// `supportsClassicProtocols`): a new classic member must share a client assignor with
    /// the classic members already there, for a later downgrade to have one to choose.
    pub fn supports_classic_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if protocol_type != CONSUMER_PROTOCOL_TYPE || protocols.is_empty() {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter_map(|m| m.classic.as_ref())
                .all(|c| c.supports(name))
        })
    }

    /// The member a classic request names: by instance id (fenced if the member id differs)
    /// or by member id; UNKNOWN_MEMBER_ID for none or for a consumer-protocol member.
    fn classic_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<&ConsumerMember, i16> {
        let member = match instance_id {
            Some(instance) => {
                let m = self
                    .static_member(instance)
                    .ok_or(ResponseError::UnknownMemberId.code())?;
                if is_fenced(m, member_id) {
                    return Err(ResponseError::FencedInstanceId.code());
                }
                m
            }
            None => self
                .members
                .get(member_id)
                .ok_or(ResponseError::UnknownMemberId.code())?,
        };
        if !member.uses_classic_protocol() {
            return Err(ResponseError::UnknownMemberId.code());
        }
        Ok(member)
    }

    /// JoinGroup of a classic member (Kafka's `classicGroupJoinToConsumerGroup`). The caller
    /// checked the session timeout bounds and the group's size.
    pub fn classic_join(
        &mut self,
        req: &JoinRequest,
        topics: &TopicImage,
        config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> JoinResult {
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            member_id = Uuid::new_v4().to_string();
            if req.require_known_member_id && req.group_instance_id.is_none() {
                return JoinResult::error(ResponseError::MemberIdRequired.code(), &member_id);
            }
        }
        let fail = |code: i16| JoinResult::error(code, &req.member_id);
        if !self.supports_classic_protocols(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol.code());
        }
        let Some((_, subscription)) = decode_subscription(&req.protocols[0].1) else {
            return fail(ResponseError::InconsistentGroupProtocol.code());
        };
        let existing = match req.group_instance_id.as_deref() {
            Some(instance) => self.static_member(instance),
            None => self.members.get(&member_id),
        };
        if existing.is_some_and(|m| !m.uses_classic_protocol())
            && !replaces_static_consumer_member(existing, req)
        {
            // A consumer-protocol member cannot switch protocols without leaving first, unless
            // it is static and its instance comes back as a new classic member (Kafka replaces
            // it, and downgrades the group if it was the last consumer-protocol member).
            return fail(ResponseError::UnknownMemberId.code());
        }
        if let Some(m) = existing.filter(|m| m.member_id != member_id) {
            // The instance comes back with a new member id: the old one is fenced, its
            // partitions are free at once.
            let old = m.member_id.clone();
            self.remove_member(&old, now_ms);
        }
        let member_epoch = self.members.get(&member_id).map_or(0, |m| m.member_epoch);
        let owned = owned_by_id(&subscription.owned_partitions, topics);
        let heartbeat = Heartbeat {
            member_id: member_id.clone(),
            member_epoch,
            instance_id: req.group_instance_id.clone(),
            rack_id: subscription.rack_id.as_ref().map(|r| r.to_string()),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_topic_names: Some(
                subscription.topics.iter().map(|t| t.to_string()).collect(),
            ),
            subscribed_topic_regex: Some(String::new()),
            server_assignor: None,
            owned: Some(owned.clone()),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
        };
        let classic = ClassicMemberMetadata {
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
        };
        if let Err(e) = self.heartbeat(heartbeat, topics, config, || member_id.clone(), now_ms) {
            return fail(e.code);
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return fail(ResponseError::UnknownServerError.code());
        };
        let classic_changed = member.classic.as_ref() != Some(&classic);
        member.classic = Some(classic);
        member.session_deadline_ms = now_ms + i64::from(req.session_timeout_ms);
        // Joined: the rejoin is done; now it has its rebalance timeout to sync.
        member.classic_join_deadline_ms = None;
        member.classic_sync_deadline_ms = Some(now_ms + i64::from(req.rebalance_timeout_ms.max(0)));
        let unrevoked = member.state == MemberState::UnrevokedPartitions
            && !overlaps(&owned, &member.pending_revocation);
        if classic_changed {
            self.mark_dirty();
        }
        // The member rejoined without the partitions it had to give up (an eager client
        // revokes everything first): the revocation is done, so it moves on at once rather
        // than after one more round trip.
        if unrevoked {
            self.reconcile_member(&member_id, Some(&owned), now_ms);
        }
        let member = &self.members[&member_id];
        JoinResult {
            error: 0,
            generation: member.member_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: Some(req.protocols[0].0.clone()),
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    /// SyncGroup of a classic member (Kafka's `classicGroupSyncToConsumerGroup`): its
    /// assigned partitions, encoded for its embedded protocol version.
    #[allow(clippy::too_many_arguments)] // one argument per SyncGroup field
    pub fn classic_sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        names: &HashMap<Uuid, String>,
        now_ms: i64,
    ) -> Result<Bytes, i16> {
        let member = self.classic_member(member_id, instance_id)?;
        if generation != member.member_epoch {
            return Err(ResponseError::IllegalGeneration.code());
        }
        let classic = member.classic.as_ref().expect("checked classic");
        if protocol_type.is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || protocol_name.is_some_and(|n| classic.protocols.first().is_none_or(|(p, _)| p != n))
        {
            return Err(ResponseError::InconsistentGroupProtocol.code());
        }
        if self.group_epoch > member.member_epoch
            && member.state != MemberState::UnrevokedPartitions
        {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        let assignment = encode_assignment(&member.assigned, names, protocol_version(classic));
        let session = i64::from(classic.session_timeout_ms);
        let id = member.member_id.clone();
        if let Some(m) = self.members.get_mut(&id) {
            m.session_deadline_ms = now_ms + session;
            m.classic_sync_deadline_ms = None;
        }
        Ok(assignment)
    }

    /// Heartbeat of a classic member (Kafka's `classicGroupHeartbeatToConsumerGroup`): keeps
    /// its session and tells it to rejoin when it must.
    pub fn classic_heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: i64,
    ) -> i16 {
        let member = match self.classic_member(member_id, instance_id) {
            Ok(m) => m,
            Err(code) => return code,
        };
        if generation != member.member_epoch {
            return ResponseError::IllegalGeneration.code();
        }
        let rejoin = member.member_epoch < self.group_epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions
                && !self.waits_on_unreleased_partition(member));
        let session = member.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        let id = member.member_id.clone();
        if let Some(m) = self.members.get_mut(&id) {
            m.session_deadline_ms = now_ms + i64::from(session);
            if rejoin && m.classic_join_deadline_ms.is_none() {
                // Told to rejoin: it has its rebalance timeout to do so (Kafka schedules the
                // join timeout once, at the first such answer).
                m.classic_join_deadline_ms =
                    Some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
            }
        }
        if rejoin {
            ResponseError::RebalanceInProgress.code()
        } else {
            0
        }
    }

    /// LeaveGroup of a classic member: removed, its partitions free at once.
    pub fn classic_leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        let id = match self.classic_member(member_id, instance_id) {
            Ok(m) => m.member_id.clone(),
            Err(code) => return code,
        };
        self.remove_member(&id, now_ms);
        0
    }

    /// Whether some partition of `member`'s target that it does not hold yet is still held by
    /// another member.
    fn waits_on_unreleased_partition(&self, member: &ConsumerMember) -> bool {
        let Some(target) = self.target.get(&member.member_id) else {
            return false;
        };
        target.iter().any(|(topic, partitions)| {
            partitions.iter().any(|p| {
                !member.assigned.get(topic).is_some_and(|a| a.contains(p))
                    && self
                        .owner_of(*topic, *p)
                        .is_some_and(|owner| owner != member.member_id)
            })
        })
    }

    /// Whether every member uses the classic protocol except `except` (Kafka's
    /// `allMembersUseClassicProtocolExcept`).
    pub fn all_classic_except(&self, except: Option<&str>) -> bool {
        self.members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != except)
            .all(ConsumerMember::uses_classic_protocol)
    }
}
