//! The reconcile's actions beyond applying objects, in this order: start a drain the scale
//! decision asked for; follow, finish or start data movement (a rebalance onto a changed
//! broker set, then the preferred leaders elected); unregister brokers whose pods are gone;
//! take one step for the metadata quorum's voters (grow, record, replace a voter's storage);
//! restart the next pod of a rolling restart. Each reads the decision and what was observed,
//! and records what it started in the status.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use weir_api::placement::{self, BrokerInfo};
use weir_api::proto::admin as pb;

use super::observe::{self, Observed};
use super::plan::quorum::{self, AddReason, QuorumStep};
use super::plan::{self, AdminView, RollStep, ScaleDecision, ScaleStep};
use super::status::{self, Progress};
use crate::admin::Admin;
use crate::context::Context;
use crate::crd::{Cluster, ClusterStatus, RebalancePhase, RebalanceStatus};
use crate::error::Error;
use crate::names::ClusterNames;

/// Every action of one reconcile, in the module's order.
pub async fn act(
    ctx: &Context,
    cluster: &Cluster,
    observed: &mut Observed,
    decision: &ScaleDecision,
    applied: &StatefulSet,
    status: &mut ClusterStatus,
    progress: &mut Progress,
) -> Result<(), Error> {
    let names = ClusterNames::of(cluster);
    let voters = quorum::known_voters(&status.voters, observed.view());
    let replicas = decision.statefulset_replicas;
    let pods = &observed.pods;
    if let Some((admin, view)) = observed.admin.as_mut() {
        if let ScaleStep::Drain(id) = decision.step {
            drain(cluster, &names, admin, id, status).await?;
        }
        let all_ready = pods.len() as i32 == replicas && pods.iter().all(|p| p.ready);
        let steady = all_ready && replicas == cluster.spec.replicas;
        movements(cluster, status, progress, admin, view, steady).await?;
        unregister_removed(
            &names,
            admin,
            view,
            observed.pods.as_slice(),
            replicas,
            &voters,
        )
        .await?;
        voters_step(cluster, &names, admin, view, pods, status, progress).await;
    }
    roll(ctx, &names, observed, applied, replicas, &voters, progress).await
}

/// Starts draining broker `id` before the StatefulSet shrinks past it.
async fn drain(
    cluster: &Cluster,
    names: &ClusterNames,
    admin: &mut Admin,
    id: i32,
    status: &mut ClusterStatus,
) -> Result<(), Error> {
    let plan = admin
        .client
        .drain_broker(pb::DrainBrokerRequest {
            broker_id: id,
            throttle_bytes_per_second: throttle(cluster),
            dry_run: false,
        })
        .await?
        .into_inner();
    tracing::info!(cluster = %names.cluster, broker = id, moves = plan.move_count, "draining a broker before removing it");
    status.rebalance = Some(RebalanceStatus {
        phase: RebalancePhase::Draining,
        brokers: (0..cluster.spec.replicas).collect(),
        moves: i32::try_from(plan.move_count).unwrap_or(i32::MAX),
        started: Some(status::now_string()),
        ..RebalanceStatus::default()
    });
    Ok(())
}

/// Unregisters the stopped, empty brokers above the StatefulSet's size whose pods are gone.
async fn unregister_removed(
    names: &ClusterNames,
    admin: &mut Admin,
    view: &AdminView,
    pods: &[plan::PodView],
    replicas: i32,
    voters: &[i32],
) -> Result<(), Error> {
    for id in plan::brokers_to_unregister(view, replicas, voters) {
        if !pods.iter().any(|p| p.ordinal == id) {
            admin
                .client
                .unregister_broker(pb::UnregisterBrokerRequest { broker_id: id })
                .await?;
            tracing::info!(cluster = %names.cluster, broker = id, "unregistered a removed broker");
        }
    }
    Ok(())
}

