//! The quorum as the active controller sees it: what Kafka's DescribeQuorum reports (leader,
//! epoch, high watermark, and every voter's and observer's progress), taken from openraft's
//! leader metrics.
//!
//! Kafka's KRaft followers fetch from the leader; Raft's leader pushes AppendEntries instead.
//! So, per member, in Raft's terms:
//! - `log_end_offset` is the last index known to match the leader's log (the leader's own: its
//!   last index); `high_watermark` is the leader's last applied, hence committed, index;
//! - `last_fetch_ms` is when the member last answered one of the leader's RPCs (heartbeats
//!   included), from [`super::peer_health::PeerHealth`];
//! - `last_caught_up_ms` is the last time it matched everything the leader had: recorded by
//!   `track_caught_up` at each replication change, and, for a member that matches the
//!   leader's end now, its last answer (an idle quorum changes no metrics).
//!
//! The leader's own entry has both timestamps set to now, as in Kafka. Timestamps are
//! milliseconds since the epoch, -1 when unknown.
//!
//! Any node answers [`Controller::describe_quorum`]: the active controller from its metrics,
//! another node by asking it over the `DescribeQuorum` RPC (as a Kafka broker forwards
//! DescribeQuorum to the active controller).

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::ServerState;
use parking_lot::Mutex;
use uuid::Uuid;
use weir_api::proto::controller as pb;

use super::types::{NodeId, QuorumNode};
use super::{status_error, Controller, ControllerError};

/// The quorum's state, as the active controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The active controller.
    pub leader_id: i32,
    /// The Raft term of its leadership.
    pub leader_epoch: u64,
    /// The last committed index.
    pub high_watermark: i64,
    /// Members that vote, by node id.
    pub voters: Vec<ReplicaProgress>,
    /// Members that only follow the log (Raft learners), by node id.
    pub observers: Vec<ReplicaProgress>,
}

/// One member's progress; see the module doc for what each field means in Raft's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// Its node (broker) id.
    pub node_id: i32,
    /// Its storage's directory id, if the membership records one.
    pub directory_id: Option<Uuid>,
    /// The last index matching the leader's log, -1 if none yet.
    pub log_end_offset: i64,
    /// Its last answer to the leader, ms since the epoch, -1 if none.
    pub last_fetch_ms: i64,
    /// When it last held all the leader had, ms since the epoch, -1 if never seen.
    pub last_caught_up_ms: i64,
}

/// When each member was last seen holding everything the leader had. Invariant: only written
/// while this node leads, and cleared when it stops leading (a new term starts afresh).
#[derive(Debug, Default)]
pub(super) struct CaughtUp {
    at: Mutex<HashMap<NodeId, SystemTime>>,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Records, at every change of the Raft metrics, which members match the leader's last index;
/// ends when the controller or its Raft is gone.
pub(super) async fn track_caught_up(controller: Weak<Controller>) {
    let mut metrics = match controller.upgrade() {
        Some(c) => c.raft.metrics(),
        None => return,
    };
    while metrics.changed().await.is_ok() {
        let Some(controller) = controller.upgrade() else {
            return;
        };
        let m = metrics.borrow_and_update().clone();
        let mut at = controller.caught_up.at.lock();
        match (&m.state, &m.replication, m.last_log_index) {
            (ServerState::Leader, Some(replication), Some(end)) => {
                let now = SystemTime::now();
                for (node, matched) in replication {
                    if matched.is_some_and(|l| l.index >= end) {
                        at.insert(*node, now);
                    }
                }
            }
            (ServerState::Leader, ..) => {}
            _ => at.clear(),
        }
    }
}

impl Controller {
    /// The quorum's state from the active controller: this node's metrics if it is active,
    /// otherwise asked of the active controller.
    pub async fn describe_quorum(&self) -> Result<QuorumStatus, ControllerError> {
        if let Some(status) = self.local_quorum_status() {
            return Ok(status);
        }
        let reply = self
            .controller_client()?
            .describe_quorum(pb::DescribeQuorumRequest {})
            .await
            .map_err(status_error)?;
        Ok(QuorumStatus::from(reply.into_inner()))
    }

