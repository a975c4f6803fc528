//! The readiness probe of one running pod: an HTTP GET like a kubelet's `httpGet`
//! readinessProbe, on the address the start callback returned (each workload listens on its
//! own loopback port, so the pod spec's port cannot be used as it is). The pod's `Ready`
//! condition follows every change of the probe's result.
//!
//! Success is a status in 200..400, and the thresholds are a kubelet's defaults: one success
//! makes the pod ready, [`FAILURE_THRESHOLD`] failures in a row unready. Probes run every
//! [`PROBE_PERIOD`] rather than a kubelet's 10 s, so tests see changes within seconds.

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
/// Consecutive failures that make a ready pod unready (a kubelet's default
/// `failureThreshold`): one slow answer from a busy process is not an outage.
pub const FAILURE_THRESHOLD: u32 = 3;

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
    let mut failures = 0;
    loop {
        let succeeded = http_get_succeeds(addr, path.clone()).await;
        failures = if succeeded { 0 } else { failures + 1 };
        let now_ready = if ready {
            failures < FAILURE_THRESHOLD
        } else {
            succeeded
        };
        if now_ready != ready {
            let patch = status::running(&pod, &pod_ip, started_at, now_ready);
            match pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => ready = now_ready,
                // Retried at the next period; a conflict means the pod was replaced and this
                // task is about to be aborted.
                Err(e) => eprintln!("kubelet stand-in: readiness of pod {name}: {e}"),
            }
        }
        tokio::time::sleep(PROBE_PERIOD).await;
    }
}
