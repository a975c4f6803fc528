//! Property tests of placement on random clusters (1–12 brokers, 0–4 racks, some brokers
//! without a rack) and random topics (1–64 partitions, RF 1–min(brokers, 4)).
//!
//! What is proved, per operation:
//! - create / add partitions: every hard rule holds, the new partitions are as balanced as they
//!   can be without touching the rest (`validate_scoped`), results are deterministic; without
//!   racks, replica and preferred-leader counts are within one across the whole cluster.
//! - rebalance: the target keeps every rule and is as balanced as the rules allow (`validate`);
//!   without racks, from any valid assignment, the number of moves equals the lower bound of
//!   `support::move_lower_bound` (so it is the minimum); with racks, no single move can be
//!   undone without breaking a rule or the balance; planning again moves nothing.
//! - drain: no replica is left on a draining broker, the rest is as a rebalance over the
//!   remaining brokers would leave it, every move is needed, planning again moves nothing; an
//!   impossible drain fails naming exactly the partitions that do not fit.
//!
//! `placement_exact.rs` checks exact minimality (with racks and drains) by brute force.

mod support;

use proptest::prelude::*;
use support::*;
use weir_api::placement::{
    add_partitions, assign_new_topic, drain_plan, rebalance_plan, validate, validate_scoped,
    Assignment, BalanceScope, BrokerInfo, PlacementError, TopicAssignment, TopicPartition,
};

fn build(brokers: &[BrokerInfo], topics: &[(i32, usize)]) -> Assignment {
    let mut assignment = Assignment::new();
    for (i, &(partitions, seed)) in topics.iter().enumerate() {
        let rf = replication_factor(seed, brokers.len());
        let topic = assign_new_topic(brokers, &assignment, partitions, rf).unwrap();
        assignment.topics.insert(format!("t{i}"), topic);
    }
    assignment
}

/// Replica lists drawn at random (distinct brokers, no other rule): skewed, rack-breaking.
fn random_assignment(brokers: &[BrokerInfo], shapes: &[(i32, usize)], picks: &[u64]) -> Assignment {
    let mut assignment = Assignment::new();
    let mut pick = picks.iter().cycle();
    for (i, &(partitions, seed)) in shapes.iter().enumerate() {
        let rf = replication_factor(seed, brokers.len()) as usize;
        let lists = (0..partitions)
            .map(|_| {
                let mut pool: Vec<i32> = brokers.iter().map(|b| b.id).collect();
                (0..rf)
                    .map(|_| pool.remove((*pick.next().unwrap() as usize) % pool.len()))
                    .collect()
            })
            .collect();
        assignment
            .topics
            .insert(format!("t{i}"), TopicAssignment::new(lists));
    }
    assignment
}

