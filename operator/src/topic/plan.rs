//! What a `Topic` spec asks of the topic as the cluster has it: pure, unit-tested.

use std::collections::BTreeMap;

use weir_api::proto::admin as pb;

use crate::crd::condition::{is_true, types};
use crate::crd::{Cluster, TopicSpec};

/// Whether a topic can be created in its cluster now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterGate {
    /// Enough brokers are active to place the topic's replicas (or the cluster can never have
    /// enough, and the brokers' refusal says so better than the operator could).
    Proceed,
    /// The cluster is still coming up: creating now would be refused for want of brokers. The
    /// topic waits; a change of the cluster's status reconciles it again.
    Wait {
        reason: &'static str,
        message: String,
    },
}

/// Decides whether a topic that does not exist yet may be created. A `Topic` applied together
/// with its `Cluster` otherwise reaches the brokers before they have registered, is refused for
/// too few brokers, and would wait for a later requeue.
pub fn creation_gate(cluster: &Cluster, spec: &TopicSpec) -> ClusterGate {
    let cluster_name = cluster.metadata.name.as_deref().unwrap_or_default();
    let Some(status) = &cluster.status else {
        return ClusterGate::Wait {
            reason: "WaitingForCluster",
            message: format!("cluster {cluster_name} has not reported its brokers yet"),
        };
    };
    let active = status
        .brokers
        .iter()
        .filter(|b| b.state == "Active")
        .count();
    let needed = usize::try_from(spec.replication_factor).unwrap_or(0);
    let possible = usize::try_from(cluster.spec.replicas).unwrap_or(0);
    if active >= needed || possible < needed {
        return ClusterGate::Proceed;
    }
    ClusterGate::Wait {
        reason: "WaitingForBrokers",
        message: format!(
            "cluster {cluster_name} has {active} active brokers; replication factor {needed} needs {needed}"
        ),
    }
}

/// The cluster is still settling (not all brokers ready): a refusal it gives may be temporary.
pub fn cluster_settling(cluster: &Cluster) -> bool {
    cluster
        .status
        .as_ref()
        .is_none_or(|s| !is_true(&s.conditions, types::READY))
}

/// The changes to make, and what the spec asks that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicChanges {
    /// Grow to this many partitions.
    pub partitions: Option<i32>,
    pub set_configs: BTreeMap<String, String>,
    pub delete_configs: Vec<String>,
    /// The spec asks for fewer partitions than exist.
    pub partition_decrease: Option<String>,
    /// The spec asks for another replication factor.
    pub replication_factor_change: Option<String>,
}

impl TopicChanges {
    pub fn alter_needed(&self) -> bool {
        self.partitions.is_some() || !self.set_configs.is_empty() || !self.delete_configs.is_empty()
    }
}

