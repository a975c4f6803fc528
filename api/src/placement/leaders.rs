//! Phase two: which replica of each partition is the preferred leader (first in the list).
//!
//! Once the replica sets are fixed, choosing leaders is moving no data, only reordering lists.
//! A min-cost flow picks one replica per partition:
//!
//! ```text
//! source --1--> partition --1--> broker (one of its replicas) --convex--> sink
//! ```
//!
//! The broker-to-sink edge prices the `k`-th leadership at `M * (2 * (base + k) + 1)`, so leader
//! counts come out as even as the replica sets allow. Below that, choosing a replica other than
//! the partition's current preferred leader has a price, so leaderships only change when the
//! balance needs it. Last, among equally good choices, leaderships go to brokers holding more
//! replicas: a broker with one replica more than another should also lead one more, so follower
//! counts stay even too. That alignment is what lets a later RF 1 topic (whose replicas are all
//! leaders) keep both replica and leader counts within one.

use super::error::PlacementError;
use super::flow::FlowNetwork;

/// One partition: its replicas (broker indexes) and, if it has one among them, its current
/// preferred leader.
#[derive(Debug, Clone)]
pub(crate) struct LeaderRequest {
    pub replicas: Vec<usize>,
    pub leader: Option<usize>,
}

/// Picks each partition's preferred leader (a broker index from its replicas), in request
/// order. `base_leaders[b]` counts leaderships broker `b` keeps outside the request, and
/// `replica_totals[b]` its replicas in the whole resulting assignment.
pub(crate) fn choose_leaders(
    brokers: usize,
    requests: &[LeaderRequest],
    base_leaders: &[usize],
    replica_totals: &[usize],
) -> Result<Vec<usize>, PlacementError> {
    let partitions = requests.len();
    let too_large = PlacementError::TooLarge {
        replicas: requests.iter().map(|r| r.replicas.len()).sum(),
        brokers,
    };
    let weights = (|| {
        let partitions = i128::try_from(partitions).ok()?;
        let most_replicas =
            i128::try_from(replica_totals.iter().copied().max().unwrap_or(0)).ok()?;
        // Alignment costs at most `most_replicas` per partition.
        let change = partitions.checked_mul(most_replicas)?.checked_add(1)?;
        // Changes and alignment together stay below one balance step.
        let balance = partitions
            .checked_mul(change.checked_add(most_replicas)?)?
            .checked_add(1)?;
        let max_load =
            i128::try_from(base_leaders.iter().copied().max().unwrap_or(0)).ok()? + partitions;
        // The dearest unit, with headroom for path sums in Dijkstra.
        (2 * max_load + 1)
            .checked_mul(balance)?
            .checked_mul(1 << 20)?;
        Some((change, balance, most_replicas))
    })();
    let (change, balance, most_replicas) = weights.ok_or(too_large)?;

    let mut net = FlowNetwork::new();
    let source = net.add_node();
    let sink = net.add_node();
    let broker_nodes: Vec<usize> = (0..brokers).map(|_| net.add_node()).collect();
    let mut replica_counts = vec![0i128; brokers];
    for request in requests {
        for &b in &request.replicas {
            replica_counts[b] += 1;
        }
    }
    for (b, &node) in broker_nodes.iter().enumerate() {
        let base = base_leaders[b] as i128;
        let costs = (0..replica_counts[b])
            .map(|k| balance * (2 * (base + k) + 1))
            .collect();
        net.add_convex_edge(node, sink, costs);
    }
    let mut edges = Vec::with_capacity(partitions);
    for request in requests {
        let node = net.add_node();
        net.add_edge(source, node, 1, 0);
        let choices: Vec<(usize, usize)> = request
            .replicas
            .iter()
            .map(|&b| {
                let align = most_replicas - replica_totals[b] as i128;
                let cost = change * i128::from(request.leader != Some(b)) + align;
                (b, net.add_edge(node, broker_nodes[b], 1, cost))
            })
            .collect();
        edges.push(choices);
    }
    net.send(source, sink, partitions as i64);
    Ok(edges
        .iter()
        .zip(requests)
        .map(|(choices, request)| {
            choices
                .iter()
                .find(|(_, e)| net.flow(*e) == 1)
                .map(|(b, _)| *b)
                // Only a partition without replicas has no leader; callers never pass one.
                .unwrap_or_else(|| request.replicas.first().copied().unwrap_or(0))
        })
        .collect())
}
