//! Minimum-cost flow by successive shortest paths (Dijkstra with node potentials), the engine
//! under both placement phases.
//!
//! Written here rather than taken from a crate: the Rust min-cost-flow libraries we found are
//! either GPL (rs-graph) or a 2018 wrapper around a C++ library (mcmf), and placement needs one
//! thing they lack, convex edges (a broker's n-th replica costs more than its first, which is how
//! balance enters the objective). The algorithm is the textbook one; it is deterministic because
//! ties in the priority queue break on node index.
//!
//! Cost model: every edge has a capacity and a cost per unit. A convex edge lists the cost of
//! each successive unit (non-decreasing), which is equivalent to that many parallel unit edges
//! but is scanned once. All initial costs must be non-negative, so zero potentials are valid
//! to start with. Costs are `i128` because placement stacks several objectives into one number
//! (see `replicas.rs`); capacities and flows are plain unit counts.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Index of a node in a [`FlowNetwork`].
pub(crate) type Node = usize;
/// Index of an edge in a [`FlowNetwork`], as returned by `add_edge`.
pub(crate) type EdgeId = usize;

#[derive(Debug, Clone)]
enum UnitCosts {
    Linear(i128),
    /// `costs[k]` is the price of the `k+1`-th unit; the capacity is `costs.len()`.
    Convex(Vec<i128>),
}

#[derive(Debug, Clone)]
struct Edge {
    from: Node,
    to: Node,
    capacity: i64,
    flow: i64,
    costs: UnitCosts,
}

impl Edge {
    /// Price of the unit with index `k` (0-based).
    fn unit_cost(&self, k: i64) -> i128 {
        match &self.costs {
            UnitCosts::Linear(cost) => *cost,
            UnitCosts::Convex(costs) => costs[usize::try_from(k).unwrap_or(0)],
        }
    }
}

/// A directed network with integer capacities and costs. Each edge `e` is walked forwards (arc
/// `2e`, while it has room) and backwards (arc `2e + 1`, while it carries flow, at minus the price
/// of its last unit).
#[derive(Debug, Clone, Default)]
pub(crate) struct FlowNetwork {
    edges: Vec<Edge>,
    /// Arcs leaving each node.
    out: Vec<Vec<usize>>,
}

