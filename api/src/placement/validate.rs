//! Checking an assignment against the placement rules, for tests and for the operator's status.
//!
//! Hard rules (every partition has replicas, on distinct known brokers, no failure domain over
//! its rack cap) are checked per partition. Balance is checked only when the hard rules hold,
//! and it is judged against what is achievable, not against "within one", because racks can
//! make within-one impossible (one broker alone in its rack must hold a replica of every RF-2
//! partition). The test is an exchange test: the assignment is unbalanced exactly when some
//! broker `a` holds at least two more replicas than some broker `b` and a chain of valid single
//! replica moves `a -> c1 -> ... -> b` exists (each step moves one partition's replica to a broker
//! that does not hold it, keeping its rack cap). The load vectors reachable under the rules form
//! an integral base polyhedron (they are the sink-side flows of the network in `replicas.rs`),
//! and on such a set a point with no improving exchange minimises the sum of squares and is
//! decreasingly minimal (Murota; Frank and Murota), so "no violation" means "as balanced as the
//! rules allow". Without racks it is exactly "replica counts within one". Preferred leaders are
//! judged the same way with reordering as the step: `a -> c` when `a` leads a partition `c` holds.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::topology::{FailureDomain, Topology};
use super::types::{Assignment, BrokerId, BrokerInfo, TopicPartition};

/// One way an assignment breaks the placement rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The broker list names this id more than once.
    DuplicateBrokerId(BrokerId),
    NoReplicas {
        partition: TopicPartition,
    },
    DuplicateReplica {
        partition: TopicPartition,
        broker: BrokerId,
    },
    UnknownBroker {
        partition: TopicPartition,
        broker: BrokerId,
    },
    /// More replicas than there are brokers: the rules cannot hold for this partition.
    NotEnoughBrokers {
        partition: TopicPartition,
        replication_factor: usize,
        brokers: usize,
    },
    /// A failure domain holds more of the partition's replicas than the rack cap allows.
    RackConcentration {
        partition: TopicPartition,
        domain: FailureDomain,
        replicas: usize,
        max: usize,
    },
    /// Moving replicas could even out replica counts: `from` could give one to `to`.
    ReplicasImbalanced {
        from: BrokerId,
        from_replicas: usize,
        to: BrokerId,
        to_replicas: usize,
    },
    /// Reordering replica lists could even out preferred leaderships.
    LeadersImbalanced {
        from: BrokerId,
        from_leaders: usize,
        to: BrokerId,
        to_leaders: usize,
    },
}

impl Violation {
    /// True for "could be more balanced" (the data is safe); false for a broken rule.
    pub fn is_imbalance(&self) -> bool {
        matches!(
            self,
            Self::ReplicasImbalanced { .. } | Self::LeadersImbalanced { .. }
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateBrokerId(id) => write!(f, "broker id {id} is listed more than once"),
            Self::NoReplicas { partition } => write!(f, "{partition} has no replicas"),
            Self::DuplicateReplica { partition, broker } => {
                write!(f, "{partition} lists broker {broker} more than once")
            }
            Self::UnknownBroker { partition, broker } => {
                write!(f, "{partition} has a replica on unknown broker {broker}")
            }
            Self::NotEnoughBrokers {
                partition,
                replication_factor,
                brokers,
            } => write!(
                f,
                "{partition} has {replication_factor} replicas but there are only {brokers} brokers"
            ),
            Self::RackConcentration {
                partition,
                domain,
                replicas,
                max,
            } => write!(
                f,
                "{partition} has {replicas} replicas in {domain}; at most {max} may share it"
            ),
            Self::ReplicasImbalanced {
                from,
                from_replicas,
                to,
                to_replicas,
            } => write!(
                f,
                "broker {from} holds {from_replicas} replicas and broker {to} {to_replicas}; \
                 moving replicas would even them out"
            ),
            Self::LeadersImbalanced {
                from,
                from_leaders,
                to,
                to_leaders,
            } => write!(
                f,
                "broker {from} is preferred leader of {from_leaders} partitions and broker {to} \
                 of {to_leaders}; reordering replica lists would even them out"
            ),
        }
    }
}

/// Which partitions the balance test may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceScope<'a> {
    /// Any partition (what a rebalance may do).
    Cluster,
    /// Only `topic`'s partitions numbered `first` and up (what creating them may do): "as
    /// balanced as possible without touching what existed".
    NewPartitions { topic: &'a str, first: i32 },
}

impl BalanceScope<'_> {
    fn includes(&self, topic: &str, partition: i32) -> bool {
        match self {
            Self::Cluster => true,
            Self::NewPartitions { topic: t, first } => *t == topic && partition >= *first,
        }
    }
}

/// Every rule `assignment` breaks on `brokers`, balance judged over the whole cluster. Empty
/// means the assignment is valid and as balanced as the rules allow.
pub fn validate(brokers: &[BrokerInfo], assignment: &Assignment) -> Vec<Violation> {
    validate_scoped(brokers, assignment, BalanceScope::Cluster)
}

