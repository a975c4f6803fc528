//! One handler per Kafka API. Each takes the decoded request and returns the typed response;
//! framing, metrics and version checks happen in [`crate::server`] and [`crate::protocol`].

pub mod admin;
pub mod api_versions;
pub mod configs;
pub mod describe_cluster;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::log::LogError;
use crate::protocol::DecodedRequest;

/// Handles one request; `None` means no response is sent (produce with `acks=0`).
pub async fn handle(broker: &Broker, request: DecodedRequest) -> Option<ResponseKind> {
    let version = request.header.request_api_version;
    Some(match request.body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::response()),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, version)),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(broker, r, version)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, version).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, r, version))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, r, version))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r))
        }
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter(broker, r)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, r))
        }
        // decode_request only lets through APIs listed in protocol::versions, all matched above.
        other => {
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}

/// The Kafka error code for a storage error.
pub fn log_error_code(e: &LogError) -> i16 {
    match e {
        LogError::CorruptRecord { .. }
        | LogError::InvalidBatchLength { .. }
        | LogError::TruncatedBatch { .. } => ResponseError::CorruptMessage.code(),
        LogError::UnsupportedMagic { .. } => ResponseError::UnsupportedForMessageFormat.code(),
        LogError::InvalidBatch { .. } => ResponseError::InvalidRecord.code(),
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        LogError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        _ => ResponseError::KafkaStorageError.code(),
    }
}

/// Config overrides from a request's `(name, value)` pairs; a null value sets nothing.
pub fn config_overrides<'a>(
    pairs: impl Iterator<Item = (&'a StrBytes, Option<&'a StrBytes>)>,
) -> std::collections::BTreeMap<String, String> {
    pairs
        .filter_map(|(name, value)| value.map(|v| (name.to_string(), v.to_string())))
        .collect()
}

/// An owned string for a response field.
pub fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

#[cfg(test)]
mod tests;
