//! Exactness by brute force on small clusters (up to 5 brokers, 0–2 racks, up to 4 partitions of
//! RF 1–3, arbitrary current lists, any brokers draining): every possible target is enumerated
//! and ranked by the planner's stated objective, written here from scratch:
//!
//! 1. sum of squared replica counts (lower = more balanced);
//! 2. replica moves;
//! 3. partitions whose current preferred leader stays a replica (more is better);
//! 4. for the chosen replica sets, sum of squared leader counts;
//! 5. preferred-leader changes.
//!
//! The plan must reach the optimum of each. The same enumeration checks the validator's
//! exchange test: it reports an imbalance exactly when a better assignment exists.

// The exact tests use only the checks of the shared helpers, not the random generators.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use support::sum_of_squares;
use weir_api::placement::{
    drain_plan, validate, Assignment, BrokerInfo, PlacementError, TopicAssignment, Violation,
};

#[derive(Debug, Clone)]
struct Case {
    brokers: Vec<BrokerInfo>,
    current: Vec<Vec<i32>>,
    draining: Vec<i32>,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=5, 0usize..=2).prop_flat_map(|(n, racks)| {
        (
            proptest::collection::vec(0..=racks, n),
            proptest::collection::vec(
                (0usize..3, proptest::collection::vec(any::<u8>(), 3)),
                1..=4,
            ),
            any::<u8>(),
        )
            .prop_map(move |(rack_picks, partitions, drain_mask)| {
                let brokers: Vec<BrokerInfo> = rack_picks
                    .iter()
                    .enumerate()
                    .map(|(i, &pick)| BrokerInfo {
                        id: i as i32 + 1,
                        rack: (pick < racks).then(|| format!("r{pick}")),
                    })
                    .collect();
                let current = partitions
                    .iter()
                    .map(|(seed, picks)| {
                        let rf = 1 + seed % n.min(3);
                        let mut pool: Vec<i32> = (1..=n as i32).collect();
                        (0..rf)
                            .map(|k| pool.remove(picks[k] as usize % pool.len()))
                            .collect()
                    })
                    .collect();
                let draining = (1..=n as i32)
                    .filter(|id| drain_mask & (1 << id) != 0)
                    .collect();
                Case {
                    brokers,
                    current,
                    draining,
                }
            })
    })
}

/// The rack cap by its definition: the least `m` with `sum over domains of min(size, m) >= rf`.
fn rack_cap(brokers: &[BrokerInfo], rf: usize) -> usize {
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for b in brokers {
        let domain = b.rack.clone().unwrap_or_else(|| format!("broker {}", b.id));
        *sizes.entry(domain).or_default() += 1;
    }
    (1..=rf)
        .find(|&m| sizes.values().map(|&s| s.min(m)).sum::<usize>() >= rf)
        .unwrap_or(rf)
}

fn keeps_rack_rule(brokers: &[BrokerInfo], set: &[i32]) -> bool {
    let cap = rack_cap(brokers, set.len());
    let mut per_domain: BTreeMap<String, usize> = BTreeMap::new();
    for id in set {
        let b = brokers.iter().find(|b| b.id == *id).unwrap();
        let domain = b.rack.clone().unwrap_or_else(|| format!("broker {}", b.id));
        *per_domain.entry(domain).or_default() += 1;
    }
    per_domain.values().all(|&c| c <= cap)
}

/// Every replica set of size `rf` on `brokers` that keeps the rack rule.
fn candidate_sets(brokers: &[BrokerInfo], rf: usize) -> Vec<Vec<i32>> {
    (0u32..1 << brokers.len())
        .filter(|mask| mask.count_ones() as usize == rf)
        .map(|mask| {
            (0..brokers.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| brokers[i].id)
                .collect::<Vec<i32>>()
        })
        .filter(|set| keeps_rack_rule(brokers, set))
        .collect()
}

/// Calls `visit` with every combination of one option per partition.
fn for_each_choice<T>(options: &[Vec<T>], visit: &mut impl FnMut(&[&T])) {
    fn walk<'a, T>(options: &'a [Vec<T>], chosen: &mut Vec<&'a T>, visit: &mut impl FnMut(&[&T])) {
        match options.split_first() {
            None => visit(chosen),
            Some((first, rest)) => {
                for option in first {
                    chosen.push(option);
                    walk(rest, chosen, visit);
                    chosen.pop();
                }
            }
        }
    }
    walk(options, &mut Vec::new(), visit);
}

fn counts(brokers: &[BrokerInfo], sets: &[&Vec<i32>]) -> Vec<usize> {
    brokers
        .iter()
        .map(|b| sets.iter().filter(|s| s.contains(&b.id)).count())
        .collect()
}

