//! The rebalance half of a classic group: JoinGroup, SyncGroup, member removal and the timers
//! (initial join delay, rebalance timeout, session timeout), as Kafka's classic protocol.
//!
//! - A dynamic member's first JoinGroup (v4+) gets MEMBER_ID_REQUIRED and an id to rejoin
//!   with; a static member (`group.instance.id`) is admitted at once and, when its instance
//!   id is known, takes over the old member id's place (the old id is fenced).
//! - The join phase ends when every member has rejoined (never early during the initial
//!   delay of an empty group) or at the deadline; members that did not rejoin are dropped
//!   (static ones stay), the generation increments, the protocol is chosen by vote, and every
//!   parked JoinGroup is answered — the leader's with the member list.
//! - SyncGroup, which hands the leader's assignment out, is in [`super::sync`].
//!
//! Time comes in as `now_ms` from the broker's clock; [`Group::tick`] is called periodically
//! and fires whatever deadline has passed, so unit tests drive time by hand.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::classic::{Group, GroupState};
use super::member::{JoinMember, JoinResult, MemberMetadata, SyncResult};

/// A JoinGroup as the group sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty on a first join.
    pub member_id: String,
    /// `group.instance.id` for static membership.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Session timeout asked for.
    pub session_timeout_ms: i32,
    /// Rebalance timeout asked for (v0 requests use the session timeout).
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// Supported protocols with metadata, preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member must first fetch its id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// What a JoinGroup gets now or later.
#[derive(Debug)]
pub enum JoinOutcome {
    /// Answered at once.
    Done(JoinResult),
    /// Answered when the join phase completes.
    Wait(oneshot::Receiver<JoinResult>),
}

