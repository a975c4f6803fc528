//! What a `Topic` spec asks of the topic as the cluster has it: pure, unit-tested.

use std::collections::BTreeMap;

use weir_api::proto::admin as pb;

use crate::crd::TopicSpec;

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
