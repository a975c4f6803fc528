//! Online migration of a group between the classic protocol and the KIP-848 consumer
//! protocol while it has members (Kafka 4's `group.consumer.migration.policy`).
//!
//! ```text
//!                 first ConsumerGroupHeartbeat (policy: upgrade)
//!   classic group ------------------------------------------------> consumer group
//!   (JoinGroup...)  members kept, as classic-protocol members       (classic members keep
//!        ^          of the consumer group, their partitions and       JoinGroup/SyncGroup/
//!        |          generation as assignment and epoch                Heartbeat; assignment
//!        |                                                            by the broker)
//!        +-------------------------------------------------------------------+
//!          the last consumer-protocol member leaves or expires and only classic members
//!          remain (policy: downgrade): a classic group of them, rebalancing at once
//! ```
//!
//! An empty group of either kind is simply replaced by the other kind (its committed offsets
//! stay either way). What a conversion writes to `__consumer_offsets` is Kafka's: the old
//! kind's tombstones, then the new kind's records, so a load finds one kind.
//!
//! Pure: the coordinator ([`super::consumer_ops`]) decides when, appends the records and holds
//! the group's lock.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::classic::{Group, GroupState};
use super::consumer::{ConsumerGroup, TopicImage};
use super::consumer_classic::{
    decode_assignment, decode_subscription, encode_assignment, CONSUMER_PROTOCOL_TYPE,
};
use super::consumer_member::{ClassicMemberMetadata, ConsumerMember};
use super::member::{JoinResult, MemberMetadata, SyncResult};

/// `group.consumer.migration.policy`: which conversions of a non-empty group are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationPolicy {
    /// Both ways (Kafka 4's default).
    Bidirectional,
    /// Classic to consumer only.
    Upgrade,
    /// Consumer to classic only.
    Downgrade,
    /// Neither: a non-empty group keeps its kind.
    Disabled,
}

impl MigrationPolicy {
    /// Parses Kafka's value (case-insensitive, as Kafka's validator); unknown values are
    /// refused at startup, so they read as the default here.
    pub fn parse(value: &str) -> Self {
        match value.to_ascii_lowercase().as_str() {
            "upgrade" => Self::Upgrade,
            "downgrade" => Self::Downgrade,
            "disabled" => Self::Disabled,
            _ => Self::Bidirectional,
        }
    }

    /// Whether a classic group with members may become a consumer group.
    pub fn upgrade_enabled(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Upgrade)
    }

    /// Whether a consumer group left with classic members only may become a classic group.
    pub fn downgrade_enabled(self) -> bool {
        matches!(self, Self::Bidirectional | Self::Downgrade)
    }
}

impl ConsumerGroup {
    /// The consumer group a classic group becomes (Kafka's `ConsumerGroup.fromClassicGroup`):
    /// each member keeps its id, subscription and partitions, with the generation as its
    /// epoch; the group and assignment epochs are the generation, the target assignment is
    /// what the members hold. None if a member's subscription is not the embedded consumer
    /// protocol.
    pub fn from_classic(group: &Group, topics: &TopicImage, now_ms: i64) -> Option<Self> {
        let mut c = ConsumerGroup::new(now_ms);
        let generation = group.generation();
        c.group_epoch = generation;
        c.assignment_epoch = generation;
        for m in group.members() {
            let protocol = group
                .protocol_name()
                .map(str::to_string)
                .or_else(|| m.protocols.first().map(|(p, _)| p.clone()))?;
            let (_, subscription) = decode_subscription(&m.metadata_for(&protocol))?;
            let mut member = ConsumerMember::new(&m.member_id);
            member.instance_id = m.group_instance_id.clone();
            member.rack_id = subscription.rack_id.as_ref().map(|r| r.to_string());
            member.client_id = m.client_id.clone();
            member.client_host = m.client_host.clone();
            member.subscribed_topic_names =
                subscription.topics.iter().map(|t| t.to_string()).collect();
            member.rebalance_timeout_ms = m.rebalance_timeout_ms;
            member.member_epoch = generation;
            member.previous_member_epoch = generation;
            member.assigned = decode_assignment(&m.assignment, topics);
            member.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
            member.classic = Some(ClassicMemberMetadata {
                session_timeout_ms: m.session_timeout_ms,
                protocols: m.protocols.clone(),
            });
            c.target
                .insert(m.member_id.clone(), member.assigned.clone());
            c.members.insert(m.member_id.clone(), member);
        }
        c.rebuild_owners();
        c.init_subscribed_topics(topics);
        c.mark_dirty();
        Some(c)
    }
}

