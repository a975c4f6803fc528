//! Named placement scenarios: the cases an operator meets (scale 3 -> 5, three racks, draining
//! one of four, impossible requests), each checked against the rules and exact expected counts.

use weir_api::placement::{
    add_partitions, assign_new_topic, drain_plan, rebalance_plan, validate, Assignment, BrokerInfo,
    PlacementError, TopicAssignment, TopicPartition, Violation,
};

fn brokers(ids: &[i32]) -> Vec<BrokerInfo> {
    ids.iter().map(|&id| BrokerInfo::new(id, None)).collect()
}

fn racked(spec: &[(i32, &str)]) -> Vec<BrokerInfo> {
    spec.iter()
        .map(|&(id, rack)| BrokerInfo::new(id, Some(rack)))
        .collect()
}

fn cluster_with(brokers: &[BrokerInfo], topics: &[(&str, i32, i16)]) -> Assignment {
    let mut assignment = Assignment::new();
    for &(name, partitions, rf) in topics {
        let topic = assign_new_topic(brokers, &assignment, partitions, rf).unwrap();
        assignment.topics.insert(name.to_owned(), topic);
    }
    assignment
}

fn count(assignment: &Assignment, broker: i32) -> (usize, usize) {
    (
        assignment
            .replica_counts()
            .get(&broker)
            .copied()
            .unwrap_or(0),
        assignment
            .leader_counts()
            .get(&broker)
            .copied()
            .unwrap_or(0),
    )
}

#[test]
fn new_topic_on_three_brokers_is_even_in_replicas_and_leaders() {
    let b = brokers(&[1, 2, 3]);
    let a = cluster_with(&b, &[("orders", 6, 3)]);
    for id in [1, 2, 3] {
        assert_eq!(count(&a, id), (6, 2), "broker {id}");
    }
    assert_eq!(validate(&b, &a), vec![]);
    // Deterministic: the same input gives the same lists.
    assert_eq!(
        a.topic("orders").unwrap(),
        &assign_new_topic(&b, &Assignment::new(), 6, 3).unwrap()
    );
}

#[test]
fn new_topic_fills_the_lightest_brokers_first() {
    let b = brokers(&[1, 2, 3, 4]);
    // Topic "old" sits on brokers 1 and 2 only (as if 3 and 4 joined later).
    let old = Assignment::new().with_topic(
        "old",
        TopicAssignment::new(vec![vec![1, 2], vec![2, 1], vec![1, 2], vec![2, 1]]),
    );
    let new = assign_new_topic(&b, &old, 4, 2).unwrap();
    let all = old.clone().with_topic("new", new);
    // 16 replicas on 4 brokers: 4 each, all 8 new ones on brokers 3 and 4.
    for id in [1, 2, 3, 4] {
        assert_eq!(count(&all, id).0, 4, "broker {id}");
    }
    assert_eq!(validate(&b, &all), vec![]);
}

#[test]
fn three_racks_get_one_replica_each() {
    let b = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
    let a = cluster_with(&b, &[("t", 12, 3)]);
    for replicas in &a.topic("t").unwrap().partitions {
        let mut racks: Vec<i32> = replicas.iter().map(|id| (id - 1) / 2).collect();
        racks.sort();
        assert_eq!(racks, vec![0, 1, 2], "replicas {replicas:?}");
    }
    for id in 1..=6 {
        assert_eq!(count(&a, id), (6, 2), "broker {id}");
    }
    assert_eq!(validate(&b, &a), vec![]);
}

#[test]
fn lone_broker_in_its_rack_carries_every_partition_and_that_is_not_an_imbalance() {
    // Rack a has one broker, rack b three: RF 2 allows one replica per rack, so broker 1 holds a
    // replica of every partition. Within-one is impossible; the validator must not flag it.
    let b = racked(&[(1, "a"), (2, "b"), (3, "b"), (4, "b")]);
    let a = cluster_with(&b, &[("t", 6, 2)]);
    assert_eq!(count(&a, 1).0, 6);
    for id in [2, 3, 4] {
        assert_eq!(count(&a, id).0, 2, "broker {id}");
    }
    assert_eq!(validate(&b, &a), vec![]);
    // The same load on brokers without racks is an imbalance, and says so.
    let flat = brokers(&[1, 2, 3, 4]);
    assert!(matches!(
        validate(&flat, &a).as_slice(),
        [
            Violation::ReplicasImbalanced {
                from: 1,
                from_replicas: 6,
                to_replicas: 2,
                ..
            },
            ..
        ]
    ));
}