    /// The quorum's state if this node is the active controller.
    pub(crate) fn local_quorum_status(&self) -> Option<QuorumStatus> {
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return None;
        }
        let replication = m.replication.as_ref()?;
        let end = m.last_log_index.map_or(-1, |i| i as i64);
        let now = millis(SystemTime::now());
        let caught_up = self.caught_up.at.lock().clone();
        let membership = m.membership_config.membership();
        let progress = |id: NodeId| {
            let directory_id = membership
                .get_node(&id)
                .and_then(|n: &QuorumNode| n.directory_id);
            if id == m.id {
                return ReplicaProgress {
                    node_id: id as i32,
                    directory_id,
                    log_end_offset: end,
                    last_fetch_ms: now,
                    last_caught_up_ms: now,
                };
            }
            let matched = replication
                .get(&id)
                .copied()
                .flatten()
                .map_or(-1, |l| l.index as i64);
            let last_fetch_ms = self.peer_health.last_answer(id).map_or(-1, millis);
            let mut last_caught_up_ms = caught_up.get(&id).map_or(-1, |t| millis(*t));
            if matched >= end {
                last_caught_up_ms = last_caught_up_ms.max(last_fetch_ms);
            }
            ReplicaProgress {
                node_id: id as i32,
                directory_id,
                log_end_offset: matched,
                last_fetch_ms,
                last_caught_up_ms,
            }
        };
        let mut voters: Vec<NodeId> = membership.voter_ids().collect();
        voters.sort_unstable();
        voters.dedup();
        let mut observers: Vec<NodeId> = membership.learner_ids().collect();
        observers.sort_unstable();
        Some(QuorumStatus {
            leader_id: m.id as i32,
            leader_epoch: m.current_term,
            high_watermark: m.last_applied.map_or(-1, |l| l.index as i64),
            voters: voters.into_iter().map(progress).collect(),
            observers: observers.into_iter().map(progress).collect(),
        })
    }
}

impl From<&ReplicaProgress> for pb::QuorumReplica {
    fn from(r: &ReplicaProgress) -> Self {
        pb::QuorumReplica {
            node_id: r.node_id,
            directory_id: r.directory_id.map(|d| d.to_string()).unwrap_or_default(),
            log_end_offset: r.log_end_offset,
            last_fetch_timestamp_ms: r.last_fetch_ms,
            last_caught_up_timestamp_ms: r.last_caught_up_ms,
        }
    }
}

impl From<pb::QuorumReplica> for ReplicaProgress {
    fn from(r: pb::QuorumReplica) -> Self {
        ReplicaProgress {
            node_id: r.node_id,
            directory_id: Uuid::parse_str(&r.directory_id).ok(),
            log_end_offset: r.log_end_offset,
            last_fetch_ms: r.last_fetch_timestamp_ms,
            last_caught_up_ms: r.last_caught_up_timestamp_ms,
        }
    }
}

impl From<&QuorumStatus> for pb::DescribeQuorumResponse {
    fn from(s: &QuorumStatus) -> Self {
        pb::DescribeQuorumResponse {
            leader_id: s.leader_id,
            leader_epoch: s.leader_epoch,
            high_watermark: s.high_watermark,
            voters: s.voters.iter().map(Into::into).collect(),
            observers: s.observers.iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::DescribeQuorumResponse> for QuorumStatus {
    fn from(s: pb::DescribeQuorumResponse) -> Self {
        QuorumStatus {
            leader_id: s.leader_id,
            leader_epoch: s.leader_epoch,
            high_watermark: s.high_watermark,
            voters: s.voters.into_iter().map(Into::into).collect(),
            observers: s.observers.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_survives_the_rpc() {
        let status = QuorumStatus {
            leader_id: 1,
            leader_epoch: 7,
            high_watermark: 42,
            voters: vec![ReplicaProgress {
                node_id: 1,
                directory_id: Some(Uuid::new_v4()),
                log_end_offset: 42,
                last_fetch_ms: 1_700_000_000_000,
                last_caught_up_ms: 1_700_000_000_000,
            }],
            observers: vec![ReplicaProgress {
                node_id: 3,
                directory_id: None,
                log_end_offset: -1,
                last_fetch_ms: -1,
                last_caught_up_ms: -1,
            }],
        };
        let wire = pb::DescribeQuorumResponse::from(&status);
        assert_eq!(QuorumStatus::from(wire), status);
    }
}
