//! Glue between the admin API's messages ([`crate::proto::admin`]) and [`crate::placement`]:
//! the operator reads the cluster with DescribeCluster and ListTopics, plans with placement, and
//! applies the plan with ReassignPartitions; the controller turns CreateTopic's explicit
//! assignment into placement types and placement errors into the gRPC status codes that
//! `admin.proto` documents.

use std::collections::BTreeMap;

use crate::placement::{
    Assignment, BrokerId, BrokerInfo, PlacementError, Plan, Reassignment, TopicAssignment,
    TopicPartition,
};
use crate::proto::admin as pb;

/// An explicit assignment that does not describe partitions `first..first + n` exactly once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("partition {0} is listed more than once")]
    DuplicatePartition(i32),
    #[error("partition {partition} is out of range: expected partitions {first} to {last}")]
    OutOfRange {
        partition: i32,
        first: i32,
        last: i32,
    },
}

impl From<AssignmentError> for tonic::Status {
    fn from(error: AssignmentError) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// The replica lists of partitions `first..first + assignment.len()`, in partition order, from
/// entries in any order (CreateTopic passes `first = 0`, AlterTopic the current count).
pub fn replica_lists(
    assignment: &[pb::PartitionAssignment],
    first: i32,
) -> Result<Vec<Vec<BrokerId>>, AssignmentError> {
    let count = i32::try_from(assignment.len()).unwrap_or(i32::MAX);
    let last = first.saturating_add(count).saturating_sub(1);
    let mut lists: Vec<Option<Vec<BrokerId>>> = vec![None; assignment.len()];
    for entry in assignment {
        let index = i64::from(entry.partition) - i64::from(first);
        let Some(slot) = usize::try_from(index).ok().and_then(|i| lists.get_mut(i)) else {
            return Err(AssignmentError::OutOfRange {
                partition: entry.partition,
                first,
                last,
            });
        };
        if slot.is_some() {
            return Err(AssignmentError::DuplicatePartition(entry.partition));
        }
        *slot = Some(entry.replicas.clone());
    }
    // Every index is filled: `count` entries, all distinct and in range.
    Ok(lists.into_iter().flatten().collect())
}

/// A whole topic's explicit assignment (CreateTopic).
pub fn topic_assignment(
    assignment: &[pb::PartitionAssignment],
) -> Result<TopicAssignment, AssignmentError> {
    replica_lists(assignment, 0).map(TopicAssignment::new)
}

/// The wire form of a topic's assignment.
pub fn partition_assignments(topic: &TopicAssignment) -> Vec<pb::PartitionAssignment> {
    topic
        .partitions
        .iter()
        .enumerate()
        .map(|(p, replicas)| pb::PartitionAssignment {
            partition: i32::try_from(p).unwrap_or(i32::MAX),
            replicas: replicas.clone(),
        })
        .collect()
}

impl From<&pb::Broker> for BrokerInfo {
    fn from(broker: &pb::Broker) -> Self {
        BrokerInfo {
            id: broker.id,
            rack: broker.rack.clone(),
        }
    }
}

/// The brokers DescribeCluster lists, split the way the planners want them: every broker that
/// can hold replicas (all but unregistered ones; a fenced broker still holds its replicas), and
/// the ids of those being drained, which must end up empty.
pub fn planning_brokers(brokers: &[pb::Broker]) -> (Vec<BrokerInfo>, Vec<BrokerId>) {
    let listed: Vec<&pb::Broker> = brokers
        .iter()
        .filter(|b| b.state() != pb::BrokerState::Unregistered)
        .collect();
    let draining = listed
        .iter()
        .filter(|b| b.state() == pb::BrokerState::Draining)
        .map(|b| b.id)
        .collect();
    (listed.into_iter().map(BrokerInfo::from).collect(), draining)
}

/// The cluster's assignment from ListTopics: each partition's replica list by partition number.
/// A topic whose description skips or repeats a partition is an error.
pub fn cluster_assignment(topics: &[pb::TopicDescription]) -> Result<Assignment, AssignmentError> {
    let mut assignment = Assignment::new();
    for topic in topics {
        let entries: Vec<pb::PartitionAssignment> = topic
            .partitions
            .iter()
            .map(|p| pb::PartitionAssignment {
                partition: p.partition,
                replicas: p.replicas.clone(),
            })
            .collect();
        assignment
            .topics
            .insert(topic.name.clone(), topic_assignment(&entries)?);
    }
    Ok(assignment)
}

impl From<&pb::TopicPartition> for TopicPartition {
    fn from(tp: &pb::TopicPartition) -> Self {
        TopicPartition::new(tp.topic.clone(), tp.partition)
    }
}

impl From<&TopicPartition> for pb::TopicPartition {
    fn from(tp: &TopicPartition) -> Self {
        pb::TopicPartition {
            topic: tp.topic.clone(),
            partition: tp.partition,
        }
    }
}

impl From<&Reassignment> for pb::PartitionReassignment {
    fn from(r: &Reassignment) -> Self {
        pb::PartitionReassignment {
            topic: r.topic.clone(),
            partition: r.partition,
            target_replicas: r.target.clone(),
        }
    }
}

impl From<&Reassignment> for pb::PlannedReassignment {
    fn from(r: &Reassignment) -> Self {
        pb::PlannedReassignment {
            topic: r.topic.clone(),
            partition: r.partition,
            current_replicas: r.current.clone(),
            target_replicas: r.target.clone(),
        }
    }
}

/// The ReassignPartitions request that carries out `plan` (moves and preferred-leader changes).
pub fn reassign_request(
    plan: &Plan,
    throttle_bytes_per_second: Option<u64>,
) -> pb::ReassignPartitionsRequest {
    pb::ReassignPartitionsRequest {
        reassignments: plan.reassignments.iter().map(Into::into).collect(),
        throttle_bytes_per_second,
    }
}

/// The DrainBroker answer for `plan`.
pub fn drain_response(plan: &Plan) -> pb::DrainBrokerResponse {
    pb::DrainBrokerResponse {
        plan: plan.reassignments.iter().map(Into::into).collect(),
        move_count: u32::try_from(plan.move_count()).unwrap_or(u32::MAX),
    }
}

/// Replica and preferred-leader counts per broker of `assignment`, for DescribeCluster's
/// `replica_count` and `preferred_leader_count`.
pub fn load_by_broker(assignment: &Assignment) -> BTreeMap<BrokerId, (u32, u32)> {
    let mut load: BTreeMap<BrokerId, (u32, u32)> = BTreeMap::new();
    for (broker, count) in assignment.replica_counts() {
        load.entry(broker).or_default().0 = u32::try_from(count).unwrap_or(u32::MAX);
    }
    for (broker, count) in assignment.leader_counts() {
        load.entry(broker).or_default().1 = u32::try_from(count).unwrap_or(u32::MAX);
    }
    load
}

/// The status codes `admin.proto` documents: malformed requests are INVALID_ARGUMENT, missing
/// things NOT_FOUND, requests the cluster cannot satisfy now FAILED_PRECONDITION.
impl From<PlacementError> for tonic::Status {
    fn from(error: PlacementError) -> Self {
        use PlacementError as E;
        let message = error.to_string();
        match error {
            E::DuplicateBroker(_)
            | E::InvalidPartitionCount(_)
            | E::InvalidReplicationFactor(_)
            | E::PartitionCountNotIncreasing { .. } => tonic::Status::invalid_argument(message),
            E::UnknownTopic(_) | E::UnknownDrainingBroker(_) => tonic::Status::not_found(message),
            // A replica on a broker the cluster does not know, or a partition without replicas,
            // is a metadata state the request cannot proceed from.
            E::NoBrokers
            | E::ReplicationFactorTooLarge { .. }
            | E::NoReplicas { .. }
            | E::UnknownBroker { .. }
            | E::NotEnoughBrokers { .. } => tonic::Status::failed_precondition(message),
            E::TooLarge { .. } => tonic::Status::resource_exhausted(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::rebalance_plan;

    fn entry(partition: i32, replicas: &[i32]) -> pb::PartitionAssignment {
        pb::PartitionAssignment {
            partition,
            replicas: replicas.to_vec(),
        }
    }

    #[test]
    fn explicit_assignment_in_any_order_becomes_partition_order() {
        let wire = [entry(1, &[2, 3]), entry(0, &[1, 2])];
        let topic = topic_assignment(&wire).unwrap();
        assert_eq!(topic.partitions, vec![vec![1, 2], vec![2, 3]]);
        assert_eq!(
            partition_assignments(&topic),
            vec![entry(0, &[1, 2]), entry(1, &[2, 3])]
        );
    }

    #[test]
    fn gaps_and_repeats_are_rejected() {
        assert_eq!(
            topic_assignment(&[entry(0, &[1]), entry(2, &[1])]),
            Err(AssignmentError::OutOfRange {
                partition: 2,
                first: 0,
                last: 1
            })
        );
        assert_eq!(
            topic_assignment(&[entry(0, &[1]), entry(0, &[2])]),
            Err(AssignmentError::DuplicatePartition(0))
        );
        assert_eq!(
            replica_lists(&[entry(3, &[1]), entry(4, &[2])], 3).unwrap(),
            vec![vec![1], vec![2]]
        );
    }

    #[test]
    fn planning_brokers_skip_unregistered_and_name_draining() {
        let broker = |id: i32, state: pb::BrokerState| pb::Broker {
            id,
            rack: Some("a".into()),
            state: state as i32,
            ..Default::default()
        };
        let (brokers, draining) = planning_brokers(&[
            broker(1, pb::BrokerState::Active),
            broker(2, pb::BrokerState::Fenced),
            broker(3, pb::BrokerState::Draining),
            broker(4, pb::BrokerState::Unregistered),
        ]);
        assert_eq!(
            brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(brokers[0].rack.as_deref(), Some("a"));
        assert_eq!(draining, vec![3]);
    }

    #[test]
    fn a_rebalance_plan_becomes_a_reassign_request() {
        let topics = [pb::TopicDescription {
            name: "t".into(),
            partitions: vec![
                pb::PartitionDescription {
                    partition: 0,
                    replicas: vec![1],
                    ..Default::default()
                },
                pb::PartitionDescription {
                    partition: 1,
                    replicas: vec![1],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }];
        let current = cluster_assignment(&topics).unwrap();
        let brokers = [BrokerInfo::new(1, None), BrokerInfo::new(2, None)];
        let plan = rebalance_plan(&brokers, &current).unwrap();
        let request = reassign_request(&plan, Some(1 << 20));
        assert_eq!(request.throttle_bytes_per_second, Some(1 << 20));
        assert_eq!(request.reassignments.len(), 1);
        assert_eq!(request.reassignments[0].target_replicas, vec![2]);
        assert_eq!(drain_response(&plan).move_count, 1);
    }

    #[test]
    fn placement_errors_map_to_documented_codes() {
        let code = |e: PlacementError| tonic::Status::from(e).code();
        assert_eq!(
            code(PlacementError::InvalidReplicationFactor(0)),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(PlacementError::UnknownTopic("t".into())),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(PlacementError::ReplicationFactorTooLarge {
                replication_factor: 3,
                available: 2
            }),
            tonic::Code::FailedPrecondition
        );
    }
}
