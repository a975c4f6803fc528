//! The pod status the kubelet stand-in writes (pure functions, no client): what a real
//! kubelet reports for a pod whose containers run, with the pod's IP on loopback.
//!
//! Every patch names the pod's UID in its metadata, which makes the apiserver refuse it with
//! a conflict when the name now belongs to a newer pod (a StatefulSet recreates `x-0` under
//! the same name): a late readiness update never lands on the wrong pod.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

/// The host IP, and the pod IP of every pod whose runtime names none: workloads run as local
/// processes on loopback.
pub const POD_IP: &str = "127.0.0.1";

/// A status patch for a pod whose containers were started at `started_at` and run, with
/// `Ready`/`ContainersReady` and every container's `ready` set to `ready`.
pub fn running(pod: &Pod, pod_ip: &str, started_at: Timestamp, ready: bool) -> Value {
    let now = time(Timestamp::now());
    let started = time(started_at);
    let containers: Vec<Value> = container_names_and_images(pod)
        .map(|(name, image)| {
            json!({
                "name": name,
                "image": image,
                "imageID": format!("weir-test://{image}"),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    let ready = if ready { "True" } else { "False" };
    json!({
        "metadata": {"uid": pod.metadata.uid},
        "status": {
            "phase": "Running",
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": started,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started},
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": started},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": containers,
        },
    })
}

/// A status patch for a pod whose start callback failed: Pending, its containers waiting with
/// the error as message (as a kubelet reports a container it cannot create).
pub fn start_failed(pod: &Pod, message: &str) -> Value {
    let containers: Vec<Value> = container_names_and_images(pod)
        .map(|(name, image)| {
            json!({
                "name": name,
                "image": image,
                "imageID": "",
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": {"waiting": {"reason": "CreateContainerError", "message": message}},
            })
        })
        .collect();
    json!({
        "metadata": {"uid": pod.metadata.uid},
        "status": {
            "phase": "Pending",
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "containerStatuses": containers,
        },
    })
}

fn container_names_and_images(pod: &Pod) -> impl Iterator<Item = (String, String)> + '_ {
    pod.spec.iter().flat_map(|spec| {
        spec.containers.iter().map(|container| {
            (
                container.name.clone(),
                container.image.clone().unwrap_or_default(),
            )
        })
    })
}

fn time(at: Timestamp) -> Value {
    serde_json::to_value(Time(at)).unwrap_or_else(|e| panic!("serializing a timestamp: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use kube::api::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("x-0".into()),
                uid: Some("uid-1".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    Container {
                        name: "broker".into(),
                        image: Some("weir:dev".into()),
                        ..Container::default()
                    },
                    Container {
                        name: "sidecar".into(),
                        image: Some("busybox".into()),
                        ..Container::default()
                    },
                ],
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn condition<'a>(patch: &'a Value, kind: &str) -> &'a Value {
        patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|condition| condition["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} condition in {patch}"))
    }

    #[test]
    fn running_reports_every_container_and_readiness() {
        let patch = running(&pod(), POD_IP, Timestamp::now(), false);
        assert_eq!(patch["metadata"]["uid"], "uid-1");
        assert_eq!(patch["status"]["phase"], "Running");
        assert_eq!(patch["status"]["podIP"], POD_IP);
        assert_eq!(condition(&patch, "Ready")["status"], "False");
        assert_eq!(condition(&patch, "PodScheduled")["status"], "True");
        let containers = patch["status"]["containerStatuses"].as_array().unwrap();
        let names: Vec<&str> = containers
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["broker", "sidecar"]);
        assert!(containers.iter().all(|c| c["ready"] == false));

        let patch = running(&pod(), POD_IP, Timestamp::now(), true);
        assert_eq!(condition(&patch, "Ready")["status"], "True");
        assert_eq!(condition(&patch, "ContainersReady")["status"], "True");
        assert!(patch["status"]["containerStatuses"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ready"] == true && c["state"]["running"].is_object()));
    }

    #[test]
    fn start_failed_keeps_the_pod_pending_with_the_error() {
        let patch = start_failed(&pod(), "no such binary");
        assert_eq!(patch["status"]["phase"], "Pending");
        let waiting = &patch["status"]["containerStatuses"][0]["state"]["waiting"];
        assert_eq!(waiting["message"], "no such binary");
        assert_eq!(waiting["reason"], "CreateContainerError");
    }
}
