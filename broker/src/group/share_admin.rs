//! The coordinator's side of the share-group admin APIs (KIP-932): which share partitions of
//! a group may have state at a share coordinator, and whether the group is empty, for
//! DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups
//! ([`crate::handlers::share_group_offsets`]). The state itself lives with the share
//! coordinators; the handler reaches it through the share persister, as Kafka's group
//! coordinator does.
//!
//! Changing offsets needs an empty group (NON_EMPTY_GROUP otherwise, as Kafka): with no
//! member fetching, the share-partition leaders hold no acquired record, and their next
//! write after the change is fenced by the new state epoch
//! ([`crate::share::manager::SharePartitionManager::fetch`]). A member joining between the
//! check and the change is fenced the same way.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::classic::GroupState;
use super::consumer::HeartbeatError;
use super::coordinator::GroupCoordinator;
use super::share_ops::not_a_share_group;
use super::share_records::StatePartitions;
use crate::share::group::{ShareGroup, ShareGroupState};

/// A share group as the offsets admin APIs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareStateView {
    /// No member.
    pub empty: bool,
    /// The share partitions that may have state: topic id → (name, partitions).
    pub partitions: StatePartitions,
}

fn error(code: ResponseError, message: String) -> HeartbeatError {
    HeartbeatError {
        code: code.code(),
        message,
    }
}

fn non_empty(group_id: &str) -> HeartbeatError {
    error(
        ResponseError::NonEmptyGroup,
        format!("The group {group_id} is not empty."),
    )
}

impl GroupCoordinator {
    /// The share group `group_id` as the offsets admin APIs see it: GROUP_ID_NOT_FOUND for an
    /// unknown group or one of another type.
    pub fn share_state_view(&self, group_id: &str) -> Result<ShareStateView, HeartbeatError> {
        let not_found = || {
            error(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} not found."),
            )
        };
        let group = self
            .group(group_id)
            .map_err(|code| HeartbeatError {
                code,
                message: String::new(),
            })?
            .ok_or_else(not_found)?;
        let g = group.lock();
        if g.state() == GroupState::Dead {
            return Err(not_found());
        }
        let s = g.share().ok_or_else(|| not_a_share_group(group_id))?;
        Ok(ShareStateView {
            empty: s.state() == ShareGroupState::Empty,
            partitions: s.state_partitions().clone(),
        })
    }

    /// Before AlterShareGroupOffsets: the group must be an empty share group; one that does
    /// not exist is created empty (as Kafka, so that offsets can be set before the first
    /// consumer joins), and so is an empty classic group without offsets taken over.
    pub fn share_group_for_alter(&self, group_id: &str) -> Result<(), HeartbeatError> {
        let group = self
            .group_or_create(group_id)
            .map_err(|code| HeartbeatError {
                code,
                message: String::new(),
            })?;
        let mut g = group.lock();
        if g.state() == GroupState::Dead {
            return Err(error(ResponseError::CoordinatorNotAvailable, String::new()));
        }
        if g.share.is_none() {
            let convertible = g.consumer.is_none()
                && g.state() == GroupState::Empty
                && g.members().is_empty()
                && g.offsets().is_empty();
            if !convertible {
                return Err(not_a_share_group(group_id));
            }
            g.share = Some(ShareGroup::new());
        }
        match g.share() {
            Some(s) if s.state() == ShareGroupState::Empty => Ok(()),
            _ => Err(non_empty(group_id)),
        }
    }

    /// After AlterShareGroupOffsets: `partitions` (topic id, name, partition) may have state
    /// now; stored in `__consumer_offsets` and replicated before the answer.
    pub async fn add_share_state_partitions(
        &self,
        group_id: &str,
        partitions: Vec<(Uuid, String, i32)>,
    ) -> Result<(), HeartbeatError> {
        self.change_share_group(group_id, |s| {
            s.add_state_partitions(partitions);
        })
        .await
    }

    /// After DeleteShareGroupOffsets: the topics' share partitions have no state any more.
    pub async fn remove_share_state_topics(
        &self,
        group_id: &str,
        topic_ids: &[Uuid],
    ) -> Result<(), HeartbeatError> {
        self.change_share_group(group_id, |s| {
            for t in topic_ids {
                s.remove_state_topic(*t);
            }
        })
        .await
    }

    /// Applies `change` to the share group and stores it if it changed.
    async fn change_share_group(
        &self,
        group_id: &str,
        change: impl FnOnce(&mut ShareGroup),
    ) -> Result<(), HeartbeatError> {
        let code_only = |code| HeartbeatError {
            code,
            message: String::new(),
        };
        let group = self
            .group(group_id)
            .map_err(code_only)?
            .ok_or_else(|| not_a_share_group(group_id))?;
        let appended = {
            let mut g = group.lock();
            if g.state() == GroupState::Dead {
                return Err(not_a_share_group(group_id));
            }
            let Some(s) = g.share.as_mut() else {
                return Err(not_a_share_group(group_id));
            };
            change(s);
            self.persist_share_if_dirty(&mut g).map_err(code_only)?
        };
        if let Some(appended) = appended {
            self.wait_replicated(group_id, appended)
                .await
                .map_err(code_only)?;
        }
        Ok(())
    }
}
