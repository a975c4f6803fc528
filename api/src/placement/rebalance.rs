//! Rebalance and drain plans: a target assignment for the whole cluster reached with the fewest
//! replica moves.
//!
//! Both are one computation. Every partition is placed again, with the brokers it is on now as
//! the cheap choice: phase one's flow puts balance first and the number of moves second, so the
//! target is the most even assignment the rules allow and, among those, the one closest to the
//! current assignment. Replicas on draining brokers are not eligible anywhere, so they must
//! move; so must replicas breaking the rack rule (it may have tightened since a rack was added).
//! Phase two then reorders lists so preferred leaders are as even as the new replica sets allow,
//! keeping each partition's leader when balance does not need it to change. The last tie-break
//! is creation's per-partition rotation, so brokers that join are not paired on the same
//! partitions.

use std::collections::BTreeSet;

use super::create::rotation;
use super::error::PlacementError;
use super::leaders::{choose_leaders, LeaderRequest};
use super::order::order_replicas;
use super::replicas::{choose_replicas, ReplicaRequest, Surroundings};
use super::topology::Topology;
use super::types::{Assignment, BrokerId, BrokerInfo, Plan, Reassignment, TopicPartition};

/// The most balanced assignment of `current` over `brokers`, reached with the fewest replica
/// moves. Use it after brokers were added, or to even out a skewed cluster. `brokers` must list
/// every broker that holds a replica (a missing one is an [`PlacementError::UnknownBroker`]
/// error, not a reason to move data); each partition keeps its replication factor.
pub fn rebalance_plan(
    brokers: &[BrokerInfo],
    current: &Assignment,
) -> Result<Plan, PlacementError> {
    plan(brokers, current, &BTreeSet::new())
}

/// Moves every replica off `draining` onto the other brokers, with the fewest moves that leave
/// the remaining brokers as balanced as a rebalance would. Fails, naming the partitions, when
/// some partition has more replicas than there are brokers left.
pub fn drain_plan(
    brokers: &[BrokerInfo],
    current: &Assignment,
    draining: &[BrokerId],
) -> Result<Plan, PlacementError> {
    for &id in draining {
        if !brokers.iter().any(|b| b.id == id) {
            return Err(PlacementError::UnknownDrainingBroker(id));
        }
    }
    plan(brokers, current, &draining.iter().copied().collect())
}

fn plan(
    brokers: &[BrokerInfo],
    current: &Assignment,
    draining: &BTreeSet<BrokerId>,
) -> Result<Plan, PlacementError> {
    // Checks duplicates in `brokers` before looking at replicas.
    let topology = Topology::new(brokers, draining)?;
    let known: BTreeSet<BrokerId> = brokers.iter().map(|b| b.id).collect();

    let mut requests = Vec::new();
    let mut too_wide = Vec::new();
    for (topic, partition, replicas) in current.partitions() {
        let tp = TopicPartition::new(topic, partition);
        if replicas.is_empty() {
            return Err(PlacementError::NoReplicas { partition: tp });
        }
        if let Some(&broker) = replicas.iter().find(|b| !known.contains(b)) {
            return Err(PlacementError::UnknownBroker {
                partition: tp,
                broker,
            });
        }
        let rf = replicas.len();
        if rf > topology.len() {
            too_wide.push((tp.clone(), rf));
        }
        let mut held: Vec<usize> = replicas
            .iter()
            .filter_map(|&id| topology.index_of(id))
            .collect();
        held.sort_unstable();
        held.dedup();
        let leader = topology.index_of(replicas[0]);
        requests.push(ReplicaRequest {
            partition: tp,
            replication_factor: rf,
            current: held,
            leader,
        });
    }
    if !too_wide.is_empty() {
        return Err(PlacementError::NotEnoughBrokers {
            available: topology.len(),
            partitions: too_wide,
        });
    }

    let around = Surroundings {
        base_replicas: vec![0; topology.len()],
        base_leaders: None,
        // Last tie-break: where replicas must go somewhere new, each partition prefers its own
        // rotation of the brokers, so new brokers do not all end up paired on the same partitions
        // (which would concentrate a later failure or drain on a few of them).
        preference: Some(
            (0..requests.len())
                .map(|i| rotation(topology.len(), i))
                .collect(),
        ),
    };
    let sets = choose_replicas(&topology, &requests, &around)?;
    let leader_requests: Vec<LeaderRequest> = sets
        .iter()
        .zip(&requests)
        .map(|(set, request)| LeaderRequest {
            replicas: set.clone(),
            leader: request.leader.filter(|l| set.contains(l)),
        })
        .collect();
    let mut replica_totals = vec![0; topology.len()];
    for &b in sets.iter().flatten() {
        replica_totals[b] += 1;
    }
    let leaders = choose_leaders(
        topology.len(),
        &leader_requests,
        &vec![0; topology.len()],
        &replica_totals,
    )?;

    let mut target = current.clone();
    let mut reassignments = Vec::new();
    for ((request, set), leader) in requests.iter().zip(&sets).zip(leaders) {
        let TopicPartition { topic, partition } = &request.partition;
        let slot = &mut target
            .topics
            .get_mut(topic)
            .expect("planned partitions come from `current`")
            .partitions[*partition as usize];
        let ids: Vec<BrokerId> = set.iter().map(|&b| topology.ids[b]).collect();
        let list = order_replicas(slot, &ids, topology.ids[leader]);
        if list != *slot {
            reassignments.push(Reassignment {
                topic: topic.clone(),
                partition: *partition,
                current: slot.clone(),
                target: list.clone(),
            });
            *slot = list;
        }
    }
    Ok(Plan {
        target,
        reassignments,
    })
}
