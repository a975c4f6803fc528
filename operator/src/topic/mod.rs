//! The `Topic` reconciler: fetch the cluster it names → describe the Kafka topic through the
//! admin API → create it or apply the changes [`plan::changes`] finds → status (assignment,
//! ISR, conditions). A finalizer deletes the Kafka topic with the resource, unless the
//! resource carries `weir.dev/deletion-protection: "true"`.

pub mod plan;

use std::sync::Arc;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event};
use kube::ResourceExt;
use weir_api::proto::admin as pb;

use crate::admin::{self, Admin};
use crate::cluster::status::now;
use crate::context::Context;
use crate::crd::condition::{merge, types, Desired};
use crate::crd::{Cluster, PartitionStatus, Topic, TopicStatus};
use crate::error::Error;
use crate::names::FIELD_MANAGER;

/// Deletes the Kafka topic before the resource goes.
pub const FINALIZER: &str = "weir.dev/topic-deletion";

pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = topic.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Event::Apply(t) => apply(&t, &ctx).await,
            Event::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// The topic's `Cluster`, or `None` when it does not exist.
async fn find_cluster(topic: &Topic, ctx: &Context) -> Result<Option<Cluster>, Error> {
    let ns = topic.namespace().unwrap_or_else(|| "default".into());
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    Ok(clusters.get_opt(&topic.spec.cluster_ref).await?)
}

async fn describe(admin: &mut Admin, name: &str) -> Result<Option<pb::TopicDescription>, Error> {
    match admin
        .client
        .describe_topic(pb::DescribeTopicRequest { name: name.into() })
        .await
    {
        Ok(r) => Ok(r.into_inner().topic),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(s.into()),
    }
}

async fn apply(topic: &Topic, ctx: &Context) -> Result<Action, Error> {
    let name = topic.kafka_name();
    let mut conditions = Vec::new();
    let Some(cluster) = find_cluster(topic, ctx).await? else {
        conditions.push(Desired::new(
            types::READY,
            false,
            "ClusterNotFound",
            format!(
                "no Cluster named {} in this namespace",
                topic.spec.cluster_ref
            ),
        ));
        write_status(ctx, topic, None, conditions).await?;
        return Ok(Action::requeue(ctx.settings.busy_requeue));
    };
    let never_created = topic.status.as_ref().is_none_or(|s| s.topic_id.is_none());
    if never_created {
        if let plan::ClusterGate::Wait { reason, message } =
            plan::creation_gate(&cluster, &topic.spec)
        {
            conditions.push(Desired::new(types::READY, false, reason, message));
            write_status(ctx, topic, None, conditions).await?;
            // The topic controller also watches Clusters: a status change brings it back sooner.
            return Ok(Action::requeue(ctx.settings.busy_requeue));
        }
    }
    let mut admin = admin::for_cluster(&cluster, ctx).await?;
    let description = match describe(&mut admin, &name).await? {
        Some(d) => d,
        None => {
            let created = admin
                .client
                .create_topic(pb::CreateTopicRequest {
                    name: name.clone(),
                    partitions: Some(topic.spec.partitions),
                    replication_factor: Some(topic.spec.replication_factor),
                    configs: topic.spec.config.clone().into_iter().collect(),
                    assignment: vec![],
                    validate_only: false,
                })
                .await;
            if let Err(s) = created {
                // A request the cluster refuses (too few brokers, a bad setting) is the spec's
                // problem: say so in the status and retry later.
                if matches!(
                    s.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) {
                    conditions.push(Desired::new(
                        types::READY,
                        false,
                        "CreateRefused",
                        s.message(),
                    ));
                    write_status(ctx, topic, None, conditions).await?;
                    // While the cluster settles the refusal may lift by itself (a broker not
                    // yet registered everywhere); a settled cluster's refusal waits longer.
                    return Ok(Action::requeue(if plan::cluster_settling(&cluster) {
                        ctx.settings.busy_requeue
                    } else {
                        ctx.settings.idle_requeue
                    }));
                }
                return Err(s.into());
            }
            tracing::info!(topic = %name, partitions = topic.spec.partitions, "created a topic");
            describe(&mut admin, &name).await?.ok_or_else(|| {
                Error::Unreachable(format!("topic {name} vanished after creation"))
            })?
        }
    };
    let changes = plan::changes(&topic.spec, &description);
    let mut refused = None;
    if changes.alter_needed() {
        let altered = admin
            .client
            .alter_topic(pb::AlterTopicRequest {
                name: name.clone(),
                partitions: changes.partitions,
                new_partitions_assignment: vec![],
                set_configs: changes.set_configs.clone().into_iter().collect(),
                delete_configs: changes.delete_configs.clone(),
                validate_only: false,
            })
            .await;
        match altered {
            Ok(_) => tracing::info!(topic = %name, ?changes, "altered a topic"),
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                refused = Some(s.message().to_string());
            }
            Err(s) => return Err(s.into()),
        }
    }
    let description = describe(&mut admin, &name).await?.unwrap_or(description);
    let in_sync = description
        .partitions
        .iter()
        .all(|p| p.leader.is_some() && p.isr.len() == p.replicas.len());
    let (ready, reason, message) = if let Some(why) = &refused {
        (false, "AlterRefused", why.clone())
    } else if !in_sync {
        (
            true,
            "UnderReplicated",
            "some partitions lack a leader or in-sync replicas".into(),
        )
    } else {
        (
            true,
            "Ready",
            format!("{} partitions", description.partitions.len()),
        )
    };
    conditions.push(Desired::new(types::READY, ready, reason, message));
    conditions.push(match changes.partition_decrease {
        Some(why) => Desired::new(
            types::PARTITION_DECREASE_REFUSED,
            true,
            "CannotRemovePartitions",
            why,
        ),
        None => Desired::new(types::PARTITION_DECREASE_REFUSED, false, "NotRefused", ""),
    });
    conditions.push(match changes.replication_factor_change {
        Some(why) => Desired::new(
            types::REPLICATION_FACTOR_CHANGE_REFUSED,
            true,
            "NotSupported",
            why,
        ),
        None => Desired::new(
            types::REPLICATION_FACTOR_CHANGE_REFUSED,
            false,
            "NotRefused",
            "",
        ),
    });
    write_status(ctx, topic, Some(&description), conditions).await?;
    Ok(Action::requeue(if in_sync {
        ctx.settings.idle_requeue
    } else {
        ctx.settings.busy_requeue
    }))
}

