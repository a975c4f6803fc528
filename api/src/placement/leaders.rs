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
//! counts come out as even as the replica sets allow; below that, an edge to any replica other
//! than the partition's current preferred leader costs 1, so leaderships only change when the
//! balance needs it.

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
/// order. `base_leaders[b]` counts leaderships broker `b` keeps outside the request.
pub(crate) fn choose_leaders(
    brokers: usize,
    requests: &[LeaderRequest],
    base_leaders: &[usize],
) -> Result<Vec<usize>, PlacementError> {
    let partitions = requests.len();
    let too_large = PlacementError::TooLarge {
        replicas: requests.iter().map(|r| r.replicas.len()).sum(),
        brokers,
    };
    // Changing leaders is worth at most `partitions` in total, below one balance step.
    let balance = i128::try_from(partitions + 1).map_err(|_| too_large.clone())?;
    let max_load = base_leaders.iter().copied().max().unwrap_or(0) + partitions;
    i128::try_from(2 * max_load + 1)
        .ok()
        .and_then(|units| units.checked_mul(balance))
        .and_then(|top| top.checked_mul(16))
        .ok_or(too_large)?;

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
                let cost = i128::from(request.leader != Some(b));
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
