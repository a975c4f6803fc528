//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat through the
//! pure [`super::consumer::ConsumerGroup`], the topics of the metadata image it assigns from,
//! and the session timers. A consumer group lives in the same map and record as a classic
//! group (its [`Group::consumer`] half set), so OffsetCommit, OffsetFetch, DeleteGroups and
//! offset expiry treat both alike.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use super::assignor::Assignment;
use super::classic::{Group, GroupState};
use super::consumer::{
    ConsumerGroup, ConsumerGroupConfig, Heartbeat, HeartbeatAnswer, HeartbeatError, TopicImage,
    LEAVE_GROUP_MEMBER_EPOCH,
};
use super::consumer_member::ConsumerMember;
use super::consumer_records;
use super::coordinator::{GroupCoordinator, OffsetsRecord};
use super::migration::MigrationPolicy;
use super::records::RecordKey;
use crate::log::Appended;

fn error(code: i16) -> HeartbeatError {
    HeartbeatError {
        code,
        message: String::new(),
    }
}

impl GroupCoordinator {
    /// The topics of the current metadata image, for subscriptions. Internal topics are
    /// included: Kafka's regex resolution does not skip them (`__consumer_offsets` can be
    /// consumed like any topic).
    pub fn topic_image(&self) -> TopicImage {
        self.replicas
            .all_topics()
            .into_iter()
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect()
    }

    /// ConsumerGroupHeartbeat. Epoch 0 creates the group; any other epoch needs it to exist
    /// (GROUP_ID_NOT_FOUND, as Kafka). A classic group becomes a consumer group, keeping its
    /// offsets: an empty one at once, one with members by an online upgrade if the migration
    /// policy allows (else GROUP_ID_NOT_FOUND); a leave that leaves only classic members
    /// downgrades it back.
    ///
    /// What the heartbeat changed is appended to `__consumer_offsets` before the answer, and
    /// the answer waits (outside the group's lock) until the in-sync replicas have it, as
    /// Kafka's coordinator answers once its records are committed: a coordinator failover
    /// right after cannot take back an epoch or assignment a member was told.
    pub async fn consumer_group_heartbeat(
        &self,
        group_id: &str,
        request: Heartbeat,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let locked = self.consumer_group_heartbeat_locked(group_id, request);
        self.answer_when_replicated(group_id, locked).await
    }

    /// The answer of a heartbeat (consumer or share group) once what it stored is on the
    /// in-sync replicas.
    pub(super) async fn answer_when_replicated(
        &self,
        group_id: &str,
        locked: Result<(HeartbeatAnswer, Option<Appended>), HeartbeatError>,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let (answer, stored_at) = locked?;
        if let Some(appended) = stored_at {
            self.wait_replicated(group_id, appended)
                .await
                .map_err(error)?;
        }
        Ok(answer)
    }

    fn consumer_group_heartbeat_locked(
        &self,
        group_id: &str,
        request: Heartbeat,
    ) -> Result<(HeartbeatAnswer, Option<Appended>), HeartbeatError> {
        let group = self.heartbeat_group(group_id, request.member_epoch == 0)?;
        let mut g = group.lock();
        let now = self.now_ms();
        if g.state() == GroupState::Dead {
            return Err(error(ResponseError::NotCoordinator.code()));
        }
        let topics = self.topic_image();
        if g.consumer.is_none() {
            self.become_consumer_group(&mut g, &request, &topics, now)?;
        }
        let config = &self.consumer_config;
        let leaving = request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH;
        let answer = g
            .consumer
            .as_mut()
            .map(|c| {
                c.heartbeat(
                    request,
                    &topics,
                    config,
                    || uuid::Uuid::new_v4().to_string(),
                    now,
                )
            })
            .unwrap_or_else(|| Err(error(ResponseError::UnknownServerError.code())));
        g.sync_consumer_state(now);
        if leaving && answer.is_ok() {
            if let Some(stored_at) = self.maybe_downgrade(&mut g, now) {
                return answer.map(|a| (a, Some(stored_at)));
            }
        }
        match self.persist_consumer_if_dirty(&mut g) {
            Ok(stored_at) => answer.map(|a| (a, stored_at)),
            Err(code) => {
                tracing::warn!(
                    group = group_id,
                    code,
                    "storing consumer group records failed"
                );
                Err(error(code))
            }
        }
    }

