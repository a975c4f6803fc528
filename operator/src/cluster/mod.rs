//! The `Cluster` reconciler: fetch → validate → build (pure, [`crate::build`]) → apply
//! (server-side apply, in the order ConfigMap, Services, PodDisruptionBudget, StatefulSet) →
//! act through the admin API (drain, rebalance, roll, unregister) → status.
//!
//! Every decision that depends on observed state is a pure function in [`plan`]; this module
//! only gathers the inputs and carries the decision out.

mod observe;
pub mod plan;
mod rbac;
pub(crate) mod status;
mod storage;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use weir_api::placement::{self, BrokerInfo};
use weir_api::proto::admin as pb;

use crate::admin::{self, Admin};
use crate::build::{cluster_objects, validate_config, BuildInput};
use crate::context::Context;
use crate::crd::{Cluster, ClusterStatus, RebalanceStatus};
use crate::error::Error;
use crate::names::{ClusterNames, FIELD_MANAGER};
use plan::{AdminView, RollStep, ScaleStep};
use status::Progress;

/// Removes what owner references cannot (the cluster-scoped rack binding).
pub const FINALIZER: &str = "weir.dev/cluster-cleanup";

/// Entry point of the controller: runs [`apply`] under the finalizer.
pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cluster.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            Event::Apply(c) => apply(&c, &ctx).await,
            Event::Cleanup(c) => {
                rbac::cleanup(&ctx.client, &ClusterNames::of(&c)).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// Server-side apply of one object, forcing ownership of the fields the operator sets.
pub(crate) async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(object)).await?)
}

async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let names = ClusterNames::of(cluster);
    let client = &ctx.client;
    let ns = names.namespace.clone();
    let spec = &cluster.spec;
    let mut status = cluster.status.clone().unwrap_or_default();
    let mut progress = Progress::default();

    // Validate what the schema cannot.
    if let Err(problem) = validate_config(spec) {
        progress.invalid = Some(problem);
        status::write(ctx, cluster, &names, status, &progress, &[], None).await?;
        return Ok(Action::requeue(ctx.settings.idle_requeue));
    }

    // Fetch.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let existing = statefulsets.get_opt(&names.statefulset()).await?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pods = pods_api
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
        .items;
    let pods = observe::pod_views(&names, &pods);
    if status.voters.is_empty() {
        status.voters = (0..spec.replicas.min(3)).collect();
    }
    let voters = status.voters.clone();
    let current = existing
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas);

    let mut admin = None;
    let mut view = None;
    if existing.is_some() && !pods.is_empty() {
        let ordinals = (0..current.unwrap_or(0)).filter(|o| pods.iter().any(|p| p.ordinal == *o));
        match admin::connect(
            &names,
            &ctx.settings.addressing,
            spec.listeners.internal_port,
            ordinals,
        )
        .await
        {
            Ok(mut a) => match observe::admin_view(&mut a).await {
                Ok(v) => {
                    view = Some(v);
                    admin = Some(a);
                }
                Err(e) => progress.admin_error = Some(format!("admin API: {}", e.message())),
            },
            Err(e) => progress.admin_error = Some(e),
        }
    }

    // Decide the StatefulSet's size.
    let step = plan::scale_step(spec.replicas, current, &voters, view.as_ref());
    let statefulset_replicas = match &step {
        ScaleStep::Set(n) => *n,
        _ => current.unwrap_or(spec.replicas),
    };
    match &step {
        ScaleStep::Blocked(why) => progress.scale_down_blocked = Some(why.clone()),
        ScaleStep::Wait(why) => progress.working.push(why.clone()),
        ScaleStep::Drain(id) => {
            if let Some(a) = admin.as_mut() {
                let plan = a
                    .client
                    .drain_broker(pb::DrainBrokerRequest {
                        broker_id: *id,
                        throttle_bytes_per_second: throttle(cluster),
                        dry_run: false,
                    })
                    .await?
                    .into_inner();
                tracing::info!(cluster = %names.cluster, broker = id, moves = plan.move_count, "draining a broker before removing it");
                status.rebalance = Some(RebalanceStatus {
                    phase: "Draining".into(),
                    brokers: (0..spec.replicas).collect(),
                    moves: i32::try_from(plan.move_count).unwrap_or(i32::MAX),
                    started: Some(status::now_string()),
                    ..RebalanceStatus::default()
                });
            }
            progress.working.push(format!("draining broker {id}"));
        }
        ScaleStep::Set(_) => {}
    }
    if statefulset_replicas != spec.replicas && progress.scale_down_blocked.is_none() {
        progress.working.push(format!(
            "scaling from {statefulset_replicas} to {} brokers",
            spec.replicas
        ));
    }

    // Storage: the claim template is fixed once created; growth patches the claims.
    let claim_size =
        storage::template_size(existing.as_ref()).unwrap_or_else(|| spec.storage.size.clone());
    progress.storage_refused =
        storage::reconcile(client, &names, spec, &claim_size, statefulset_replicas).await?;

    // Build and apply.
    let input = BuildInput {
        cluster,
        names: names.clone(),
        addressing: &ctx.settings.addressing,
        voters: &voters,
        statefulset_replicas,
        claim_size,
        operator_image: &ctx.settings.operator_image,
        default_broker_image: &ctx.settings.default_broker_image,
    };
    let objects = cluster_objects(&input);
    if spec.rack.is_some() {
        rbac::apply(client, &input).await?;
    }
    apply_object(&Api::namespaced(client.clone(), &ns), &objects.config_map).await?;
    let services = Api::namespaced(client.clone(), &ns);
    apply_object(&services, &objects.headless_service).await?;
    apply_object(&services, &objects.client_service).await?;
    apply_object(
        &Api::namespaced(client.clone(), &ns),
        &objects.pod_disruption_budget,
    )
    .await?;
    let applied = apply_object(&statefulsets, &objects.statefulset).await?;

    // Act through the admin API.
    if let (Some(a), Some(v)) = (admin.as_mut(), view.as_ref()) {
        let all_ready = pods.len() as i32 == statefulset_replicas && pods.iter().all(|p| p.ready);
        movements(
            cluster,
            &mut status,
            &mut progress,
            a,
            v,
            all_ready && statefulset_replicas == spec.replicas,
        )
        .await?;
        for id in plan::brokers_to_unregister(v, statefulset_replicas, &voters) {
            if !pods.iter().any(|p| p.ordinal == id) {
                a.client
                    .unregister_broker(pb::UnregisterBrokerRequest { broker_id: id })
                    .await?;
                tracing::info!(cluster = %names.cluster, broker = id, "unregistered a removed broker");
            }
        }
    }
    let update_revision = applied
        .status
        .as_ref()
        .and_then(|s| s.update_revision.clone());
    match plan::roll_step(
        &pods,
        statefulset_replicas,
        update_revision.as_deref(),
        &voters,
        view.as_ref(),
    ) {
        RollStep::Done => {}
        RollStep::Wait(why) => progress.rolling = Some(why),
        RollStep::Restart(ordinal) => {
            let pod = names.pod(ordinal);
            pods_api.delete(&pod, &DeleteParams::default()).await?;
            tracing::info!(cluster = %names.cluster, %pod, "restarting a broker on the new revision");
            progress.rolling = Some(format!("restarting broker {ordinal}"));
        }
    }

    status.current_replicas = statefulset_replicas;
    // Come back soon while the cluster is not at rest: pods coming or going, brokers left to
    // unregister, a refused scale-down that may become possible (a topic deleted), partitions
    // under-replicated or offline (the brokers heal them without a Kubernetes event, and the
    // status, Degraded and Ready must follow within seconds, not at the next idle pass).
    let settling = pods.len() as i32 != statefulset_replicas
        || pods.iter().any(|p| !p.ready || p.terminating)
        || progress.scale_down_blocked.is_some()
        || progress.admin_error.is_some()
        || view.as_ref().is_some_and(|v| {
            v.under_replicated > 0
                || v.offline > 0
                || v.brokers.iter().any(|b| {
                    b.id >= statefulset_replicas && b.state != pb::BrokerState::Unregistered
                })
        });
    let busy = status::write(
        ctx,
        cluster,
        &names,
        status,
        &progress,
        &pods,
        view.as_ref(),
    )
    .await?
        || settling;
    Ok(Action::requeue(if busy {
        ctx.settings.busy_requeue
    } else {
        ctx.settings.idle_requeue
    }))
}