async fn cleanup(topic: &Topic, ctx: &Context) -> Result<Action, Error> {
    let name = topic.kafka_name();
    if topic.deletion_protected() {
        tracing::info!(topic = %name, "deletion-protected: the Kafka topic stays");
        return Ok(Action::await_change());
    }
    let Some(cluster) = find_cluster(topic, ctx).await? else {
        return Ok(Action::await_change());
    };
    let mut admin = admin::for_cluster(&cluster, ctx).await?;
    match admin
        .client
        .delete_topic(pb::DeleteTopicRequest { name: name.clone() })
        .await
    {
        Ok(_) => tracing::info!(topic = %name, "deleted a topic"),
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(s.into()),
    }
    Ok(Action::await_change())
}

async fn write_status(
    ctx: &Context,
    topic: &Topic,
    description: Option<&pb::TopicDescription>,
    conditions: Vec<Desired>,
) -> Result<(), Error> {
    let previous = topic.status.clone().unwrap_or_default();
    let status = TopicStatus {
        observed_generation: topic.metadata.generation,
        conditions: merge(
            &previous.conditions,
            conditions,
            topic.metadata.generation,
            &now(),
        ),
        topic_id: description
            .map(|d| d.topic_id.clone())
            .or(previous.topic_id),
        topic_name: Some(topic.kafka_name()),
        partitions: description.map_or(previous.partitions, |d| {
            d.partitions
                .iter()
                .map(|p| PartitionStatus {
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    leader: p.leader,
                    isr: p.isr.clone(),
                })
                .collect()
        }),
    };
    ctx.metrics.observe_topic(topic, &status);
    let api: Api<Topic> =
        Api::namespaced(ctx.client.clone(), &topic.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": "weir.dev/v1alpha1",
        "kind": "Topic",
        "status": status,
    });
    api.patch_status(
        &topic.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
