//! The coordinator's side of KIP-848 consumer groups: ConsumerGroupHeartbeat through the
//! pure [`super::consumer::ConsumerGroup`], the topics of the metadata image it assigns from,
//! and the session timers. A consumer group lives in the same map and record as a classic
//! group (its [`Group::consumer`] half set), so OffsetCommit, OffsetFetch, DeleteGroups and
//! offset expiry treat both alike.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use super::classic::{Group, GroupState};
use super::consumer::{
    ConsumerGroup, ConsumerGroupConfig, Heartbeat, HeartbeatAnswer, HeartbeatError, TopicImage,
};
use super::coordinator::{GroupCoordinator, OFFSETS_TOPIC};

/// Topics a subscription never names: the internal ones.
const INTERNAL_TOPICS: [&str; 2] = [OFFSETS_TOPIC, "__transaction_state"];

fn error(code: i16) -> HeartbeatError {
    HeartbeatError {
        code,
        message: String::new(),
    }
}

impl GroupCoordinator {
    /// The topics of the current metadata image, for subscriptions.
    pub fn topic_image(&self) -> TopicImage {
        self.replicas
            .all_topics()
            .into_iter()
            .filter(|t| !INTERNAL_TOPICS.contains(&t.meta.name.as_str()))
            .map(|t| (t.meta.name.clone(), (t.meta.id, t.meta.partitions)))
            .collect()
    }

    /// ConsumerGroupHeartbeat. Epoch 0 creates the group; any other epoch needs it to exist
    /// (GROUP_ID_NOT_FOUND, as Kafka). A classic group with members is not a consumer group
    /// (GROUP_ID_NOT_FOUND: online migration is not implemented); an empty one becomes one,
    /// keeping its offsets.
    pub fn consumer_group_heartbeat(
        &self,
        group_id: &str,
        request: Heartbeat,
    ) -> Result<HeartbeatAnswer, HeartbeatError> {
        let group: Arc<Mutex<Group>> = if request.member_epoch == 0 {
            self.group_or_create(group_id).map_err(error)?
        } else {
            match self.group(group_id).map_err(error)? {
                Some(g) => g,
                None => {
                    return Err(HeartbeatError {
                        code: ResponseError::GroupIdNotFound.code(),
                        message: format!("Group {group_id} not found."),
                    })
                }
            }
        };
        let mut g = group.lock();
        let now = self.now_ms();
        if g.state() == GroupState::Dead {
            return Err(error(ResponseError::NotCoordinator.code()));
        }
        if g.consumer.is_none() {
            let convertible = request.member_epoch == 0
                && g.state() == GroupState::Empty
                && g.members().is_empty();
            if !convertible {
                return Err(HeartbeatError {
                    code: ResponseError::GroupIdNotFound.code(),
                    message: format!("Group {group_id} is not a consumer group."),
                });
            }
            g.consumer = Some(ConsumerGroup::new(now));
        }
        let topics = self.topic_image();
        let config = &self.consumer_config;
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
        if let Err(code) = self.persist_consumer_if_dirty(&mut g) {
            tracing::warn!(
                group = group_id,
                code,
                "storing consumer group records failed"
            );
            return Err(error(code));
        }
        answer
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
    pub(super) fn tick_consumer_group(&self, g: &mut Group, topics: &TopicImage, now_ms: i64) {
        let Some(c) = g.consumer.as_mut() else { return };
        let removed = c.tick(topics, now_ms);
        if !removed.is_empty() {
            tracing::info!(group = %g.group_id, members = ?removed, "consumer group members removed (session or rebalance timeout)");
        }
        g.sync_consumer_state(now_ms);
        if let Err(code) = self.persist_consumer_if_dirty(g) {
            tracing::warn!(group = %g.group_id, code, "storing consumer group records failed");
        }
    }

    /// Stores what a consumer-group operation changed. (Persistence of consumer groups is not
    /// implemented yet: their state lives in memory only.)
    pub(super) fn persist_consumer_if_dirty(&self, g: &mut Group) -> Result<(), i16> {
        if let Some(c) = g.consumer.as_mut() {
            c.take_dirty();
        }
        Ok(())
    }
}
