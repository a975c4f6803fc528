//! Shared by the placement property tests: random clusters and topics, and checks written
//! independently of the planner (they recompute loads and bounds from the assignment itself).

use std::collections::BTreeSet;

use proptest::prelude::*;
use weir_api::placement::{validate, Assignment, BrokerInfo, Plan};

/// 1–12 brokers with distinct random ids, spread over 0–4 racks; with racks, about one broker
/// in `racks + 1` has none.
pub fn cluster() -> impl Strategy<Value = Vec<BrokerInfo>> {
    (1usize..=12, 0usize..=4).prop_flat_map(|(n, racks)| {
        (
            proptest::collection::btree_set(0i32..1000, n),
            proptest::collection::vec(0..=racks, n),
        )
            .prop_map(move |(ids, picks)| {
                ids.into_iter()
                    .zip(picks)
                    .map(|(id, pick)| {
                        let rack = (pick < racks).then(|| format!("r{pick}"));
                        BrokerInfo { id, rack }
                    })
                    .collect()
            })
    })
}

/// 1–3 topics as (partitions 1–64, replication-factor seed); see [`replication_factor`].
pub fn topics() -> impl Strategy<Value = Vec<(i32, usize)>> {
    proptest::collection::vec((1i32..=64, 0usize..4), 1..=3)
}

/// A replication factor from 1 to min(brokers, 4).
pub fn replication_factor(seed: usize, brokers: usize) -> i16 {
    (1 + seed % brokers.min(4)) as i16
}

pub fn has_racks(brokers: &[BrokerInfo]) -> bool {
    brokers.iter().any(|b| b.rack.is_some())
}

/// Replica count of each listed broker, in list order (zero for brokers holding none).
pub fn loads(brokers: &[BrokerInfo], assignment: &Assignment) -> Vec<usize> {
    let counts = assignment.replica_counts();
    brokers
        .iter()
        .map(|b| counts.get(&b.id).copied().unwrap_or(0))
        .collect()
}

/// Preferred-leader count of each listed broker, in list order.
pub fn leader_loads(brokers: &[BrokerInfo], assignment: &Assignment) -> Vec<usize> {
    let counts = assignment.leader_counts();
    brokers
        .iter()
        .map(|b| counts.get(&b.id).copied().unwrap_or(0))
        .collect()
}

pub fn spread(values: &[usize]) -> usize {
    values.iter().max().unwrap_or(&0) - values.iter().min().unwrap_or(&0)
}

pub fn sum_of_squares(values: &[usize]) -> usize {
    values.iter().map(|v| v * v).sum()
}

/// The fewest moves that can make replica counts within one, ignoring every other rule: the
/// final counts must be `q` or `q + 1` (`total = q * n + r`, `r` brokers at `q + 1`), each move
/// lowers one broker by one, so at least the excess above those targets must move, giving the
/// `q + 1` slots to the currently fullest brokers.
pub fn move_lower_bound(brokers: &[BrokerInfo], assignment: &Assignment) -> usize {
    let mut loads = loads(brokers, assignment);
    loads.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = loads.iter().sum();
    let (q, r) = (total / loads.len(), total % loads.len());
    loads
        .iter()
        .enumerate()
        .map(|(i, &load)| load.saturating_sub(if i < r { q + 1 } else { q }))
        .sum()
}

/// Checks that every replica move in `plan` is needed: undoing any single one (putting back the
/// broker it left in place of the one it went to) either breaks a hard rule on `eligible` or
/// leaves replica counts less balanced. Returns the first move that could be undone for free.
pub fn unneeded_move(eligible: &[BrokerInfo], plan: &Plan) -> Option<String> {
    let ids: BTreeSet<i32> = eligible.iter().map(|b| b.id).collect();
    let target_cost = sum_of_squares(&loads(eligible, &plan.target));
    for r in &plan.reassignments {
        for from in r.removing() {
            if !ids.contains(&from) {
                continue; // Leaving a draining broker is always needed.
            }
            for to in r.adding() {
                let mut undone = plan.target.clone();
                let list =
                    &mut undone.topics.get_mut(&r.topic).unwrap().partitions[r.partition as usize];
                let slot = list.iter().position(|&b| b == to).unwrap();
                list[slot] = from;
                let hard = validate(eligible, &undone)
                    .into_iter()
                    .any(|v| !v.is_imbalance());
                if !hard && sum_of_squares(&loads(eligible, &undone)) <= target_cost {
                    return Some(format!(
                        "{}-{}: moving {from} -> {to} can be undone at no cost",
                        r.topic, r.partition
                    ));
                }
            }
        }
    }
    None
}

/// Checks that `target` has the same topics, partition counts and replication factors as
/// `current`, and that the plan's reassignments are exactly the partitions that differ.
pub fn same_shape(current: &Assignment, plan: &Plan) -> Result<(), String> {
    let target = &plan.target;
    if current.topics.keys().ne(target.topics.keys()) {
        return Err("topic sets differ".into());
    }
    let mut changed = 0;
    for ((topic, partition, before), (_, _, after)) in current.partitions().zip(target.partitions())
    {
        if before.len() != after.len() {
            return Err(format!("{topic}-{partition} changed replication factor"));
        }
        if before != after {
            changed += 1;
            let listed = plan.reassignments.iter().any(|r| {
                r.topic == topic
                    && r.partition == partition
                    && r.current == before
                    && r.target == after
            });
            if !listed {
                return Err(format!(
                    "{topic}-{partition} changed but is not in the plan"
                ));
            }
        }
    }
    if changed != plan.reassignments.len() {
        return Err("the plan lists partitions that do not change".into());
    }
    Ok(())
}
