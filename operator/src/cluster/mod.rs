//! The `Cluster` reconciler, a pipeline of short steps:
//!
//! 1. **validate** what the schema cannot ([`validate_config`]); an invalid spec stops here,
//!    reported in the conditions;
//! 2. **observe** (`observe::cluster`): the StatefulSet, the pods, the admin API's view;
//! 3. **decide** ([`plan`], pure): the StatefulSet's size, which broker to drain;
//! 4. **build** ([`crate::build`], pure): the desired objects;
//! 5. **certificates** ([`crate::tls::reconcile`]) with TLS listeners: the CAs and broker
//!    certificates created, renewed or reissued, before the pods that mount them;
//! 6. **apply** (`apply_objects`) with server-side apply, in this order: volume claims grown,
//!    the rack RBAC, the ConfigMap, the headless and client Services, the
//!    PodDisruptionBudget, and the StatefulSet last, so its pods start with their
//!    configuration, names and disruption budget in place;
//! 7. **act** (`act`) through the admin API and on pods: drain, rebalance, unregister
//!    removed brokers, grow or heal the metadata quorum's voters ([`plan::quorum`]), roll one
//!    pod;
//! 8. **status** (`status::write`), and when to come back (`settling`).

mod act;
mod observe;
pub mod plan;
mod rbac;
pub(crate) mod status;
mod storage;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use weir_api::proto::admin as pb;

use crate::build::{cluster_objects, validate_config, BuildInput, ClusterObjects};
use crate::context::Context;
use crate::crd::Cluster;
use crate::error::Error;
use crate::names::{ClusterNames, CONFIG_FILE, FIELD_MANAGER};
use observe::Observed;
use plan::ScaleDecision;
use status::Progress;

/// Removes what owner references cannot (the cluster-scoped rack binding).
pub const FINALIZER: &str = "weir.dev/cluster-cleanup";

/// Entry point of the controller: runs `apply` under the finalizer.
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

/// The pipeline of one reconcile (the module's overview).
async fn apply(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let names = ClusterNames::of(cluster);
    let spec = &cluster.spec;
    // The status as last written, read from the API server rather than the watch cache: the
    // cache can still hold the object from before this operator's previous status write, and
    // a reconcile that starts from it would write back records that write replaced (a
    // finished rebalance reported again as a new, empty one).
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut status = api
        .get_status(&names.cluster)
        .await?
        .status
        .unwrap_or_default();
    let mut progress = Progress::default();

    if let Err(problem) = validate_config(spec) {
        progress.invalid = Some(problem);
        status::write(ctx, cluster, &names, status, &progress, &[], None).await?;
        return Ok(Action::requeue(ctx.settings.idle_requeue));
    }

    // TLS on the internal port, as the brokers run it now (the admin API is called that way),
    // and as they will run it: decided when the StatefulSet is created, then kept.
    let running_internal_tls = match status.internal_tls {
        Some(on) => on,
        None => configured_internal_tls(ctx, &names).await?,
    };
    // Without its client certificate (the cluster CA is a user's Secret that cannot be used)
    // the admin API is reported unreachable and the rest carries on, so the status says why.
    let (admin_tls, tls_error) =
        match crate::admin::tls_for(ctx, cluster, running_internal_tls, unix_now()).await {
            Ok(tls) => (tls, None),
            Err(Error::Certificate(e)) => (None, Some(e)),
            Err(e) => return Err(e),
        };
    let mut observed = observe::cluster(ctx, &names, spec, admin_tls.as_ref()).await?;
    if let Some(e) = tls_error {
        observed.admin_error = Some(format!("the operator's client certificate: {e}"));
    }
    let internal_tls = if status.internal_tls.is_none() && observed.statefulset.is_none() {
        crate::build::listeners::uses_tls(spec)
    } else {
        running_internal_tls
    };
    status.internal_tls = Some(internal_tls);
    progress.admin_error = observed.admin_error.clone();
    if status.voters.is_empty() {
        status.voters = (0..spec.replicas.min(3)).collect();
    }
    // Recorded voters and those the quorum counts: every guard keeps both.
    let voters = plan::quorum::known_voters(&status.voters, observed.view());

    let decision = plan::decide_scale(
        spec.replicas,
        observed.current_replicas,
        &voters,
        observed.view(),
    );
    progress.scale_down_blocked = decision.blocked.clone();
    progress.working.extend(decision.working.iter().cloned());

    // The claim template is fixed once created; growth patches the claims.
    let claim_size = storage::template_size(observed.statefulset.as_ref())
        .unwrap_or_else(|| spec.storage.size.clone());
    let input = BuildInput {
        cluster,
        names: names.clone(),
        addressing: &ctx.settings.addressing,
        voters: &voters,
        statefulset_replicas: decision.statefulset_replicas,
        claim_size,
        operator_image: &ctx.settings.operator_image,
        default_broker_image: &ctx.settings.default_broker_image,
        internal_tls,
    };
    let objects = cluster_objects(&input);
    let now = unix_now();
    progress.certificates = crate::tls::reconcile(
        &ctx.client,
        &input,
        i64::try_from(ctx.settings.certificate_settle.as_secs()).unwrap_or(i64::MAX),
        now,
    )
    .await?;
    if progress.certificates.as_ref().is_some_and(|t| t.blocked) {
        // The pods would wait for Secrets that cannot be made: nothing is applied until the
        // CA Secret is fixed (a change to it brings the reconciler back).
        status::write(
            ctx,
            cluster,
            &names,
            status,
            &progress,
            &observed.pods,
            None,
        )
        .await?;
        return Ok(Action::requeue(ctx.settings.idle_requeue));
    }

    progress.storage_refused = storage::reconcile(
        &ctx.client,
        &names,
        spec,
        &input.claim_size,
        decision.statefulset_replicas,
    )
    .await?;
    let applied = apply_objects(ctx, &input, &objects).await?;

    act::act(
        ctx,
        cluster,
        &mut observed,
        &decision,
        &applied,
        &mut status,
        &mut progress,
    )
    .await?;

    status.current_replicas = decision.statefulset_replicas;
    let settling = settling(&observed, &decision, &progress);
    let busy = status::write(
        ctx,
        cluster,
        &names,
        status,
        &progress,
        &observed.pods,
        observed.view(),
    )
    .await?
        || settling;
    let mut after = if busy {
        ctx.settings.busy_requeue
    } else {
        ctx.settings.idle_requeue
    };
    if let Some(tls) = &progress.certificates {
        // Back when a certificate is due, if that is sooner.
        let due = u64::try_from(tls.next_check.saturating_sub(now)).unwrap_or(0);
        after = after.min(Duration::from_secs(due.max(1)));
    }
    Ok(Action::requeue(after))
}

