//! OffsetDelete: forget a group's committed offsets for some partitions, unless the group's
//! members subscribe to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;

/// Answers OffsetDelete.
pub fn handle(broker: &Broker, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let partitions = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let results = match broker.groups.delete_offsets(&request.group_id, partitions) {
        Err(code) => {
            broker.count_error("OffsetDelete", code);
            return OffsetDeleteResponse::default().with_error_code(code);
        }
        Ok(results) => results,
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = results
                        .iter()
                        .find(|((topic, index), _)| {
                            *index == p.partition_index && topic.as_str() == t.name.as_str()
                        })
                        .map(|(_, code)| *code)
                        .unwrap_or(0);
                    broker.count_error("OffsetDelete", code);
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
