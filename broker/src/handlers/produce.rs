//! Produce: append each partition's record batches to its log as leader.
//!
//! `acks=1` answers once the leader's append returned. `acks=-1` (all) first requires the ISR
//! to hold `min.insync.replicas` members (NOT_ENOUGH_REPLICAS otherwise, nothing appended),
//! then waits until the high watermark covers the appended records, up to the request's
//! `timeout_ms` (REQUEST_TIMED_OUT; the records may still be replicated later, as in Kafka).
//! A broker that does not lead the partition answers NOT_LEADER_OR_FOLLOWER, so the client
//! refreshes its metadata.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::text;
use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::group::OFFSETS_TOPIC;
use crate::partition::{Partition, PartitionError};
use crate::replica_manager::TopicState;

type Failure = (i16, Option<String>);

struct Appended {
    base_offset: i64,
    next_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    min_isr: usize,
    partition: std::sync::Arc<Partition>,
}

/// Appends the request's batches; `None` for `acks=0`, which gets no response.
pub async fn handle(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    // First every append, then the acks=all waits, so partitions replicate in parallel.
    let mut staged = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        // Produce v13 names topics by id only.
        let topic = if version >= 13 {
            broker.replicas.topic_by_id(topic_data.topic_id)
        } else {
            broker.replicas.topic(&topic_data.name)
        };
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let outcome = match &topic {
                _ if !matches!(acks, -1..=1) => {
                    Err((ResponseError::InvalidRequiredAcks.code(), None))
                }
                None => Err((unknown, None)),
                Some(t) => append(broker, t, pd.index, pd.records, acks),
            };
            partitions.push((pd.index, outcome));
        }
        staged.push((topic_data.name, topic_data.topic_id, partitions));
    }
    let mut responses = Vec::with_capacity(staged.len());
    for (name, topic_id, partitions) in staged {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for (index, outcome) in partitions {
            let outcome = match outcome {
                Ok(a) if acks == -1 => a
                    .partition
                    .wait_for_high_watermark(a.next_offset, a.min_isr, timeout)
                    .await
                    .map(|_| a)
                    .map_err(|e| (e.code(), Some(e.to_string()))),
                other => other,
            };
            let mut r = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let code = match outcome {
                Ok(a) => {
                    r = r
                        .with_base_offset(a.base_offset)
                        .with_log_append_time_ms(a.log_append_time)
                        .with_log_start_offset(a.log_start_offset);
                    0
                }
                Err((code, message)) => {
                    r = r.with_error_message(message.map(text));
                    code
                }
            };
            broker.count_error("Produce", code);
            partition_responses.push(r.with_error_code(code));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn append(
    broker: &Broker,
    topic: &TopicState,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
) -> Result<Appended, Failure> {
    if topic.meta.name == OFFSETS_TOPIC {
        // Only the group coordinator writes there, as in Kafka.
        return Err((
            ResponseError::InvalidTopicException.code(),
            Some(format!("cannot append to internal topic {OFFSETS_TOPIC}")),
        ));
    }
    if index < 0 || index >= topic.meta.partitions {
        return Err((ResponseError::UnknownTopicOrPartition.code(), None));
    }
    let partition = broker
        .replicas
        .partition(&topic.meta.name, index)
        .ok_or_else(|| {
            let e = PartitionError::NotLeader;
            (e.code(), Some(e.to_string()))
        })?;
    let min_isr =
        topic_config::min_insync_replicas(&broker.replicas.effective_config(), &topic.meta.configs)
            as usize;
    let records = records.unwrap_or_default();
    let required = (acks == -1).then_some(min_isr);
    match partition.append_checked(&records, required) {
        Ok(info) => {
            if !info.duplicate {
                let name = topic.meta.name.as_str();
                broker
                    .metrics
                    .bytes_in
                    .with_label_values(&[name])
                    .inc_by(records.len() as u64);
                broker
                    .metrics
                    .records_in
                    .with_label_values(&[name])
                    .inc_by(info.records_count as u64);
            }
            Ok(Appended {
                base_offset: info.first_offset,
                next_offset: info.last_offset + 1,
                log_append_time: info.log_append_time,
                log_start_offset: info.log_start_offset,
                min_isr,
                partition,
            })
        }
        Err(e) => {
            tracing::debug!(topic = %topic.meta.name, partition = index, error = %e, "append refused");
            Err((e.code(), Some(e.to_string())))
        }
    }
}
