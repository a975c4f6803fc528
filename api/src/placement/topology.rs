//! The brokers replicas may go to, grouped into failure domains, and the rack rule.
//!
//! A failure domain is a `broker.rack` value; a broker without a rack (or with an empty one) is a
//! domain of its own, so a cluster without racks degenerates to "one replica per broker" and a
//! rackless broker never shares fate with a racked one. The rack rule caps how many of one
//! partition's replicas a domain may hold: the smallest cap the domain sizes allow (see
//! `Topology::rack_cap`), which is `ceil(RF / domains)` whenever every domain is big enough.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use super::error::PlacementError;
use super::types::{BrokerId, BrokerInfo};

/// A failure domain: a named rack, or a single broker that has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureDomain {
    Rack(String),
    Broker(BrokerId),
}

impl FailureDomain {
    pub fn of(broker: &BrokerInfo) -> Self {
        match broker.rack.as_deref() {
            Some(rack) if !rack.is_empty() => Self::Rack(rack.to_owned()),
            _ => Self::Broker(broker.id),
        }
    }
}

impl fmt::Display for FailureDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rack(rack) => write!(f, "rack {rack}"),
            Self::Broker(id) => write!(f, "broker {id} (no rack)"),
        }
    }
}

/// The eligible brokers, sorted by id and numbered `0..len` (placement works on these indexes),
/// with their failure domains.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    /// Broker ids by index, ascending.
    pub ids: Vec<BrokerId>,
    index: HashMap<BrokerId, usize>,
    /// Domain index of each broker index.
    pub domain_of: Vec<usize>,
    /// Each domain with the broker indexes in it (ascending).
    pub domains: Vec<(FailureDomain, Vec<usize>)>,
}

impl Topology {
    /// The brokers of `brokers` that are not `excluded` (brokers being drained).
    pub fn new(
        brokers: &[BrokerInfo],
        excluded: &BTreeSet<BrokerId>,
    ) -> Result<Self, PlacementError> {
        let mut sorted: Vec<&BrokerInfo> = brokers.iter().collect();
        sorted.sort_by_key(|b| b.id);
        if let Some(pair) = sorted.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PlacementError::DuplicateBroker(pair[0].id));
        }
        sorted.retain(|b| !excluded.contains(&b.id));
        if sorted.is_empty() {
            return Err(PlacementError::NoBrokers);
        }
        let mut by_domain: BTreeMap<FailureDomain, Vec<usize>> = BTreeMap::new();
        for (index, broker) in sorted.iter().enumerate() {
            by_domain
                .entry(FailureDomain::of(broker))
                .or_default()
                .push(index);
        }
        let domains: Vec<(FailureDomain, Vec<usize>)> = by_domain.into_iter().collect();
        let mut domain_of = vec![0; sorted.len()];
        for (d, (_, members)) in domains.iter().enumerate() {
            for &member in members {
                domain_of[member] = d;
            }
        }
        let ids: Vec<BrokerId> = sorted.iter().map(|b| b.id).collect();
        let index = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        Ok(Self {
            ids,
            index,
            domain_of,
            domains,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The index of broker `id`, if it is eligible.
    pub fn index_of(&self, id: BrokerId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// The most replicas of one partition with replication factor `rf` that a single failure
    /// domain may hold: the smallest `m` with `sum over domains of min(size, m) >= rf`, i.e. the
    /// most even spread the domain sizes allow. `None` when there are fewer brokers than `rf`.
    pub fn rack_cap(&self, rf: usize) -> Option<usize> {
        if rf > self.len() {
            return None;
        }
        let fits = |m: usize| {
            self.domains
                .iter()
                .map(|(_, members)| members.len().min(m))
                .sum::<usize>()
                >= rf
        };
        // Starts at the even split and only grows when small domains cannot take their share.
        let mut cap = rf.div_ceil(self.domains.len()).max(1);
        while !fits(cap) {
            cap += 1;
        }
        Some(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(racks: &[Option<&str>]) -> Topology {
        let brokers: Vec<BrokerInfo> = racks
            .iter()
            .enumerate()
            .map(|(i, rack)| BrokerInfo::new(i as BrokerId, *rack))
            .collect();
        Topology::new(&brokers, &BTreeSet::new()).unwrap()
    }

    #[test]
    fn rackless_brokers_are_their_own_domains() {
        let t = topology(&[None, Some(""), Some("a"), Some("a")]);
        assert_eq!(t.domains.len(), 3);
        assert_eq!(t.domain_of[2], t.domain_of[3]);
        assert_ne!(t.domain_of[0], t.domain_of[1]);
    }

    #[test]
    fn cap_is_the_even_split_when_domains_are_big_enough() {
        let t = topology(&[
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            Some("c"),
        ]);
        assert_eq!(t.rack_cap(1), Some(1));
        assert_eq!(t.rack_cap(3), Some(1));
        assert_eq!(t.rack_cap(4), Some(2));
        assert_eq!(t.rack_cap(6), Some(2));
        assert_eq!(t.rack_cap(7), None);
    }

    #[test]
    fn cap_grows_when_a_small_domain_cannot_take_its_share() {
        // Rack a has 3 brokers, b only 1: RF 3 must put 2 in a.
        let t = topology(&[Some("a"), Some("a"), Some("a"), Some("b")]);
        assert_eq!(t.rack_cap(2), Some(1));
        assert_eq!(t.rack_cap(3), Some(2));
        assert_eq!(t.rack_cap(4), Some(3));
    }

    #[test]
    fn duplicate_and_empty_broker_sets_are_errors() {
        let dup = [BrokerInfo::new(1, None), BrokerInfo::new(1, Some("a"))];
        assert_eq!(
            Topology::new(&dup, &BTreeSet::new()).unwrap_err(),
            PlacementError::DuplicateBroker(1)
        );
        let one = [BrokerInfo::new(1, None)];
        assert_eq!(
            Topology::new(&one, &BTreeSet::from([1])).unwrap_err(),
            PlacementError::NoBrokers
        );
    }
}
