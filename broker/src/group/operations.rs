//! The coordinator's answer to each group API, independent of wire versions: the handlers in
//! [`crate::handlers`] translate requests into these calls and the results back.
//!
//! Each operation finds the group (checking that this broker coordinates it), locks it, runs
//! the state machine, stores what changed through [`GroupCoordinator::append`] while still
//! holding the lock, and only then lets parked requests go.

use std::collections::BTreeSet;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::classic::{GroupState, TopicPartition};
use super::coordinator::GroupCoordinator;
use super::member::{JoinResult, SyncResult};
use super::rebalance::{JoinOutcome, JoinRequest};
use super::records::RecordKey;
use super::sync::SyncOutcome;

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Metadata for the selected protocol (only when the group is `Stable`).
    pub metadata: Bytes,
    /// Current assignment (only when the group is `Stable`).
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// Current state.
    pub state: GroupState,
    /// Protocol type (`consumer`), or empty.
    pub protocol_type: String,
    /// Selected protocol, when `Stable`.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type, or empty.
    pub protocol_type: String,
    /// Current state.
    pub state: GroupState,
    /// Kafka's name of the state (a consumer group's own states for consumer groups).
    pub state_name: &'static str,
    /// `classic` or `consumer`.
    pub group_type: &'static str,
}

pub(super) fn code(e: ResponseError) -> i16 {
    e.code()
}

