//! The decisions that depend on the cluster's state, as pure functions of what was observed:
//! how many pods the StatefulSet should have (scale-down waits for drains), which broker to
//! drain next, whether to rebalance, which pod to restart next. Unit-tested without a client.

use std::collections::BTreeSet;

use weir_api::proto::admin as pb;

/// A pod of the cluster, as the reconciler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub ordinal: i32,
    pub ready: bool,
    /// The StatefulSet revision it was made from.
    pub revision: Option<String>,
    /// It has a deletion timestamp.
    pub terminating: bool,
}

/// A registered broker, from DescribeCluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub id: i32,
    pub state: pb::BrokerState,
    pub rack: Option<String>,
    pub replicas: u32,
    pub leaders: u32,
    /// The `directory.id` it registered with (its storage now), when the broker says.
    pub directory_id: Option<String>,
}

/// A node of the metadata quorum (DescribeCluster's `controller.members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMember {
    pub node_id: i32,
    /// The storage the quorum knows it by; `None` when not known.
    pub directory_id: Option<String>,
    /// Counted in the majority (otherwise an observer that follows the log).
    pub voter: bool,
}

/// What the admin API said, when it answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminView {
    pub cluster_id: String,
    pub brokers: Vec<BrokerView>,
    pub controller: Option<i32>,
    pub under_replicated: u32,
    pub offline: u32,
    pub reassigning: u32,
    /// Every topic (internal ones included) with its replication factor.
    pub topics: Vec<(String, usize)>,
    /// Every member of the metadata quorum, voters and observers.
    pub members: Vec<QuorumMember>,
}

impl AdminView {
    pub fn broker(&self, id: i32) -> Option<&BrokerView> {
        self.brokers.iter().find(|b| b.id == id)
    }

    pub fn member(&self, id: i32) -> Option<&QuorumMember> {
        self.members.iter().find(|m| m.node_id == id)
    }

    /// The quorum's voters, in order.
    pub fn voters(&self) -> Vec<i32> {
        let mut voters: Vec<i32> = self
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.node_id)
            .collect();
        voters.sort_unstable();
        voters
    }
}

/// What to do about the StatefulSet's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleStep {
    /// Set the StatefulSet to this many pods.
    Set(i32),
    /// Removing brokers is impossible; keep everything as it is.
    Blocked(String),
    /// Start draining this broker.
    Drain(i32),
    /// A drain is running, or the admin API must answer first; keep the current size.
    Wait(String),
}

/// The StatefulSet's size for one reconcile, and what to report about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDecision {
    pub step: ScaleStep,
    /// The replica count the StatefulSet is applied with.
    pub statefulset_replicas: i32,
    /// Why removing brokers is refused.
    pub blocked: Option<String>,
    /// What is under way, one line each.
    pub working: Vec<String>,
}

/// [`scale_step`], with the StatefulSet's size it implies (the current size until the step
/// sets one) and the lines the status reports.
pub fn decide_scale(
    spec: i32,
    current: Option<i32>,
    voters: &[i32],
    admin: Option<&AdminView>,
) -> ScaleDecision {
    let step = scale_step(spec, current, voters, admin);
    let statefulset_replicas = match &step {
        ScaleStep::Set(n) => *n,
        _ => current.unwrap_or(spec),
    };
    let mut blocked = None;
    let mut working = Vec::new();
    match &step {
        ScaleStep::Blocked(why) => blocked = Some(why.clone()),
        ScaleStep::Wait(why) => working.push(why.clone()),
        ScaleStep::Drain(id) => working.push(format!("draining broker {id}")),
        ScaleStep::Set(_) => {}
    }
    if statefulset_replicas != spec && blocked.is_none() {
        working.push(format!(
            "scaling from {statefulset_replicas} to {spec} brokers"
        ));
    }
    ScaleDecision {
        step,
        statefulset_replicas,
        blocked,
        working,
    }
}

/// The smallest cluster the voters allow: the quorum's members are never removed.
pub fn minimum_for_voters(voters: &[i32]) -> i32 {
    voters.iter().max().map_or(1, |v| v + 1)
}

