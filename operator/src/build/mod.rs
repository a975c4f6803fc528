//! Desired objects from a `Cluster` spec: pure functions, no client. The reconciler applies
//! what these return with server-side apply, in the order of [`ClusterObjects`]' fields.

mod config;
pub mod listeners;
mod pdb;
mod services;
mod statefulset;

pub use config::{config_hash, quorum_voters, server_properties, validate_config};
pub use pdb::pod_disruption_budget;
pub use services::{client_service, headless_service};
pub use statefulset::statefulset;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::Cluster;
use crate::names::{Addressing, ClusterNames};

/// What the builders need besides the spec: decisions the reconciler made from what it
/// observed.
#[derive(Debug, Clone)]
pub struct BuildInput<'a> {
    pub cluster: &'a Cluster,
    pub names: ClusterNames,
    pub addressing: &'a Addressing,
    /// The metadata quorum's voters: recorded in the status and counted by the quorum (the
    /// first ordinals at creation; more as the quorum grows).
    pub voters: &'a [i32],
    /// The StatefulSet's replica count: `spec.replicas`, or more while brokers drain.
    pub statefulset_replicas: i32,
    /// The volume size in the claim template (fixed once the StatefulSet exists: templates are
    /// immutable, growth patches the PVCs).
    pub claim_size: String,
    /// The image of the rack init container (`weir-operator` with its `rack` subcommand).
    pub operator_image: &'a str,
    /// The brokers' image when the spec names none.
    pub default_broker_image: &'a str,
    /// The internal port runs TLS (`rpc.security.protocol=SSL`): see
    /// [`crate::crd::ClusterStatus::internal_tls`].
    pub internal_tls: bool,
}

impl BuildInput<'_> {
    /// The brokers need certificates: a TLS listener, or TLS on the internal port.
    pub fn needs_certificates(&self) -> bool {
        listeners::uses_tls(&self.cluster.spec) || self.internal_tls
    }
}

/// Everything a `Cluster` becomes, in apply order.
#[derive(Debug, Clone)]
pub struct ClusterObjects {
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub statefulset: StatefulSet,
}

/// Builds every object of the cluster.
pub fn cluster_objects(input: &BuildInput<'_>) -> ClusterObjects {
    ClusterObjects {
        config_map: config::config_map(input),
        headless_service: headless_service(input),
        client_service: client_service(input),
        pod_disruption_budget: pod_disruption_budget(input),
        statefulset: statefulset(input),
    }
}

/// Metadata of an owned object: name, namespace, the cluster's labels, and an owner reference
/// to the `Cluster` (so deleting it garbage-collects them).
pub(crate) fn owned_meta(input: &BuildInput<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(input.names.namespace.clone()),
        labels: Some(input.names.labels()),
        owner_references: owner_reference(input.cluster).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(cluster: &Cluster) -> Option<OwnerReference> {
    let mut owner = cluster.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

#[cfg(test)]
pub(crate) mod tests;
