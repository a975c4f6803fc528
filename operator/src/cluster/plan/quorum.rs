//! The metadata quorum's voters as the operator keeps them (issue 13), decided from what
//! DescribeCluster says, one membership change at a time:
//!
//! 1. **record**: a voter the quorum counts and `status.voters` does not list yet (an
//!    AddRaftVoter that finished, or one made by hand) is recorded first, so the scale-down
//!    guard and the brokers' contact list never miss a voter;
//! 2. **heal**: a recorded voter that runs with other storage than the quorum knows it by (its
//!    volume was emptied or replaced) is removed as a voter (RemoveRaftVoter with its old
//!    directory id) — unless `controller.quorum.auto.join.enable` is on, when the active
//!    controller does that itself; a recorded voter the quorum no longer counts is added again
//!    (AddRaftVoter with its new directory id) once its broker is ready and active, which is
//!    only after it has caught up on the metadata log;
//! 3. **grow**: a quorum of fewer than [`TARGET_VOTERS`] voters (a cluster created with one or
//!    two brokers) takes the next ordinal as a voter once at least [`TARGET_VOTERS`] brokers
//!    of the spec are ready and active. Always the lowest ordinal that is not a voter, so the
//!    voters stay the first ordinals and scale-down keeps its simple rule (it never removes a
//!    voter).
//!
//! The quorum never shrinks here: removing a voter for good is a person's decision.

use weir_api::proto::admin as pb;

use super::{AdminView, PodView};

/// How many voters the operator grows a quorum to: three survive the loss of any one, and
/// every broker beyond them only follows the log (as Kafka's controller quorums).
pub const TARGET_VOTERS: usize = 3;

/// Why a node is being made a voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddReason {
    /// The quorum has fewer than [`TARGET_VOTERS`] voters.
    Grow,
    /// A recorded voter came back with new storage and was removed as a voter.
    Replace,
}

/// The next step for the quorum's voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumStep {
    /// Nothing to change.
    Steady,
    /// The quorum counts voters `status.voters` lacks: record these (sorted, deduplicated).
    Record(Vec<i32>),
    /// Make `node`, running with storage `directory_id`, a voter (AddRaftVoter).
    Add {
        node: i32,
        directory_id: String,
        reason: AddReason,
    },
    /// Voter `node` runs with new storage; remove it as the voter with `directory_id`, its old
    /// storage (RemoveRaftVoter).
    Remove { node: i32, directory_id: String },
    /// A change is under way or must wait: why.
    Wait(String),
}

impl QuorumStep {
    /// The line the `Progressing` condition shows while this step runs, if any.
    pub fn describe(&self) -> Option<String> {
        match self {
            QuorumStep::Steady | QuorumStep::Record(_) => None,
            QuorumStep::Add {
                node,
                reason: AddReason::Grow,
                ..
            } => Some(format!(
                "growing the metadata quorum: making broker {node} a voter"
            )),
            QuorumStep::Add {
                node,
                reason: AddReason::Replace,
                ..
            } => Some(format!(
                "replacing voter {node}: making it a voter again with its new storage"
            )),
            QuorumStep::Remove { node, .. } => Some(format!(
                "replacing voter {node}: it runs with new storage, removing its old storage from \
                 the quorum"
            )),
            QuorumStep::Wait(why) => Some(why.clone()),
        }
    }
}

/// Whether `controller.quorum.auto.join.enable` is on in these settings (the broker's default
/// is on; like the broker, only `true` turns it on).
pub fn auto_join(config: &std::collections::BTreeMap<String, String>) -> bool {
    config
        .get("controller.quorum.auto.join.enable")
        .is_none_or(|v| v == "true")
}

/// The voters the operator must keep: those it recorded and those the quorum counts.
pub fn known_voters(recorded: &[i32], admin: Option<&AdminView>) -> Vec<i32> {
    let mut voters: Vec<i32> = recorded.to_vec();
    if let Some(a) = admin {
        voters.extend(a.voters());
    }
    voters.sort_unstable();
    voters.dedup();
    voters
}

/// Whether broker `id` runs, is ready and active, and says which storage it runs with: the
/// only state in which it is made a voter (its readiness means it caught up on the log).
fn serving(id: i32, pods: &[PodView], admin: &AdminView) -> Option<String> {
    let ready = pods
        .iter()
        .any(|p| p.ordinal == id && p.ready && !p.terminating);
    let broker = admin.broker(id)?;
    let directory = broker.directory_id.clone().filter(|d| !d.is_empty())?;
    (ready && broker.state == pb::BrokerState::Active).then_some(directory)
}

/// The next step for the voters (the module's overview). `recorded` is `status.voters`,
/// `spec_replicas` the brokers the spec asks for, `auto_join` whether the brokers replace a
/// voter's storage themselves.
pub fn quorum_step(
    recorded: &[i32],
    spec_replicas: i32,
    pods: &[PodView],
    admin: &AdminView,
    auto_join: bool,
) -> QuorumStep {
    let actual = admin.voters();
    if actual.is_empty() {
        // No quorum formed yet, or a broker that does not list its members.
        return QuorumStep::Steady;
    }
    if actual.iter().any(|v| !recorded.contains(v)) {
        return QuorumStep::Record(known_voters(recorded, Some(admin)));
    }
    for &voter in recorded {
        let running = admin
            .broker(voter)
            .and_then(|b| b.directory_id.clone())
            .filter(|d| !d.is_empty());
        match admin.member(voter) {
            Some(m) if m.voter => {
                let (Some(known), Some(now)) = (&m.directory_id, &running) else {
                    continue;
                };
                if known == now {
                    continue;
                }
                if auto_join {
                    return QuorumStep::Wait(format!(
                        "replacing voter {voter}: it runs with new storage; the active \
                         controller removes its old storage from the quorum"
                    ));
                }
                return QuorumStep::Remove {
                    node: voter,
                    directory_id: known.clone(),
                };
            }
            _ => {
                return match serving(voter, pods, admin) {
                    Some(directory_id) => QuorumStep::Add {
                        node: voter,
                        directory_id,
                        reason: AddReason::Replace,
                    },
                    None => QuorumStep::Wait(format!(
                        "replacing voter {voter}: waiting for broker {voter} to catch up on the \
                         metadata log and be ready"
                    )),
                };
            }
        }
    }
    if recorded.len() >= TARGET_VOTERS || spec_replicas < TARGET_VOTERS as i32 {
        return QuorumStep::Steady;
    }
    let serving_count = (0..spec_replicas)
        .filter(|id| serving(*id, pods, admin).is_some())
        .count();
    if serving_count < TARGET_VOTERS {
        return QuorumStep::Steady;
    }
    let Some(next) = (0..spec_replicas).find(|id| !recorded.contains(id)) else {
        return QuorumStep::Steady;
    };
    match serving(next, pods, admin) {
        Some(directory_id) => QuorumStep::Add {
            node: next,
            directory_id,
            reason: AddReason::Grow,
        },
        None => QuorumStep::Wait(format!(
            "growing the metadata quorum: waiting for broker {next} to be ready"
        )),
    }
}

#[cfg(test)]
mod tests;
