//! One member of a classic group, and the answers the group hands back to JoinGroup and
//! SyncGroup requests that wait for a rebalance to progress.
//!
//! A request that has to wait (a JoinGroup while the group collects members, a SyncGroup
//! before the leader sent the assignment) parks a `oneshot` sender in its member; whoever
//! moves the group on (another member's request, or the timer tick) answers through it. A
//! sender dropped without an answer means the group went away (see [`super::classic::Group`]);
//! the waiting handler then answers COORDINATOR_NOT_AVAILABLE and the client looks the
//! coordinator up again.

use bytes::Bytes;
use tokio::sync::oneshot;

use super::records::MemberMetadataValue;

/// One member of a group as the coordinator tracks it.
#[derive(Debug)]
pub struct MemberMetadata {
    /// Coordinator-assigned id (`client.id` or `group.instance.id`, a dash, a UUID).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address, as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
    /// How long the group waits for this member to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// Supported protocols (assignors) with their metadata, in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment of the current generation (empty until SyncGroup delivered one).
    pub assignment: Bytes,
    /// Clock time of the member's last sign of life (join, sync, heartbeat, commit).
    pub last_heartbeat_ms: i64,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
}

impl MemberMetadata {
    /// The member's metadata for `protocol`, empty if it does not support it.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the member supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Whether its session expired at `now_ms`. A member whose JoinGroup or SyncGroup is
    /// parked is alive by definition: the rebalance timeout governs it instead.
    pub fn session_expired(&self, now_ms: i64) -> bool {
        self.awaiting_join.is_none()
            && self.awaiting_sync.is_none()
            && now_ms - self.last_heartbeat_ms > i64::from(self.session_timeout_ms)
    }

    /// Answers a parked JoinGroup, if any.
    pub fn answer_join(&mut self, result: JoinResult) {
        if let Some(tx) = self.awaiting_join.take() {
            // The client may have disconnected meanwhile; nothing left to tell it then.
            let _ = tx.send(result);
        }
    }

    /// Answers a parked SyncGroup, if any.
    pub fn answer_sync(&mut self, result: SyncResult) {
        if let Some(tx) = self.awaiting_sync.take() {
            let _ = tx.send(result);
        }
    }

    /// The stored form, with its metadata for the selected `protocol`.
    pub fn to_value(&self, protocol: Option<&str>) -> MemberMetadataValue {
        MemberMetadataValue {
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            session_timeout_ms: self.session_timeout_ms,
            subscription: protocol.map(|p| self.metadata_for(p)).unwrap_or_default(),
            assignment: self.assignment.clone(),
        }
    }

    /// A member loaded from `__consumer_offsets`; it supports only the stored protocol.
    pub fn from_value(v: MemberMetadataValue, protocol: Option<&str>, now_ms: i64) -> Self {
        Self {
            member_id: v.member_id,
            group_instance_id: v.group_instance_id,
            client_id: v.client_id,
            client_host: v.client_host,
            rebalance_timeout_ms: v.rebalance_timeout_ms,
            session_timeout_ms: v.session_timeout_ms,
            protocols: protocol
                .map(|p| vec![(p.to_string(), v.subscription)])
                .unwrap_or_default(),
            assignment: v.assignment,
            last_heartbeat_ms: now_ms,
            awaiting_join: None,
            awaiting_sync: None,
        }
    }
}

/// A member as listed to the leader in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    /// Kafka error code (0 for success).
    pub error: i16,
    /// The new generation, or -1 on error.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// The member id of the joiner (new for a first join).
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinMember>,
    /// A static leader rejoining a stable group keeps the current assignment (JoinGroup v9).
    pub skip_assignment: bool,
}

impl JoinResult {
    /// A failed join carrying `error` and the member id the client should use.
    pub fn error(error: i16, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// Kafka error code (0 for success).
    pub error: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// A failed sync.
    pub fn error(error: i16) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}
