//! A share group's membership (KIP-932): members join and heartbeat with ShareGroupHeartbeat,
//! the coordinator computes which partitions each member fetches from. Kafka's `ShareGroup`
//! plus the share half of its `GroupMetadataManager`.
//!
//! Simpler than a consumer group ([`crate::group::consumer`]): a partition may be held by
//! several members and records, not partitions, are what members must not share, so there is
//! no revocation. A member moves straight to the target assignment of the group epoch:
//!
//! ```text
//!   Empty --member joins (epoch+1)--> Stable --last member leaves or expires--> Empty
//!                                     |  ^
//!                                     +--+ subscription or topic change: epoch+1, new target
//! ```
//!
//! Pure: time and the topics of the metadata image are passed in. Thread-safety: held in the
//! coordinator's [`crate::group::Group`] behind its per-group mutex.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::assign_shared;
use crate::group::assignor::{Assignment, MemberSubscription};
use crate::group::consumer::{HeartbeatAnswer, HeartbeatError, TopicImage};

/// The epoch a member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;

/// A share group's state, with Kafka's names (`ShareGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShareGroupState {
    /// No members.
    Empty,
    /// Members, each at the target assignment.
    Stable,
}

impl ShareGroupState {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            ShareGroupState::Empty => "Empty",
            ShareGroupState::Stable => "Stable",
        }
    }
}

/// Coordinator settings of share groups (`group.share.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size`.
    pub max_size: usize,
}

impl ShareGroupConfig {
    /// The settings in force.
    pub fn from_broker(config: &crate::config::BrokerConfig) -> Self {
        Self {
            session_timeout_ms: config.group_share("group.share.session.timeout.ms") as i32,
            heartbeat_interval_ms: config.group_share("group.share.heartbeat.interval.ms") as i32,
            max_size: config.group_share("group.share.max.size") as usize,
        }
    }
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

/// A ShareGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct ShareHeartbeat {
    /// The member id (the client makes it).
    pub member_id: String,
    /// 0 to join, -1 to leave, else the member's epoch.
    pub member_epoch: i32,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// None when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// One member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareMember {
    /// The member id.
    pub member_id: String,
    /// The member's epoch: the group epoch of the assignment it was last given.
    pub member_epoch: i32,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// The topics it subscribes to, by name.
    pub subscribed_topic_names: BTreeSet<String>,
    /// The partitions it fetches from.
    pub assignment: Assignment,
    /// When its session expires without a heartbeat (not stored: a load restarts it).
    pub session_deadline_ms: i64,
}

impl ShareMember {
    /// A member that just joined: epoch 0, nothing assigned.
    pub fn new(member_id: &str) -> Self {
        Self {
            member_id: member_id.to_string(),
            member_epoch: 0,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            assignment: Assignment::new(),
            session_deadline_ms: 0,
        }
    }
}

/// A share group. Invariants: `assignment_epoch <= group_epoch`, equal after every heartbeat
/// or tick; every member's epoch is the assignment epoch its assignment was computed for (at
/// most `assignment_epoch`).
#[derive(Debug, Clone)]
pub struct ShareGroup {
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// The target assignment of `assignment_epoch`, per member; a member takes its part on
    /// its next heartbeat.
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics as last seen: name → (id, partitions). A change bumps the epoch.
    subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    /// Whether the group changed in a way `__consumer_offsets` must record.
    dirty: bool,
    /// The group epoch moves once per heartbeat or tick, however many changes it saw.
    epoch_bump_pending: bool,
    /// Members that left since the last write (their records to tombstone).
    pub(crate) departed: BTreeSet<String>,
    /// The share partitions that may have state at a share coordinator (Kafka's "initialized
    /// topics" of ShareGroupStatePartitionMetadata): every partition a member was assigned,
    /// plus those an admin set offsets for, minus the topics whose offsets were deleted.
    /// What DescribeShareGroupOffsets lists and DeleteGroups cleans up. Topic id → (name,
    /// partitions).
    state_partitions: BTreeMap<Uuid, (String, BTreeSet<i32>)>,
}

impl ShareGroup {
    /// A new group with no members.
    pub fn new() -> Self {
        Self {
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
            dirty: false,
            epoch_bump_pending: false,
            departed: BTreeSet::new(),
            state_partitions: BTreeMap::new(),
        }
    }

