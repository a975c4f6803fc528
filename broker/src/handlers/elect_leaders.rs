//! ElectLeaders (API 43): preferred leader election through the admin service. Null
//! `topic_partitions` elects every partition not led by its preferred replica and, as Kafka
//! does, leaves out those that turn out not to need it. Unclean elections (`election_type` 1)
//! are not offered: the request is answered with INVALID_REQUEST; a topic that allows unclean
//! election (`unclean.leader.election.enable`) gets one automatically when it has no leader.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::text;
use crate::admin_service::elect::elect_preferred;
use crate::broker::Broker;

const API: &str = "ElectLeaders";
const PREFERRED: i8 = 0;

fn message(code: i16) -> Option<String> {
    match code {
        0 => None,
        code => ResponseError::try_from_code(code).map(|e| e.to_string()),
    }
}

/// Answers ElectLeaders.
pub async fn handle(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    // Only v1+ carries an election type, and a top-level error code to refuse it with.
    if request.election_type != PREFERRED {
        let code = ResponseError::InvalidRequest.code();
        broker.count_error(API, code);
        return ElectLeadersResponse::default().with_error_code(code);
    }
    let partitions = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    match elect_preferred(broker, partitions.clone()).await {
        Ok(elections) => {
            for e in elections.iter().filter(|e| e.code != 0) {
                broker.count_error(API, e.code);
            }
            ElectLeadersResponse::default().with_replica_election_results(per_topic(
                elections
                    .into_iter()
                    .map(|e| (e.topic, e.partition, e.code)),
            ))
        }
        Err(e) => {
            let code = e.kafka_code();
            broker.count_error(API, code);
            let named = partitions.unwrap_or_default().into_iter();
            let response = ElectLeadersResponse::default()
                .with_replica_election_results(per_topic(named.map(|(t, p)| (t, p, code))));
            if version >= 1 {
                response.with_error_code(code)
            } else {
                response
            }
        }
    }
}

/// Groups `(topic, partition, code)` by topic, in topic order.
fn per_topic(results: impl Iterator<Item = (String, i32, i16)>) -> Vec<ReplicaElectionResult> {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, partition, code) in results {
        by_topic.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(code)
                .with_error_message(message(code).map(text)),
        );
    }
    by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(text(topic)))
                .with_partition_result(partition_result)
        })
        .collect()
}
