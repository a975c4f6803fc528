//! A KIP-848 consumer group (`group.protocol=consumer`): the broker computes the assignment,
//! members reconcile towards it with ConsumerGroupHeartbeat. Kafka's `ConsumerGroup` plus the
//! heartbeat half of its `GroupMetadataManager`.
//!
//! Three epochs drive it:
//! - the **group epoch** moves when the membership, a subscription or the subscribed topics'
//!   partition counts change;
//! - the **assignment epoch** is the group epoch the target assignment was computed for (the
//!   next heartbeat after a bump computes it with the group's assignor);
//! - each **member epoch** reaches the assignment epoch once the member has reconciled
//!   ([`super::consumer_member`]): revoked what moved away, then received what is free.
//!
//! ```text
//!   Empty --member joins--> Assigning --target computed--> Reconciling --all at target--> Stable
//!     ^                        ^  (group epoch bumped)                                      |
//!     +--last member leaves----+------------------------------------------------------------+
//! ```
//!
//! Pure: time and the topics of the metadata image are passed in. Thread-safety: the group is
//! held in its classic [`super::Group`] (which keeps the committed offsets) behind the
//! coordinator's per-group mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor, MemberSubscription};
use super::consumer_member::{is_subset, ConsumerMember, MemberState};

/// How often the coordinator's timers look for new topics or partitions of a group's
/// subscription (a heartbeat looks every time).
pub const TOPICS_REFRESH_INTERVAL_MS: i64 = 1_000;

/// The epoch a member sends to leave the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The epoch a static member sends to leave temporarily (it keeps its assignment until its
/// session expires or its instance rejoins).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// A consumer group's state, named as Kafka names it (`ConsumerGroupState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// The group epoch moved; the target assignment is not computed yet.
    Assigning,
    /// Members are moving to the target assignment.
    Reconciling,
    /// Every member has its target assignment.
    Stable,
}

impl ConsumerGroupState {
    /// Every state, for metrics.
    pub const ALL: [ConsumerGroupState; 4] = [
        ConsumerGroupState::Empty,
        ConsumerGroupState::Assigning,
        ConsumerGroupState::Reconciling,
        ConsumerGroupState::Stable,
    ];

    /// Kafka's name (ListGroups, DescribeGroups, ConsumerGroupDescribe).
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// Coordinator settings consumer groups obey (`group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<Assignor>,
    /// `group.consumer.max.size`.
    pub max_size: usize,
}

/// The topics of the metadata image a subscription can name: name → (id, partitions),
/// internal topics included (as Kafka resolves regexes).
pub type TopicImage = BTreeMap<String, (Uuid, i32)>;

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// Member id (empty on a v0 join).
    pub member_id: String,
    /// 0 to join, -1/-2 to leave, else the member's epoch.
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// None when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// None when unchanged.
    pub subscribed_topic_regex: Option<String>,
    /// None when unchanged.
    pub server_assignor: Option<String>,
    /// The partitions the client holds; None when unchanged.
    pub owned: Option<Assignment>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// The answer to a heartbeat that was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatAnswer {
    /// The member id.
    pub member_id: String,
    /// The member's epoch now.
    pub member_epoch: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when the client must learn them.
    pub assignment: Option<Assignment>,
}

/// A refused heartbeat: Kafka's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatError {
    /// The error code.
    pub code: i16,
    /// The message for the client.
    pub message: String,
}

impl HeartbeatError {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code: error.code(),
            message: message.into(),
        }
    }
}

/// A consumer group. Invariants: `owners` maps every partition some member holds (assigned or
/// pending revocation) to that member, and no partition has two; `assignment_epoch <=
/// group_epoch`; every member epoch is at most the assignment epoch.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub(super) group_epoch: i32,
    pub(super) assignment_epoch: i32,
    pub(super) members: BTreeMap<String, ConsumerMember>,
    /// The target assignment of `assignment_epoch`, per member.
    pub(super) target: BTreeMap<String, Assignment>,
    /// The subscribed topics as last seen: name → (id, partitions). A change bumps the epoch.
    pub(super) subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    owners: HashMap<(Uuid, i32), String>,
    /// When the state last changed (ms since the epoch).
    pub(super) state_timestamp_ms: i64,
    /// Whether the group changed in a way `__consumer_offsets` must record.
    dirty: bool,
    /// Members whose records are in `__consumer_offsets` (to tombstone when they go).
    pub(super) persisted_members: BTreeSet<String>,
    /// When the subscribed topics were last resolved against the image.
    topics_checked_ms: i64,
}