#[test]
fn rf3_on_two_brokers_is_an_error() {
    let err = assign_new_topic(&brokers(&[1, 2]), &Assignment::new(), 3, 3).unwrap_err();
    assert_eq!(
        err,
        PlacementError::ReplicationFactorTooLarge {
            replication_factor: 3,
            available: 2
        }
    );
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let b = brokers(&[1, 2, 3]);
    let empty = Assignment::new();
    assert_eq!(
        assign_new_topic(&b, &empty, 0, 1),
        Err(PlacementError::InvalidPartitionCount(0))
    );
    assert_eq!(
        assign_new_topic(&b, &empty, 3, 0),
        Err(PlacementError::InvalidReplicationFactor(0))
    );
    assert_eq!(
        assign_new_topic(&[], &empty, 3, 1),
        Err(PlacementError::NoBrokers)
    );
    assert_eq!(
        assign_new_topic(&brokers(&[1, 1]), &empty, 3, 1),
        Err(PlacementError::DuplicateBroker(1))
    );
    assert_eq!(
        add_partitions(&b, &empty, "missing", 4),
        Err(PlacementError::UnknownTopic("missing".into()))
    );
    let skewed = Assignment::new().with_topic("t", TopicAssignment::new(vec![vec![1, 9]]));
    assert_eq!(
        rebalance_plan(&b, &skewed),
        Err(PlacementError::UnknownBroker {
            partition: TopicPartition::new("t", 0),
            broker: 9
        })
    );
    assert_eq!(
        drain_plan(&b, &cluster_with(&b, &[("t", 1, 1)]), &[7]),
        Err(PlacementError::UnknownDrainingBroker(7))
    );
}

#[test]
fn add_partitions_keeps_existing_ones_and_balances_the_new() {
    let b = brokers(&[1, 2, 3]);
    let a = cluster_with(&b, &[("t", 2, 2)]);
    let grown = add_partitions(&b, &a, "t", 5).unwrap();
    assert_eq!(
        &grown.partitions[..2],
        &a.topic("t").unwrap().partitions[..]
    );
    assert_eq!(grown.partitions.len(), 5);
    let all = a.clone().with_topic("t", grown);
    // 10 replicas on 3 brokers: 4, 3, 3.
    let counts: Vec<usize> = all.replica_counts().values().copied().collect();
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
    assert_eq!(validate(&b, &all), vec![]);
    assert_eq!(
        add_partitions(&b, &a, "t", 2),
        Err(PlacementError::PartitionCountNotIncreasing {
            topic: "t".into(),
            current: 2,
            requested: 2
        })
    );
}

#[test]
fn scale_from_three_to_five_brokers_moves_exactly_the_excess() {
    let three = brokers(&[1, 2, 3]);
    let a = cluster_with(&three, &[("orders", 10, 3)]);
    let five = brokers(&[1, 2, 3, 4, 5]);
    let plan = rebalance_plan(&five, &a).unwrap();
    // 30 replicas over 5 brokers is 6 each: brokers 1-3 each give 4 away, 12 moves in all.
    assert_eq!(plan.move_count(), 12);
    for id in 1..=5 {
        assert_eq!(count(&plan.target, id), (6, 2), "broker {id}");
    }
    assert_eq!(validate(&five, &plan.target), vec![]);
    // Leaders only change to give the new brokers their two each: four changes.
    assert_eq!(plan.leader_change_count(), 4);
    // Planning again from the target changes nothing.
    assert!(rebalance_plan(&five, &plan.target).unwrap().is_empty());
}

#[test]
fn adding_a_third_rack_moves_replicas_to_it() {
    // RF 3 on two racks allows two replicas in a rack; with a third rack the cap drops to one.
    let two_racks = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
    let a = cluster_with(&two_racks, &[("t", 4, 3)]);
    assert_eq!(validate(&two_racks, &a), vec![]);
    let three_racks = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
    assert!(validate(&three_racks, &a)
        .iter()
        .any(|v| matches!(v, Violation::RackConcentration { .. })));
    let plan = rebalance_plan(&three_racks, &a).unwrap();
    assert_eq!(validate(&three_racks, &plan.target), vec![]);
    // Each partition has two replicas in one rack and must move exactly one: four moves, and
    // they also fill brokers 5 and 6 to two each (12 replicas / 6 brokers).
    assert_eq!(plan.move_count(), 4);
}

#[test]
fn drain_one_of_four_brokers() {
    let b = brokers(&[1, 2, 3, 4]);
    let a = cluster_with(&b, &[("t", 12, 3)]);
    assert_eq!(count(&a, 4).0, 9);
    let plan = drain_plan(&b, &a, &[4]).unwrap();
    assert_eq!(plan.move_count(), 9);
    assert_eq!(count(&plan.target, 4), (0, 0));
    for id in [1, 2, 3] {
        assert_eq!(count(&plan.target, id), (12, 4), "broker {id}");
    }
    assert_eq!(validate(&brokers(&[1, 2, 3]), &plan.target), vec![]);
    assert!(plan.moves().iter().all(|m| m.from == 4));
}

#[test]
fn drain_that_would_break_replication_names_the_partitions() {
    let b = brokers(&[1, 2, 3]);
    let a = cluster_with(&b, &[("wide", 2, 3), ("narrow", 2, 2)]);
    let err = drain_plan(&b, &a, &[2]).unwrap_err();
    assert_eq!(
        err,
        PlacementError::NotEnoughBrokers {
            available: 2,
            partitions: vec![
                (TopicPartition::new("wide", 0), 3),
                (TopicPartition::new("wide", 1), 3)
            ]
        }
    );
    assert_eq!(
        err.to_string(),
        "2 partition(s) have more replicas than the 2 broker(s) left: wide-0 (RF 3), wide-1 (RF 3)"
    );
}