fn check_rebalance(brokers: &[BrokerInfo], current: &Assignment) -> Result<(), TestCaseError> {
    let plan = rebalance_plan(brokers, current).unwrap();
    prop_assert_eq!(validate(brokers, &plan.target), vec![]);
    same_shape(current, &plan).map_err(TestCaseError::fail)?;
    let hard_before = validate(brokers, current).iter().any(|v| !v.is_imbalance());
    if !has_racks(brokers) && !hard_before {
        prop_assert_eq!(plan.move_count(), move_lower_bound(brokers, current));
    }
    if let Some(undoable) = unneeded_move(brokers, &plan) {
        return Err(TestCaseError::fail(undoable));
    }
    prop_assert!(rebalance_plan(brokers, &plan.target).unwrap().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn new_topics_keep_every_rule(brokers in cluster(), topics in topics()) {
        let mut assignment = Assignment::new();
        for (i, &(partitions, seed)) in topics.iter().enumerate() {
            let rf = replication_factor(seed, brokers.len());
            let topic = assign_new_topic(&brokers, &assignment, partitions, rf).unwrap();
            prop_assert_eq!(&topic, &assign_new_topic(&brokers, &assignment, partitions, rf).unwrap());
            prop_assert_eq!(topic.partitions.len(), partitions as usize);
            prop_assert!(topic.partitions.iter().all(|r| r.len() == rf as usize));
            let name = format!("t{i}");
            assignment.topics.insert(name.clone(), topic);
            let scope = BalanceScope::NewPartitions { topic: &name, first: 0 };
            prop_assert_eq!(validate_scoped(&brokers, &assignment, scope), vec![]);
            if !has_racks(&brokers) {
                prop_assert!(spread(&loads(&brokers, &assignment)) <= 1);
                prop_assert!(spread(&leader_loads(&brokers, &assignment)) <= 1);
                prop_assert_eq!(validate(&brokers, &assignment), vec![]);
            }
        }
    }

    #[test]
    fn added_partitions_keep_every_rule(
        brokers in cluster(),
        topics in topics(),
        extra in 1i32..=64,
    ) {
        let assignment = build(&brokers, &topics);
        let before = assignment.topic("t0").unwrap().clone();
        let count = before.partition_count();
        let grown = add_partitions(&brokers, &assignment, "t0", count + extra).unwrap();
        prop_assert_eq!(&grown.partitions[..count as usize], &before.partitions[..]);
        prop_assert_eq!(grown.partition_count(), count + extra);
        let rf = before.partitions[0].len();
        prop_assert!(grown.partitions.iter().all(|r| r.len() == rf));
        let all = assignment.clone().with_topic("t0", grown);
        let scope = BalanceScope::NewPartitions { topic: "t0", first: count };
        prop_assert_eq!(validate_scoped(&brokers, &all, scope), vec![]);
    }

    #[test]
    fn rebalance_after_brokers_join(
        brokers in cluster(),
        topics in topics(),
        original_seed in any::<usize>(),
    ) {
        // Topics were created on the first brokers only; the rest joined since.
        let original = &brokers[..1 + original_seed % brokers.len()];
        let current = build(original, &topics);
        check_rebalance(&brokers, &current)?;
    }

    #[test]
    fn rebalance_of_arbitrary_assignments(
        brokers in cluster(),
        shapes in topics(),
        picks in proptest::collection::vec(any::<u64>(), 1..64),
    ) {
        let current = random_assignment(&brokers, &shapes, &picks);
        check_rebalance(&brokers, &current)?;
    }

    #[test]
    fn drain_empties_the_draining_brokers(
        brokers in cluster(),
        topics in topics(),
        drain_mask in any::<u16>(),
    ) {
        let current = build(&brokers, &topics);
        let draining: Vec<i32> = brokers
            .iter()
            .enumerate()
            .filter(|(i, _)| drain_mask & (1 << i) != 0)
            .map(|(_, b)| b.id)
            .collect();
        let remaining: Vec<BrokerInfo> = brokers
            .iter()
            .filter(|b| !draining.contains(&b.id))
            .cloned()
            .collect();
        let result = drain_plan(&brokers, &current, &draining);
        let too_wide: Vec<(TopicPartition, usize)> = current
            .partitions()
            .filter(|(_, _, r)| r.len() > remaining.len())
            .map(|(t, p, r)| (TopicPartition::new(t, p), r.len()))
            .collect();
        if remaining.is_empty() {
            prop_assert_eq!(result, Err(PlacementError::NoBrokers));
            return Ok(());
        }
        if !too_wide.is_empty() {
            prop_assert_eq!(
                result,
                Err(PlacementError::NotEnoughBrokers { available: remaining.len(), partitions: too_wide })
            );
            return Ok(());
        }
        let plan = result.unwrap();
        prop_assert!(plan.target.partitions().all(|(_, _, r)| r.iter().all(|b| !draining.contains(b))));
        prop_assert_eq!(validate(&remaining, &plan.target), vec![]);
        same_shape(&current, &plan).map_err(TestCaseError::fail)?;
        if let Some(undoable) = unneeded_move(&remaining, &plan) {
            return Err(TestCaseError::fail(undoable));
        }
        prop_assert!(drain_plan(&brokers, &plan.target, &draining).unwrap().is_empty());
        prop_assert!(rebalance_plan(&remaining, &plan.target).unwrap().is_empty());
    }
}
