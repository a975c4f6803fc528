//! One classic consumer group: its state, members, generation and committed offsets.
//!
//! The state machine is Kafka's classic one:
//!
//! ```text
//!   Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
//!     ^                  ^      |                                   | leader's SyncGroup
//!     |                  |      v (no member left)                  v
//!     +------------------+---- Empty              Stable <----------+
//!                        +---- member joins, leaves, expires, changes protocols ----+
//!   Dead: deleted, expired, or its coordinator partition moved away.
//! ```
//!
//! A `Group` does no I/O: every operation takes the clock time and mutates the group; parked
//! JoinGroup/SyncGroup requests are answered through their members' channels. What must be
//! written to `__consumer_offsets` is signalled with [`Group::take_dirty`] and
//! [`Group::metadata_value`]; the coordinator appends it. Thread-safety: a group sits behind
//! its own mutex in the coordinator; nothing here locks.
//!
//! The rebalance half (join, sync, timers) lives in [`super::rebalance`].

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use prometheus::IntCounter;

use super::consumer::ConsumerGroup;
use super::member::{JoinResult, MemberMetadata, SyncResult};
use super::offsets::CommittedOffsets;
use super::records::{GroupMetadataValue, OffsetCommitValue};
use crate::share::group::ShareGroup;

/// A group's state, named as Kafka names it in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Collecting JoinGroups for the next generation.
    PreparingRebalance,
    /// Generation formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Removed; requests that still hold it must look it up again.
    Dead,
}

impl GroupState {
    /// Every state, for metrics.
    pub const ALL: [GroupState; 5] = [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::CompletingRebalance,
        GroupState::Stable,
        GroupState::Dead,
    ];

    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a ListGroups state filter (case-insensitive, as Kafka does).
    pub fn parse(name: &str) -> Option<GroupState> {
        Self::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// Coordinator settings a group obeys (`group.*` broker keys).
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
}

/// A committed offset's key: topic and partition.
pub type TopicPartition = (String, i32);

/// One group. Invariants: member ids are unique; each `group.instance.id` belongs to at most
/// one member; `leader` is a member id or `None`; in `Stable` every member has received the
/// assignment of `generation`.
#[derive(Debug)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    pub(super) state: GroupState,
    pub(super) state_timestamp_ms: i64,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader: Option<String>,
    /// Members in join order (the first one leads when the leader leaves).
    pub(super) members: Vec<MemberMetadata>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they must rejoin by.
    pub(super) pending_members: HashMap<String, i64>,
    /// When the join phase ends at the latest.
    pub(super) join_deadline_ms: Option<i64>,
    /// During the initial join delay: the latest the delay may be extended to.
    pub(super) initial_join_cap_ms: Option<i64>,
    /// When members that have not sent SyncGroup are removed.
    pub(super) sync_deadline_ms: Option<i64>,
    /// Committed offsets, and commits waiting for replication.
    pub(super) offsets: CommittedOffsets,
    pub(super) config: GroupConfig,
    pub(super) rebalances: IntCounter,
    dirty: bool,
    /// Set for a KIP-848 consumer group (`group.protocol=consumer`): its members and
    /// assignment live there and the classic members stay empty. The classic `state` is then
    /// `Empty` or `Stable` (members or not), for the checks shared with classic groups.
    pub(super) consumer: Option<ConsumerGroup>,
    /// Set for a KIP-932 share group: its members live there, the classic members stay
    /// empty, and the classic `state` follows as for a consumer group. A share group has no
    /// committed offsets here (its progress is per partition, on the partition leaders).
    pub(super) share: Option<ShareGroup>,
}

impl Group {
    /// A new, empty group.
    pub fn new(group_id: &str, config: GroupConfig, rebalances: IntCounter, now_ms: i64) -> Self {
        Self {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            join_deadline_ms: None,
            initial_join_cap_ms: None,
            sync_deadline_ms: None,
            offsets: CommittedOffsets::default(),
            config,
            rebalances,
            dirty: false,
            consumer: None,
            share: None,
        }
    }

    /// The consumer-protocol half of a KIP-848 group, if it is one.
    pub fn consumer(&self) -> Option<&ConsumerGroup> {
        self.consumer.as_ref()
    }

    /// The share group half of a KIP-932 group, if it is one.
    pub fn share(&self) -> Option<&ShareGroup> {
        self.share.as_ref()
    }