/// The next step toward `spec` pods from `current` (the StatefulSet's replica count, `None`
/// before it exists). Scale-up is immediate; scale-down drains the highest ordinals first, one
/// at a time, and shrinks the StatefulSet only when every broker to remove holds nothing.
pub fn scale_step(
    spec: i32,
    current: Option<i32>,
    voters: &[i32],
    admin: Option<&AdminView>,
) -> ScaleStep {
    let current = match current {
        Some(c) if c > spec => c,
        _ => return ScaleStep::Set(spec),
    };
    let minimum = minimum_for_voters(voters);
    if spec < minimum {
        return ScaleStep::Blocked(format!(
            "brokers {voters:?} are the metadata quorum's voters: the cluster needs at least \
             {minimum} brokers"
        ));
    }
    let Some(admin) = admin else {
        return ScaleStep::Wait("waiting for the admin API to plan the drain".into());
    };
    let too_wide: Vec<String> = admin
        .topics
        .iter()
        .filter(|(_, rf)| *rf > spec as usize)
        .map(|(name, rf)| format!("{name} (replication factor {rf})"))
        .collect();
    if !too_wide.is_empty() {
        return ScaleStep::Blocked(format!(
            "{} brokers cannot hold topics {}",
            spec,
            too_wide.join(", ")
        ));
    }
    for id in (spec..current).rev() {
        match admin.broker(id) {
            Some(b) if b.replicas > 0 => {
                return if b.state == pb::BrokerState::Draining {
                    ScaleStep::Wait(format!(
                        "draining broker {id}: {} replicas left",
                        b.replicas
                    ))
                } else {
                    ScaleStep::Drain(id)
                };
            }
            _ => {}
        }
    }
    ScaleStep::Set(spec)
}

/// Brokers to unregister: registered, above the StatefulSet's size, stopped, empty, and not
/// voters.
pub fn brokers_to_unregister(admin: &AdminView, sts_replicas: i32, voters: &[i32]) -> Vec<i32> {
    admin
        .brokers
        .iter()
        .filter(|b| b.id >= sts_replicas && !voters.contains(&b.id))
        .filter(|b| b.state == pb::BrokerState::Fenced && b.replicas == 0)
        .map(|b| b.id)
        .collect()
}

/// Whether the brokers `0..spec` are all registered and active (what a rebalance needs).
pub fn all_active(admin: &AdminView, spec: i32) -> bool {
    (0..spec).all(|id| {
        admin
            .broker(id)
            .is_some_and(|b| b.state == pb::BrokerState::Active)
    })
}

/// Whether the broker set changed since the last rebalance: a rebalance is due when every
/// broker is active, nothing is moving, and the set differs from the one last balanced over.
pub fn rebalance_due(admin: &AdminView, spec: i32, pods_ready: bool, balanced_for: &[i32]) -> bool {
    let now: BTreeSet<i32> = (0..spec).collect();
    let before: BTreeSet<i32> = balanced_for.iter().copied().collect();
    pods_ready && admin.reassigning == 0 && all_active(admin, spec) && now != before
}

/// What to do about pods made from an old revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollStep {
    /// Every pod runs the current revision.
    Done,
    /// Restart this pod (delete it; the StatefulSet makes it again).
    Restart(i32),
    /// Pods are outdated, but restarting one now would hurt: why.
    Wait(String),
}

/// The next pod to restart: only when every pod is ready and no partition is under-replicated,
/// offline or moving; non-voters first (highest ordinal first), then voters, the active
/// controller last.
pub fn roll_step(
    pods: &[PodView],
    expected_pods: i32,
    update_revision: Option<&str>,
    voters: &[i32],
    admin: Option<&AdminView>,
) -> RollStep {
    let Some(revision) = update_revision else {
        return RollStep::Done;
    };
    let outdated: Vec<&PodView> = pods
        .iter()
        .filter(|p| p.revision.as_deref() != Some(revision))
        .collect();
    if outdated.is_empty() {
        return RollStep::Done;
    }
    if (pods.len() as i32) < expected_pods {
        return RollStep::Wait(format!(
            "waiting for {} of {expected_pods} pods to exist",
            expected_pods - pods.len() as i32
        ));
    }
    if let Some(p) = pods.iter().find(|p| p.terminating || !p.ready) {
        return RollStep::Wait(format!("waiting for broker {} to be ready", p.ordinal));
    }
    let Some(admin) = admin else {
        return RollStep::Wait("waiting for the admin API".into());
    };
    if admin.under_replicated > 0 || admin.offline > 0 {
        return RollStep::Wait(format!(
            "waiting for {} under-replicated and {} offline partitions to recover",
            admin.under_replicated, admin.offline
        ));
    }
    if admin.reassigning > 0 {
        return RollStep::Wait(format!(
            "waiting for {} partition reassignments",
            admin.reassigning
        ));
    }
    let rank = |p: &PodView| {
        let voter = voters.contains(&p.ordinal);
        let controller = admin.controller == Some(p.ordinal);
        (voter, controller, -p.ordinal)
    };
    let next = outdated.iter().min_by_key(|p| rank(p)).map(|p| p.ordinal);
    next.map_or(RollStep::Done, RollStep::Restart)
}

pub mod quorum;

#[cfg(test)]
mod tests;
