//! Reading a cluster's state: its pods from Kubernetes, its brokers, topics and movements from
//! the admin API.

use k8s_openapi::api::core::v1::Pod;
use weir_api::proto::admin as pb;

use super::plan::{AdminView, BrokerView, PodView};
use crate::admin::Admin;
use crate::names::{ClusterNames, REVISION_LABEL};

/// The pods of the cluster, by ordinal.
pub fn pod_views(names: &ClusterNames, pods: &[Pod]) -> Vec<PodView> {
    let mut views: Vec<PodView> = pods
        .iter()
        .filter_map(|pod| {
            let ordinal = names.ordinal_of(pod.metadata.name.as_deref()?)?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some(PodView {
                ordinal,
                ready,
                revision: pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_LABEL))
                    .cloned(),
                terminating: pod.metadata.deletion_timestamp.is_some(),
            })
        })
        .collect();
    views.sort_by_key(|p| p.ordinal);
    views
}

/// The replication factor of a topic: its widest partition.
fn replication_factor(topic: &pb::TopicDescription) -> usize {
    topic
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .max()
        .unwrap_or(0)
}

/// DescribeCluster and ListTopics, condensed.
pub async fn admin_view(admin: &mut Admin) -> Result<AdminView, tonic::Status> {
    let cluster = admin
        .client
        .describe_cluster(pb::DescribeClusterRequest {})
        .await?
        .into_inner();
    let topics = admin
        .client
        .list_topics(pb::ListTopicsRequest {
            include_internal: true,
        })
        .await?
        .into_inner()
        .topics;
    Ok(AdminView {
        cluster_id: cluster.cluster_id.clone(),
        brokers: cluster
            .brokers
            .iter()
            .map(|b| BrokerView {
                id: b.id,
                state: b.state(),
                rack: b.rack.clone(),
                replicas: b.replica_count,
                leaders: b.preferred_leader_count,
            })
            .collect(),
        controller: cluster.controller.as_ref().and_then(|c| c.leader_id),
        under_replicated: cluster.under_replicated_partition_count,
        offline: cluster.offline_partition_count,
        reassigning: cluster.reassigning_partition_count,
        topics: topics
            .iter()
            .map(|t| (t.name.clone(), replication_factor(t)))
            .collect(),
    })
}

/// Partitions still moving and bytes left to copy.
pub async fn reassignment_progress(admin: &mut Admin) -> Result<(i32, i64), tonic::Status> {
    let list = admin
        .client
        .list_reassignments(pb::ListReassignmentsRequest { partitions: vec![] })
        .await?
        .into_inner();
    let bytes: u64 = list
        .reassignments
        .iter()
        .flat_map(|r| &r.progress)
        .map(|p| p.bytes_total.saturating_sub(p.bytes_copied))
        .sum();
    Ok((
        i32::try_from(list.reassignments.len()).unwrap_or(i32::MAX),
        i64::try_from(bytes).unwrap_or(i64::MAX),
    ))
}