#[test]
fn successive_topics_keep_leaders_even_and_replica_sets_varied() {
    // Found by the property test: with nothing to break ties, the flow gave a 56-partition
    // topic only two replica sets ({0,2,24} and {1,3,4}), so leaderships could not be evened out
    // between the two groups and one broker's failure fell on the same two followers.
    let b = brokers(&[0, 1, 2, 3, 4, 24]);
    let a = cluster_with(&b, &[("t0", 4, 3), ("t1", 56, 3), ("t2", 32, 1)]);
    let leaders: Vec<usize> = a.leader_counts().values().copied().collect();
    assert!(
        leaders.iter().max().unwrap() - leaders.iter().min().unwrap() <= 1,
        "{leaders:?}"
    );
    let mut sets: Vec<Vec<i32>> = a.topic("t1").unwrap().partitions.clone();
    for set in &mut sets {
        set.sort();
    }
    sets.sort();
    sets.dedup();
    assert!(
        sets.len() >= 6,
        "only {} distinct replica sets: {sets:?}",
        sets.len()
    );
    assert_eq!(validate(&b, &a), vec![]);
}

#[test]
fn rf1_topic_after_rf4_topic_keeps_replicas_and_leaders_within_one() {
    // Found by the property test: an RF 1 replica is also a leadership, so the brokers holding an
    // extra replica of the first topic must also have led an extra partition of it, or the RF 1
    // topic cannot even out both counts at once.
    let b = brokers(&(0..12).collect::<Vec<_>>());
    let a = cluster_with(&b, &[("wide", 17, 4), ("narrow", 25, 1)]);
    let spread = |counts: Vec<usize>| counts.iter().max().unwrap() - counts.iter().min().unwrap();
    assert!(spread(a.replica_counts().values().copied().collect()) <= 1);
    assert!(spread(a.leader_counts().values().copied().collect()) <= 1);
    assert_eq!(a.leader_counts().len(), 12);
    assert_eq!(validate(&b, &a), vec![]);
}

#[test]
fn plan_moves_pair_the_slot_that_left_with_the_broker_that_came() {
    let current = Assignment::new().with_topic(
        "t",
        TopicAssignment::new(vec![vec![1, 2], vec![2, 1], vec![1, 2], vec![2, 1]]),
    );
    let plan = rebalance_plan(&brokers(&[1, 2, 3, 4]), &current).unwrap();
    assert_eq!(plan.move_count(), 4);
    for m in plan.moves() {
        let r = plan
            .reassignments
            .iter()
            .find(|r| r.partition == m.partition)
            .unwrap();
        assert!(r.current.contains(&m.from) && !r.target.contains(&m.from));
        assert!(r.target.contains(&m.to) && !r.current.contains(&m.to));
        assert!([3, 4].contains(&m.to));
    }
    // Four partitions on four brokers is one leadership each: brokers 3 and 4 take one each
    // from 1 and 2, and the other two partitions keep their leader.
    let leaders: Vec<usize> = plan.target.leader_counts().values().copied().collect();
    assert_eq!(leaders, vec![1, 1, 1, 1]);
    assert_eq!(plan.leader_change_count(), 2);
}

#[test]
fn after_scale_up_any_broker_drains_with_one_move_per_replica() {
    // A rebalance must not pair the new brokers on the same partitions: if it did, a broker
    // could not take the drained replicas of its partner and a later drain would need extra
    // moves. Without the rotation tie-break in rebalance, brokers 6 and 7 here each needed one.
    let four = brokers(&[0, 1, 2, 3]);
    let current = cluster_with(
        &four,
        &[("a", 64, 3), ("b", 64, 3), ("c", 64, 3), ("d", 64, 3)],
    );
    let eight = brokers(&[0, 1, 2, 3, 4, 5, 6, 7]);
    let target = rebalance_plan(&eight, &current).unwrap().target;
    for id in 0..8 {
        let held = count(&target, id).0;
        let plan = drain_plan(&eight, &target, &[id]).unwrap();
        assert_eq!(plan.move_count(), held, "draining broker {id}");
    }
}

#[test]
fn a_large_topic_is_placed_in_batches_and_stays_even() {
    let b = brokers(&(0..12).collect::<Vec<_>>());
    let a = cluster_with(&b, &[("big", 1000, 3)]);
    let spread = |counts: Vec<usize>| counts.iter().max().unwrap() - counts.iter().min().unwrap();
    assert!(spread(a.replica_counts().values().copied().collect()) <= 1);
    assert!(spread(a.leader_counts().values().copied().collect()) <= 1);
    assert_eq!(validate(&b, &a), vec![]);
    // Absurd requests are refused, not attempted.
    assert!(matches!(
        assign_new_topic(&b, &Assignment::new(), i32::MAX, 3),
        Err(PlacementError::TooLarge { .. })
    ));
}
