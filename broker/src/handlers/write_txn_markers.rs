//! WriteTxnMarkers (API 27): a transaction coordinator (or `kafka-transactions abort`, through
//! the admin client) asks the leader of each partition of a transaction to append its COMMIT
//! or ABORT marker.
//!
//! Each marker is appended as a control batch and answered once the in-sync replicas hold it
//! (Kafka writes markers with `acks=all`), so a leader failover cannot take back a marker the
//! coordinator was told is written. A marker in a `__consumer_offsets` partition also completes
//! the transaction's pending offset commits in the group coordinator. Partitions are written
//! concurrently.

use std::time::Duration;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::log::{ControlRecordType, TxnMarker};
use crate::partition::PartitionError;

/// How long a marker may wait for the in-sync replicas (Kafka's `request.timeout.ms` default).
const MARKER_REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers WriteTxnMarkers.
pub async fn handle(broker: &Broker, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let markers = request.markers.into_iter().map(|m| async move {
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            kind: if m.transaction_result {
                ControlRecordType::Commit
            } else {
                ControlRecordType::Abort
            },
        };
        let topics = m.topics.into_iter().map(|t| async move {
            let partitions = t.partition_indexes.iter().map(|&index| {
                let topic = t.name.as_str();
                async move {
                    let code = write_one(broker, topic, index, &marker).await;
                    broker.count_error("WriteTxnMarkers", code);
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                }
            });
            let partitions = join_all(partitions).await;
            WritableTxnMarkerTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        });
        WritableTxnMarkerResult::default()
            .with_producer_id(m.producer_id)
            .with_topics(join_all(topics).await)
    });
    WriteTxnMarkersResponse::default().with_markers(join_all(markers).await)
}

/// Appends `marker` to `topic`/`index` and waits for the in-sync replicas; the error code.
async fn write_one(broker: &Broker, topic: &str, index: i32, marker: &TxnMarker) -> i16 {
    let exists = broker
        .replicas
        .topic(topic)
        .is_some_and(|t| (0..t.meta.partitions).contains(&index));
    if !exists {
        return ResponseError::UnknownTopicOrPartition.code();
    }
    let Some(partition) = broker.replicas.partition(topic, index) else {
        return ResponseError::NotLeaderOrFollower.code();
    };
    let info = match partition.append_txn_marker(marker) {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(topic, partition = index, producer_id = marker.producer_id, error = %e, "transaction marker refused");
            return e.code();
        }
    };
    if let Err(e) = partition
        .wait_for_high_watermark(info.appended(), 1, MARKER_REPLICATION_TIMEOUT)
        .await
    {
        tracing::warn!(topic, partition = index, producer_id = marker.producer_id, error = %e, "transaction marker not replicated");
        return match e {
            PartitionError::Timeout => ResponseError::RequestTimedOut.code(),
            other => other.code(),
        };
    }
    if topic == OFFSETS_TOPIC {
        broker.groups.complete_transaction(
            index,
            marker.producer_id,
            marker.kind == ControlRecordType::Commit,
        );
    }
    tracing::debug!(topic, partition = index, producer_id = marker.producer_id, kind = ?marker.kind, offset = info.last_offset, "transaction marker written");
    0
}