    /// Makes `g`, a classic group (or a new one), a consumer group for a ConsumerGroupHeartbeat:
    /// an empty one is replaced (its offsets stay); one with members is upgraded in place if
    /// `group.consumer.migration.policy` allows ([`super::migration`]); anything else is
    /// GROUP_ID_NOT_FOUND, as Kafka. The classic record is tombstoned in the same batch as the
    /// consumer group's first records, so a load finds one kind.
    fn become_consumer_group(
        &self,
        g: &mut Group,
        request: &Heartbeat,
        topics: &TopicImage,
        now: i64,
    ) -> Result<(), HeartbeatError> {
        let group_id = g.group_id.clone();
        let not_consumer = || HeartbeatError {
            code: ResponseError::GroupIdNotFound.code(),
            message: format!("Group {group_id} is not a consumer group."),
        };
        if request.member_epoch != 0 || g.share.is_some() {
            return Err(not_consumer());
        }
        let mut consumer = if g.state() == GroupState::Empty && g.members().is_empty() {
            ConsumerGroup::new(now)
        } else if g.can_upgrade(self.migration_policy(), self.consumer_config.max_size) {
            ConsumerGroup::from_classic(g, topics, now).ok_or_else(not_consumer)?
        } else {
            return Err(not_consumer());
        };
        let mut records = vec![(classic_key(&group_id), None)];
        if !consumer.members().is_empty() {
            records.extend(consumer_records::snapshot(&group_id, &mut consumer));
            consumer.take_dirty();
        }
        self.append(&group_id, records).map_err(error)?;
        if !consumer.members().is_empty() {
            tracing::info!(group = %group_id, members = consumer.members().len(), epoch = consumer.group_epoch(), "classic group upgraded to a consumer group (online migration)");
        }
        g.upgrade(consumer, now);
        Ok(())
    }

    /// `group.consumer.migration.policy`.
    pub(super) fn migration_policy(&self) -> MigrationPolicy {
        MigrationPolicy::parse(self.config.group_consumer_migration_policy())
    }

    /// After a member left or expired: a consumer group left with classic members only
    /// becomes a classic group again if the policy allows. Its consumer records are
    /// tombstoned in the same batch as the classic record. The offset of that batch when it
    /// happened.
    pub(super) fn maybe_downgrade(&self, g: &mut Group, now: i64) -> Option<Appended> {
        if !g.can_downgrade(self.migration_policy()) {
            return None;
        }
        let mut records = self.group_tombstones(g);
        g.downgrade(&self.topic_names(), now);
        let key = classic_key(&g.group_id);
        records.push((key, Some(g.metadata_value().encode())));
        g.take_dirty();
        tracing::info!(group = %g.group_id, members = g.members().len(), generation = g.generation(), "consumer group downgraded to a classic group (online migration)");
        match self.append(&g.group_id, records) {
            Ok(appended) => Some(appended),
            Err(code) => {
                // Written at the next change of the classic group.
                tracing::warn!(group = %g.group_id, code, "storing the downgraded group failed");
                g.mark_dirty();
                None
            }
        }
    }

    /// The group a heartbeat (consumer or share) names: created by a join, else it must
    /// exist (GROUP_ID_NOT_FOUND, as Kafka).
    pub(super) fn heartbeat_group(
        &self,
        group_id: &str,
        joining: bool,
    ) -> Result<Arc<Mutex<Group>>, HeartbeatError> {
        if joining {
            return self.group_or_create(group_id).map_err(error);
        }
        self.group(group_id)
            .map_err(error)?
            .ok_or_else(|| HeartbeatError {
                code: ResponseError::GroupIdNotFound.code(),
                message: format!("Group {group_id} not found."),
            })
    }

    /// The `group.consumer.*` settings in force.
    pub(super) fn consumer_group_config(
        config: &crate::config::BrokerConfig,
    ) -> ConsumerGroupConfig {
        ConsumerGroupConfig {
            session_timeout_ms: config.group_consumer_session_timeout_ms(),
            heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms(),
            assignors: config
                .group_consumer_assignors()
                .iter()
                .filter_map(|name| super::assignor::Assignor::parse(name))
                .collect(),
            max_size: config.group_consumer_max_size(),
        }
    }

    /// Session and revocation timeouts, and new topics or partitions, of one consumer group
    /// (from the coordinator's tick).
    /// `topics` builds the image (once per tick, for the groups that need it).
    pub(super) fn tick_consumer_group(
        &self,
        g: &mut Group,
        topics: &mut Option<TopicImage>,
        now_ms: i64,
    ) {
        let Some(c) = g.consumer.as_mut() else { return };
        let image = if c.topics_due(now_ms) {
            Some(&*topics.get_or_insert_with(|| self.topic_image()))
        } else {
            None
        };
        let removed = c.tick(image, now_ms);
        if !removed.is_empty() {
            tracing::info!(group = %g.group_id, members = ?removed, "consumer group members removed (session or rebalance timeout)");
        }
        g.sync_consumer_state(now_ms);
        if !removed.is_empty() && self.maybe_downgrade(g, now_ms).is_some() {
            return;
        }
        if let Err(code) = self.persist_consumer_if_dirty(g) {
            tracing::warn!(group = %g.group_id, code, "storing consumer group records failed");
        }
    }

    /// Stores what a consumer-group operation changed ([`consumer_records::snapshot`]); the
    /// offset of the last record, if anything was written.
    pub(super) fn persist_consumer_if_dirty(&self, g: &mut Group) -> Result<Option<Appended>, i16> {
        let group_id = g.group_id.clone();
        let dead = g.state() == GroupState::Dead;
        let Some(c) = g.consumer.as_mut() else {
            return Ok(None);
        };
        if !c.take_dirty() || dead {
            return Ok(None);
        }
        let records = consumer_records::snapshot(&group_id, c);
        self.append(&group_id, records).map(Some).inspect_err(|_| {
            // Written whole next time.
            if let Some(c) = g.consumer.as_mut() {
                c.mark_dirty();
            }
        })
    }

