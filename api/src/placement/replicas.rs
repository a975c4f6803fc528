//! Phase one of every placement: which brokers hold each partition's replicas.
//!
//! One min-cost flow decides all partitions in scope at once:
//!
//! ```text
//! source --rf--> partition --cap--> (partition, rack) --1--> broker --convex--> sink
//!                         \-------------------1------------> broker
//! ```
//!
//! Each partition sends its replication factor; an edge of capacity 1 per broker keeps replicas
//! on distinct brokers; a partition reaches the brokers of a rack with more members than the
//! rack cap through one node of capacity `cap` (smaller racks cannot exceed it anyway). The
//! broker-to-sink edge makes the `k`-th replica on a broker cost `M * (2 * (base + k) + 1)`, so
//! the flow's balance term is `M * sum(load^2)`: minimising it gives the most even load vector
//! the rules allow (decreasingly minimal, see `docs/placement.md`).
//!
//! When creating partitions (`Surroundings::base_leaders` given), the broker's replicas then
//! split into leaderships and followerships, and exactly one unit per partition must leave as a
//! leadership, priced convexly the same way at a lower weight:
//!
//! ```text
//! broker --convex (replicas)--> split --convex (leaderships)--> leaders   --P-->     sink
//!                                    \---------------------->  followers --T - P--> sink
//! ```
//!
//! This chooses per-broker counts that are first as even as possible in replicas, then in
//! leaderships (a broker can only lead partitions it holds). The flow's leader split is only a
//! count; `followers.rs` builds partitions that realise it.
//!
//! Weights below that break ties, in this order: fewest replicas on new brokers (moves), then
//! keeping each partition's current preferred leader among its replicas, then the caller's
//! preference per partition and broker.

use super::error::PlacementError;
use super::flow::{EdgeId, FlowNetwork};
use super::topology::Topology;
use super::types::TopicPartition;

/// One partition to place. Broker numbers are [`Topology`] indexes.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaRequest {
    pub partition: TopicPartition,
    pub replication_factor: usize,
    /// Eligible brokers holding a replica now (no duplicates); empty for a new partition.
    pub current: Vec<usize>,
    /// The current preferred leader, if it is in `current`.
    pub leader: Option<usize>,
}

/// What surrounds the request: replica counts per broker from partitions outside it (they
/// stay where they are); for creation, the leader counts outside it (then leader balance ranks
/// right after replica balance, see the module docs); and optionally, per request and broker, a
/// tie-breaking preference for a new replica there (lower is preferred; creation uses it to
/// spread replica sets, rebalance passes none).
#[derive(Debug, Clone)]
pub(crate) struct Surroundings {
    pub base_replicas: Vec<usize>,
    pub base_leaders: Option<Vec<usize>>,
    pub preference: Option<Vec<Vec<u64>>>,
}

/// The cost weights, from the least to the most important term, each larger than everything
/// the terms below it can add up to. `i128` leaves room for clusters far beyond any real one;
/// the checks only turn absurd sizes into an error instead of an overflow.
#[derive(Debug, Clone, Copy)]
struct Weights {
    keep_other: i128,
    new_replica: i128,
    leader_balance: i128,
    balance: i128,
}

impl Weights {
    fn new(
        replicas: usize,
        partitions: usize,
        max_preference: u64,
        max_base_leaders: Option<usize>,
    ) -> Option<Self> {
        let replicas = i128::try_from(replicas).ok()?;
        let partitions = i128::try_from(partitions).ok()?;
        let max_preference = i128::from(max_preference);
        // Preferences sum to at most replicas * max_preference.
        let keep_other = replicas.checked_mul(max_preference)?.checked_add(1)?;
        // Keeping leaders is worth at most partitions * keep_other in total.
        let new_replica = partitions.checked_add(1)?.checked_mul(keep_other)?;
        // Everything below leader balance, over all replicas.
        let below = replicas.checked_mul(
            keep_other
                .checked_add(new_replica)?
                .checked_add(max_preference)?,
        )?;
        let (leader_balance, leader_range) = match max_base_leaders {
            None => (0, 0),
            Some(most) => {
                let weight = below.checked_add(1)?;
                let top_unit = 2 * (i128::try_from(most).ok()? + partitions) + 1;
                (weight, replicas.checked_mul(weight.checked_mul(top_unit)?)?)
            }
        };
        let balance = below.checked_add(leader_range)?.checked_add(1)?;
        Some(Self {
            keep_other,
            new_replica,
            leader_balance,
            balance,
        })
    }
}