    /// Kafka's group type: `consumer` for a KIP-848 group, `share` for a KIP-932 one, else
    /// `classic`.
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else if self.share.is_some() {
            "share"
        } else {
            "classic"
        }
    }

    /// The state's name as Kafka reports it for the group's type.
    pub fn state_name(&self) -> &'static str {
        if self.state == GroupState::Dead {
            return self.state.name();
        }
        match (&self.consumer, &self.share) {
            (Some(c), _) => c.state().name(),
            (_, Some(s)) => s.state().name(),
            _ => self.state.name(),
        }
    }

    /// Brings the classic state of a consumer group in line with its members.
    pub(super) fn sync_consumer_state(&mut self, now_ms: i64) {
        let empty = match (&self.consumer, &self.share) {
            (Some(c), _) => c.members().is_empty(),
            (_, Some(s)) => s.members().is_empty(),
            _ => return,
        };
        if self.state == GroupState::Dead {
            return;
        }
        let state = if empty {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        if state != self.state {
            self.transition(state, now_ms);
        }
    }

    /// A group as loaded from `__consumer_offsets`: with members it is `Stable` and every
    /// member's session starts now (members that are gone expire and cause a rebalance).
    pub fn from_value(
        group_id: &str,
        value: GroupMetadataValue,
        config: GroupConfig,
        rebalances: IntCounter,
        now_ms: i64,
    ) -> Self {
        let mut group = Self::new(group_id, config, rebalances, now_ms);
        let protocol = value.protocol.clone();
        group.generation = value.generation;
        group.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        group.protocol_name = protocol.clone();
        group.leader = value.leader;
        if value.current_state_timestamp >= 0 {
            group.state_timestamp_ms = value.current_state_timestamp;
        }
        group.members = value
            .members
            .into_iter()
            .map(|m| MemberMetadata::from_value(m, protocol.as_deref(), now_ms))
            .collect();
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
        }
        group
    }

    /// The stored form of the group's metadata.
    pub fn metadata_value(&self) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|m| m.to_value(self.protocol_name.as_deref()))
                .collect(),
        }
    }

    /// The current state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation id.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The protocol type (`consumer`), if members ever joined.
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The selected protocol of the current generation.
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    /// Members in join order.
    pub fn members(&self) -> &[MemberMetadata] {
        &self.members
    }

    /// Committed offsets (those on every in-sync replica of `__consumer_offsets`).
    pub fn offsets(&self) -> &BTreeMap<TopicPartition, OffsetCommitValue> {
        self.offsets.committed()
    }

    /// Committed offsets with the commits waiting for replication.
    pub fn committed_offsets_mut(&mut self) -> &mut CommittedOffsets {
        &mut self.offsets
    }

    /// Whether a commit of `partition` waits for replication.
    pub fn has_pending_commit(&self, partition: &TopicPartition) -> bool {
        self.offsets.is_pending(partition)
    }

    /// Whether the membership changed in a way `__consumer_offsets` must record; clears it.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    pub(super) fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub(super) fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    pub(super) fn member(&self, member_id: &str) -> Option<&MemberMetadata> {
        self.members.iter().find(|m| m.member_id == member_id)
    }

    pub(super) fn member_mut(&mut self, member_id: &str) -> Option<&mut MemberMetadata> {
        self.members.iter_mut().find(|m| m.member_id == member_id)
    }

    pub(super) fn static_member_id(&self, instance_id: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
            .map(|m| m.member_id.as_str())
    }

    /// Kafka's static-membership fence: the instance id belongs to another member id.
    pub(super) fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_member_id(i))
            .is_some_and(|owner| owner != member_id)
    }

    /// Checks that `member_id` of `generation` may act; refreshes its session when it may.
    /// Shared by Heartbeat and OffsetCommit.
    fn check_member(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        if self.is_fenced(member_id, instance_id) {
            return Err(ResponseError::FencedInstanceId.code());
        }
        let Some(member) = self.member_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        member.last_heartbeat_ms = now_ms;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        Ok(())
    }

    /// Heartbeat: keeps the member's session alive and tells it when to rejoin.
    pub fn heartbeat(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        if self.state == GroupState::Empty || self.consumer.is_some() || self.share.is_some() {
            return ResponseError::UnknownMemberId.code();
        }
        match self.check_member(generation, member_id, instance_id, now_ms) {
            Err(code) => code,
            Ok(()) if self.state == GroupState::PreparingRebalance => {
                ResponseError::RebalanceInProgress.code()
            }
            Ok(()) => 0,
        }
    }

    /// Validates an OffsetCommit. `Ok(true)` for a commit by a group member, `Ok(false)` for
    /// a "simple" commit (generation -1, no member id) into a group without members.
    pub fn validate_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, i16> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        if self.share.is_some() {
            // A share group commits no offsets (Kafka: not a classic or consumer group).
            return Err(ResponseError::GroupIdNotFound.code());
        }
        if generation < 0 && member_id.is_empty() && self.state == GroupState::Empty {
            return Ok(false);
        }
        if let Some(c) = &self.consumer {
            // Consumer-protocol members send their member epoch as the generation.
            c.validate_commit(member_id, generation)?;
            return Ok(true);
        }
        if self.state == GroupState::CompletingRebalance {
            // The assignment of this generation is not out yet: the member must rejoin first.
            return Err(ResponseError::RebalanceInProgress.code());
        }
        self.check_member(generation, member_id, instance_id, now_ms)?;
        Ok(true)
    }

    /// Validates a TxnOffsetCommit as Kafka's `validateOffsetCommit` with `isTransactional`:
    /// a commit that names a generation, member or instance (v3+) must come from a current
    /// member of this generation; one that names none is accepted whatever the group's state
    /// (the producer commits on behalf of a consumer it does not identify).
    pub fn validate_txn_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            match &self.consumer {
                Some(c) => c.validate_commit(member_id, generation)?,
                None => self.check_member(generation, member_id, instance_id, now_ms)?,
            }
        }
        Ok(())
    }

    /// Forgets offsets (after their tombstones were appended at `record_offset`).
    pub fn delete_offsets(&mut self, partitions: &[TopicPartition], record_offset: i64) {
        self.offsets.delete(partitions, record_offset);
    }

    /// Topics the members subscribe to, from their consumer-protocol metadata.
    pub fn subscribed_topics(&self) -> Option<std::collections::HashSet<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if let Some(c) = &self.consumer {
            return Some(c.subscribed_topics.keys().cloned().collect());
        }
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = std::collections::HashSet::new();
        for m in &self.members {
            let mut metadata = m.metadata_for(protocol);
            if metadata.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            bytes::Buf::advance(&mut metadata, 2);
            // An undecodable subscription means we cannot tell: treat it as unknown.
            let sub =
                ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// Offsets due for expiry under `offsets.retention.minutes`: all of them once the group
    /// has been empty for `retention_ms` (by its last commit for a group that never had
    /// members), none while it has members.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<TopicPartition> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        let never_had_members = self.protocol_type.is_none();
        self.offsets
            .committed()
            .iter()
            .filter(|(_, v)| {
                let since = if never_had_members {
                    v.commit_timestamp
                } else {
                    self.state_timestamp_ms.max(v.commit_timestamp)
                };
                now_ms.saturating_sub(since) >= retention_ms
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Whether the group is empty and holds nothing worth keeping.
    pub fn is_removable(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && !self.offsets.any_pending()
            && self.pending_members.is_empty()
    }

    /// Marks the group dead and answers every parked request with `error` (the group was
    /// deleted, or its coordinator partition moved away).
    pub fn kill(&mut self, error: i16, now_ms: i64) {
        for m in &mut self.members {
            m.answer_join(JoinResult::error(error, &m.member_id.clone()));
            m.answer_sync(SyncResult::error(error));
        }
        self.members.clear();
        self.pending_members.clear();
        self.transition(GroupState::Dead, now_ms);
    }

    /// LeaveGroup of one member, by member id or (static members) by instance id.
    /// Returns the error code for this member.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now_ms: i64) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        let target = match instance_id {
            Some(instance) => match self.static_member_id(instance) {
                None => return ResponseError::UnknownMemberId.code(),
                Some(owner) if !member_id.is_empty() && owner != member_id => {
                    return ResponseError::FencedInstanceId.code()
                }
                Some(owner) => owner.to_string(),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&target).is_some() {
            self.maybe_complete_join(now_ms);
            return 0;
        }
        if self.member(&target).is_none() {
            return ResponseError::UnknownMemberId.code();
        }
        self.remove_member_and_rebalance(&target, now_ms);
        0
    }
}
