//! The readiness probe of one running pod: an HTTP GET like a kubelet's `httpGet`
//! readinessProbe, on the address the start callback returned (each workload listens on its
//! own loopback port, so the pod spec's port cannot be used as it is). The pod's `Ready`
//! condition follows every change of the probe's result.
//!
//! Success is a status in 200..400, as for a kubelet. Unlike a kubelet's defaults (period
//! 10 s, failure threshold 3) one failed probe makes the pod unready and probes run every
//! [`PROBE_PERIOD`], so tests see changes within a second.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::Api;

use super::status;
use crate::http;

/// Time between two probes of a pod.
pub const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// How long one probe may take (a kubelet's default `timeoutSeconds`).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether `GET http://addr/path` answers with a status in 200..400 within [`PROBE_TIMEOUT`].
pub async fn http_get_succeeds(addr: SocketAddr, path: String) -> bool {
    tokio::task::spawn_blocking(move || http::try_get(addr, &path, PROBE_TIMEOUT))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|response| (200..400).contains(&response.status))
}

/// Probes forever (the caller aborts the task when the pod goes), patching the pod's status
/// whenever readiness changes. `ready` is what the status says now.
pub async fn run(
    pods: Api<Pod>,
    pod: Pod,
    pod_ip: String,
    started_at: Timestamp,
    mut ready: bool,
    addr: SocketAddr,
    path: String,
) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    loop {
        let succeeded = http_get_succeeds(addr, path.clone()).await;
        if succeeded != ready {
            let patch = status::running(&pod, &pod_ip, started_at, succeeded);
            match pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => ready = succeeded,
                // Retried at the next period; a conflict means the pod was replaced and this
                // task is about to be aborted.
                Err(e) => eprintln!("kubelet stand-in: readiness of pod {name}: {e}"),
            }
        }
        tokio::time::sleep(PROBE_PERIOD).await;
    }
}
