//! SyncGroup: the leader of a new generation hands in every member's assignment; the
//! coordinator stores the group (with the assignments) in `__consumer_offsets` and only then
//! ([`Group::finish_sync`]) every parked SyncGroup gets its member's share and the group is
//! `Stable`. In a `Stable` group SyncGroup just returns the member's current assignment.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::classic::{Group, GroupState};
use super::member::SyncResult;

/// What a SyncGroup gets now or later.
#[derive(Debug)]
pub enum SyncOutcome {
    /// Answered at once.
    Done(SyncResult),
    /// Answered when the leader's assignment is stored.
    Wait(oneshot::Receiver<SyncResult>),
    /// The leader's assignment was taken: the caller stores the group metadata, then calls
    /// [`Group::finish_sync`]; the receiver then holds the leader's own answer.
    Assigned(oneshot::Receiver<SyncResult>),
}

impl Group {
    /// SyncGroup. `assignments` is honoured only from the leader of this generation.
    #[allow(clippy::too_many_arguments)] // one argument per SyncGroup field, as Kafka's API
    pub fn sync(
        &mut self,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now_ms: i64,
    ) -> SyncOutcome {
        let fail = |code: i16| SyncOutcome::Done(SyncResult::error(code));
        if self.state == GroupState::Dead {
            return fail(ResponseError::CoordinatorNotAvailable.code());
        }
        if self.is_fenced(member_id, instance_id) {
            return fail(ResponseError::FencedInstanceId.code());
        }
        if self.member(member_id).is_none() {
            return fail(ResponseError::UnknownMemberId.code());
        }
        if generation != self.generation {
            return fail(ResponseError::IllegalGeneration.code());
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return fail(ResponseError::InconsistentGroupProtocol.code());
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId.code()),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress.code()),
            GroupState::Stable => {
                let member = self.member_mut(member_id).expect("checked above");
                member.last_heartbeat_ms = now_ms;
                let assignment = member.assignment.clone();
                SyncOutcome::Done(self.sync_result(assignment))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = self.member_mut(member_id).expect("checked above");
                member.last_heartbeat_ms = now_ms;
                member.awaiting_sync = Some(tx);
                if self.leader.as_deref() != Some(member_id) {
                    return SyncOutcome::Wait(rx);
                }
                for m in &mut self.members {
                    m.assignment = assignments
                        .iter()
                        .find(|(id, _)| *id == m.member_id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default();
                }
                SyncOutcome::Assigned(rx)
            }
        }
    }

    fn sync_result(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    /// After the leader's assignment was stored (or failed to be): answers every parked
    /// SyncGroup and makes the group `Stable`, or hands the error to everyone.
    pub fn finish_sync(&mut self, stored: Result<(), i16>, now_ms: i64) {
        if self.state != GroupState::CompletingRebalance {
            return;
        }
        match stored {
            Ok(()) => {
                self.sync_deadline_ms = None;
                self.transition(GroupState::Stable, now_ms);
                let template = self.sync_result(Bytes::new());
                for m in &mut self.members {
                    let assignment = m.assignment.clone();
                    m.answer_sync(SyncResult {
                        assignment,
                        ..template.clone()
                    });
                }
            }
            Err(code) => {
                for m in &mut self.members {
                    m.assignment = Bytes::new();
                    m.answer_sync(SyncResult::error(code));
                }
            }
        }
    }
}
