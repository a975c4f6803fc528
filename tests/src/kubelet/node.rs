//! The fake Node the kubelet stand-in binds pods to, and its heartbeat.
//!
//! The controller manager's node lifecycle controller marks a node whose kubelet stops
//! reporting as `Unknown`, taints it and evicts its pods. A real kubelet prevents that by
//! renewing its Lease in `kube-node-lease`; the stand-in does the same, every
//! [`LEASE_RENEW_INTERVAL`], for as long as it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::status::POD_IP;

/// The node every pod is bound to.
pub const NODE_NAME: &str = "node-0";
/// Its `topology.kubernetes.io/zone` label.
pub const ZONE: &str = "zone-a";
/// How often the node's Lease is renewed (a kubelet's default is 10 s of a 40 s lease).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Creates [`NODE_NAME`] (unless it exists: stand-ins of several namespaces share it), reports
/// it Ready with a loopback address, and takes its Lease.
pub async fn register(client: &Client) -> Result<(), kube::Error> {
    let nodes = Api::<Node>::all(client.clone());
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), NODE_NAME.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("topology.kubernetes.io/zone".to_string(), ZONE.to_string()),
    ]);
    let node = Node {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(e),
    }
    let now = serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ))
    .map_err(kube::Error::SerdeError)?;
    let status = json!({
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "conditions": [{
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "weir test kubelet stand-in",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }],
        },
    });
    nodes
        .patch_status(NODE_NAME, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    renew_lease(client).await
}

/// Creates or renews the node's Lease (holder: the node, renewed now).
pub async fn renew_lease(client: &Client) -> Result<(), kube::Error> {
    let leases = Api::<Lease>::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(NODE_NAME.to_string()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(NODE_NAME.to_string()),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    // Server-side apply: creates the Lease the first time, updates renewTime after.
    leases
        .patch(
            NODE_NAME,
            &PatchParams::apply("weir-test-kubelet").force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}