fn throttle(cluster: &Cluster) -> Option<u64> {
    cluster
        .spec
        .rebalance
        .throttle_bytes_per_second
        .and_then(|t| u64::try_from(t).ok())
}

/// Progress of running moves; a rebalance once the broker set changed and everything is
/// healthy; the preferred leaders elected when moves finish.
async fn movements(
    cluster: &Cluster,
    status: &mut ClusterStatus,
    progress: &mut Progress,
    admin: &mut Admin,
    view: &AdminView,
    steady: bool,
) -> Result<(), Error> {
    let spec = cluster.spec.replicas;
    if view.reassigning > 0 {
        let (partitions, bytes) = observe::reassignment_progress(admin).await?;
        let rebalance = status.rebalance.get_or_insert_with(|| RebalanceStatus {
            phase: "Rebalancing".into(),
            ..RebalanceStatus::default()
        });
        rebalance.partitions_remaining = partitions;
        rebalance.bytes_remaining = bytes;
        progress.working.push(format!(
            "{} partitions moving, {bytes} bytes left",
            partitions
        ));
        return Ok(());
    }
    if let Some(r) = status.rebalance.as_mut() {
        if r.phase != "Idle" {
            r.phase = "Idle".into();
            r.partitions_remaining = 0;
            r.bytes_remaining = 0;
            r.completed = Some(status::now_string());
            // New brokers lead nothing until leadership moves to the preferred replicas.
            admin
                .client
                .elect_leaders(pb::ElectLeadersRequest { partitions: vec![] })
                .await?;
        }
    }
    let balanced_for = status
        .rebalance
        .as_ref()
        .map(|r| r.brokers.clone())
        .unwrap_or_default();
    if !steady || !plan::rebalance_due(view, spec, true, &balanced_for) {
        return Ok(());
    }
    let topics = admin
        .client
        .list_topics(pb::ListTopicsRequest {
            include_internal: true,
        })
        .await?
        .into_inner()
        .topics;
    let current = weir_api::admin::cluster_assignment(&topics)
        .map_err(|e| Error::Placement(e.to_string()))?;
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
    let plan = placement::drain_plan(&brokers, &current, &draining)
        .map_err(|e| Error::Placement(e.to_string()))?;
    let mut rebalance = RebalanceStatus {
        phase: "Idle".into(),
        brokers: (0..spec).collect(),
        moves: i32::try_from(plan.move_count()).unwrap_or(i32::MAX),
        started: Some(status::now_string()),
        ..RebalanceStatus::default()
    };
    if plan.is_empty() {
        rebalance.completed = rebalance.started.clone();
    } else {
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
        rebalance.phase = "Rebalancing".into();
        rebalance.partitions_remaining =
            i32::try_from(plan.reassignments.len()).unwrap_or(i32::MAX);
        progress
            .working
            .push(format!("rebalancing: {} replica moves", plan.move_count()));
    }
    status.rebalance = Some(rebalance);
    Ok(())
}
