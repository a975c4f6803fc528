//! The share-partition leader's side of `__share_group_state`: ReadShareGroupState and
//! WriteShareGroupState (and, for the share-group admin APIs, InitializeShareGroupState,
//! ReadShareGroupStateSummary and DeleteShareGroupState) sent to the key's share coordinator (the leader of its
//! `__share_group_state` partition, see [`super::coordinator`]) over the Kafka protocol, as
//! Kafka's `DefaultStatePersister` does. This broker's own coordinator is reached through its
//! own listener too: one path.
//!
//! Retriable answers (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
//! no leader, a broken connection) are retried against the coordinator the metadata image
//! names then, until [`RETRY_DEADLINE`]: a coordinator moving during a failover is waited
//! out rather than reported to the client. Connections are pooled per address; each carries
//! one request at a time.
//!
//! Thread-safety: the pool ([`PeerConnections`]) is a mutex held only to take or return a
//! connection.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    delete_share_group_state_request, initialize_share_group_state_request, list_offsets_request,
    read_share_group_state_request, read_share_group_state_summary_request,
    write_share_group_state_request, BrokerId, DeleteShareGroupStateRequest,
    InitializeShareGroupStateRequest, ListOffsetsRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, TopicName, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::coordinator::{ShareCoordinator, StateSummary, StateWrite, SHARE_STATE_TOPIC};
use super::partition::StateBatch;
use super::state_records::{SharePartitionKey, ShareState};
use crate::replica_manager::ReplicaManager;
use crate::replication::client::PeerConnections;

/// How long a read or write keeps retrying a coordinator that is moving.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between retries.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// How long one request may take (the coordinator waits for its in-sync replicas).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per share coordinator.
const CONNECTIONS_PER_PEER: usize = 8;

/// Reads and writes share-partition state at its share coordinator.
pub struct SharePersister {
    replicas: Arc<ReplicaManager>,
    coordinator: Arc<ShareCoordinator>,
    pool: PeerConnections,
}

impl std::fmt::Debug for SharePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharePersister").finish_non_exhaustive()
    }
}

/// The one partition's answer of a single-partition request: `Ok` for code 0.
fn first_code(mut codes: impl Iterator<Item = i16>) -> Result<(), i16> {
    match codes.next() {
        Some(0) => Ok(()),
        Some(code) => Err(code),
        None => Err(ResponseError::UnknownServerError.code()),
    }
}

/// Whether an error code is worth another try at the coordinator the image names next.
fn retriable(code: i16) -> bool {
    code == ResponseError::NotCoordinator.code()
        || code == ResponseError::CoordinatorLoadInProgress.code()
        || code == ResponseError::CoordinatorNotAvailable.code()
}

impl SharePersister {
    /// A persister reaching the coordinators of the image of `replicas`; `coordinator` (this
    /// broker's) creates `__share_group_state` on first use.
    pub fn new(replicas: Arc<ReplicaManager>, coordinator: Arc<ShareCoordinator>) -> Self {
        Self {
            replicas,
            coordinator,
            pool: PeerConnections::new("weir-share-persister", CONNECTIONS_PER_PEER),
        }
    }