impl GroupCoordinator {
    /// JoinGroup; waits (without holding any lock) while the group collects its members.
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinResult {
        let member_id = req.member_id.clone();
        let fail = |c: i16| JoinResult::error(c, &member_id);
        if group_id.is_empty() {
            return fail(code(ResponseError::InvalidGroupId));
        }
        let group = if req.member_id.is_empty() {
            self.group_or_create(group_id)
        } else {
            match self.group(group_id) {
                Ok(Some(g)) => Ok(g),
                Ok(None) => Err(code(ResponseError::UnknownMemberId)),
                Err(c) => Err(c),
            }
        };
        let group = match group {
            Ok(g) => g,
            Err(c) => return fail(c),
        };
        let joined_consumer_group = {
            let mut g = group.lock();
            g.consumer()
                .is_some_and(|c| !c.members().is_empty())
                .then(|| self.classic_join_to_consumer_group(&mut g, &req))
        };
        if let Some((result, stored_at)) = joined_consumer_group {
            // Online migration: a classic member of a consumer group, answered once what it
            // stored is on the in-sync replicas.
            if let Some(appended) = stored_at.filter(|_| result.error == 0) {
                if let Err(c) = self.wait_replicated(group_id, appended).await {
                    return fail(c);
                }
            }
            return result;
        }
        let outcome = {
            let mut g = group.lock();
            if let Err(c) = self.convert_to_classic(&mut g) {
                return fail(c);
            }
            let outcome = g.join(req, self.now_ms());
            if let Err(c) = self.persist_if_dirty(&mut g) {
                tracing::warn!(group = group_id, code = c, "storing group metadata failed");
            }
            outcome
        };
        // Not held while parked: the group may be dropped (its coordinator partition moved)
        // and only whoever holds the channel's sender must keep it alive.
        drop(group);
        match outcome {
            JoinOutcome::Done(result) => result,
            JoinOutcome::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| fail(code(ResponseError::CoordinatorNotAvailable))),
        }
    }

    /// JoinGroup of a classic member into a consumer group with members (online migration):
    /// answered at once, with what it stored to wait for.
    fn classic_join_to_consumer_group(
        &self,
        g: &mut super::classic::Group,
        req: &JoinRequest,
    ) -> (JoinResult, Option<crate::log::Appended>) {
        if req.session_timeout_ms < self.group_config.min_session_timeout_ms
            || req.session_timeout_ms > self.group_config.max_session_timeout_ms
        {
            let result =
                JoinResult::error(code(ResponseError::InvalidSessionTimeout), &req.member_id);
            return (result, None);
        }
        let topics = self.topic_image();
        let now = self.now_ms();
        let Some(c) = g.consumer.as_mut() else {
            return (
                JoinResult::error(code(ResponseError::UnknownServerError), &req.member_id),
                None,
            );
        };
        let replaces = super::consumer_classic::replaces_static_consumer_member(
            req.group_instance_id
                .as_deref()
                .and_then(|instance| c.static_member(instance)),
            req,
        );
        let result = c.classic_join(req, &topics, &self.consumer_config, now);
        g.sync_consumer_state(now);
        let stored_at = match self.persist_consumer_if_dirty(g) {
            Ok(stored_at) => stored_at,
            Err(c) => return (JoinResult::error(c, &req.member_id), None),
        };
        // The last consumer-protocol member, static, came back as a classic member: the
        // group is classic again (Kafka's downgrade on a static member's replacement).
        if result.error == 0 && replaces {
            if let Some(downgraded_at) = self.maybe_downgrade(g, now) {
                return (result, Some(downgraded_at));
            }
        }
        (result, stored_at)
    }

    /// SyncGroup; the leader's assignment is stored before anyone gets theirs.
    #[allow(clippy::too_many_arguments)] // one argument per SyncGroup field
    pub async fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        if group_id.is_empty() {
            return SyncResult::error(code(ResponseError::InvalidGroupId));
        }
        let group = match self.group(group_id) {
            Ok(Some(g)) => g,
            Ok(None) => return SyncResult::error(code(ResponseError::UnknownMemberId)),
            Err(c) => return SyncResult::error(c),
        };
        let (outcome, stored_at) = {
            let mut g = group.lock();
            let now = self.now_ms();
            if g.consumer().is_some() {
                let names = self.topic_names();
                let Some(c) = g.consumer.as_mut() else {
                    return SyncResult::error(code(ResponseError::UnknownMemberId));
                };
                return match c.classic_sync(
                    member_id,
                    instance_id,
                    generation,
                    protocol_type,
                    protocol_name,
                    &names,
                    now,
                ) {
                    Ok(assignment) => SyncResult {
                        error: 0,
                        protocol_type: protocol_type.map(str::to_string),
                        protocol_name: protocol_name.map(str::to_string),
                        assignment,
                    },
                    Err(c) => SyncResult::error(c),
                };
            }
            let outcome = g.sync(
                generation,
                member_id,
                instance_id,
                protocol_type,
                protocol_name,
                assignments,
                now,
            );
            let mut stored_at = None;
            if let SyncOutcome::Assigned(_) = &outcome {
                g.take_dirty();
                match self.append_metadata(&g) {
                    Ok(appended) => stored_at = Some((appended, g.generation())),
                    Err(c) => g.finish_sync(Err(c), now),
                }
            }
            (outcome, stored_at)
        };
        // As Kafka does, the members get their assignments only once the group's record is
        // on every in-sync replica. A coordinator that lost its partition without knowing yet
        // (cut off from the others) can then never complete a rebalance: its followers have
        // moved on, so the record never replicates and the members go and find the real one.
        // The wait runs on its own task, so a leader that disconnects cannot strand the rest.
        if let Some((appended, generation)) = stored_at {
            match self.me() {
                Some(me) => {
                    let (group, group_id) = (group.clone(), group_id.to_string());
                    tokio::spawn(async move {
                        let stored = me.wait_replicated(&group_id, appended).await;
                        let mut g = group.lock();
                        if g.generation() == generation {
                            g.finish_sync(stored, me.now_ms());
                        }
                    });
                }
                None => group.lock().finish_sync(
                    Err(code(ResponseError::CoordinatorNotAvailable)),
                    self.now_ms(),
                ),
            }
        }
        drop(group);
        let lost = || SyncResult::error(code(ResponseError::CoordinatorNotAvailable));
        match outcome {
            SyncOutcome::Done(r) => r,
            SyncOutcome::Wait(rx) | SyncOutcome::Assigned(rx) => {
                rx.await.unwrap_or_else(|_| lost())
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if group_id.is_empty() {
            return code(ResponseError::InvalidGroupId);
        }
        match self.group(group_id) {
            Ok(Some(g)) => {
                let mut g = g.lock();
                let now = self.now_ms();
                match g.consumer.as_mut() {
                    Some(c) => c.classic_heartbeat(member_id, instance_id, generation, now),
                    None => g.heartbeat(generation, member_id, instance_id, now),
                }
            }
            Ok(None) => code(ResponseError::UnknownMemberId),
            Err(c) => c,
        }
    }

    /// LeaveGroup of several members: `Err` for the whole request, else one code per member.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        if group_id.is_empty() {
            return Err(code(ResponseError::InvalidGroupId));
        }
        let Some(group) = self.group(group_id)? else {
            return Ok(vec![code(ResponseError::UnknownMemberId); members.len()]);
        };
        let mut g = group.lock();
        let now = self.now_ms();
        if let Some(c) = g.consumer.as_mut() {
            let codes = members
                .iter()
                .map(|(id, instance)| c.classic_leave(id, instance.as_deref(), now))
                .collect();
            g.sync_consumer_state(now);
            if let Err(c) = self.persist_consumer_if_dirty(&mut g) {
                tracing::warn!(
                    group = group_id,
                    code = c,
                    "storing consumer group records failed"
                );
            }
            return Ok(codes);
        }
        let codes = members
            .iter()
            .map(|(id, instance)| g.leave(id, instance.as_deref(), now))
            .collect();
        if let Err(c) = self.persist_if_dirty(&mut g) {
            tracing::warn!(group = group_id, code = c, "storing group metadata failed");
        }
        Ok(codes)
    }

    /// DescribeGroups of one group; `Ok(None)` if it does not exist.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupDescription>, i16> {
        let Some(group) = self.group(group_id)? else {
            return Ok(None);
        };
        let g = group.lock();
        if g.consumer().is_some() || g.share().is_some() {
            return Err(code(ResponseError::GroupIdNotFound));
        }
        let stable = g.state() == GroupState::Stable;
        let protocol = if stable {
            g.protocol_name().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        Ok(Some(GroupDescription {
            state: g.state(),
            protocol_type: g.protocol_type().unwrap_or_default().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }))
    }

    /// ListGroups, keeping only the groups in one of `states` and of one of `types` (Kafka's
    /// names, case-insensitive) when given. Err while a partition is still loading.
    pub fn list(&self, states: &[String], types: &[String]) -> Result<Vec<GroupListing>, i16> {
        if self.any_loading() {
            return Err(code(ResponseError::CoordinatorLoadInProgress));
        }
        let named = |filter: &[String], name: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(name))
        };
        let mut listed: Vec<GroupListing> = self
            .all_groups()
            .iter()
            .filter_map(|group| {
                let g = group.lock();
                let listing = GroupListing {
                    group_id: g.group_id.clone(),
                    protocol_type: match (g.consumer(), g.share()) {
                        (Some(_), _) => "consumer".to_string(),
                        (_, Some(_)) => "share".to_string(),
                        _ => g.protocol_type().unwrap_or_default().to_string(),
                    },
                    state: g.state(),
                    state_name: g.state_name(),
                    group_type: g.group_type(),
                };
                (listing.state != GroupState::Dead
                    && named(states, listing.state_name)
                    && named(types, listing.group_type))
                .then_some(listing)
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listed)
    }

    /// DeleteGroups of one group: only an empty group can go; its offsets and metadata get
    /// tombstones, and so do partitions with only a transactional commit pending, so that a
    /// load after its COMMIT marker does not bring them back (the log's order decides).
    pub fn delete_group(&self, group_id: &str) -> i16 {
        let group = match self.group(group_id) {
            Ok(Some(g)) => g,
            Ok(None) => return code(ResponseError::GroupIdNotFound),
            Err(c) => return c,
        };
        let mut g = group.lock();
        match g.state() {
            GroupState::Dead => return code(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return code(ResponseError::NonEmptyGroup),
        }
        let mut partitions: BTreeSet<TopicPartition> = g.offsets().keys().cloned().collect();
        partitions.extend(g.offsets.pending_txn_partitions());
        let mut records: Vec<_> = partitions
            .iter()
            .map(|(topic, partition)| {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                (key.encode(), None)
            })
            .collect();
        records.extend(self.group_tombstones(&g));
        if let Err(c) = self.append(group_id, records) {
            return c;
        }
        self.remove_group(&mut g);
        0
    }

    /// OffsetDelete: `Err` for the whole request, else one code per partition. Offsets of
    /// topics the group's members subscribe to cannot be deleted. A partition with only a
    /// transactional commit pending gets a tombstone too: its transaction committing later
    /// does not bring it back, in memory or on a load (the tombstone is the newer record).
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<TopicPartition>,
    ) -> Result<Vec<(TopicPartition, i16)>, i16> {
        let Some(group) = self.group(group_id)? else {
            return Err(code(ResponseError::GroupIdNotFound));
        };
        let mut g = group.lock();
        if g.state() == GroupState::Dead {
            return Err(code(ResponseError::GroupIdNotFound));
        }
        let subscribed = if g.state() == GroupState::Empty {
            Default::default()
        } else {
            match g.subscribed_topics() {
                Some(topics) => topics,
                None => return Err(code(ResponseError::NonEmptyGroup)),
            }
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleting = Vec::new();
        for tp in partitions {
            if subscribed.contains(&tp.0) {
                results.push((tp, code(ResponseError::GroupSubscribedToTopic)));
            } else if self.replicas.topic(&tp.0).is_none() {
                results.push((tp, code(ResponseError::UnknownTopicOrPartition)));
            } else {
                deleting.push(tp);
            }
        }
        if !deleting.is_empty() {
            let pending_txn = g.offsets.pending_txn_partitions();
            let tombstones = deleting
                .iter()
                .filter(|tp| g.offsets().contains_key(*tp) || pending_txn.contains(*tp))
                .map(|(topic, partition)| {
                    let key = RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    (key.encode(), None)
                })
                .collect::<Vec<_>>();
            let stored = if tombstones.is_empty() {
                Ok(None)
            } else {
                self.append(group_id, tombstones).map(Some)
            };
            let outcome = match stored {
                Ok(Some(appended)) => {
                    g.delete_offsets(&deleting, appended.last_offset);
                    0
                }
                Ok(None) => 0,
                Err(c) => c,
            };
            results.extend(deleting.into_iter().map(|tp| (tp, outcome)));
        }
        Ok(results)
    }
}