/// [`validate`] with the balance test limited to the partitions in `scope`.
pub fn validate_scoped(
    brokers: &[BrokerInfo],
    assignment: &Assignment,
    scope: BalanceScope<'_>,
) -> Vec<Violation> {
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<BrokerId> = brokers
        .iter()
        .filter(|b| !seen.insert(b.id))
        .map(|b| b.id)
        .collect();
    if !duplicates.is_empty() {
        return duplicates
            .into_iter()
            .map(Violation::DuplicateBrokerId)
            .collect();
    }
    let Ok(topology) = Topology::new(brokers, &BTreeSet::new()) else {
        // Only an empty broker list is left: every replica is on an unknown broker.
        return assignment
            .partitions()
            .flat_map(|(topic, partition, replicas)| {
                hard_violations(None, topic, partition, replicas)
            })
            .collect();
    };
    let violations: Vec<Violation> = assignment
        .partitions()
        .flat_map(|(topic, partition, replicas)| {
            hard_violations(Some(&topology), topic, partition, replicas)
        })
        .collect();
    if !violations.is_empty() {
        return violations;
    }
    let mut violations = Vec::new();
    violations.extend(replica_imbalance(&topology, assignment, scope));
    violations.extend(leader_imbalance(&topology, assignment, scope));
    violations
}

fn hard_violations(
    topology: Option<&Topology>,
    topic: &str,
    partition: i32,
    replicas: &[BrokerId],
) -> Vec<Violation> {
    let tp = || TopicPartition::new(topic, partition);
    let mut found = Vec::new();
    if replicas.is_empty() {
        found.push(Violation::NoReplicas { partition: tp() });
    }
    let mut seen = BTreeSet::new();
    for &broker in replicas {
        if !seen.insert(broker) {
            found.push(Violation::DuplicateReplica {
                partition: tp(),
                broker,
            });
        }
        if topology.and_then(|t| t.index_of(broker)).is_none() {
            found.push(Violation::UnknownBroker {
                partition: tp(),
                broker,
            });
        }
    }
    let Some(topology) = topology else {
        return found;
    };
    let Some(cap) = topology.rack_cap(replicas.len()) else {
        found.push(Violation::NotEnoughBrokers {
            partition: tp(),
            replication_factor: replicas.len(),
            brokers: topology.len(),
        });
        return found;
    };
    let mut per_domain: BTreeMap<usize, usize> = BTreeMap::new();
    for b in seen.iter().filter_map(|&id| topology.index_of(id)) {
        *per_domain.entry(topology.domain_of[b]).or_default() += 1;
    }
    for (domain, count) in per_domain {
        if count > cap {
            found.push(Violation::RackConcentration {
                partition: tp(),
                domain: topology.domains[domain].0.clone(),
                replicas: count,
                max: cap,
            });
        }
    }
    found
}

/// `reach[a][c]`: one valid step takes a unit of load from broker index `a` to `c`.
type Steps = Vec<Vec<bool>>;

fn replica_imbalance(
    topology: &Topology,
    assignment: &Assignment,
    scope: BalanceScope<'_>,
) -> Option<Violation> {
    let n = topology.len();
    let mut load = vec![0usize; n];
    let mut steps: Steps = vec![vec![false; n]; n];
    for (topic, partition, replicas) in assignment.partitions() {
        let held: Vec<usize> = replicas
            .iter()
            .filter_map(|&id| topology.index_of(id))
            .collect();
        for &b in &held {
            load[b] += 1;
        }
        if !scope.includes(topic, partition) {
            continue;
        }
        let cap = topology.rack_cap(held.len()).unwrap_or(0);
        let mut per_domain = vec![0usize; topology.domains.len()];
        for &b in &held {
            per_domain[topology.domain_of[b]] += 1;
        }
        for &from in &held {
            for to in (0..n).filter(|c| !held.contains(c)) {
                let domain = topology.domain_of[to];
                if domain == topology.domain_of[from] || per_domain[domain] < cap {
                    steps[from][to] = true;
                }
            }
        }
    }
    worst_improvable_pair(&load, &steps).map(|(a, b)| Violation::ReplicasImbalanced {
        from: topology.ids[a],
        from_replicas: load[a],
        to: topology.ids[b],
        to_replicas: load[b],
    })
}

fn leader_imbalance(
    topology: &Topology,
    assignment: &Assignment,
    scope: BalanceScope<'_>,
) -> Option<Violation> {
    let n = topology.len();
    let mut leads = vec![0usize; n];
    let mut steps: Steps = vec![vec![false; n]; n];
    for (topic, partition, replicas) in assignment.partitions() {
        let Some(leader) = replicas.first().and_then(|&id| topology.index_of(id)) else {
            continue;
        };
        leads[leader] += 1;
        if !scope.includes(topic, partition) {
            continue;
        }
        for to in replicas.iter().filter_map(|&id| topology.index_of(id)) {
            if to != leader {
                steps[leader][to] = true;
            }
        }
    }
    worst_improvable_pair(&leads, &steps).map(|(a, b)| Violation::LeadersImbalanced {
        from: topology.ids[a],
        from_leaders: leads[a],
        to: topology.ids[b],
        to_leaders: leads[b],
    })
}

/// The pair `(a, b)` with the largest `count[a] - count[b] >= 2` such that `b` is reachable from
/// `a` by steps, if any.
fn worst_improvable_pair(count: &[usize], steps: &Steps) -> Option<(usize, usize)> {
    let n = count.len();
    let mut best: Option<(usize, usize)> = None;
    for a in 0..n {
        let mut reached = vec![false; n];
        reached[a] = true;
        let mut queue = VecDeque::from([a]);
        while let Some(u) = queue.pop_front() {
            for v in 0..n {
                if steps[u][v] && !reached[v] {
                    reached[v] = true;
                    queue.push_back(v);
                }
            }
        }
        for b in (0..n).filter(|&b| reached[b] && count[a] >= count[b] + 2) {
            let gap = count[a] - count[b];
            if best.is_none_or(|(x, y)| gap > count[x] - count[y]) {
                best = Some((a, b));
            }
        }
    }
    best
}
