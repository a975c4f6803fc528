//! Server-side partition assignors of KIP-848 consumer groups (`group.consumer.assignors`):
//! given the members' subscriptions, the subscribed topics' partition counts and the current
//! target assignment, the next target assignment. Pure and deterministic (members and
//! partitions are visited in sorted order), so every coordinator computes the same result.
//!
//! - `uniform` (Kafka's default): balanced, every member within one partition of every other
//!   member subscribed to the same topics, and sticky: a partition stays with its current
//!   owner unless balance needs it elsewhere. Kafka's `UniformAssignor` has two builders
//!   (homogeneous and heterogeneous subscriptions); this one greedy-balances both cases, which
//!   gives the same counts for homogeneous groups and may move a few more partitions than
//!   Kafka's for heterogeneous ones.
//! - `range`: per topic, the members subscribed to it in member-id order each take a
//!   contiguous range, the first `partitions % members` one more, so members of co-partitioned
//!   topics get the same partition numbers. Sticky as Kafka's server-side range assignor: a
//!   member keeps the partitions of its current range when the number of members is unchanged,
//!   since the ranges are a function of the member ids.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions per topic id: an assignment of one member.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default)]
pub struct MemberSubscription {
    /// Ids of the subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's partitions in the current target assignment.
    pub current: Assignment,
}

/// A server-side assignor, by Kafka's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// `uniform`.
    Uniform,
    /// `range`.
    Range,
}

impl Assignor {
    /// Kafka's name of the assignor (`server_assignor`, `group.consumer.assignors`).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The assignor named `name` (Kafka's short names, or its class names).
    pub fn parse(name: &str) -> Option<Assignor> {
        match name.trim() {
            "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
                Some(Assignor::Uniform)
            }
            "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => {
                Some(Assignor::Range)
            }
            _ => None,
        }
    }

    /// The next target assignment: one entry per member (empty when it gets nothing).
    /// `partitions` holds the partition count of every topic a member subscribes to.
    pub fn assign(
        self,
        members: &BTreeMap<String, MemberSubscription>,
        partitions: &BTreeMap<Uuid, i32>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => uniform(members, partitions),
            Assignor::Range => range(members, partitions),
        }
    }
}

