//! One member of a KIP-848 consumer group, and its reconciliation towards the group's target
//! assignment (Kafka's `CurrentAssignmentBuilder`).
//!
//! ```text
//!            target epoch moves, partitions to give up
//!   Stable ---------------------------------------------> UnrevokedPartitions
//!     ^  ^                                                   | owned partitions reported
//!     |  |  all new partitions free                          v without the revoked ones
//!     |  +------------------------------------------- (next assignment)
//!     |                                                      | some new partitions still
//!     |       the previous owners released them              v owned by another member
//!     +----------------------------------------------- UnreleasedPartitions
//! ```
//!
//! A partition is given to its new owner only once no other member holds it (assigned or
//! pending revocation): `is_free` answers that from the group's owner index. While a member
//! revokes, its epoch stays where it is; it moves to the target epoch with the assignment
//! that follows.

use std::collections::BTreeSet;

use super::assignor::Assignment;

/// Where a member stands in its reconciliation (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Has its whole target assignment at the target epoch.
    Stable,
    /// Must give up partitions (`pending_revocation`) before it gets more.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions that others still hold.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// A consumer-protocol member. Invariants: `assigned` and `pending_revocation` are disjoint;
/// `pending_revocation` is empty unless the state is `UnrevokedPartitions`; a partition is
/// in at most one member's `assigned ∪ pending_revocation` (kept by the group).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerMember {
    /// The member id (client-generated from ConsumerGroupHeartbeat v1).
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Subscribed topic names (empty with a regex subscription).
    pub subscribed_topic_names: BTreeSet<String>,
    /// `subscribed_topic_regex` (ConsumerGroupHeartbeat v1).
    pub subscribed_topic_regex: Option<String>,
    /// The assignor the client asked for.
    pub server_assignor: Option<String>,
    /// Time the member has to revoke partitions (`max.poll.interval.ms`).
    pub rebalance_timeout_ms: i32,
    /// The member epoch; -2 for a static member that left temporarily.
    pub member_epoch: i32,
    /// The epoch before the last bump (a member whose answer was lost may still use it).
    pub previous_member_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions the member holds.
    pub assigned: Assignment,
    /// Partitions the member must give up.
    pub pending_revocation: Assignment,
    /// Session expiry: the member is removed when no heartbeat arrives by then.
    pub session_deadline_ms: i64,
    /// When a member in `UnrevokedPartitions` is removed if it has not revoked.
    pub revocation_deadline_ms: Option<i64>,
    /// Set for a member that uses the classic protocol (JoinGroup/SyncGroup/Heartbeat) in a
    /// consumer group during an online migration (Kafka's `ClassicMemberMetadata`).
    pub classic: Option<ClassicMemberMetadata>,
    /// A classic member told to rejoin is removed when it has not sent JoinGroup by then
    /// (Kafka's consumer-group join timeout: its rebalance timeout). In memory only, as
    /// Kafka's timers: a new coordinator leaves it to the session timeout.
    pub classic_join_deadline_ms: Option<i64>,
    /// A classic member that joined is removed when it has not sent SyncGroup by then
    /// (Kafka's consumer-group sync timeout: its rebalance timeout). In memory only.
    pub classic_sync_deadline_ms: Option<i64>,
}

/// What a classic-protocol member of a consumer group joined with: its session timeout and
/// the protocols (client-side assignors) it supports, with their metadata, preferred first.
/// Stored as the tagged field 0 of ConsumerGroupMemberMetadataValue, as Kafka does.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicMemberMetadata {
    /// The JoinGroup's session timeout.
    pub session_timeout_ms: i32,
    /// `(name, metadata)` of each supported protocol, preferred first.
    pub protocols: Vec<(String, bytes::Bytes)>,
}

impl ClassicMemberMetadata {
    /// Whether the member supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }
}

impl ConsumerMember {
    /// A member joining with epoch 0.
    pub fn new(member_id: &str) -> Self {
        Self {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: -1,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: 0,
            revocation_deadline_ms: None,
            classic: None,
            classic_join_deadline_ms: None,
            classic_sync_deadline_ms: None,
        }
    }

    /// Whether the member uses the classic protocol.
    pub fn uses_classic_protocol(&self) -> bool {
        self.classic.is_some()
    }

    /// Moves the member towards `target` at `target_epoch`. `owned` is what the client reported
    /// holding (None: not reported in this heartbeat); `is_free` tells whether no other member
    /// holds a partition. Returns whether the member's assignment or epoch changed.
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        is_free: &dyn Fn(&uuid::Uuid, i32) -> bool,
        now_ms: i64,
    ) -> bool {
        let before = (self.member_epoch, self.assigned.clone(), self.state);
        match self.state {
            MemberState::Stable if self.member_epoch == target_epoch => {}
            MemberState::UnrevokedPartitions => {
                let still_owns = match owned {
                    None => true,
                    Some(owned) => overlaps(owned, &self.pending_revocation),
                };
                if !still_owns {
                    self.next_assignment(target_epoch, target, is_free, now_ms);
                }
            }
            MemberState::Stable | MemberState::UnreleasedPartitions => {
                self.next_assignment(target_epoch, target, is_free, now_ms)
            }
        }
        before != (self.member_epoch, self.assigned.clone(), self.state)
    }

    /// Kafka's `computeNextAssignment`: revoke first, then assign what is free.
    fn next_assignment(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        is_free: &dyn Fn(&uuid::Uuid, i32) -> bool,
        now_ms: i64,
    ) {
        let mut kept = Assignment::new();
        let mut revoke = Assignment::new();
        let mut newly = Assignment::new();
        let mut unreleased = false;
        for (topic, parts) in &self.assigned {
            let wanted = target.get(topic);
            for p in parts {
                let set = if wanted.is_some_and(|w| w.contains(p)) {
                    &mut kept
                } else {
                    &mut revoke
                };
                set.entry(*topic).or_default().insert(*p);
            }
        }
        for (topic, parts) in target {
            let held = self.assigned.get(topic);
            for p in parts {
                if held.is_some_and(|h| h.contains(p)) {
                    continue;
                }
                if is_free(topic, *p) {
                    newly.entry(*topic).or_default().insert(*p);
                } else {
                    unreleased = true;
                }
            }
        }
        if !revoke.is_empty() {
            // Stays at its epoch until the client confirms the revocation.
            self.assigned = kept;
            self.pending_revocation = revoke;
            self.state = MemberState::UnrevokedPartitions;
            self.revocation_deadline_ms =
                Some(now_ms + i64::from(self.rebalance_timeout_ms.max(0)));
            return;
        }
        for (topic, parts) in newly {
            kept.entry(topic).or_default().extend(parts);
        }
        self.assigned = kept;
        self.pending_revocation.clear();
        self.revocation_deadline_ms = None;
        if self.member_epoch != target_epoch {
            self.previous_member_epoch = self.member_epoch;
            self.member_epoch = target_epoch;
        }
        self.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// Every partition the member holds or still has to give up.
    pub fn owned_partitions(&self) -> impl Iterator<Item = (uuid::Uuid, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

/// Whether the two assignments share a partition.
pub fn overlaps(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|other| !ps.is_disjoint(other)))
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|other| ps.is_subset(other)))
}
