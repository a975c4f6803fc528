//! Writing the markers of an ending transaction: WriteTxnMarkers (API 27) to the leader of
//! every partition in it, over the Kafka protocol as between Kafka brokers (this broker's own
//! partitions go through its own listener: one path), retried per partition until written,
//! then CompleteCommit/CompleteAbort.
//!
//! A partition whose topic is gone counts as written (nothing is left to mark). The task stops
//! when this broker no longer coordinates the id: the new coordinator loads the Prepare* state
//! and writes the markers again (writing a marker twice is harmless: the second completes
//! nothing).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::TransactionCoordinator;
use super::state::{TopicPartition, TransactionMetadata, TxnState};
use crate::replication::client::BrokerConnection;

/// Pause between rounds while some marker is not written yet.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long one WriteTxnMarkers may take (the leader waits for its in-sync replicas).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);

impl TransactionCoordinator {
    /// Starts writing the markers of `metadata` (a Prepare* state of `transactional_id`) in
    /// the background.
    pub(super) fn send_markers(
        &self,
        transactional_id: String,
        partition: i32,
        metadata: TransactionMetadata,
    ) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%transactional_id, "no runtime to write transaction markers");
            return;
        };
        runtime.spawn(async move {
            let commit = metadata.state == TxnState::PrepareCommit;
            let mut remaining: Vec<TopicPartition> = metadata.partitions.iter().cloned().collect();
            loop {
                // A new leader epoch of the same leadership carries on with the new epoch (it
                // loads nothing, so nothing else would finish this transaction); another
                // broker's leadership writes the markers itself.
                let coordinator_epoch = match me.check_coordinator(&transactional_id) {
                    Ok((p, epoch)) if p == partition => epoch,
                    _ => {
                        tracing::info!(%transactional_id, "no longer the coordinator: its successor writes the markers");
                        return;
                    }
                };
                remaining = me
                    .write_markers_once(&metadata, commit, coordinator_epoch, remaining)
                    .await;
                if remaining.is_empty() {
                    break;
                }
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
            me.complete(&transactional_id, &metadata).await;
        });
    }

    /// One round: the markers of `partitions` sent to their leaders; the partitions still
    /// to do.
    async fn write_markers_once(
        &self,
        metadata: &TransactionMetadata,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<TopicPartition>,
    ) -> Vec<TopicPartition> {
        let image = self.replicas.image();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut remaining = Vec::new();
        for tp in partitions {
            // A partition the image does not know was deleted: nothing is left to mark.
            let Some(leader) = image.partition(&tp.0, tp.1).map(|p| p.leader) else {
                continue;
            };
            if leader >= 0 {
                by_leader.entry(leader).or_default().push(tp);
            } else {
                remaining.push(tp);
            }
        }
        let rounds = by_leader.into_iter().map(|(leader, tps)| {
            let address = image
                .brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port));
            async move {
                match address {
                    Some(address) => {
                        send(&address, metadata, commit, coordinator_epoch, &tps).await
                    }
                    None => tps,
                }
            }
        });
        for failed in futures::future::join_all(rounds).await {
            remaining.extend(failed);
        }
        remaining
    }
}

/// Sends the markers of `tps` to the leader at `address`; the partitions not written.
async fn send(
    address: &str,
    metadata: &TransactionMetadata,
    commit: bool,
    coordinator_epoch: i32,
    tps: &[TopicPartition],
) -> Vec<TopicPartition> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in tps {
        topics.entry(topic).or_default().push(*partition);
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(metadata.producer_id.into())
            .with_producer_epoch(metadata.producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                            .with_partition_indexes(partitions)
                    })
                    .collect(),
            )]);
    let answer = async {
        let mut connection =
            BrokerConnection::connect(address, "weir-txn-coordinator".to_string(), REQUEST_TIMEOUT)
                .await?;
        connection.request(&request, 1, REQUEST_TIMEOUT).await
    };
    let response = match answer.await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(address, error = %e, "WriteTxnMarkers failed; retrying");
            return tps.to_vec();
        }
    };
    let mut failed = Vec::new();
    for marker in response.markers {
        for topic in marker.topics {
            for p in topic.partitions {
                if p.error_code != 0 {
                    tracing::debug!(topic = %topic.name.as_str(), partition = p.partition_index, code = p.error_code, "transaction marker not written; retrying");
                    failed.push((topic.name.to_string(), p.partition_index));
                }
            }
        }
    }
    failed
}
