//! Scenarios of the share groups' assignor.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::assignor::assign_shared;
use crate::group::assignor::{Assignment, MemberSubscription};

fn subscribed(topics: &[Uuid]) -> MemberSubscription {
    MemberSubscription {
        topics: topics.iter().copied().collect(),
        current: Assignment::new(),
    }
}

fn partitions_of(assignment: &Assignment, topic: Uuid) -> Vec<i32> {
    assignment
        .get(&topic)
        .map(|p| p.iter().copied().collect())
        .unwrap_or_default()
}

#[test]
fn three_members_on_one_partition_all_hold_it() {
    let topic = Uuid::from_u128(1);
    let members: BTreeMap<String, MemberSubscription> = ["a", "b", "c"]
        .iter()
        .map(|id| (id.to_string(), subscribed(&[topic])))
        .collect();
    let out = assign_shared(&members, &BTreeMap::from([(topic, 1)]));
    for id in ["a", "b", "c"] {
        assert_eq!(partitions_of(&out[id], topic), vec![0], "member {id}");
    }
}

#[test]
fn more_partitions_than_members_assigns_each_partition_once() {
    let topic = Uuid::from_u128(1);
    let members: BTreeMap<String, MemberSubscription> = ["a", "b"]
        .iter()
        .map(|id| (id.to_string(), subscribed(&[topic])))
        .collect();
    let out = assign_shared(&members, &BTreeMap::from([(topic, 4)]));
    let mut all: Vec<i32> = out.values().flat_map(|a| partitions_of(a, topic)).collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3]);
    assert!(out.values().all(|a| partitions_of(a, topic).len() == 2));
}

#[test]
fn extra_members_spread_over_the_partitions() {
    let topic = Uuid::from_u128(1);
    let members: BTreeMap<String, MemberSubscription> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|id| (id.to_string(), subscribed(&[topic])))
        .collect();
    let out = assign_shared(&members, &BTreeMap::from([(topic, 2)]));
    let mut holders: BTreeMap<i32, usize> = BTreeMap::new();
    for a in out.values() {
        assert_eq!(partitions_of(a, topic).len(), 1);
        for p in partitions_of(a, topic) {
            *holders.entry(p).or_default() += 1;
        }
    }
    let counts: BTreeSet<usize> = holders.values().copied().collect();
    assert_eq!(counts, BTreeSet::from([2, 3]));
}

#[test]
fn members_of_other_topics_get_nothing_of_this_one() {
    let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let members = BTreeMap::from([
        ("a".to_string(), subscribed(&[t1])),
        ("b".to_string(), subscribed(&[t2])),
        ("c".to_string(), subscribed(&[])),
    ]);
    let out = assign_shared(&members, &BTreeMap::from([(t1, 1), (t2, 1)]));
    assert_eq!(partitions_of(&out["a"], t1), vec![0]);
    assert_eq!(partitions_of(&out["b"], t2), vec![0]);
    assert!(!out["a"].contains_key(&t2));
    assert!(out.get("c").is_none_or(|a| a.is_empty()));
}