/// Whether the cluster's current `server.properties` turns TLS on for the internal port: for a
/// cluster whose status does not say (made by an operator that did not record it, or whose
/// first status write failed after the objects were applied).
async fn configured_internal_tls(ctx: &Context, names: &ClusterNames) -> Result<bool, Error> {
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &names.namespace);
    Ok(maps
        .get_opt(&names.config_map())
        .await?
        .and_then(|m| m.data?.get(CONFIG_FILE).cloned())
        .is_some_and(|text| {
            text.lines()
                .any(|l| l.trim() == "rpc.security.protocol=SSL")
        }))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Server-side apply of the cluster's objects in the documented order (the module's
/// overview); returns the StatefulSet as applied.
async fn apply_objects(
    ctx: &Context,
    input: &BuildInput<'_>,
    objects: &ClusterObjects,
) -> Result<StatefulSet, Error> {
    let client = &ctx.client;
    let ns = input.names.namespace.as_str();
    if input.cluster.spec.rack.is_some() {
        rbac::apply(client, input).await?;
    }
    apply_object(&Api::namespaced(client.clone(), ns), &objects.config_map).await?;
    let services = Api::namespaced(client.clone(), ns);
    apply_object(&services, &objects.headless_service).await?;
    apply_object(&services, &objects.client_service).await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &objects.pod_disruption_budget,
    )
    .await?;
    apply_object(&Api::namespaced(client.clone(), ns), &objects.statefulset).await
}

/// Whether to come back soon though nothing changed: pods coming or going, brokers left to
/// unregister, a refused scale-down that may become possible (a topic deleted), partitions
/// under-replicated or offline (the brokers heal them without a Kubernetes event, and the
/// status, Degraded and Ready must follow within seconds, not at the next idle pass).
fn settling(observed: &Observed, decision: &ScaleDecision, progress: &Progress) -> bool {
    let replicas = decision.statefulset_replicas;
    let pods = &observed.pods;
    pods.len() as i32 != replicas
        || pods.iter().any(|p| !p.ready || p.terminating)
        || progress.scale_down_blocked.is_some()
        || progress.admin_error.is_some()
        || observed.view().is_some_and(|v| {
            v.under_replicated > 0
                || v.offline > 0
                || v.brokers
                    .iter()
                    .any(|b| b.id >= replicas && b.state != pb::BrokerState::Unregistered)
        })
}