impl ConsumerGroup {
    /// A new group with no members.
    pub fn new(now_ms: i64) -> Self {
        Self {
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
            owners: HashMap::new(),
            state_timestamp_ms: now_ms,
            dirty: false,
            persisted_members: BTreeSet::new(),
            topics_checked_ms: now_ms,
        }
    }

    /// The group's state.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.member_epoch != self.assignment_epoch)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
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
    pub fn members(&self) -> &BTreeMap<String, ConsumerMember> {
        &self.members
    }

    /// A member's target assignment.
    pub fn target_of(&self, member_id: &str) -> Option<&Assignment> {
        self.target.get(member_id)
    }

    /// Whether the membership or assignment changed since the last call; clears it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Marks the group for a full write (a write failed).
    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    fn bump_group_epoch(&mut self, now_ms: i64) {
        self.group_epoch += 1;
        self.state_timestamp_ms = now_ms;
        self.dirty = true;
    }

    /// Handles one ConsumerGroupHeartbeat (Kafka's `consumerGroupHeartbeat`): join, leave,
    /// update the subscription, recompute the target assignment if the group epoch moved,
    /// reconcile the member. `new_member_id` names a member that joins without an id (v0).
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &TopicImage,
        config: &ConsumerGroupConfig,
        new_member_id: impl FnOnce() -> String,
        now_ms: i64,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        if request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(&request, config, now_ms);
        }
        let joining = request.member_epoch == 0;
        if let Some(pattern) = request.subscribed_topic_regex.as_deref() {
            if !pattern.is_empty() {
                compile_regex(pattern)?;
            }
        }
        let mut member_id = request.member_id.clone();
        if member_id.is_empty() {
            member_id = new_member_id();
        }
        let known = self.members.contains_key(&member_id)
            || request
                .instance_id
                .as_deref()
                .is_some_and(|i| self.static_member(i).is_some());
        if joining && !known && self.members.len() >= config.max_size {
            return Err(HeartbeatError::new(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    config.max_size
                ),
            ));
        }
        let mut replaced_static = None;
        let previous = match request.instance_id.as_deref() {
            None => match self.members.get(&member_id) {
                Some(m) if !joining => {
                    check_member_epoch(m, request.member_epoch, request.owned.as_ref())?;
                    Some(m.clone())
                }
                // Epoch 0 from a known member id: the client gave up its partitions (it was
                // fenced, or restarted with the same id) and joins again.
                Some(_) => {
                    self.remove_member(&member_id, now_ms);
                    None
                }
                None if joining => None,
                None => {
                    return Err(HeartbeatError::new(
                        ResponseError::UnknownMemberId,
                        format!("Member {member_id} is not a member of the group."),
                    ))
                }
            },
            Some(instance) => {
                let existing = self.static_member(instance).cloned();
                match existing {
                    None if joining => None,
                    None => {
                        return Err(HeartbeatError::new(
                            ResponseError::UnknownMemberId,
                            format!("Instance id {instance} is unknown."),
                        ))
                    }
                    Some(m) if joining => {
                        if m.member_id != member_id
                            && m.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH
                        {
                            return Err(HeartbeatError::new(
                                ResponseError::UnreleasedInstanceId,
                                format!("Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {} member.", m.member_id),
                            ));
                        }
                        // The instance comes back: the new member takes over its assignment.
                        replaced_static = Some(m.clone());
                        None
                    }
                    Some(m) => {
                        if m.member_id != member_id {
                            return Err(HeartbeatError::new(
                                ResponseError::FencedInstanceId,
                                format!("Static member {member_id} with instance id {instance} was fenced by member {}.", m.member_id),
                            ));
                        }
                        check_member_epoch(&m, request.member_epoch, request.owned.as_ref())?;
                        Some(m)
                    }
                }
            }
        };

        // 1. The member, created or updated.
        let mut member = previous
            .clone()
            .unwrap_or_else(|| ConsumerMember::new(&member_id));
        if let Some(old) = &replaced_static {
            self.members.remove(&old.member_id);
            self.release(&old.member_id);
            if let Some(target) = self.target.remove(&old.member_id) {
                self.target.insert(member_id.clone(), target);
            }
            member.assigned = old.assigned.clone();
            // Joins at epoch 0 with the old incarnation's partitions; reconciliation below
            // brings it to the target epoch with the same target.
            member.previous_member_epoch = 0;
            member.subscribed_topic_names = old.subscribed_topic_names.clone();
            member.subscribed_topic_regex = old.subscribed_topic_regex.clone();
            for (t, p) in member.owned_partitions().collect::<Vec<_>>() {
                self.owners.insert((t, p), member_id.clone());
            }
        }
        if let Some(instance) = &request.instance_id {
            member.instance_id = Some(instance.clone());
        }
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id.clone();
        }
        if request.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        }
        if request.server_assignor.is_some() {
            member.server_assignor = request.server_assignor.clone();
        }
        if let Some(names) = &request.subscribed_topic_names {
            member.subscribed_topic_names = names.iter().cloned().collect();
        }
        if let Some(regex) = &request.subscribed_topic_regex {
            member.subscribed_topic_regex = (!regex.is_empty()).then(|| regex.clone());
        }
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        let subscription_changed = previous.as_ref().is_none_or(|p| {
            p.subscribed_topic_names != member.subscribed_topic_names
                || p.subscribed_topic_regex != member.subscribed_topic_regex
        }) && replaced_static.is_none();
        if previous.as_ref() != Some(&member) {
            self.dirty = true;
        }
        // Not stored: a heartbeat that only extends the session writes nothing.
        member.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
        self.members.insert(member_id.clone(), member);
        if subscription_changed {
            self.bump_group_epoch(now_ms);
        }

        // The subscribed topics' partition counts, from the image.
        self.refresh_subscribed_topics(topics, now_ms)?;

        // 2. The target assignment, when the group epoch moved.
        if self.group_epoch > self.assignment_epoch || replaced_static.is_some() {
            self.compute_target(config, topics);
        }

        // 3. The member's reconciliation.
        let changed = self.reconcile_member(&member_id, request.owned.as_ref(), now_ms);
        let member = &self.members[&member_id];
        let assigned_changed = previous
            .as_ref()
            .is_none_or(|p| p.assigned != member.assigned);
        let assignment = (request.owned.is_some() || joining || assigned_changed || changed)
            .then(|| member.assigned.clone());
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment,
        })
    }

    /// Epoch -1 (leave) or -2 (a static member leaves for now).
    fn leave(
        &mut self,
        request: &Heartbeat,
        _config: &ConsumerGroupConfig,
        now_ms: i64,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let member_id = match request.instance_id.as_deref() {
            Some(instance) => {
                let Some(m) = self.static_member(instance) else {
                    return Err(HeartbeatError::new(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ));
                };
                if m.member_id != request.member_id {
                    return Err(HeartbeatError::new(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {}.",
                            request.member_id, m.member_id
                        ),
                    ));
                }
                m.member_id.clone()
            }
            None => {
                if !self.members.contains_key(&request.member_id) {
                    return Err(HeartbeatError::new(
                        ResponseError::UnknownMemberId,
                        format!("Member {} is not a member of the group.", request.member_id),
                    ));
                }
                request.member_id.clone()
            }
        };
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && request.instance_id.is_some()
        {
            // Kept with its assignment: the instance may come back within its session.
            if let Some(m) = self.members.get_mut(&member_id) {
                m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                self.dirty = true;
            }
        } else {
            self.remove_member(&member_id, now_ms);
        }
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: request.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// The member of a static instance.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Removes a member (left, session expired, fenced): its partitions are free at once and
    /// the group epoch moves so that the others get them.
    pub fn remove_member(&mut self, member_id: &str, now_ms: i64) {
        if self.members.remove(member_id).is_some() {
            self.release(member_id);
            self.target.remove(member_id);
            self.bump_group_epoch(now_ms);
        }
    }

    fn release(&mut self, member_id: &str) {
        self.owners.retain(|_, owner| owner != member_id);
    }

    /// Removes members whose session expired, who did not revoke within their rebalance
    /// timeout, or (classic members) who did not rejoin or sync within it; their ids.
    /// With `topics` (when [`ConsumerGroup::topics_due`]), also notices new topics or
    /// partitions of the subscription without waiting for a member to ask.
    pub fn tick(&mut self, topics: Option<&TopicImage>, now_ms: i64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                let due = |deadline: Option<i64>| deadline.is_some_and(|d| d <= now_ms);
                m.session_deadline_ms <= now_ms
                    || due(m.revocation_deadline_ms)
                    || due(m.classic_join_deadline_ms)
                    || due(m.classic_sync_deadline_ms)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id, now_ms);
        }
        if let Some(topics) = topics.filter(|_| !self.members.is_empty()) {
            let _ = self.refresh_subscribed_topics(topics, now_ms);
        }
        expired
    }

    /// Whether the timers should check the subscribed topics against the image: at most every
    /// [`TOPICS_REFRESH_INTERVAL_MS`] (resolving regexes over every topic is not free);
    /// heartbeats check at every call anyway.
    pub fn topics_due(&self, now_ms: i64) -> bool {
        !self.members.is_empty() && now_ms >= self.topics_checked_ms + TOPICS_REFRESH_INTERVAL_MS
    }

    /// Resolves the members' subscriptions against the image; bumps the group epoch when the
    /// subscribed topics or their partition counts changed.
    fn refresh_subscribed_topics(
        &mut self,
        topics: &TopicImage,
        now_ms: i64,
    ) -> Result<(), HeartbeatError> {
        self.topics_checked_ms = now_ms;
        let subscribed = self.resolve_subscribed_topics(topics)?;
        if subscribed != self.subscribed_topics {
            self.subscribed_topics = subscribed;
            self.bump_group_epoch(now_ms);
        }
        Ok(())
    }

    /// The topics of the image the members subscribe to: name → (id, partitions).
    fn resolve_subscribed_topics(
        &self,
        topics: &TopicImage,
    ) -> Result<BTreeMap<String, (Uuid, i32)>, HeartbeatError> {
        let mut subscribed = BTreeMap::new();
        for m in self.members.values() {
            for name in member_topics(m, topics)? {
                if let Some(t) = topics.get(&name) {
                    subscribed.insert(name, *t);
                }
            }
        }
        Ok(subscribed)
    }

    /// Computes the target assignment of the group epoch with the group's assignor (the one
    /// most members ask for, else the default).
    fn compute_target(&mut self, config: &ConsumerGroupConfig, topics: &TopicImage) {
        let assignor = self.preferred_assignor(config);
        let mut subscriptions = BTreeMap::new();
        for (id, m) in &self.members {
            let ids = member_topics(m, topics)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|name| topics.get(&name).map(|(id, _)| *id))
                .collect();
            subscriptions.insert(
                id.clone(),
                MemberSubscription {
                    topics: ids,
                    current: self.target.get(id).cloned().unwrap_or_default(),
                },
            );
        }
        let partitions = self
            .subscribed_topics
            .values()
            .map(|(id, n)| (*id, *n))
            .collect();
        self.target = assignor.assign(&subscriptions, &partitions);
        self.assignment_epoch = self.group_epoch;
        self.dirty = true;
    }

    /// The group's assignor: the one most members ask for, else the default.
    pub fn preferred_assignor(&self, config: &ConsumerGroupConfig) -> Assignor {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(name) = m.server_assignor.as_deref() {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .and_then(|(name, _)| Assignor::parse(name))
            .or_else(|| config.assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    /// Moves one member towards its target and keeps the owner index in step.
    pub(super) fn reconcile_member(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now_ms: i64,
    ) -> bool {
        let Some(mut member) = self.members.remove(member_id) else {
            return false;
        };
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let owners = &self.owners;
        let is_free =
            |t: &Uuid, p: i32| owners.get(&(*t, p)).is_none_or(|owner| owner == member_id);
        let changed = member.reconcile(self.assignment_epoch, &target, owned, &is_free, now_ms);
        if changed {
            self.release(member_id);
            for tp in member.owned_partitions().collect::<Vec<_>>() {
                self.owners.insert(tp, member_id.to_string());
            }
            self.dirty = true;
        }
        self.members.insert(member_id.to_string(), member);
        changed
    }

    /// Validates the member and epoch of an OffsetCommit (v9+ sends both; older versions send
    /// the member epoch as generation): STALE_MEMBER_EPOCH for an epoch other than the
    /// member's (ILLEGAL_GENERATION for a classic-protocol member), as Kafka's
    /// `validateOffsetCommit` for consumer groups.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        let Some(member) = self.members.get(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        if member_epoch != member.member_epoch {
            // A classic-protocol member (online migration) sends its generation: its
            // client knows ILLEGAL_GENERATION, as Kafka answers it.
            return Err(if member.uses_classic_protocol() {
                ResponseError::IllegalGeneration.code()
            } else {
                ResponseError::StaleMemberEpoch.code()
            });
        }
        Ok(())
    }

    /// Every member's id with its assignment, as the owner index records it.
    pub fn owner_of(&self, topic: Uuid, partition: i32) -> Option<&str> {
        self.owners.get(&(topic, partition)).map(String::as_str)
    }

    /// The subscribed topics from the image, without moving the group epoch (after a load,
    /// where they are not stored).
    pub(super) fn init_subscribed_topics(&mut self, topics: &TopicImage) {
        self.subscribed_topics = self.resolve_subscribed_topics(topics).unwrap_or_default();
    }

    /// Rebuilds the owner index from the members (after a load).
    pub(super) fn rebuild_owners(&mut self) {
        self.owners.clear();
        for (id, m) in &self.members {
            for tp in m.owned_partitions() {
                self.owners.insert(tp, id.clone());
            }
        }
    }
}