impl Group {
    /// Whether this classic group may become a consumer group with its members (Kafka's
    /// `validateOnlineUpgrade`): the policy allows it, the members speak the embedded
    /// consumer protocol, and they fit in `group.consumer.max.size`.
    pub fn can_upgrade(&self, policy: MigrationPolicy, consumer_max_size: usize) -> bool {
        policy.upgrade_enabled()
            && self.consumer.is_none()
            && self.share.is_none()
            && self.state != GroupState::Dead
            && self.protocol_type() == Some(CONSUMER_PROTOCOL_TYPE)
            && self.members().len() <= consumer_max_size
    }

    /// Turns this classic group into `consumer` (built by [`ConsumerGroup::from_classic`]).
    /// Parked JoinGroup and SyncGroup requests are answered REBALANCE_IN_PROGRESS: the
    /// members join again, now into the consumer group, as Kafka's conversion does.
    pub fn upgrade(&mut self, consumer: ConsumerGroup, now_ms: i64) {
        let rebalancing = ResponseError::RebalanceInProgress.code();
        for m in &mut self.members {
            let id = m.member_id.clone();
            m.answer_join(JoinResult::error(rebalancing, &id));
            m.answer_sync(SyncResult::error(rebalancing));
        }
        self.members.clear();
        self.pending_members.clear();
        self.leader = None;
        self.protocol_name = None;
        self.join_deadline_ms = None;
        self.initial_join_cap_ms = None;
        self.sync_deadline_ms = None;
        self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
        self.consumer = Some(consumer);
        self.sync_consumer_state(now_ms);
    }

    /// Whether this consumer group, left with classic-protocol members only, may become a
    /// classic group (Kafka's `validateOnlineDowngradeWithFencedMember`, checked after the
    /// member went): the policy allows it, someone is left, everyone left is classic, and
    /// they fit in `group.max.size`.
    pub fn can_downgrade(&self, policy: MigrationPolicy) -> bool {
        let Some(c) = &self.consumer else {
            return false;
        };
        policy.downgrade_enabled()
            && self.state != GroupState::Dead
            && !c.members().is_empty()
            && c.all_classic_except(None)
            && c.members().len() <= self.config.max_size
    }

    /// Turns this consumer group of classic members back into a classic group (Kafka's
    /// `ClassicGroup.fromConsumerGroup` and the rebalance that follows): each member keeps its
    /// id, protocols and target assignment; the generation is the epoch the members reached;
    /// the group starts a rebalance at once, so the members' next heartbeat makes them rejoin
    /// and the leader assigns with the client-side assignor again.
    pub fn downgrade(&mut self, names: &HashMap<Uuid, String>, now_ms: i64) {
        let Some(c) = self.consumer.take() else {
            return;
        };
        self.members = c
            .members()
            .values()
            .filter_map(|m| {
                let classic = m.classic.as_ref()?;
                let version = classic
                    .protocols
                    .first()
                    .filter(|(_, meta)| meta.len() >= 2)
                    .map_or(0, |(_, meta)| i16::from_be_bytes([meta[0], meta[1]]));
                let target = c.target_of(&m.member_id).unwrap_or(&m.assigned);
                Some(MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: classic.session_timeout_ms,
                    protocols: classic.protocols.clone(),
                    assignment: encode_assignment(target, names, version),
                    last_heartbeat_ms: now_ms,
                    awaiting_join: None,
                    awaiting_sync: None,
                })
            })
            .collect();
        // The epoch the classic members are at (the departure moved the group epoch past it).
        self.generation = c
            .members()
            .values()
            .map(|m| m.member_epoch)
            .max()
            .unwrap_or(c.group_epoch());
        self.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
        self.protocol_name = Some(self.select_protocol());
        self.leader = self.members.first().map(|m| m.member_id.clone());
        self.pending_members.clear();
        self.transition(GroupState::Stable, now_ms);
        self.mark_dirty();
        self.maybe_prepare_rebalance(now_ms);
    }
}