    /// The state of `key` (start offset -1: none), read as the leader at `leader_epoch`.
    pub async fn read(
        &self,
        key: &SharePartitionKey,
        leader_epoch: i32,
    ) -> Result<Option<ShareState>, i16> {
        let request = ReadShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                read_share_group_state_request::ReadStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![
                        read_share_group_state_request::PartitionData::default()
                            .with_partition(key.partition)
                            .with_leader_epoch(leader_epoch),
                    ]),
            ]);
        self.send_retrying(key, &request, 0, |response| {
            let p = response
                .results
                .into_iter()
                .flat_map(|r| r.partitions)
                .next()
                .ok_or(ResponseError::UnknownServerError.code())?;
            if p.error_code != 0 {
                return Err(p.error_code);
            }
            // A share partition without state still has a state epoch (the next one after a
            // delete): start offset -1 tells the caller to start per share.auto.offset.reset.
            Ok(Some(ShareState {
                state_epoch: p.state_epoch,
                leader_epoch,
                start_offset: p.start_offset,
                batches: p
                    .state_batches
                    .iter()
                    .map(|b| StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        delivery_state: b.delivery_state,
                        delivery_count: b.delivery_count,
                    })
                    .collect(),
                ..ShareState::default()
            }))
        })
        .await
    }

    /// Writes `write` for `key`; `Ok` once the coordinator's in-sync replicas hold it.
    pub async fn write(&self, key: &SharePartitionKey, write: &StateWrite) -> Result<(), i16> {
        let request = WriteShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                write_share_group_state_request::WriteStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![
                        write_share_group_state_request::PartitionData::default()
                            .with_partition(key.partition)
                            .with_state_epoch(write.state_epoch)
                            .with_leader_epoch(write.leader_epoch)
                            .with_start_offset(write.start_offset)
                            .with_state_batches(
                                write
                                    .batches
                                    .iter()
                                    .map(|b| {
                                        write_share_group_state_request::StateBatch::default()
                                            .with_first_offset(b.first_offset)
                                            .with_last_offset(b.last_offset)
                                            .with_delivery_state(b.delivery_state)
                                            .with_delivery_count(b.delivery_count)
                                    })
                                    .collect(),
                            ),
                    ]),
            ]);
        self.send_retrying(key, &request, 0, |response| {
            let p = response
                .results
                .into_iter()
                .flat_map(|r| r.partitions)
                .next()
                .ok_or(ResponseError::UnknownServerError.code())?;
            match p.error_code {
                0 => Ok(()),
                code => Err(code),
            }
        })
        .await
    }

    /// ReadShareGroupStateSummary (v1) of `key`: its start offset (-1: no state), epochs and
    /// delivery-complete count.
    pub async fn read_summary(&self, key: &SharePartitionKey) -> Result<StateSummary, i16> {
        let request = ReadShareGroupStateSummaryRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                read_share_group_state_summary_request::ReadStateSummaryData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![
                        read_share_group_state_summary_request::PartitionData::default()
                            .with_partition(key.partition)
                            .with_leader_epoch(-1),
                    ]),
            ]);
        self.send_retrying(key, &request, 1, |response| {
            let p = response
                .results
                .into_iter()
                .flat_map(|r| r.partitions)
                .next()
                .ok_or(ResponseError::UnknownServerError.code())?;
            if p.error_code != 0 {
                return Err(p.error_code);
            }
            Ok(StateSummary {
                state_epoch: p.state_epoch,
                leader_epoch: p.leader_epoch,
                start_offset: p.start_offset,
                delivery_complete_count: p.delivery_complete_count,
            })
        })
        .await
    }

    /// InitializeShareGroupState of `key`: an empty window at `start_offset` in
    /// `state_epoch`.
    pub async fn initialize(
        &self,
        key: &SharePartitionKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), i16> {
        let request = InitializeShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                initialize_share_group_state_request::InitializeStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![
                        initialize_share_group_state_request::PartitionData::default()
                            .with_partition(key.partition)
                            .with_state_epoch(state_epoch)
                            .with_start_offset(start_offset),
                    ]),
            ]);
        self.send_retrying(key, &request, 0, |response| {
            first_code(
                response
                    .results
                    .into_iter()
                    .flat_map(|r| r.partitions)
                    .map(|p| p.error_code),
            )
        })
        .await
    }

    /// DeleteShareGroupState of `key`.
    pub async fn delete(&self, key: &SharePartitionKey) -> Result<(), i16> {
        let request = DeleteShareGroupStateRequest::default()
            .with_group_id(StrBytes::from_string(key.group_id.clone()))
            .with_topics(vec![
                delete_share_group_state_request::DeleteStateData::default()
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![
                        delete_share_group_state_request::PartitionData::default()
                            .with_partition(key.partition),
                    ]),
            ]);
        self.send_retrying(key, &request, 0, |response| {
            first_code(
                response
                    .results
                    .into_iter()
                    .flat_map(|r| r.partitions)
                    .map(|p| p.error_code),
            )
        })
        .await
    }

    /// [`Self::send`] and `answer`, again after [`RETRY_BACKOFF`] while the error is
    /// retriable and [`RETRY_DEADLINE`] has not passed.
    async fn send_retrying<R, T>(
        &self,
        key: &SharePartitionKey,
        request: &R,
        version: i16,
        answer: impl Fn(R::Response) -> Result<T, i16>,
    ) -> Result<T, i16>
    where
        R: kafka_protocol::protocol::Request,
    {
        let deadline = Instant::now() + RETRY_DEADLINE;
        loop {
            match self.send(key, request, version).await.and_then(&answer) {
                Err(code) if retriable(code) && Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_BACKOFF).await
                }
                other => return other,
            }
        }
    }

    /// Sends `request` at `version` to the coordinator of `key` the image names now; a
    /// failure to reach it is COORDINATOR_NOT_AVAILABLE (retriable).
    async fn send<R: kafka_protocol::protocol::Request>(
        &self,
        key: &SharePartitionKey,
        request: &R,
        version: i16,
    ) -> Result<R::Response, i16> {
        let unavailable = ResponseError::CoordinatorNotAvailable.code();
        if self.replicas.topic(SHARE_STATE_TOPIC).is_none() {
            if let Err(e) = self.coordinator.ensure_state_topic().await {
                tracing::warn!(error = %e, "creating __share_group_state failed");
            }
            return Err(unavailable);
        }
        let partition = self.coordinator.partition_for(key);
        let address = {
            let image = self.replicas.image();
            let leader = image
                .partition(SHARE_STATE_TOPIC, partition)
                .map_or(-1, |p| p.leader);
            image
                .brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port))
        };
        let Some(address) = address else {
            return Err(unavailable);
        };
        self.send_to(address, request, version).await
    }

    /// The end offset (high watermark) of `topic`/`index` for share-partition lag: read here
    /// when this broker leads it, else asked of its leader with ListOffsets (latest). `None`
    /// when there is no leader or it does not answer.
    pub async fn end_offset(&self, topic: &str, index: i32) -> Option<i64> {
        if let Some(p) = self.replicas.partition(topic, index) {
            if p.is_leader() {
                return Some(p.high_watermark());
            }
        }
        let address = {
            let image = self.replicas.image();
            let leader = image.partition(topic, index).map_or(-1, |p| p.leader);
            image
                .brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port))
        }?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(index)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(-1),
                ])]);
        let response = self.send_to(address, &request, 7).await.ok()?;
        let p = response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()?;
        (p.error_code == 0).then_some(p.offset)
    }

    /// Sends `request` at `version` to the broker at `address` over a pooled connection; a
    /// failure to reach it is COORDINATOR_NOT_AVAILABLE (retriable).
    async fn send_to<R: kafka_protocol::protocol::Request>(
        &self,
        address: String,
        request: &R,
        version: i16,
    ) -> Result<R::Response, i16> {
        self.pool
            .request(&address, request, version, REQUEST_TIMEOUT)
            .await
            .map_err(|e| {
                tracing::debug!(%address, error = %e, "share state request failed");
                ResponseError::CoordinatorNotAvailable.code()
            })
    }
}
