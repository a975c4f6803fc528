//! Creation's last step: leaders first, then followers, to exact per-broker counts.
//!
//! New partitions are interchangeable, so once phase one has fixed how many new replicas each
//! broker takes, the replica sets themselves can be rebuilt freely. Choosing leaders on
//! phase one's sets (phase two) can leave leaderships uneven even though the counts allow them
//! to be even: if the sets happen to be {0,1,2} and {3,4,5} and brokers 0–2 already lead more,
//! one of them must lead again. So creation decides how many new leaderships each broker takes
//! (as even as possible overall, never more than its new replicas), hands them to the partitions
//! in rotation, and then fills the followers with a flow whose broker-to-sink capacities are
//! exactly each broker's remaining new replicas, keeping rules 1 and 2. When the rack rule makes
//! that impossible the caller falls back to phase two on phase one's sets.

use super::flow::{EdgeId, FlowNetwork};
use super::topology::Topology;

/// New leaderships per broker: `partitions` of them handed out one at a time to the broker with
/// the fewest leaderships overall (`base_leaders` plus what it got so far) that still has a new
/// replica to lead; ties go to the broker with more replicas in the end (so brokers with an
/// extra replica also lead an extra partition), then to the lower index. Greedy is exact here:
/// the objective (sum of squared leader counts) is separable and convex, the limits are per
/// broker.
pub(crate) fn leader_quota(
    base_leaders: &[usize],
    new_replicas: &[usize],
    replica_totals: &[usize],
    partitions: usize,
) -> Vec<usize> {
    let mut quota = vec![0; base_leaders.len()];
    for _ in 0..partitions {
        let next = (0..quota.len())
            .filter(|&b| quota[b] < new_replicas[b])
            .min_by_key(|&b| {
                (
                    base_leaders[b] + quota[b],
                    std::cmp::Reverse(replica_totals[b]),
                    b,
                )
            });
        match next {
            Some(b) => quota[b] += 1,
            None => break,
        }
    }
    quota
}

/// Builds `ranks.len()` partitions of `replication_factor` replicas: partition `i` is led by the
/// broker with leader quota left that ranks first in `ranks[i]`, and its followers come from a
/// flow that uses exactly `new_replicas[b] - quota[b]` follower slots of each broker `b`,
/// preferring low ranks. Returns `(leader, followers in rank order)` per partition, or `None`
/// if the rack rule leaves no way to meet the counts.
pub(crate) fn build_around_leaders(
    topology: &Topology,
    replication_factor: usize,
    quota: &[usize],
    new_replicas: &[usize],
    ranks: &[Vec<u64>],
) -> Option<Vec<(usize, Vec<usize>)>> {
    let brokers = topology.len();
    let cap = topology.rack_cap(replication_factor)?;
    let mut left = quota.to_vec();
    let mut leaders = Vec::with_capacity(ranks.len());
    for rank in ranks {
        let leader = (0..brokers)
            .filter(|&b| left[b] > 0)
            .min_by_key(|&b| rank[b])?;
        left[leader] -= 1;
        leaders.push(leader);
    }

    let mut net = FlowNetwork::new();
    let source = net.add_node();
    let sink = net.add_node();
    let broker_nodes: Vec<usize> = (0..brokers).map(|_| net.add_node()).collect();
    let mut follower_slots = 0;
    for (b, &node) in broker_nodes.iter().enumerate() {
        let slots = new_replicas[b].checked_sub(quota[b])?;
        follower_slots += slots;
        net.add_edge(node, sink, slots as i64, 0);
    }
    let followers_each = replication_factor - 1;
    if follower_slots != followers_each * ranks.len() {
        return None;
    }
    let mut edges: Vec<Vec<(usize, EdgeId)>> = Vec::with_capacity(ranks.len());
    for (rank, &leader) in ranks.iter().zip(&leaders) {
        let node = net.add_node();
        net.add_edge(source, node, followers_each as i64, 0);
        let mut choices = Vec::new();
        for (d, (_, members)) in topology.domains.iter().enumerate() {
            let room = cap - usize::from(topology.domain_of[leader] == d);
            let via = if members.len() > room {
                let rack_node = net.add_node();
                net.add_edge(node, rack_node, room as i64, 0);
                rack_node
            } else {
                node
            };
            for &b in members.iter().filter(|&&b| b != leader) {
                let edge = net.add_edge(via, broker_nodes[b], 1, i128::from(rank[b]));
                choices.push((b, edge));
            }
        }
        edges.push(choices);
    }
    let wanted = (followers_each * ranks.len()) as i64;
    if net.send(source, sink, wanted) < wanted {
        return None;
    }
    Some(
        leaders
            .into_iter()
            .zip(edges.iter().zip(ranks))
            .map(|(leader, (choices, rank))| {
                let mut followers: Vec<usize> = choices
                    .iter()
                    .filter(|(_, e)| net.flow(*e) == 1)
                    .map(|(b, _)| *b)
                    .collect();
                followers.sort_by_key(|&b| rank[b]);
                (leader, followers)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::placement::types::BrokerInfo;

    fn ranks(brokers: usize, partitions: usize) -> Vec<Vec<u64>> {
        (0..partitions)
            .map(|i| {
                (0..brokers)
                    .map(|b| ((b + brokers - i % brokers) % brokers) as u64)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn builds_partitions_led_as_the_quota_says() {
        let brokers: Vec<BrokerInfo> = (0..4).map(|i| BrokerInfo::new(i, None)).collect();
        let topology = Topology::new(&brokers, &BTreeSet::new()).unwrap();
        let built =
            build_around_leaders(&topology, 3, &[1, 1, 1, 1], &[3; 4], &ranks(4, 4)).unwrap();
        let mut leaders: Vec<usize> = built.iter().map(|(l, _)| *l).collect();
        leaders.sort();
        assert_eq!(leaders, vec![0, 1, 2, 3]);
        for (leader, followers) in &built {
            assert_eq!(followers.len(), 2);
            assert!(!followers.contains(leader));
        }
    }

    #[test]
    fn counts_the_rack_rule_cannot_meet_are_refused() {
        // Racks a = {0, 1}, b = {2}; RF 2 allows one replica per rack. Counts that put both
        // replicas of the only partition in rack a cannot be built.
        let brokers = [
            BrokerInfo::new(0, Some("a")),
            BrokerInfo::new(1, Some("a")),
            BrokerInfo::new(2, Some("b")),
        ];
        let topology = Topology::new(&brokers, &BTreeSet::new()).unwrap();
        assert_eq!(
            build_around_leaders(&topology, 2, &[1, 0, 0], &[1, 1, 0], &ranks(3, 1)),
            None
        );
        assert!(build_around_leaders(&topology, 2, &[1, 0, 0], &[1, 0, 1], &ranks(3, 1)).is_some());
    }

    #[test]
    fn quota_evens_out_leaders_within_each_brokers_new_replicas() {
        // Brokers 0-2 lead 6 already, 3-5 lead 5; two new partitions go to 3 and 4.
        let quota = leader_quota(&[6, 6, 6, 5, 5, 5], &[1; 6], &[7, 7, 7, 6, 6, 6], 2);
        assert_eq!(quota, vec![0, 0, 0, 1, 1, 0]);
        // A broker with no new replica cannot take a new leadership.
        let quota = leader_quota(&[0, 5], &[2, 0], &[2, 5], 2);
        assert_eq!(quota, vec![2, 0]);
    }
}
