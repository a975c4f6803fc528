//! Reassignment progress: ListReassignments, and the internal `ReplicaStatus` service that
//! answers it on each partition's leader.
//!
//! Only the leader knows how far a new replica has copied: the offset its follower fetches from
//! is its log end offset. The leader answers with its own log end offset and size and, per
//! follower, that offset and the bytes of its log from there on (`Partition::bytes_from`).
//! The broker answering ListReassignments asks every leader concerned, itself included, once
//! per call; a leader that cannot be reached leaves its partitions' progress unknown (-1
//! offsets, zero bytes) rather than failing the whole answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weir_api::proto::admin as pb;
use weir_api::proto::broker as internal;
use weir_api::proto::broker::replica_status_client::ReplicaStatusClient;
use weir_api::proto::broker::replica_status_server::ReplicaStatus;

use super::reassign::{partition, reassigning};
use super::{AdminError, Peers};
use crate::broker::Broker;
use crate::partition::leader::UNKNOWN_OFFSET;
use crate::partition::Role;
use crate::replica_manager::ReplicaManager;

/// How long the answering broker waits for a leader's report.
const LEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The `ReplicaStatus` service of one broker.
#[derive(Debug, Clone)]
pub struct ReplicaStatusService {
    broker: Arc<Broker>,
}

impl ReplicaStatusService {
    /// The service over `broker`'s partitions.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self { broker }
    }
}

/// What this broker knows as leader of `topic`/`index`; `None` if it does not lead it.
/// Reads a little of the log (`bytes_from`), so call it off the async workers.
pub(crate) fn leader_replicas(
    replicas: &ReplicaManager,
    topic: &str,
    index: i32,
) -> Option<internal::LeaderReplicas> {
    let partition = replicas.partition(topic, index)?;
    let Role::Leader(leader) = partition.role() else {
        return None;
    };
    let stats = partition.stats();
    let followers = leader
        .followers
        .iter()
        .map(|(id, progress)| {
            let offset = progress.log_end_offset;
            let bytes_behind = if offset == UNKNOWN_OFFSET {
                stats.size_bytes
            } else {
                partition.bytes_from(offset).unwrap_or_else(|e| {
                    tracing::warn!(topic, partition = index, error = %e, "measuring a follower's lag");
                    stats.size_bytes
                })
            };
            internal::FollowerReplica {
                broker_id: *id,
                log_end_offset: offset,
                bytes_behind,
            }
        })
        .collect();
    Some(internal::LeaderReplicas {
        topic: topic.to_string(),
        partition: index,
        leader_epoch: leader.leader_epoch,
        log_start_offset: stats.log_start_offset,
        log_end_offset: stats.log_end_offset,
        size_bytes: stats.size_bytes,
        followers,
    })
}

async fn local_reports(
    broker: Arc<Broker>,
    partitions: Vec<internal::PartitionRef>,
) -> Vec<internal::LeaderReplicas> {
    tokio::task::spawn_blocking(move || {
        partitions
            .iter()
            .filter_map(|p| leader_replicas(&broker.replicas, &p.topic, p.partition))
            .collect()
    })
    .await
    .unwrap_or_default()
}

#[tonic::async_trait]
impl ReplicaStatus for ReplicaStatusService {
    async fn describe_leader_replicas(
        &self,
        request: Request<internal::DescribeLeaderReplicasRequest>,
    ) -> Result<Response<internal::DescribeLeaderReplicasResponse>, Status> {
        let partitions = request.into_inner().partitions;
        Ok(Response::new(internal::DescribeLeaderReplicasResponse {
            partitions: local_reports(self.broker.clone(), partitions).await,
        }))
    }
}

type Key = (String, i32);

/// Asks each leader (by broker id) about its partitions; missing entries are unknown.
async fn leader_reports(
    broker: &Arc<Broker>,
    peers: &Peers,
    by_leader: BTreeMap<i32, Vec<internal::PartitionRef>>,
) -> BTreeMap<Key, internal::LeaderReplicas> {
    let image = broker.replicas.image();
    let mut reports = Vec::new();
    for (leader, partitions) in by_leader {
        if leader == broker.node_id() {
            reports.extend(local_reports(broker.clone(), partitions).await);
            continue;
        }
        let Some(addr) = image.brokers.get(&leader).map(|b| b.rpc_addr.clone()) else {
            continue;
        };
        let answer = async {
            let mut client = ReplicaStatusClient::new(peers.channel(&addr)?);
            let request = internal::DescribeLeaderReplicasRequest { partitions };
            client
                .describe_leader_replicas(request)
                .await
                .map_err(|s| AdminError::Unavailable(s.message().to_string()))
        };
        match tokio::time::timeout(LEADER_TIMEOUT, answer).await {
            Ok(Ok(response)) => reports.extend(response.into_inner().partitions),
            Ok(Err(e)) => {
                tracing::info!(leader, error = %e, "no reassignment progress from a leader")
            }
            Err(_) => tracing::info!(leader, "no reassignment progress from a leader in time"),
        }
    }
    reports
        .into_iter()
        .map(|r| ((r.topic.clone(), r.partition), r))
        .collect()
}

/// ListReassignments: the named partitions that are being reassigned (all of them when none is
/// named), with each new replica's progress.
pub(super) async fn list_reassignments(
    broker: &Arc<Broker>,
    peers: &Peers,
    request: pb::ListReassignmentsRequest,
) -> Result<pb::ListReassignmentsResponse, AdminError> {
    let image = broker.replicas.image();
    let wanted = if request.partitions.is_empty() {
        reassigning(&image)
    } else {
        let mut wanted = Vec::new();
        for tp in request.partitions {
            if partition(&image, &tp.topic, tp.partition)?.is_reassigning() {
                wanted.push(tp);
            }
        }
        wanted
    };
    let mut by_leader: BTreeMap<i32, Vec<internal::PartitionRef>> = BTreeMap::new();
    for tp in &wanted {
        let p = partition(&image, &tp.topic, tp.partition)?;
        by_leader
            .entry(p.leader)
            .or_default()
            .push(internal::PartitionRef {
                topic: tp.topic.clone(),
                partition: tp.partition,
            });
    }
    let reports = leader_reports(broker, peers, by_leader).await;
    let mut reassignments = Vec::new();
    for tp in wanted {
        let p = partition(&image, &tp.topic, tp.partition)?;
        let report = reports.get(&(tp.topic.clone(), tp.partition));
        let progress = p
            .adding
            .iter()
            .map(|id| {
                let follower = report.and_then(|r| r.followers.iter().find(|f| f.broker_id == *id));
                let total = report.map_or(0, |r| r.size_bytes);
                pb::ReplicaProgress {
                    broker_id: *id,
                    log_end_offset: follower.map_or(UNKNOWN_OFFSET, |f| f.log_end_offset),
                    leader_log_end_offset: report.map_or(UNKNOWN_OFFSET, |r| r.log_end_offset),
                    bytes_copied: follower.map_or(0, |f| total.saturating_sub(f.bytes_behind)),
                    bytes_total: total,
                    in_sync: p.isr.contains(id),
                }
            })
            .collect();
        reassignments.push(pb::ReassignmentStatus {
            topic: tp.topic,
            partition: tp.partition,
            replicas: p.replicas.clone(),
            target_replicas: p.target_replicas(),
            adding_replicas: p.adding.clone(),
            removing_replicas: p.removing.clone(),
            progress,
        });
    }
    Ok(pb::ListReassignmentsResponse {
        reassignments,
        throttle_bytes_per_second: image.reassignment_throttle,
    })
}
