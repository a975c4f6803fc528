//! Answers read from the metadata image: DescribeCluster, and topics as the admin API
//! describes them.
//!
//! Partition health follows Kafka's definitions: a partition is *under-replicated* when its ISR
//! is smaller than its replica list minus the replicas a reassignment is removing (so a
//! reassignment alone does not raise the alarm; it is counted separately), *offline* when it
//! has no leader, and *under min ISR* when its ISR is smaller than the topic's
//! `min.insync.replicas`.

use std::collections::BTreeMap;

use weir_api::proto::admin as pb;

use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::config::BrokerConfig;
use crate::controller::image::{MetadataImage, PartitionImage, TopicImage, NO_LEADER};
use crate::group::OFFSETS_TOPIC;

/// Whether the partition's ISR lacks some replica it should have (Kafka's rule: replicas being
/// removed by a reassignment do not count).
pub(crate) fn is_under_replicated(p: &PartitionImage) -> bool {
    p.leader != NO_LEADER && p.isr.len() < p.replicas.len().saturating_sub(p.removing.len())
}

/// Whether `topic` is one of Kafka's internal topics.
pub(crate) fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Replicas on brokers that are fenced or no longer registered.
fn offline_replicas(image: &MetadataImage, p: &PartitionImage) -> Vec<i32> {
    p.replicas
        .iter()
        .copied()
        .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
        .collect()
}

fn leader(p: &PartitionImage) -> Option<i32> {
    (p.leader != NO_LEADER).then_some(p.leader)
}

/// One partition as DescribeTopic shows it.
pub(crate) fn partition_description(
    image: &MetadataImage,
    index: i32,
    p: &PartitionImage,
) -> pb::PartitionDescription {
    pb::PartitionDescription {
        partition: index,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: leader(p),
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        adding_replicas: p.adding.clone(),
        removing_replicas: p.removing.clone(),
        offline_replicas: offline_replicas(image, p),
    }
}

/// A topic as DescribeTopic and ListTopics show it.
pub(crate) fn topic_description(image: &MetadataImage, topic: &TopicImage) -> pb::TopicDescription {
    pb::TopicDescription {
        name: topic.name.clone(),
        topic_id: topic.id.to_string(),
        internal: is_internal(&topic.name),
        partitions: topic
            .partitions
            .iter()
            .zip(0..)
            .map(|(p, index)| partition_description(image, index, p))
            .collect(),
        configs: topic.configs.clone().into_iter().collect(),
    }
}

fn health(topic: &str, index: i32, p: &PartitionImage) -> pb::PartitionHealth {
    pb::PartitionHealth {
        topic: topic.to_string(),
        partition: index,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: leader(p),
    }
}

/// The quorum as this broker sees it. `commit_index` is the last index this broker applied:
/// only committed entries are applied, and openraft exposes no separate commit index.
fn controller_status(broker: &Broker) -> pb::ControllerStatus {
    let Some(controller) = broker.replicas.controller() else {
        return pb::ControllerStatus::default();
    };
    let metrics = controller.raft().metrics().borrow().clone();
    let stored = &metrics.membership_config;
    let voters_settled = stored.membership().get_joint_config().len() == 1
        && stored.log_id().as_ref().map(|l| l.index) <= metrics.last_applied.map(|l| l.index);
    pb::ControllerStatus {
        leader_id: metrics.current_leader.map(|id| id as i32),
        term: metrics.current_term,
        commit_index: metrics.last_applied.map_or(0, |l| l.index),
        voters: metrics
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| id as i32)
            .collect(),
        members: metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| pb::QuorumMember {
                node_id: *id as i32,
                directory_id: node.directory_id.map_or(String::new(), |d| d.to_string()),
                voter: metrics
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == *id),
            })
            .collect(),
        voters_settled,
    }
}

#[derive(Default)]
struct Load {
    replicas: usize,
    leaders: usize,
    preferred: usize,
}

fn broker_state(image: &MetadataImage, id: i32) -> pb::BrokerState {
    match image.brokers.get(&id) {
        None => pb::BrokerState::Unregistered,
        Some(b) if b.fenced => pb::BrokerState::Fenced,
        Some(b) if b.draining || b.in_controlled_shutdown => pb::BrokerState::Draining,
        Some(_) => pb::BrokerState::Active,
    }
}

/// DescribeCluster from this broker's image and Raft state.
pub(crate) fn cluster(broker: &Broker) -> pb::DescribeClusterResponse {
    let image = broker.replicas.image();
    let mut load: BTreeMap<i32, Load> = image
        .brokers
        .keys()
        .map(|id| (*id, Load::default()))
        .collect();
    let mut response = pb::DescribeClusterResponse {
        cluster_id: broker.cluster_id(),
        answering_broker_id: broker.node_id(),
        controller: Some(controller_status(broker)),
        topic_count: to_u32(image.topics.len()),
        ..Default::default()
    };
    let mut partitions = 0;
    for topic in image.topics.values() {
        let min_isr = min_isr(&broker.replicas.effective_config(), topic);
        for (p, index) in topic.partitions.iter().zip(0..) {
            partitions += 1;
            for r in &p.replicas {
                load.entry(*r).or_default().replicas += 1;
            }
            if let Some(l) = leader(p) {
                load.entry(l).or_default().leaders += 1;
            }
            if let Some(preferred) = p.target_replicas().first() {
                load.entry(*preferred).or_default().preferred += 1;
            }
            if is_under_replicated(p) {
                response
                    .under_replicated_partitions
                    .push(health(&topic.name, index, p));
            }
            if p.leader == NO_LEADER {
                response
                    .offline_partitions
                    .push(health(&topic.name, index, p));
            }
            if p.isr.len() < min_isr {
                response.under_min_isr_partition_count += 1;
            }
            if p.is_reassigning() {
                response.reassigning_partition_count += 1;
            }
        }
    }
    response.partition_count = partitions;
    response.under_replicated_partition_count = to_u32(response.under_replicated_partitions.len());
    response.offline_partition_count = to_u32(response.offline_partitions.len());
    response.brokers = load
        .into_iter()
        .map(|(id, load)| {
            let registration = image.brokers.get(&id);
            pb::Broker {
                id,
                rack: registration.and_then(|b| b.rack.clone()),
                kafka_endpoint: registration.map(|b| pb::Endpoint {
                    host: b.host.clone(),
                    port: u32::from(b.port),
                }),
                state: broker_state(&image, id) as i32,
                epoch: registration.map_or(-1, |b| b.epoch),
                replica_count: to_u32(load.replicas),
                leader_count: to_u32(load.leaders),
                preferred_leader_count: to_u32(load.preferred),
                directory_id: registration
                    .and_then(|b| b.directory_id)
                    .map_or(String::new(), |d| d.to_string()),
            }
        })
        .collect();
    response
}

fn min_isr(config: &BrokerConfig, topic: &TopicImage) -> usize {
    usize::try_from(topic_config::min_insync_replicas(config, &topic.configs)).unwrap_or(1)
}
