//! The coordinator's side of KIP-932 share groups: ShareGroupHeartbeat and
//! ShareGroupDescribe through the pure [`ShareGroup`], and its session timers. A share group
//! lives in the same map as the other group types (its [`Group::share`] half set), so a group
//! id is of one type at a time.

use kafka_protocol::error::ResponseError;

use super::classic::{Group, GroupState};
use super::consumer::{HeartbeatAnswer, HeartbeatError, TopicImage};
use super::consumer_ops::GroupDescription;
use super::coordinator::GroupCoordinator;
use super::share_records;
use crate::log::Appended;
use crate::share::assignor::SIMPLE_ASSIGNOR;
use crate::share::group::{ShareGroup, ShareHeartbeat, ShareMember};

fn error(code: i16) -> HeartbeatError {
    HeartbeatError {
        code,
        message: String::new(),
    }
}

pub(super) fn not_a_share_group(group_id: &str) -> HeartbeatError {
    HeartbeatError {
        code: ResponseError::GroupIdNotFound.code(),
        message: format!("Group {group_id} is not a share group."),
    }
}

/// A share group as ShareGroupDescribe shows it.
pub type ShareGroupDescription = GroupDescription<ShareMember>;

impl GroupCoordinator {
    /// ShareGroupHeartbeat. Epoch 0 creates the group; any other epoch needs it to exist
    /// (GROUP_ID_NOT_FOUND). A group id held by a classic or consumer group with members or
    /// committed offsets is not a share group (GROUP_ID_NOT_FOUND, as Kafka); an empty classic
    /// group without offsets becomes one.
    ///
    /// What the heartbeat changed is appended to `__consumer_offsets` and replicated to the
    /// in-sync replicas before the answer, as for consumer groups.
    pub async fn share_group_heartbeat(
        &self,
        group_id: &str,
        request: ShareHeartbeat,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let locked = self.share_group_heartbeat_locked(group_id, request);
        self.answer_when_replicated(group_id, locked).await
    }

    fn share_group_heartbeat_locked(
        &self,
        group_id: &str,
        request: ShareHeartbeat,
    ) -> Result<(HeartbeatAnswer, Option<Appended>), HeartbeatError> {
        let group = self.heartbeat_group(group_id, request.member_epoch == 0)?;
        let mut g = group.lock();
        let now = self.now_ms();
        if g.state() == GroupState::Dead {
            return Err(error(ResponseError::NotCoordinator.code()));
        }
        if g.share.is_none() {
            let convertible = request.member_epoch == 0
                && g.consumer.is_none()
                && g.state() == GroupState::Empty
                && g.members().is_empty()
                && g.offsets().is_empty();
            if !convertible {
                return Err(not_a_share_group(group_id));
            }
            g.share = Some(ShareGroup::new());
        }
        let topics = self.topic_image();
        let config = &self.share_config;
        let answer = match g.share.as_mut() {
            Some(s) => s.heartbeat(request, &topics, config, now),
            None => Err(error(ResponseError::UnknownServerError.code())),
        };
        if let Some(s) = g.share.as_mut() {
            s.note_assigned_state_partitions();
        }
        g.sync_consumer_state(now);
        let answer = answer?;
        match self.persist_share_if_dirty(&mut g) {
            Ok(stored_at) => Ok((answer, stored_at)),
            Err(code) => {
                tracing::warn!(group = group_id, code, "storing share group records failed");
                Err(error(code))
            }
        }
    }

    /// Stores what a share-group operation changed ([`share_records::snapshot`]); the offset
    /// of the last record, if anything was written.
    pub(super) fn persist_share_if_dirty(&self, g: &mut Group) -> Result<Option<Appended>, i16> {
        let group_id = g.group_id.clone();
        let dead = g.state() == GroupState::Dead;
        let Some(s) = g.share.as_mut() else {
            return Ok(None);
        };
        if !s.take_dirty() || dead {
            return Ok(None);
        }
        let records = share_records::snapshot(&group_id, s);
        self.append(&group_id, records).map(Some).inspect_err(|_| {
            // Written whole next time.
            if let Some(s) = g.share.as_mut() {
                s.mark_dirty();
            }
        })
    }

    /// Session timeouts and topic changes of one share group (from the coordinator's tick).
    pub(super) fn tick_share_group(
        &self,
        g: &mut Group,
        topics: &mut Option<TopicImage>,
        now_ms: i64,
    ) {
        let Some(s) = g.share.as_mut() else { return };
        if s.members().is_empty() {
            return;
        }
        let image = topics.get_or_insert_with(|| self.topic_image());
        let removed = s.tick(Some(image), now_ms);
        if !removed.is_empty() {
            tracing::info!(group = %g.group_id, members = ?removed, "share group members removed (session timeout)");
        }
        g.sync_consumer_state(now_ms);
        if let Err(code) = self.persist_share_if_dirty(g) {
            tracing::warn!(group = %g.group_id, code, "storing share group records failed");
        }
    }

    /// ShareGroupDescribe of one group: GROUP_ID_NOT_FOUND for an unknown group or one of
    /// another type, with Kafka's messages.
    pub fn describe_share_group(
        &self,
        group_id: &str,
    ) -> Result<ShareGroupDescription, HeartbeatError> {
        let Some(group) = self.group(group_id).map_err(error)? else {
            return Err(HeartbeatError {
                code: ResponseError::GroupIdNotFound.code(),
                message: format!("Group {group_id} not found."),
            });
        };
        let g = group.lock();
        let Some(s) = g.share().filter(|_| g.state() != GroupState::Dead) else {
            return Err(not_a_share_group(group_id));
        };
        Ok(ShareGroupDescription {
            state: s.state().name(),
            group_epoch: s.group_epoch(),
            assignment_epoch: s.assignment_epoch(),
            assignor_name: SIMPLE_ASSIGNOR,
            members: s
                .members()
                .values()
                .map(|m| {
                    let target = s.target_of(&m.member_id).cloned().unwrap_or_default();
                    (m.clone(), target)
                })
                .collect(),
            topic_names: self.topic_names(),
        })
    }
}
