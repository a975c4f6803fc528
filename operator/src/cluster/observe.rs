//! Reading a cluster's state: its StatefulSet and pods from Kubernetes, its brokers, topics and
//! movements from the admin API.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use weir_api::proto::admin as pb;

use super::plan::{AdminView, BrokerView, PodView, QuorumMember};
use crate::admin::{self, Admin, AdminTls};
use crate::context::Context;
use crate::crd::ClusterSpec;
use crate::error::Error;
use crate::names::{ClusterNames, REVISION_LABEL};

/// What one reconcile saw of a cluster.
pub struct Observed {
    /// The StatefulSet, `None` before it exists.
    pub statefulset: Option<StatefulSet>,
    /// Its replica count.
    pub current_replicas: Option<i32>,
    pub pods: Vec<PodView>,
    /// A connection to the admin API and what it said, when it answered.
    pub admin: Option<(Admin, AdminView)>,
    /// Why the admin API did not answer (when there were pods to ask).
    pub admin_error: Option<String>,
}

impl Observed {
    /// What the admin API said, when it answered.
    pub fn view(&self) -> Option<&AdminView> {
        self.admin.as_ref().map(|(_, view)| view)
    }
}

/// Fetches the StatefulSet and the pods, and asks the admin API of the first pod that answers.
/// A silent admin API is not an error: it is reported in [`Observed::admin_error`].
pub async fn cluster(
    ctx: &Context,
    names: &ClusterNames,
    spec: &ClusterSpec,
    tls: Option<&AdminTls>,
) -> Result<Observed, Error> {
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let statefulset = statefulsets.get_opt(&names.statefulset()).await?;
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let pods = pods_api
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
        .items;
    let pods = pod_views(names, &pods);
    let current_replicas = statefulset
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);
    let mut observed = Observed {
        statefulset,
        current_replicas,
        pods,
        admin: None,
        admin_error: None,
    };
    if observed.statefulset.is_none() || observed.pods.is_empty() {
        return Ok(observed);
    }
    // Ready brokers first: one that is still catching up (a voter that came back with an
    // empty volume) would describe a quorum it does not know yet.
    let mut ordinals: Vec<(bool, i32)> = observed
        .pods
        .iter()
        .filter(|p| p.ordinal < current_replicas.unwrap_or(0))
        .map(|p| (!p.ready, p.ordinal))
        .collect();
    ordinals.sort_unstable();
    let ordinals = ordinals.into_iter().map(|(_, o)| o);
    let connected = admin::connect(
        names,
        &ctx.settings.addressing,
        spec.listeners.internal_port,
        ordinals,
        tls,
    )
    .await;
    match connected {
        Ok(mut a) => match admin_view(&mut a).await {
            Ok(view) => observed.admin = Some((a, view)),
            Err(e) => observed.admin_error = Some(format!("admin API: {}", e.message())),
        },
        Err(e) => observed.admin_error = Some(e),
    }
    Ok(observed)
}

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
    let topics = topics(admin).await?;
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
                directory_id: Some(b.directory_id.clone()).filter(|d| !d.is_empty()),
            })
            .collect(),
        controller: cluster.controller.as_ref().and_then(|c| c.leader_id),
        members: cluster
            .controller
            .iter()
            .flat_map(|c| &c.members)
            .map(|m| QuorumMember {
                node_id: m.node_id,
                directory_id: Some(m.directory_id.clone()).filter(|d| !d.is_empty()),
                voter: m.voter,
            })
            .collect(),
        under_replicated: cluster.under_replicated_partition_count,
        offline: cluster.offline_partition_count,
        reassigning: cluster.reassigning_partition_count,
        topics: topics
            .iter()
            .map(|t| (t.name.clone(), replication_factor(t)))
            .collect(),
    })
}

/// Every topic, internal ones included, with its assignment.
pub async fn topics(admin: &mut Admin) -> Result<Vec<pb::TopicDescription>, tonic::Status> {
    Ok(admin
        .client
        .list_topics(pb::ListTopicsRequest {
            include_internal: true,
        })
        .await?
        .into_inner()
        .topics)
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