impl FlowNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_node(&mut self) -> Node {
        self.out.push(Vec::new());
        self.out.len() - 1
    }

    /// An edge of `capacity` units at `cost` each.
    pub fn add_edge(&mut self, from: Node, to: Node, capacity: i64, cost: i128) -> EdgeId {
        debug_assert!(cost >= 0, "initial costs must be non-negative");
        self.push(from, to, capacity, UnitCosts::Linear(cost))
    }

    /// An edge whose `k`-th unit costs `unit_costs[k]`; the list must not decrease.
    pub fn add_convex_edge(&mut self, from: Node, to: Node, unit_costs: Vec<i128>) -> EdgeId {
        debug_assert!(unit_costs.windows(2).all(|w| w[0] <= w[1]));
        debug_assert!(unit_costs.first().is_none_or(|&c| c >= 0));
        let capacity = i64::try_from(unit_costs.len()).unwrap_or(i64::MAX);
        self.push(from, to, capacity, UnitCosts::Convex(unit_costs))
    }

    fn push(&mut self, from: Node, to: Node, capacity: i64, costs: UnitCosts) -> EdgeId {
        let id = self.edges.len();
        self.edges.push(Edge {
            from,
            to,
            capacity,
            flow: 0,
            costs,
        });
        self.out[from].push(2 * id);
        self.out[to].push(2 * id + 1);
        id
    }

    /// Units currently carried by `edge`.
    pub fn flow(&self, edge: EdgeId) -> i64 {
        self.edges[edge].flow
    }

    /// Where arc `arc` leads and what one more unit along it costs, if it has room.
    fn arc(&self, arc: usize) -> Option<(Node, i128)> {
        let edge = &self.edges[arc / 2];
        if arc & 1 == 0 {
            (edge.flow < edge.capacity).then(|| (edge.to, edge.unit_cost(edge.flow)))
        } else {
            (edge.flow > 0).then(|| (edge.from, -edge.unit_cost(edge.flow - 1)))
        }
    }

    /// Sends up to `amount` units from `source` to `sink`, one cheapest path at a time, and
    /// returns how many it sent (fewer only when the sink can no longer be reached). The flow is
    /// of minimum cost for its value: each unit takes a shortest path in the residual network.
    pub fn send(&mut self, source: Node, sink: Node, amount: i64) -> i64 {
        let nodes = self.out.len();
        let mut potential = vec![0i128; nodes];
        let mut sent = 0;
        while sent < amount {
            let Some(parent_arc) = self.shortest_path(source, sink, &mut potential) else {
                break;
            };
            let mut node = sink;
            while node != source {
                let arc = parent_arc[node];
                let edge = &mut self.edges[arc / 2];
                if arc & 1 == 0 {
                    edge.flow += 1;
                    node = edge.from;
                } else {
                    edge.flow -= 1;
                    node = edge.to;
                }
            }
            sent += 1;
        }
        sent
    }

    /// Dijkstra on reduced costs; returns the arc into each node on the cheapest path tree and
    /// updates the potentials so reduced costs stay non-negative. Stops once the sink is settled:
    /// nodes not yet settled get the sink's distance, which keeps every residual arc's reduced
    /// cost non-negative.
    fn shortest_path(
        &self,
        source: Node,
        sink: Node,
        potential: &mut [i128],
    ) -> Option<Vec<usize>> {
        let nodes = self.out.len();
        let mut dist = vec![i128::MAX; nodes];
        let mut settled = vec![false; nodes];
        let mut parent_arc = vec![usize::MAX; nodes];
        let mut queue = BinaryHeap::new();
        dist[source] = 0;
        queue.push(Reverse((0i128, source)));
        while let Some(Reverse((d, u))) = queue.pop() {
            if settled[u] {
                continue;
            }
            settled[u] = true;
            if u == sink {
                break;
            }
            for &arc in &self.out[u] {
                let Some((v, cost)) = self.arc(arc) else {
                    continue;
                };
                if settled[v] {
                    continue;
                }
                let reduced = cost + potential[u] - potential[v];
                debug_assert!(reduced >= 0, "negative reduced cost {reduced}");
                let candidate = d + reduced;
                if candidate < dist[v] {
                    dist[v] = candidate;
                    parent_arc[v] = arc;
                    queue.push(Reverse((candidate, v)));
                }
            }
        }
        if !settled[sink] {
            return None;
        }
        let reach = dist[sink];
        for (node, p) in potential.iter_mut().enumerate() {
            *p += if settled[node] { dist[node] } else { reach };
        }
        Some(parent_arc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cheaper_route_and_reroutes_when_it_pays() {
        // s -> a -> t is cheap but narrow; the second unit must take s -> b -> t.
        let mut net = FlowNetwork::new();
        let (s, a, b, t) = (
            net.add_node(),
            net.add_node(),
            net.add_node(),
            net.add_node(),
        );
        let sa = net.add_edge(s, a, 2, 1);
        let sb = net.add_edge(s, b, 2, 5);
        let at = net.add_edge(a, t, 1, 1);
        let bt = net.add_edge(b, t, 2, 1);
        let ab = net.add_edge(a, b, 1, 0);
        assert_eq!(net.send(s, t, 3), 3);
        assert_eq!(net.flow(at), 1);
        assert_eq!(net.flow(bt), 2);
        // Two units through a (one via a -> b) beat a second unit on the dear s -> b edge.
        assert_eq!(net.flow(sa), 2);
        assert_eq!(net.flow(sb), 1);
        assert_eq!(net.flow(ab), 1);
    }

    #[test]
    fn convex_edges_spread_load() {
        // Four units into two sinks whose each further unit costs more: two each.
        let mut net = FlowNetwork::new();
        let (s, x, y, t) = (
            net.add_node(),
            net.add_node(),
            net.add_node(),
            net.add_node(),
        );
        net.add_edge(s, x, 4, 0);
        net.add_edge(s, y, 4, 0);
        let xt = net.add_convex_edge(x, t, vec![1, 3, 5, 7]);
        let yt = net.add_convex_edge(y, t, vec![1, 3, 5, 7]);
        assert_eq!(net.send(s, t, 4), 4);
        assert_eq!((net.flow(xt), net.flow(yt)), (2, 2));
    }

    #[test]
    fn reports_what_it_could_not_send() {
        let mut net = FlowNetwork::new();
        let (s, t) = (net.add_node(), net.add_node());
        net.add_edge(s, t, 2, 0);
        assert_eq!(net.send(s, t, 5), 2);
    }
}