/// Sticky, balanced assignment; see the module docs.
fn uniform(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let ids: Vec<&str> = members.keys().map(String::as_str).collect();
    let eligible = |m: usize, topic: &Uuid| members[ids[m]].topics.contains(topic);
    // Owner (index into `ids`) of every partition to assign.
    let mut owner: BTreeMap<(Uuid, i32), Option<usize>> = BTreeMap::new();
    for (topic, &count) in partitions {
        if (0..ids.len()).any(|m| eligible(m, topic)) {
            for p in 0..count.max(0) {
                owner.insert((*topic, p), None);
            }
        }
    }
    let mut load = vec![0usize; ids.len()];
    // Stickiness: current owners keep what is still theirs to have.
    for (m, id) in ids.iter().enumerate() {
        for (topic, parts) in &members[*id].current {
            if !eligible(m, topic) {
                continue;
            }
            for p in parts {
                if let Some(slot @ None) = owner.get_mut(&(*topic, *p)) {
                    *slot = Some(m);
                    load[m] += 1;
                }
            }
        }
    }
    // New partitions go to the least loaded member that may have them.
    let unowned: Vec<(Uuid, i32)> = owner
        .iter()
        .filter(|(_, o)| o.is_none())
        .map(|(tp, _)| *tp)
        .collect();
    for tp in unowned {
        if let Some(m) = (0..ids.len())
            .filter(|&m| eligible(m, &tp.0))
            .min_by_key(|&m| (load[m], m))
        {
            owner.insert(tp, Some(m));
            load[m] += 1;
        }
    }
    // Balance: move a partition from a member to an eligible one holding at least two fewer,
    // until none can move. Every move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let mut by_load: Vec<usize> = (0..ids.len()).collect();
        by_load.sort_by_key(|&m| (std::cmp::Reverse(load[m]), m));
        'donors: for &from in &by_load {
            // The donor's partitions, last first, so that the lowest stay put.
            let held: Vec<(Uuid, i32)> = owner
                .iter()
                .rev()
                .filter(|(_, o)| **o == Some(from))
                .map(|(tp, _)| *tp)
                .collect();
            for tp in held {
                let to = (0..ids.len())
                    .filter(|&m| eligible(m, &tp.0) && load[m] + 1 < load[from])
                    .min_by_key(|&m| (load[m], m));
                if let Some(to) = to {
                    owner.insert(tp, Some(to));
                    load[from] -= 1;
                    load[to] += 1;
                    moved = true;
                    break 'donors;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = ids
        .iter()
        .map(|id| (id.to_string(), Assignment::new()))
        .collect();
    for ((topic, p), m) in owner {
        if let Some(m) = m {
            out.get_mut(ids[m])
                .map(|a| a.entry(topic).or_default().insert(p));
        }
    }
    out
}

/// Contiguous ranges per topic; see the module docs.
fn range(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in partitions {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.topics.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            if take > 0 {
                if let Some(a) = out.get_mut(id) {
                    a.insert(*topic, (next..next + take).collect());
                }
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn members(spec: &[(&str, &[u8])]) -> BTreeMap<String, MemberSubscription> {
        spec.iter()
            .map(|(id, topics)| {
                (
                    id.to_string(),
                    MemberSubscription {
                        topics: topics.iter().map(|t| topic(*t)).collect(),
                        current: Assignment::new(),
                    },
                )
            })
            .collect()
    }

    fn counts(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values()
            .map(|m| m.values().map(BTreeSet::len).sum())
            .collect()
    }

    fn every_partition_once(a: &BTreeMap<String, Assignment>, parts: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for m in a.values() {
            for (t, ps) in m {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t} {p} assigned twice");
                }
            }
        }
        let total: i32 = parts.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_is_balanced() {
        let parts = BTreeMap::from([(topic(1), 6), (topic(2), 1)]);
        let m = members(&[
            ("a", &[1, 2]),
            ("b", &[1, 2]),
            ("c", &[1, 2]),
            ("d", &[1, 2]),
        ]);
        let a = Assignor::Uniform.assign(&m, &parts);
        every_partition_once(&a, &parts);
        let c = counts(&a);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let parts = BTreeMap::from([(topic(1), 6)]);
        let mut m = members(&[("a", &[1]), ("b", &[1]), ("c", &[1])]);
        let first = Assignor::Uniform.assign(&m, &parts);
        assert_eq!(counts(&first), vec![2, 2, 2]);
        for (id, a) in &first {
            m.get_mut(id).unwrap().current = a.clone();
        }
        m.extend(members(&[("d", &[1])]));
        let second = Assignor::Uniform.assign(&m, &parts);
        every_partition_once(&second, &parts);
        assert_eq!(counts(&second).iter().sum::<usize>(), 6);
        assert!(counts(&second).iter().all(|&c| (1..=2).contains(&c)));
        // Only the partitions the new member takes moved.
        let moved: usize = ["a", "b", "c"]
            .iter()
            .map(|id| {
                first[*id][&topic(1)]
                    .difference(&second[*id][&topic(1)])
                    .count()
            })
            .sum();
        assert_eq!(moved, counts(&second)[3]);
        assert!(second["a"][&topic(1)].is_subset(&first["a"][&topic(1)]));
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let parts = BTreeMap::from([(topic(1), 4), (topic(2), 2)]);
        let m = members(&[("a", &[1]), ("b", &[1, 2]), ("c", &[2])]);
        let a = Assignor::Uniform.assign(&m, &parts);
        every_partition_once(&a, &parts);
        assert!(!a["a"].contains_key(&topic(2)));
        assert!(!a["c"].contains_key(&topic(1)));
        assert_eq!(counts(&a), vec![2, 2, 2]);
    }

    #[test]
    fn range_gives_contiguous_co_partitioned_ranges() {
        let parts = BTreeMap::from([(topic(1), 5), (topic(2), 5)]);
        let m = members(&[("a", &[1, 2]), ("b", &[1, 2])]);
        let a = Assignor::Range.assign(&m, &parts);
        every_partition_once(&a, &parts);
        assert_eq!(a["a"][&topic(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["a"][&topic(2)], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"][&topic(1)], BTreeSet::from([3, 4]));
    }

    #[test]
    fn a_topic_nobody_subscribes_is_not_assigned_and_more_members_than_partitions_is_fine() {
        let parts = BTreeMap::from([(topic(1), 2), (topic(9), 3)]);
        let m = members(&[("a", &[1]), ("b", &[1]), ("c", &[1])]);
        for assignor in [Assignor::Uniform, Assignor::Range] {
            let a = assignor.assign(&m, &parts);
            assert_eq!(counts(&a).iter().sum::<usize>(), 2, "{assignor:?}");
            assert!(a.values().all(|m| !m.contains_key(&topic(9))));
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!(Assignor::parse("uniform"), Some(Assignor::Uniform));
        assert_eq!(Assignor::parse("range"), Some(Assignor::Range));
        assert_eq!(Assignor::parse("sticky"), None);
    }
}