    /// The records that remove a group of either kind from `__consumer_offsets` (its
    /// committed offsets aside).
    pub(super) fn group_tombstones(&self, g: &Group) -> Vec<OffsetsRecord> {
        match (&g.consumer, &g.share) {
            (Some(c), _) => consumer_records::tombstones(&g.group_id, c),
            (_, Some(s)) => super::share_records::tombstones(&g.group_id, s),
            _ => vec![(classic_key(&g.group_id), None)],
        }
    }

    /// Turns an empty consumer group into a classic one for a JoinGroup (its offsets stay):
    /// its consumer-group records are tombstoned first.
    pub(super) fn convert_to_classic(&self, g: &mut Group) -> Result<(), i16> {
        let Some(c) = &g.consumer else { return Ok(()) };
        if !c.members().is_empty() {
            // A non-empty consumer group takes classic members as its own
            // (`classic_join_to_consumer_group`), never gets here.
            return Err(ResponseError::InconsistentGroupProtocol.code());
        }
        self.append(&g.group_id, consumer_records::tombstones(&g.group_id, c))?;
        g.consumer = None;
        Ok(())
    }
}

fn classic_key(group_id: &str) -> bytes::Bytes {
    RecordKey::Group {
        group: group_id.to_string(),
    }
    .encode()
}

impl GroupCoordinator {}

impl GroupCoordinator {
    /// Whether `member_id` is a consumer-protocol member of `group_id`: such members must
    /// commit with OffsetCommit v9+ (UNSUPPORTED_VERSION below, as Kafka).
    pub fn is_consumer_protocol_member(&self, group_id: &str, member_id: &str) -> bool {
        matches!(self.group(group_id), Ok(Some(g)) if g
            .lock()
            .consumer()
            .is_some_and(|c| c.members().get(member_id).is_some_and(|m| !m.uses_classic_protocol())))
    }

    /// OffsetFetch v9+ from a member (`member_id` set or an epoch other than -1): in a consumer
    /// group the member must exist (UNKNOWN_MEMBER_ID) at that epoch (STALE_MEMBER_EPOCH), as
    /// Kafka's `validateOffsetFetch`. Anything else (admin clients, classic groups) passes.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), i16> {
        if member_id.is_none() && member_epoch == -1 {
            return Ok(());
        }
        let Some(group) = self.group(group_id)? else {
            return Ok(());
        };
        let g = group.lock();
        match g.consumer() {
            Some(c) => c.validate_commit(member_id.unwrap_or_default(), member_epoch),
            None => Ok(()),
        }
    }
}

/// A KIP-848-style group (consumer or share) as ConsumerGroupDescribe and ShareGroupDescribe
/// show it, with members of type `M`.
#[derive(Debug, Clone)]
pub struct GroupDescription<M> {
    /// Kafka's state name.
    pub state: &'static str,
    /// The group epoch.
    pub group_epoch: i32,
    /// The target assignment's epoch.
    pub assignment_epoch: i32,
    /// The assignor the group uses.
    pub assignor_name: &'static str,
    /// The members, each with its target assignment.
    pub members: Vec<(M, Assignment)>,
    /// Topic names by id, for the assignments.
    pub topic_names: HashMap<uuid::Uuid, String>,
}

/// A consumer group as ConsumerGroupDescribe shows it.
pub type ConsumerGroupDescription = GroupDescription<ConsumerMember>;

impl GroupCoordinator {
    /// ConsumerGroupDescribe of one group: GROUP_ID_NOT_FOUND for an unknown group or a
    /// classic one, with Kafka's messages.
    pub fn describe_consumer_group(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, HeartbeatError> {
        let not_found = |message: String| HeartbeatError {
            code: ResponseError::GroupIdNotFound.code(),
            message,
        };
        let Some(group) = self.group(group_id).map_err(error)? else {
            return Err(not_found(format!("Group {group_id} not found.")));
        };
        let g = group.lock();
        let Some(c) = g.consumer().filter(|_| g.state() != GroupState::Dead) else {
            return Err(not_found(format!(
                "Group {group_id} is not a consumer group."
            )));
        };
        Ok(ConsumerGroupDescription {
            state: c.state().name(),
            group_epoch: c.group_epoch(),
            assignment_epoch: c.assignment_epoch(),
            assignor_name: c.preferred_assignor(&self.consumer_config).name(),
            members: c
                .members()
                .values()
                .map(|m| {
                    let target = c.target_of(&m.member_id).cloned().unwrap_or_default();
                    (m.clone(), target)
                })
                .collect(),
            topic_names: self.topic_names(),
        })
    }

    /// The topics of the metadata image by id, for describing assignments.
    pub(super) fn topic_names(&self) -> HashMap<uuid::Uuid, String> {
        self.topic_image()
            .into_iter()
            .map(|(name, (id, _))| (id, name))
            .collect()
    }
}
