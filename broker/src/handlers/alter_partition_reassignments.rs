//! AlterPartitionReassignments (API 45): starts, replaces or (with null replicas) cancels
//! partition reassignments, one partition at a time, through the admin service's reassignment
//! operations. As in Kafka, a partition already being reassigned gets the new target; from v1,
//! `allow_replication_factor_change = false` refuses a target of another size.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::text;
use crate::admin_service::{reassign, AdminError};
use crate::broker::Broker;

const API: &str = "AlterPartitionReassignments";

async fn alter_one(
    broker: &Broker,
    topic: &str,
    partition: i32,
    target: Option<Vec<i32>>,
    allow_replication_factor_change: bool,
) -> Result<(), AdminError> {
    let image = broker.replicas.image();
    let Some(target) = target else {
        reassign::check_cancel(&image, topic, partition)?;
        return reassign::cancel(broker, topic, partition).await;
    };
    reassign::check_target(&image, topic, partition, &target, true)?;
    let current = reassign::partition(&image, topic, partition)?.target_replicas();
    if !allow_replication_factor_change && current.len() != target.len() {
        return Err(AdminError::InvalidReplicationFactor(format!(
            "the replication factor of {topic}-{partition} would change from {} to {}",
            current.len(),
            target.len()
        )));
    }
    reassign::start(broker, topic, partition, target).await
}

/// Answers AlterPartitionReassignments.
pub async fn handle(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let target = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            let result = alter_one(
                broker,
                &topic.name,
                p.partition_index,
                target,
                request.allow_replication_factor_change,
            )
            .await;
            let response =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(match result {
                Ok(()) => response,
                Err(e) => {
                    broker.count_error(API, e.kafka_code());
                    response
                        .with_error_code(e.kafka_code())
                        .with_error_message(Some(text(e.to_string())))
                }
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if version >= 1 {
        response.with_allow_replication_factor_change(request.allow_replication_factor_change)
    } else {
        response
    }
}