/// One step for the metadata quorum's voters ([`quorum::quorum_step`]). A refused or timed-out
/// membership change is not a reconcile error: the brokers change one membership at a time
/// (an auto-join step may be running), so it is reported in the status and tried again on
/// the next pass.
async fn voters_step(
    cluster: &Cluster,
    names: &ClusterNames,
    admin: &mut Admin,
    view: &AdminView,
    pods: &[plan::PodView],
    status: &mut ClusterStatus,
    progress: &mut Progress,
) {
    let step = quorum::quorum_step(
        &status.voters,
        cluster.spec.replicas,
        pods,
        view,
        quorum::auto_join(&cluster.spec.config),
    );
    let line = step.describe();
    progress.quorum = line.clone().map(|l| (quorum_reason(&step), l));
    let result = match &step {
        QuorumStep::Steady | QuorumStep::Wait(_) => return,
        QuorumStep::Record(voters) => {
            tracing::info!(cluster = %names.cluster, ?voters, "recording the metadata quorum's voters");
            status.voters = voters.clone();
            // Busy until the next pass has given the brokers the new contact list.
            progress.quorum = Some((
                "GrowingQuorum",
                format!("the metadata quorum's voters are {voters:?}"),
            ));
            return;
        }
        QuorumStep::Add {
            node, directory_id, ..
        } => {
            tracing::info!(cluster = %names.cluster, node, %directory_id, "making a broker a voter of the metadata quorum");
            admin
                .client
                .add_raft_voter(pb::AddRaftVoterRequest {
                    node_id: *node,
                    directory_id: directory_id.clone(),
                })
                .await
                .map(|_| *node)
        }
        QuorumStep::Remove { node, directory_id } => {
            tracing::info!(cluster = %names.cluster, node, %directory_id, "removing a voter's old storage from the metadata quorum");
            admin
                .client
                .remove_raft_voter(pb::RemoveRaftVoterRequest {
                    node_id: *node,
                    directory_id: directory_id.clone(),
                })
                .await
                .map(|_| *node)
        }
    };
    match result {
        Ok(node) if matches!(step, QuorumStep::Add { .. }) => {
            // Recorded once DescribeCluster shows it counted (or on the next pass).
            match observe::admin_view(admin).await {
                Ok(now) if now.voters().contains(&node) => {
                    status.voters = quorum::known_voters(&status.voters, Some(&now));
                    tracing::info!(cluster = %names.cluster, node, voters = ?status.voters, "the metadata quorum counts a new voter");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(cluster = %names.cluster, node, error = %e.message(), "describing the quorum after AddRaftVoter")
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(cluster = %names.cluster, error = %e.message(), "a metadata quorum change did not complete; trying again");
            if let Some((reason, line)) = progress.quorum.take() {
                progress.quorum = Some((reason, format!("{line} ({})", e.message())));
            }
        }
    }
}

/// The `Progressing` reason of a quorum step.
fn quorum_reason(step: &QuorumStep) -> &'static str {
    match step {
        QuorumStep::Add {
            reason: AddReason::Grow,
            ..
        } => "GrowingQuorum",
        QuorumStep::Wait(why) if why.starts_with("growing") => "GrowingQuorum",
        _ => "ReplacingVoter",
    }
}

/// Restarts the next pod made from an old revision, when the cluster is healthy enough.
async fn roll(
    ctx: &Context,
    names: &ClusterNames,
    observed: &Observed,
    applied: &StatefulSet,
    replicas: i32,
    voters: &[i32],
    progress: &mut Progress,
) -> Result<(), Error> {
    let update_revision = applied
        .status
        .as_ref()
        .and_then(|s| s.update_revision.as_deref());
    match plan::roll_step(
        &observed.pods,
        replicas,
        update_revision,
        voters,
        observed.view(),
    ) {
        RollStep::Done => {}
        RollStep::Wait(why) => progress.rolling = Some(why),
        RollStep::Restart(ordinal) => {
            let pod = names.pod(ordinal);
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
            pods.delete(&pod, &DeleteParams::default()).await?;
            tracing::info!(cluster = %names.cluster, %pod, "restarting a broker on the new revision");
            progress.rolling = Some(format!("restarting broker {ordinal}"));
        }
    }
    Ok(())
}

fn throttle(cluster: &Cluster) -> Option<u64> {
    cluster
        .spec
        .rebalance
        .throttle_bytes_per_second
        .and_then(|t| u64::try_from(t).ok())
}

/// Follows running moves; once they are done, elects the preferred leaders; once the broker
/// set changed and everything is healthy (`steady`), starts a rebalance.
async fn movements(
    cluster: &Cluster,
    status: &mut ClusterStatus,
    progress: &mut Progress,
    admin: &mut Admin,
    view: &AdminView,
    steady: bool,
) -> Result<(), Error> {
    if view.reassigning > 0 {
        return track_moves(status, progress, admin).await;
    }
    finish_moves(status, admin).await?;
    let balanced_for = status
        .rebalance
        .as_ref()
        .map(|r| r.brokers.clone())
        .unwrap_or_default();
    if steady && plan::rebalance_due(view, cluster.spec.replicas, true, &balanced_for) {
        status.rebalance = Some(start_rebalance(cluster, progress, admin, view).await?);
    }
    Ok(())
}

/// Records how much of the running moves is left.
async fn track_moves(
    status: &mut ClusterStatus,
    progress: &mut Progress,
    admin: &mut Admin,
) -> Result<(), Error> {
    let (partitions, bytes) = observe::reassignment_progress(admin).await?;
    let rebalance = status.rebalance.get_or_insert_with(|| RebalanceStatus {
        phase: RebalancePhase::Rebalancing,
        ..RebalanceStatus::default()
    });
    rebalance.partitions_remaining = partitions;
    rebalance.bytes_remaining = bytes;
    progress.working.push(format!(
        "{partitions} partitions moving, {bytes} bytes left"
    ));
    Ok(())
}

/// Marks finished moves done and moves leadership to the preferred replicas: new brokers lead
/// nothing until then.
async fn finish_moves(status: &mut ClusterStatus, admin: &mut Admin) -> Result<(), Error> {
    let Some(r) = status.rebalance.as_mut() else {
        return Ok(());
    };
    if r.phase == RebalancePhase::Idle {
        return Ok(());
    }
    r.phase = RebalancePhase::Idle;
    r.partitions_remaining = 0;
    r.bytes_remaining = 0;
    r.completed = Some(status::now_string());
    admin
        .client
        .elect_leaders(pb::ElectLeadersRequest { partitions: vec![] })
        .await?;
    Ok(())
}

/// Plans the moves onto the live brokers (off draining ones) and starts them.
async fn start_rebalance(
    cluster: &Cluster,
    progress: &mut Progress,
    admin: &mut Admin,
    view: &AdminView,
) -> Result<RebalanceStatus, Error> {
    let topics = observe::topics(admin).await?;
    let current = weir_api::admin::cluster_assignment(&topics)?;
    let brokers: Vec<BrokerInfo> = view
        .brokers
        .iter()
        .filter(|b| b.state != pb::BrokerState::Unregistered)
        .map(|b| BrokerInfo::new(b.id, b.rack.as_deref()))
        .collect();
    let draining: Vec<i32> = view
        .brokers
        .iter()
        .filter(|b| b.state == pb::BrokerState::Draining)
        .map(|b| b.id)
        .collect();
    let plan = placement::drain_plan(&brokers, &current, &draining)?;
    let mut rebalance = RebalanceStatus {
        phase: RebalancePhase::Idle,
        brokers: (0..cluster.spec.replicas).collect(),
        moves: i32::try_from(plan.move_count()).unwrap_or(i32::MAX),
        started: Some(status::now_string()),
        ..RebalanceStatus::default()
    };
    if plan.is_empty() {
        rebalance.completed = rebalance.started.clone();
        return Ok(rebalance);
    }
    admin
        .client
        .reassign_partitions(weir_api::admin::reassign_request(&plan, throttle(cluster)))
        .await?;
    tracing::info!(
        cluster = %cluster.name_any(),
        moves = plan.move_count(),
        partitions = plan.reassignments.len(),
        "rebalancing onto the new broker set"
    );
    rebalance.phase = RebalancePhase::Rebalancing;
    rebalance.partitions_remaining = i32::try_from(plan.reassignments.len()).unwrap_or(i32::MAX);
    progress
        .working
        .push(format!("rebalancing: {} replica moves", plan.move_count()));
    Ok(rebalance)
}