/// Chooses each requested partition's replica set (sorted broker indexes), in request order.
pub(crate) fn choose_replicas(
    topology: &Topology,
    requests: &[ReplicaRequest],
    around: &Surroundings,
) -> Result<Vec<Vec<usize>>, PlacementError> {
    let brokers = topology.len();
    let total: usize = requests.iter().map(|r| r.replication_factor).sum();
    let preference = |request: usize, broker: usize| -> u64 {
        around.preference.as_ref().map_or(0, |p| p[request][broker])
    };
    let max_preference = around
        .preference
        .iter()
        .flatten()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0);
    let too_large = PlacementError::TooLarge {
        replicas: total,
        brokers,
    };
    let base_leaders = around.base_leaders.as_ref();
    let weights = Weights::new(
        total,
        requests.len(),
        max_preference,
        base_leaders.map(|l| l.iter().copied().max().unwrap_or(0)),
    )
    .ok_or(too_large.clone())?;
    let max_load = around.base_replicas.iter().copied().max().unwrap_or(0) + requests.len();
    // The dearest unit, with headroom for path sums of a few of them in Dijkstra.
    i128::try_from(2 * max_load + 1)
        .ok()
        .and_then(|units| units.checked_mul(weights.balance))
        .and_then(|top| top.checked_mul(1 << 20))
        .ok_or(too_large)?;

    let mut net = FlowNetwork::new();
    let source = net.add_node();
    let sink = net.add_node();
    let broker_nodes: Vec<usize> = (0..brokers).map(|_| net.add_node()).collect();
    let partitions = requests.len() as i128;
    // Where broker edges end: the sink, or for creation the leader/follower split before it.
    let (lead_collect, follow_collect) = match base_leaders {
        None => (sink, sink),
        Some(_) => {
            let (lead, follow) = (net.add_node(), net.add_node());
            net.add_edge(lead, sink, partitions as i64, 0);
            net.add_edge(follow, sink, (total - requests.len()) as i64, 0);
            (lead, follow)
        }
    };
    for (b, &node) in broker_nodes.iter().enumerate() {
        // A broker can hold at most one replica (and lead at most one) of each partition.
        let base = around.base_replicas[b] as i128;
        let replica_costs = (0..partitions)
            .map(|k| weights.balance * (2 * (base + k) + 1))
            .collect();
        match base_leaders {
            None => {
                net.add_convex_edge(node, sink, replica_costs);
            }
            Some(leaders) => {
                let split = net.add_node();
                net.add_convex_edge(node, split, replica_costs);
                let base_lead = leaders[b] as i128;
                let leader_costs = (0..partitions)
                    .map(|k| weights.leader_balance * (2 * (base_lead + k) + 1))
                    .collect();
                net.add_convex_edge(split, lead_collect, leader_costs);
                net.add_edge(split, follow_collect, partitions as i64, 0);
            }
        }
    }

    let mut source_edges = Vec::with_capacity(requests.len());
    let mut replica_edges: Vec<Vec<(usize, EdgeId)>> = Vec::with_capacity(requests.len());
    for (r, request) in requests.iter().enumerate() {
        let rf = request.replication_factor;
        let cap = topology
            .rack_cap(rf)
            .ok_or(PlacementError::NotEnoughBrokers {
                available: brokers,
                partitions: vec![(request.partition.clone(), rf)],
            })?;
        let node = net.add_node();
        source_edges.push(net.add_edge(source, node, rf as i64, 0));
        let mut edges = Vec::new();
        for (_, members) in &topology.domains {
            let via = if members.len() > cap {
                let rack_node = net.add_node();
                net.add_edge(node, rack_node, cap as i64, 0);
                rack_node
            } else {
                node
            };
            for &b in members {
                let cost = if request.leader == Some(b) {
                    0
                } else if request.current.contains(&b) {
                    weights.keep_other
                } else {
                    weights.keep_other + weights.new_replica + i128::from(preference(r, b))
                };
                edges.push((b, net.add_edge(via, broker_nodes[b], 1, cost)));
            }
        }
        replica_edges.push(edges);
    }

    net.send(source, sink, total as i64);
    let short: Vec<(TopicPartition, usize)> = requests
        .iter()
        .zip(&source_edges)
        .filter(|(r, &e)| net.flow(e) < r.replication_factor as i64)
        .map(|(r, _)| (r.partition.clone(), r.replication_factor))
        .collect();
    if !short.is_empty() {
        // Unreachable while every partition's rack cap exists (checked above); kept as an
        // error rather than a panic so a planner bug cannot take the controller down.
        return Err(PlacementError::NotEnoughBrokers {
            available: brokers,
            partitions: short,
        });
    }
    Ok(replica_edges
        .iter()
        .map(|edges| {
            let mut chosen: Vec<usize> = edges
                .iter()
                .filter(|(_, e)| net.flow(*e) == 1)
                .map(|(b, _)| *b)
                .collect();
            chosen.sort_unstable();
            chosen
        })
        .collect())
}