/// The epoch check of Kafka's `throwIfMemberEpochIsInvalid`: a newer epoch than the
/// coordinator's, or an older one other than the previous epoch with partitions the member no
/// longer has (a lost answer is forgiven), fences the member.
fn check_member_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&Assignment>,
) -> Result<(), HeartbeatError> {
    if received > member.member_epoch {
        return Err(HeartbeatError::new(
            ResponseError::FencedMemberEpoch,
            format!("The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", member.member_epoch),
        ));
    }
    if received < member.member_epoch {
        let lost_answer = received == member.previous_member_epoch
            && owned.is_some_and(|o| is_subset(o, &member.assigned));
        if !lost_answer {
            return Err(HeartbeatError::new(
                ResponseError::FencedMemberEpoch,
                format!("The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", member.member_epoch),
            ));
        }
    }
    Ok(())
}

/// The topic names a member subscribes to: its names, and the image's topics its regex
/// matches in full (as Java's `Matcher.matches`).
pub fn member_topics(
    member: &ConsumerMember,
    topics: &TopicImage,
) -> Result<BTreeSet<String>, HeartbeatError> {
    let mut names = member.subscribed_topic_names.clone();
    if let Some(pattern) = &member.subscribed_topic_regex {
        let regex = compile_regex(pattern)?;
        names.extend(topics.keys().filter(|t| regex.is_match(t)).cloned());
    }
    Ok(names)
}

/// Compiles a subscription regex (Kafka: RE2/J). The `regex` crate's syntax is RE2's too;
/// differences are minor (RE2/J accepts `\Q...\E` quoting, the `regex` crate does not), and a
/// pattern either refuses is INVALID_REGULAR_EXPRESSION.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, HeartbeatError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        HeartbeatError::new(
            ResponseError::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}."),
        )
    })
}