    /// A group as loaded from `__consumer_offsets`: its epochs and members; the sessions
    /// start now.
    pub fn loaded(
        group_epoch: i32,
        assignment_epoch: i32,
        members: Vec<(ShareMember, Assignment)>,
        topics: &TopicImage,
        config: &ShareGroupConfig,
        now_ms: i64,
    ) -> Self {
        let mut group = Self::new();
        group.group_epoch = group_epoch;
        group.assignment_epoch = assignment_epoch.min(group_epoch);
        for (mut m, target) in members {
            m.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
            group.target.insert(m.member_id.clone(), target);
            group.members.insert(m.member_id.clone(), m);
        }
        group.subscribed_topics = group.resolve_subscribed_topics(topics);
        group
    }

    /// The group's state.
    pub fn state(&self) -> ShareGroupState {
        if self.members.is_empty() {
            ShareGroupState::Empty
        } else {
            ShareGroupState::Stable
        }
    }

    /// The group epoch.
    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    /// The epoch of the target assignment.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// Members by id.
    pub fn members(&self) -> &BTreeMap<String, ShareMember> {
        &self.members
    }

    /// A member's part of the target assignment.
    pub fn target_of(&self, member_id: &str) -> Option<&Assignment> {
        self.target.get(member_id)
    }

    /// Whether the membership or assignment changed since the last call; clears it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Marks the group for a full write (a write failed).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether `member_id` is a member (ShareFetch and ShareAcknowledge ask).
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    fn bump_group_epoch(&mut self) {
        self.epoch_bump_pending = true;
        self.dirty = true;
    }

