//! Metadata: the broker list (this broker) and the requested topics, auto-creating unknown
//! topics when the client allows it and `auto.create.topics.enable` is on.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::text;
use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::partition::LEADER_EPOCH;
use crate::replica_manager::{AdminError, TopicState};

/// Answers Metadata.
pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    let replicas = &broker.replicas;
    // v0 asks for every topic with an empty list; later versions with a null one.
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    // Before v4 the client could not say no, so the broker setting alone decides.
    let allow_create = version < 4 || request.allow_auto_topic_creation;
    let topics = if all {
        replicas
            .all_topics()
            .iter()
            .map(|t| topic_entry(broker, t))
            .collect()
    } else {
        request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => {
                    let found = if &*name == OFFSETS_TOPIC {
                        // Created with its own partition count and settings, never as an
                        // ordinary auto-created topic.
                        broker.groups.ensure_offsets_topic().and_then(|_| {
                            replicas
                                .topic(&name)
                                .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))
                        })
                    } else if allow_create {
                        replicas.get_or_auto_create(&name)
                    } else {
                        replicas
                            .topic(&name)
                            .ok_or_else(|| AdminError::UnknownTopic(name.to_string()))
                    };
                    match found {
                        Ok(t) => topic_entry(broker, &t),
                        Err(e) => {
                            broker.count_error("Metadata", e.code());
                            MetadataResponseTopic::default()
                                .with_name(Some(name))
                                .with_error_code(match e {
                                    AdminError::InvalidTopic(_) => {
                                        ResponseError::InvalidTopicException.code()
                                    }
                                    AdminError::UnknownTopic(_) => {
                                        ResponseError::UnknownTopicOrPartition.code()
                                    }
                                    _ => ResponseError::LeaderNotAvailable.code(),
                                })
                        }
                    }
                }
                None => match replicas.topic_by_id(wanted.topic_id) {
                    Some(t) => topic_entry(broker, &t),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(broker.node_id().into())
            .with_host(text(broker.advertised.host.clone()))
            .with_port(broker.advertised.port as i32)
            .with_rack(broker.config.rack().map(text))])
        .with_cluster_id(Some(text(broker.cluster_id.clone())))
        .with_controller_id(broker.node_id().into())
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

fn topic_entry(broker: &Broker, topic: &TopicState) -> MetadataResponseTopic {
    let me: BrokerId = broker.node_id().into();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.meta.name.clone()))))
        .with_topic_id(topic.meta.id)
        .with_is_internal(topic.meta.name == OFFSETS_TOPIC)
        .with_topic_authorized_operations(i32::MIN)
        .with_partitions(
            (0..topic.meta.partitions)
                .map(|i| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i)
                        .with_leader_id(me)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![me])
                        .with_isr_nodes(vec![me])
                })
                .collect(),
        )
}
