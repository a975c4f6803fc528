//! Produce: append each partition's record batches to its log.
//!
//! On a single broker the in-sync replica set is this broker alone, so `acks=1` and `acks=-1`
//! both answer once the leader's append returned; `acks=-1` still honours
//! `min.insync.replicas` (a topic asking for 2 gets NOT_ENOUGH_REPLICAS, as in Kafka).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::text;
use crate::broker::Broker;
use crate::config::topic as topic_config;
use crate::group::OFFSETS_TOPIC;
use crate::replica_manager::TopicState;

/// Appends the request's batches; `None` for `acks=0`, which gets no response.
pub fn handle(broker: &Broker, request: ProduceRequest, version: i16) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended = false;
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
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let mut r = PartitionProduceResponse::default()
                .with_index(pd.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let code = match &topic {
                _ if !matches!(acks, -1..=1) => ResponseError::InvalidRequiredAcks.code(),
                None => unknown,
                Some(t) => match append(broker, t, pd.index, pd.records, acks) {
                    Ok((base, append_time, start)) => {
                        appended = true;
                        r = r
                            .with_base_offset(base)
                            .with_log_append_time_ms(append_time)
                            .with_log_start_offset(start);
                        0
                    }
                    Err((code, message)) => {
                        r = r.with_error_message(message.map(text));
                        code
                    }
                },
            };
            broker.count_error("Produce", code);
            partition_responses.push(r.with_error_code(code));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if appended {
        broker.replicas.notify_appended();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

type AppendResult = Result<(i64, i64, i64), (i16, Option<String>)>;

fn append(
    broker: &Broker,
    topic: &TopicState,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
) -> AppendResult {
    if topic.meta.name == OFFSETS_TOPIC {
        // Only the group coordinator writes there, as in Kafka.
        return Err((
            ResponseError::InvalidTopicException.code(),
            Some(format!("cannot append to internal topic {OFFSETS_TOPIC}")),
        ));
    }
    let partition = usize::try_from(index)
        .ok()
        .and_then(|i| topic.partitions.get(i))
        .ok_or((ResponseError::UnknownTopicOrPartition.code(), None))?;
    if acks == -1 {
        let min_isr = topic_config::min_insync_replicas(&broker.config, &topic.meta.configs);
        if min_isr > 1 {
            return Err((
                ResponseError::NotEnoughReplicas.code(),
                Some(format!(
                    "min.insync.replicas is {min_isr} but the in-sync replica set has 1 member"
                )),
            ));
        }
    }
    let records = records.unwrap_or_default();
    match partition.append(&records) {
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
            Ok((
                info.first_offset,
                info.log_append_time,
                info.log_start_offset,
            ))
        }
        Err(e) => {
            tracing::debug!(topic = %topic.meta.name, partition = index, error = %e, "append refused");
            Err((e.code(), Some(e.to_string())))
        }
    }
}
