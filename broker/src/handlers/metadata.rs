//! Metadata: the live brokers and the requested topics as the metadata image has them, with
//! each partition's leader, leader epoch, replicas and ISR; auto-creates unknown topics when
//! the client allows it and `auto.create.topics.enable` is on.
//!
//! With an authorizer, as Kafka: a listing of every topic leaves out those the principal may
//! not DESCRIBE; a named one it may not describe is TOPIC_AUTHORIZATION_FAILED (by id,
//! UNKNOWN_TOPIC_ID, which says nothing about its existence); auto-creating needs CREATE on
//! the cluster or the topic.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::authz::Authz;
use super::text;
use crate::broker::Broker;
use crate::controller::acl::AclOperation;
use crate::controller::image::{MetadataImage, NO_LEADER};
use crate::group::OFFSETS_TOPIC;
use crate::replica_manager::AdminError;

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(*b)).collect()
}

/// Answers Metadata.
pub async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
    listener: &str,
    authz: &Authz<'_>,
) -> MetadataResponse {
    let replicas = &broker.replicas;
    // v0 asks for every topic with an empty list; later versions with a null one.
    let all = match &request.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    // Before v4 the client could not say no, so the broker setting alone decides.
    let allow_create = version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    if all {
        let image = replicas.image();
        topics.extend(
            image
                .topics
                .keys()
                .filter(|name| authz.topic(AclOperation::Describe, name))
                .map(|name| topic_entry(&image, name)),
        );
    } else {
        for wanted in request.topics.unwrap_or_default() {
            let Some(name) = wanted.name else {
                let image = replicas.image();
                topics.push(match image.topic_by_id(wanted.topic_id) {
                    Some(t) if authz.topic(AclOperation::Describe, &t.name) => {
                        topic_entry(&image, &t.name)
                    }
                    _ => MetadataResponseTopic::default()
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                });
                continue;
            };
            let exists = replicas.topic(&name).is_some();
            let may_create =
                || authz.cluster(AclOperation::Create) || authz.topic(AclOperation::Create, &name);
            let refused = !authz.topic(AclOperation::Describe, &name)
                || (!exists && allow_create && &*name != OFFSETS_TOPIC && !may_create());
            if refused {
                broker.count_error("Metadata", ResponseError::TopicAuthorizationFailed.code());
                topics.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(name))
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code()),
                );
                continue;
            }
            let found = if &*name == OFFSETS_TOPIC {
                // Created with its own partition count and settings, never as an ordinary
                // auto-created topic.
                broker.groups.ensure_offsets_topic().await
            } else if allow_create {
                replicas.get_or_auto_create(&name).await.map(|_| ())
            } else if exists {
                Ok(())
            } else {
                Err(AdminError::UnknownTopic(name.to_string()))
            };
            let image = replicas.image();
            match found {
                Ok(()) if image.topics.contains_key(name.as_str()) => {
                    topics.push(topic_entry(&image, name.as_str()))
                }
                Ok(()) => topics.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(name))
                        .with_error_code(ResponseError::LeaderNotAvailable.code()),
                ),
                Err(e) => {
                    broker.count_error("Metadata", e.kafka_code());
                    topics.push(
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
                            }),
                    );
                }
            }
        }
    }
    let image = replicas.image();
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            // Brokers are listed with the endpoint of the listener the client came in on.
            let (host, port) = b.endpoint(listener);
            MetadataResponseBroker::default()
                .with_node_id(b.id.into())
                .with_host(text(host))
                .with_port(i32::from(port))
                .with_rack(b.rack.clone().map(text))
        })
        .collect();
    let controller_id = broker
        .replicas
        .controller()
        .and_then(|c| c.leader())
        .map_or(-1, |(id, _)| id);
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(text(broker.cluster_id())))
        .with_controller_id(controller_id.into())
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

fn topic_entry(image: &MetadataImage, name: &str) -> MetadataResponseTopic {
    let Some(topic) = image.topics.get(name) else {
        return MetadataResponseTopic::default()
            .with_name(Some(TopicName(text(name))))
            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let offline = |r: &i32| image.brokers.get(r).is_none_or(|b| b.fenced);
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(text(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.name == OFFSETS_TOPIC)
        .with_topic_authorized_operations(i32::MIN)
        .with_partitions(
            topic
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let code = if p.leader == NO_LEADER {
                        ResponseError::LeaderNotAvailable.code()
                    } else {
                        0
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(code)
                        .with_partition_index(i as i32)
                        .with_leader_id(p.leader.into())
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(ids(&p.replicas))
                        .with_isr_nodes(ids(&p.isr))
                        .with_offline_replicas(ids(&p
                            .replicas
                            .iter()
                            .copied()
                            .filter(offline)
                            .collect::<Vec<_>>()))
                })
                .collect(),
        )
}