impl Group {
    /// JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now_ms: i64) -> JoinOutcome {
        let fail = |code: i16| JoinOutcome::Done(JoinResult::error(code, &req.member_id));
        if self.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable.code());
        }
        if self.consumer.is_some() || self.share.is_some() {
            // A share group never takes classic members. The coordinator turns an empty consumer group into a classic one first
            // (`convert_to_classic`); one with members refuses classic members.
            return fail(ResponseError::InconsistentGroupProtocol.code());
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(ResponseError::InvalidSessionTimeout.code());
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol.code());
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, now_ms)
        } else {
            self.join_known_member(req, now_ms)
        }
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(p, _)| self.members.iter().all(|m| m.supports(p)))
    }

    fn join_unknown_member(&mut self, req: JoinRequest, now_ms: i64) -> JoinOutcome {
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = req.group_instance_id.as_deref() {
            if let Some(old_id) = self.static_member_id(instance).map(str::to_string) {
                return self.replace_static_member(&old_id, new_id, req, now_ms);
            }
        }
        if self.members.len() >= self.config.max_size {
            return JoinOutcome::Done(JoinResult::error(
                ResponseError::GroupMaxSizeReached.code(),
                "",
            ));
        }
        if req.require_known_member_id && req.group_instance_id.is_none() {
            let deadline = now_ms + i64::from(req.session_timeout_ms);
            self.pending_members.insert(new_id.clone(), deadline);
            return JoinOutcome::Done(JoinResult::error(
                ResponseError::MemberIdRequired.code(),
                &new_id,
            ));
        }
        self.add_member_and_rebalance(new_id, req, now_ms)
    }

    fn join_known_member(&mut self, req: JoinRequest, now_ms: i64) -> JoinOutcome {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            if self.members.len() >= self.config.max_size {
                return JoinOutcome::Done(JoinResult::error(
                    ResponseError::GroupMaxSizeReached.code(),
                    &id,
                ));
            }
            return self.add_member_and_rebalance(id, req, now_ms);
        }
        if self.is_fenced(&id, req.group_instance_id.as_deref()) {
            return JoinOutcome::Done(JoinResult::error(
                ResponseError::FencedInstanceId.code(),
                &id,
            ));
        }
        let Some(member) = self.member(&id) else {
            return JoinOutcome::Done(JoinResult::error(
                ResponseError::UnknownMemberId.code(),
                &id,
            ));
        };
        let unchanged = member.protocols == req.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::CompletingRebalance if unchanged => {
                // It missed its JoinGroup answer: repeat it.
                JoinOutcome::Done(self.current_join_result(&id))
            }
            GroupState::Stable if unchanged && !is_leader => {
                JoinOutcome::Done(self.current_join_result(&id))
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => {
                let rx = self.update_member(&req, now_ms);
                self.maybe_prepare_rebalance(now_ms);
                self.maybe_complete_join(now_ms);
                JoinOutcome::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => JoinOutcome::Done(JoinResult::error(
                ResponseError::UnknownMemberId.code(),
                &id,
            )),
        }
    }

    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now_ms: i64,
    ) -> JoinOutcome {
        let fenced = ResponseError::FencedInstanceId.code();
        if let Some(member) = self.member_mut(old_id) {
            member.answer_join(JoinResult::error(fenced, old_id));
            member.answer_sync(SyncResult::error(fenced));
            member.member_id = new_id.clone();
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        let req = JoinRequest {
            member_id: new_id.clone(),
            ..req
        };
        if self.state == GroupState::Stable {
            let previous = self
                .member_mut(&new_id)
                .map(|m| std::mem::replace(&mut m.protocols, req.protocols.clone()));
            if self.protocol_name.as_deref() == Some(self.select_protocol().as_str()) {
                // The selected protocol stays: the member takes its place and keeps its
                // assignment, and nobody else has to rebalance (KIP-345).
                if let Some(m) = self.member_mut(&new_id) {
                    m.last_heartbeat_ms = now_ms;
                    m.client_id = req.client_id.clone();
                    m.client_host = req.client_host.clone();
                    m.session_timeout_ms = req.session_timeout_ms;
                    m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                }
                self.mark_dirty();
                let mut result = self.current_join_result(&new_id);
                result.skip_assignment = self.leader.as_deref() == Some(new_id.as_str());
                return JoinOutcome::Done(result);
            }
            if let (Some(m), Some(p)) = (self.member_mut(&new_id), previous) {
                m.protocols = p;
            }
        }
        let rx = self.update_member(&req, now_ms);
        self.maybe_prepare_rebalance(now_ms);
        self.maybe_complete_join(now_ms);
        JoinOutcome::Wait(rx)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now_ms: i64,
    ) -> JoinOutcome {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.members.push(MemberMetadata {
            member_id,
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            last_heartbeat_ms: now_ms,
            awaiting_join: Some(tx),
            awaiting_sync: None,
        });
        if self.state == GroupState::PreparingRebalance {
            if let Some(cap) = self.initial_join_cap_ms {
                // A member arrived during the initial delay: wait a little longer for more.
                let extended = now_ms + self.config.initial_rebalance_delay_ms;
                self.join_deadline_ms = Some(extended.min(cap));
            }
        }
        self.maybe_prepare_rebalance(now_ms);
        self.maybe_complete_join(now_ms);
        JoinOutcome::Wait(rx)
    }

    /// Takes a rejoining member's new protocols and timeouts and parks its JoinGroup.
    fn update_member(&mut self, req: &JoinRequest, now_ms: i64) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.member_mut(&req.member_id) {
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            m.last_heartbeat_ms = now_ms;
            // A retried JoinGroup replaces the earlier one; its client is no longer waiting.
            m.awaiting_join = Some(tx);
        }
        rx
    }

    fn current_join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            members: if leader == member_id {
                self.join_members()
            } else {
                Vec::new()
            },
            leader,
            member_id: member_id.to_string(),
            skip_assignment: false,
        }
    }

    fn join_members(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .iter()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    /// The protocol for the next generation: among the protocols every member supports,
    /// the one most members prefer (ties go to the first member's preference).
    pub(super) fn select_protocol(&self) -> String {
        let Some(first) = self.members.first() else {
            return String::new();
        };
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| self.members.iter().all(|m| m.supports(p)))
            .collect();
        let votes = |candidate: &str| {
            self.members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|(p, _)| candidates.contains(&p.as_str()))
                        .is_some_and(|(p, _)| p == candidate)
                })
                .count()
        };
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes(c);
            if best.is_none_or(|(_, most)| v > most) {
                best = Some((c, v));
            }
        }
        best.map(|(p, _)| p.to_string())
            .or_else(|| first.protocols.first().map(|(p, _)| p.clone()))
            .unwrap_or_default()
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, now_ms: i64) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now_ms);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(ResponseError::RebalanceInProgress.code()));
            }
        }
        let max_rebalance = self.max_rebalance_timeout_ms();
        if self.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay_ms.min(max_rebalance);
            self.join_deadline_ms = Some(now_ms + delay);
            self.initial_join_cap_ms = Some(now_ms + max_rebalance);
        } else {
            self.join_deadline_ms = Some(now_ms + max_rebalance);
            self.initial_join_cap_ms = None;
        }
        self.sync_deadline_ms = None;
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .iter()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Completes the join phase once everyone is in (never during the initial delay).
    pub(super) fn maybe_complete_join(&mut self, now_ms: i64) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_join_cap_ms.is_none()
            && self.pending_members.is_empty()
            && self.members.iter().all(|m| m.awaiting_join.is_some())
        {
            self.complete_join(now_ms);
        }
    }

    fn complete_join(&mut self, now_ms: i64) {
        // Dynamic members that did not rejoin in time are out; static members keep their
        // place (their client may be restarting).
        self.members
            .retain(|m| m.awaiting_join.is_some() || m.group_instance_id.is_some());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.iter().any(|m| &m.member_id == l))
        {
            self.leader = self
                .members
                .iter()
                .find(|m| m.awaiting_join.is_some())
                .or(self.members.first())
                .map(|m| m.member_id.clone());
        }
        self.join_deadline_ms = None;
        self.initial_join_cap_ms = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now_ms);
            self.mark_dirty();
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        self.sync_deadline_ms = Some(now_ms + self.max_rebalance_timeout_ms());
        self.transition(GroupState::CompletingRebalance, now_ms);
        self.rebalances.inc();
        let everyone = self.join_members();
        let template = self.current_join_result("");
        let leader = template.leader.clone();
        for m in &mut self.members {
            m.last_heartbeat_ms = now_ms;
            let members = if m.member_id == leader {
                everyone.clone()
            } else {
                Vec::new()
            };
            let id = m.member_id.clone();
            m.answer_join(JoinResult {
                member_id: id,
                members,
                ..template.clone()
            });
        }
    }

    /// Removes a member (left, expired, or missed the sync deadline) and moves the group on.
    pub(super) fn remove_member_and_rebalance(&mut self, member_id: &str, now_ms: i64) {
        let Some(pos) = self.members.iter().position(|m| m.member_id == member_id) else {
            return;
        };
        let mut gone = self.members.remove(pos);
        let unknown = ResponseError::UnknownMemberId.code();
        gone.answer_join(JoinResult::error(unknown, member_id));
        gone.answer_sync(SyncResult::error(unknown));
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.first().map(|m| m.member_id.clone());
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms);
                // The last member gone (or everyone else already waiting): no need to wait.
                self.maybe_complete_join(now_ms);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Fires every deadline that has passed at `now_ms`: pending member ids, member sessions,
    /// the end of the join phase, the sync deadline. Returns the member ids removed.
    pub fn tick(&mut self, now_ms: i64) -> Vec<String> {
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.pending_members.len() != before {
            self.maybe_complete_join(now_ms);
        }
        let mut removed: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.session_expired(now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &removed {
            self.remove_member_and_rebalance(id, now_ms);
        }
        match self.state {
            GroupState::PreparingRebalance
                if self.join_deadline_ms.is_some_and(|d| d <= now_ms) =>
            {
                self.complete_join(now_ms)
            }
            GroupState::CompletingRebalance
                if self.sync_deadline_ms.is_some_and(|d| d <= now_ms) =>
            {
                let late: Vec<String> = self
                    .members
                    .iter()
                    .filter(|m| m.awaiting_sync.is_none())
                    .map(|m| m.member_id.clone())
                    .collect();
                for id in &late {
                    self.remove_member_and_rebalance(id, now_ms);
                }
                removed.extend(late);
            }
            _ => {}
        }
        removed
    }
}