    /// Handles one ShareGroupHeartbeat: join, leave, update the subscription, recompute the
    /// target assignment if the group epoch moved, and hand the member its assignment (in
    /// the answer when it changed, or on joining).
    pub fn heartbeat(
        &mut self,
        request: ShareHeartbeat,
        topics: &TopicImage,
        config: &ShareGroupConfig,
        now_ms: i64,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let member_id = request.member_id.clone();
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            self.remove_member(&member_id);
            self.refresh_subscribed_topics(topics);
            self.compute_target_if_due(topics);
            return Ok(HeartbeatAnswer {
                member_id,
                member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }
        let joining = request.member_epoch == 0;
        let mut member = match self.members.get(&member_id) {
            Some(m) => {
                if !joining && request.member_epoch != m.member_epoch {
                    return Err(HeartbeatError {
                        code: ResponseError::FencedMemberEpoch.code(),
                        message: format!("The share group member has a different member epoch ({}) than the one known by the group coordinator ({}). The member must rejoin.", request.member_epoch, m.member_epoch),
                    });
                }
                m.clone()
            }
            None if joining => {
                if self.members.len() >= config.max_size {
                    return Err(HeartbeatError {
                        code: ResponseError::GroupMaxSizeReached.code(),
                        message: format!(
                            "The share group has reached its maximum capacity of {} members.",
                            config.max_size
                        ),
                    });
                }
                self.bump_group_epoch();
                ShareMember::new(&member_id)
            }
            None => {
                return Err(HeartbeatError {
                    code: ResponseError::UnknownMemberId.code(),
                    message: format!("Member {member_id} is not a member of the share group."),
                })
            }
        };
        let previous_epoch = member.member_epoch;
        if let Some(names) = request.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            if names != member.subscribed_topic_names {
                member.subscribed_topic_names = names;
                self.bump_group_epoch();
            }
        }
        if request.rack_id.is_some() && request.rack_id != member.rack_id {
            member.rack_id = request.rack_id;
            self.dirty = true;
        }
        if member.client_id != request.client_id || member.client_host != request.client_host {
            member.client_id = request.client_id;
            member.client_host = request.client_host;
            self.dirty = true;
        }
        member.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
        self.members.insert(member_id.clone(), member);
        self.refresh_subscribed_topics(topics);
        self.compute_target_if_due(topics);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get_mut(&member_id) else {
            return Err(HeartbeatError {
                code: ResponseError::UnknownServerError.code(),
                message: String::new(),
            });
        };
        if member.member_epoch != assignment_epoch {
            member.member_epoch = assignment_epoch;
            member.assignment = target;
            self.dirty = true;
        }
        let send_assignment = joining || member.member_epoch != previous_epoch;
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: send_assignment.then(|| member.assignment.clone()),
        })
    }

    /// Removes a member (it left, or its session expired).
    pub fn remove_member(&mut self, member_id: &str) {
        self.target.remove(member_id);
        if self.members.remove(member_id).is_some() {
            self.departed.insert(member_id.to_string());
            self.bump_group_epoch();
        }
    }

    /// Removes members whose session expired, and notices topic changes when `topics` is
    /// given; the removed members' ids.
    pub fn tick(&mut self, topics: Option<&TopicImage>, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline_ms <= now_ms)
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        if let Some(topics) = topics {
            self.refresh_subscribed_topics(topics);
            self.compute_target_if_due(topics);
        } else if !expired.is_empty() {
            let image: TopicImage = self.subscribed_topics.clone();
            self.compute_target_if_due(&image);
        }
        expired
    }

    fn resolve_subscribed_topics(&self, topics: &TopicImage) -> BTreeMap<String, (Uuid, i32)> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter())
            .filter_map(|name| topics.get(name).map(|t| (name.clone(), *t)))
            .collect()
    }

    fn refresh_subscribed_topics(&mut self, topics: &TopicImage) {
        let subscribed = self.resolve_subscribed_topics(topics);
        if subscribed != self.subscribed_topics {
            self.subscribed_topics = subscribed;
            self.bump_group_epoch();
        }
    }

    /// A new target assignment when the group epoch moved; every member takes it at once
    /// (no revocation in share groups).
    fn compute_target_if_due(&mut self, topics: &TopicImage) {
        if std::mem::take(&mut self.epoch_bump_pending) {
            self.group_epoch += 1;
        }
        if self.assignment_epoch == self.group_epoch {
            return;
        }
        let subscriptions: BTreeMap<String, MemberSubscription> = self
            .members
            .iter()
            .map(|(id, m)| {
                let topic_ids = m
                    .subscribed_topic_names
                    .iter()
                    .filter_map(|name| topics.get(name).map(|(id, _)| *id))
                    .collect();
                (
                    id.clone(),
                    MemberSubscription {
                        topics: topic_ids,
                        current: self.target.get(id).cloned().unwrap_or_default(),
                    },
                )
            })
            .collect();
        let partitions = self
            .subscribed_topics
            .values()
            .map(|(id, n)| (*id, *n))
            .collect();
        self.target = assign_shared(&subscriptions, &partitions);
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// The share partitions that may have state (see the field's docs).
    pub fn state_partitions(&self) -> &BTreeMap<Uuid, (String, BTreeSet<i32>)> {
        &self.state_partitions
    }

    /// Replaces the share partitions that may have state (a load).
    pub fn set_state_partitions(&mut self, partitions: BTreeMap<Uuid, (String, BTreeSet<i32>)>) {
        self.state_partitions = partitions;
    }

    /// Adds share partitions that may have state; whether any was new (then the group must
    /// be stored).
    pub fn add_state_partitions(
        &mut self,
        partitions: impl IntoIterator<Item = (Uuid, String, i32)>,
    ) -> bool {
        let mut added = false;
        for (topic_id, name, partition) in partitions {
            let entry = self
                .state_partitions
                .entry(topic_id)
                .or_insert_with(|| (name, BTreeSet::new()));
            added |= entry.1.insert(partition);
        }
        if added {
            self.dirty = true;
        }
        added
    }

    /// Adds what members are assigned to the share partitions that may have state.
    pub fn note_assigned_state_partitions(&mut self) -> bool {
        let names: BTreeMap<Uuid, String> = self
            .subscribed_topics
            .iter()
            .map(|(name, (id, _))| (*id, name.clone()))
            .collect();
        let assigned: Vec<(Uuid, String, i32)> = self
            .assigned_partitions()
            .into_iter()
            .map(|(t, p)| (t, names.get(&t).cloned().unwrap_or_default(), p))
            .collect();
        self.add_state_partitions(assigned)
    }

    /// Forgets a topic's share partitions (their state was deleted); what it held.
    pub fn remove_state_topic(&mut self, topic_id: Uuid) -> Option<BTreeSet<i32>> {
        let removed = self.state_partitions.remove(&topic_id).map(|(_, p)| p);
        if removed.is_some() {
            self.dirty = true;
        }
        removed
    }

    /// The topic partitions some member is assigned.
    pub fn assigned_partitions(&self) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .flat_map(|m| {
                m.assignment
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            })
            .collect()
    }
}

impl Default for ShareGroup {
    fn default() -> Self {
        Self::new()
    }
}