/// Compares the spec with the topic's description. The spec owns the topic's settings: keys set
/// on the topic but absent from the spec return to the broker defaults.
pub fn changes(spec: &TopicSpec, topic: &pb::TopicDescription) -> TopicChanges {
    let mut out = TopicChanges::default();
    let have = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
    if spec.partitions > have {
        out.partitions = Some(spec.partitions);
    } else if spec.partitions < have {
        out.partition_decrease = Some(format!(
            "the topic has {have} partitions and Kafka cannot remove partitions; spec asks for {}",
            spec.partitions
        ));
    }
    let rf = topic
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0);
    if rf != spec.replication_factor as usize {
        out.replication_factor_change = Some(format!(
            "the topic has replication factor {rf}; changing it is not supported yet (spec asks for {})",
            spec.replication_factor
        ));
    }
    for (key, value) in &spec.config {
        if topic.configs.get(key) != Some(value) {
            out.set_configs.insert(key.clone(), value.clone());
        }
    }
    for key in topic.configs.keys() {
        if !spec.config.contains_key(key) {
            out.delete_configs.push(key.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BrokerStatus, ClusterStatus};

    fn cluster(replicas: i32, states: &[&str]) -> Cluster {
        let mut c: Cluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "weir.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"replicas": replicas, "image": "weir:test", "storage": {"size": "1Gi"}},
        }))
        .expect("a valid Cluster");
        c.status = Some(ClusterStatus {
            brokers: states
                .iter()
                .enumerate()
                .map(|(id, state)| BrokerStatus {
                    id: id as i32,
                    state: state.to_string(),
                    ..BrokerStatus::default()
                })
                .collect(),
            ..ClusterStatus::default()
        });
        c
    }

    #[test]
    fn a_topic_waits_for_a_cluster_without_status() {
        let mut c = cluster(3, &[]);
        c.status = None;
        assert!(matches!(
            creation_gate(&c, &spec(1, 3, &[])),
            ClusterGate::Wait {
                reason: "WaitingForCluster",
                ..
            }
        ));
    }

    #[test]
    fn a_topic_waits_until_enough_brokers_are_active() {
        let starting = cluster(3, &["Active", "Unknown", "Fenced"]);
        match creation_gate(&starting, &spec(6, 3, &[])) {
            ClusterGate::Wait { reason, message } => {
                assert_eq!(reason, "WaitingForBrokers");
                assert!(message.contains("1 active brokers"), "{message}");
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        // A replication factor the active brokers already cover goes ahead.
        assert_eq!(
            creation_gate(&starting, &spec(6, 1, &[])),
            ClusterGate::Proceed
        );
        let up = cluster(3, &["Active", "Active", "Active"]);
        assert_eq!(creation_gate(&up, &spec(6, 3, &[])), ClusterGate::Proceed);
    }

    #[test]
    fn a_replication_factor_the_cluster_can_never_hold_is_left_to_the_brokers_to_refuse() {
        let small = cluster(1, &["Active"]);
        assert_eq!(
            creation_gate(&small, &spec(1, 3, &[])),
            ClusterGate::Proceed
        );
    }

    fn topic(partitions: usize, rf: usize, configs: &[(&str, &str)]) -> pb::TopicDescription {
        pb::TopicDescription {
            name: "orders".into(),
            partitions: (0..partitions)
                .map(|p| pb::PartitionDescription {
                    partition: p as i32,
                    replicas: (0..rf as i32).collect(),
                    ..pb::PartitionDescription::default()
                })
                .collect(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..pb::TopicDescription::default()
        }
    }

    fn spec(partitions: i32, rf: i32, config: &[(&str, &str)]) -> TopicSpec {
        TopicSpec {
            cluster_ref: "c".into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_unchanged_topic_needs_nothing() {
        let c = changes(
            &spec(6, 3, &[("retention.ms", "1000")]),
            &topic(6, 3, &[("retention.ms", "1000")]),
        );
        assert_eq!(c, TopicChanges::default());
        assert!(!c.alter_needed());
    }

    #[test]
    fn partitions_grow_but_never_shrink() {
        assert_eq!(
            changes(&spec(8, 3, &[]), &topic(6, 3, &[])).partitions,
            Some(8)
        );
        let c = changes(&spec(4, 3, &[]), &topic(6, 3, &[]));
        assert_eq!(c.partitions, None);
        assert!(c.partition_decrease.unwrap().contains("6 partitions"));
    }

    #[test]
    fn configs_are_set_changed_and_removed() {
        let c = changes(
            &spec(1, 1, &[("retention.ms", "5"), ("cleanup.policy", "delete")]),
            &topic(1, 1, &[("retention.ms", "1"), ("segment.bytes", "100")]),
        );
        assert_eq!(c.set_configs.len(), 2);
        assert_eq!(c.set_configs["retention.ms"], "5");
        assert_eq!(c.delete_configs, vec!["segment.bytes".to_string()]);
    }

    #[test]
    fn a_replication_factor_change_is_reported() {
        let c = changes(&spec(1, 2, &[]), &topic(1, 3, &[]));
        assert!(c
            .replication_factor_change
            .unwrap()
            .contains("replication factor 3"));
    }
}
