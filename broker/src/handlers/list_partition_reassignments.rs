//! ListPartitionReassignments (API 46): the reassignments in progress, from the metadata image
//! (all of them for null topics, else those among the named partitions). A named topic or
//! partition that does not exist fails the whole request with UNKNOWN_TOPIC_OR_PARTITION, as
//! Kafka does.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::text;
use crate::admin_service::{reassign, AdminError};
use crate::broker::Broker;
use crate::controller::image::MetadataImage;

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().map(|b| BrokerId(*b)).collect()
}

fn ongoing(
    image: &MetadataImage,
    request: ListPartitionReassignmentsRequest,
) -> Result<Vec<OngoingTopicReassignment>, AdminError> {
    let wanted: Vec<(String, i32)> = match request.topics {
        None => reassign::reassigning(image)
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect(),
        Some(topics) => {
            let mut wanted = Vec::new();
            for t in topics {
                for index in t.partition_indexes {
                    if reassign::partition(image, &t.name, index)?.is_reassigning() {
                        wanted.push((t.name.to_string(), index));
                    }
                }
            }
            wanted
        }
    };
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for (topic, index) in wanted {
        let p = reassign::partition(image, &topic, index)?;
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(index)
            .with_replicas(ids(&p.replicas))
            .with_adding_replicas(ids(&p.adding))
            .with_removing_replicas(ids(&p.removing));
        match topics.last_mut() {
            Some(last) if *last.name == *topic => last.partitions.push(partition),
            _ => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(text(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    Ok(topics)
}

/// Answers ListPartitionReassignments.
pub fn handle(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    match ongoing(&broker.replicas.image(), request) {
        Ok(topics) => ListPartitionReassignmentsResponse::default().with_topics(topics),
        Err(e) => {
            broker.count_error("ListPartitionReassignments", e.kafka_code());
            ListPartitionReassignmentsResponse::default()
                .with_error_code(e.kafka_code())
                .with_error_message(Some(text(e.to_string())))
        }
    }
}