fn leader_counts(brokers: &[BrokerInfo], leaders: &[i32]) -> Vec<usize> {
    brokers
        .iter()
        .map(|b| leaders.iter().filter(|&&l| l == b.id).count())
        .collect()
}

/// (sum of squares, moves, -kept leaders) of the best targets from `current` on `eligible`.
fn best_replica_objective(eligible: &[BrokerInfo], current: &[Vec<i32>]) -> (usize, usize, isize) {
    let options: Vec<Vec<Vec<i32>>> = current
        .iter()
        .map(|c| candidate_sets(eligible, c.len()))
        .collect();
    let mut best = (usize::MAX, usize::MAX, isize::MAX);
    for_each_choice(&options, &mut |sets| {
        let moves: usize = sets
            .iter()
            .zip(current)
            .map(|(s, c)| s.iter().filter(|b| !c.contains(b)).count())
            .sum();
        let kept = sets
            .iter()
            .zip(current)
            .filter(|(s, c)| s.contains(&c[0]))
            .count();
        let score = (
            sum_of_squares(&counts(eligible, sets)),
            moves,
            -(kept as isize),
        );
        best = best.min(score);
    });
    best
}

/// (sum of squared leader counts, leader changes) of the best leader choice within `sets`.
fn best_leader_objective(
    eligible: &[BrokerInfo],
    sets: &[Vec<i32>],
    previous: &[i32],
) -> (usize, usize) {
    let mut best = (usize::MAX, usize::MAX);
    for_each_choice(sets, &mut |leaders| {
        let leaders: Vec<i32> = leaders.iter().map(|&&l| l).collect();
        let changes = leaders.iter().zip(previous).filter(|(l, p)| l != p).count();
        best = best.min((sum_of_squares(&leader_counts(eligible, &leaders)), changes));
    });
    best
}

fn assignment(lists: &[Vec<i32>]) -> Assignment {
    Assignment::new().with_topic("t", TopicAssignment::new(lists.to_vec()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_are_optimal(case in case()) {
        let Case { brokers, current, draining } = case;
        let eligible: Vec<BrokerInfo> =
            brokers.iter().filter(|b| !draining.contains(&b.id)).cloned().collect();
        let result = drain_plan(&brokers, &assignment(&current), &draining);
        if eligible.is_empty() {
            prop_assert_eq!(result, Err(PlacementError::NoBrokers));
            return Ok(());
        }
        if current.iter().any(|c| c.len() > eligible.len()) {
            let is_not_enough = matches!(result, Err(PlacementError::NotEnoughBrokers { .. }));
            prop_assert!(is_not_enough);
            return Ok(());
        }
        let plan = result.unwrap();
        let target = &plan.target.topic("t").unwrap().partitions;

        let target_refs: Vec<&Vec<i32>> = target.iter().collect();
        let kept = target.iter().zip(&current).filter(|(s, c)| s.contains(&c[0])).count();
        let reached = (
            sum_of_squares(&counts(&eligible, &target_refs)),
            plan.move_count(),
            -(kept as isize),
        );
        prop_assert_eq!(reached, best_replica_objective(&eligible, &current));

        let leaders: Vec<i32> = target.iter().map(|s| s[0]).collect();
        let previous: Vec<i32> = current.iter().map(|c| c[0]).collect();
        let changes = leaders.iter().zip(&previous).filter(|(l, p)| l != p).count();
        prop_assert_eq!(
            (sum_of_squares(&leader_counts(&eligible, &leaders)), changes),
            best_leader_objective(&eligible, target, &previous)
        );
        prop_assert_eq!(validate(&eligible, &plan.target), vec![]);
    }

    #[test]
    fn validator_flags_imbalance_exactly_when_a_better_assignment_exists(case in case()) {
        let Case { brokers, current, .. } = case;
        let violations = validate(&brokers, &assignment(&current));
        if violations.iter().any(|v| !v.is_imbalance()) {
            return Ok(()); // Balance is judged only once the hard rules hold.
        }
        let current_refs: Vec<&Vec<i32>> = current.iter().collect();
        let replica_cost = sum_of_squares(&counts(&brokers, &current_refs));
        let best_replica = best_replica_objective(&brokers, &current).0;
        let flagged = violations.iter().any(|v| matches!(v, Violation::ReplicasImbalanced { .. }));
        prop_assert_eq!(flagged, replica_cost > best_replica);

        let leaders: Vec<i32> = current.iter().map(|c| c[0]).collect();
        let leader_cost = sum_of_squares(&leader_counts(&brokers, &leaders));
        let best_leader = best_leader_objective(&brokers, &current, &leaders).0;
        let flagged = violations.iter().any(|v| matches!(v, Violation::LeadersImbalanced { .. }));
        prop_assert_eq!(flagged, leader_cost > best_leader);
    }
}
