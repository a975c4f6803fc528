//! The test control plane is a real Kubernetes: the controller manager turns a StatefulSet
//! into pods and claims and garbage-collects them, the apiserver enforces RBAC on
//! service-account tokens and client certificates, and with the kubelet stand-in a
//! StatefulSet's pods start, become ready, follow their readiness probe and are replaced when
//! deleted, and a pod that cannot start says why. Each test starts its own control plane
//! (`weir_tests::kube::ControlPlane`).

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weir_tests::admin::eventually;
use weir_tests::kube::ControlPlane;
use weir_tests::kubelet::{BoxError, Kubelet, PodRuntime, Readiness, RunningPod, NODE_NAME, ZONE};

const NAMESPACE: &str = "weir";
/// Controllers react within seconds; this leaves room for a loaded two-core machine.
const TIMEOUT: Duration = Duration::from_secs(90);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A StatefulSet `name` of `replicas` pods, each with a 1 GiB claim from a `data` template.
fn statefulset(name: &str, replicas: i32, pod_management_policy: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": pod_management_policy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{
                        "name": "main",
                        "image": "weir-test/none:0",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }],
        },
    }))
    .unwrap()
}

async fn pod_names(pods: &Api<Pod>) -> BTreeSet<String> {
    pods.list(&ListParams::default())
        .await
        .map(|list| list.items.iter().map(|pod| pod.name_any()).collect())
        .unwrap_or_default()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| name.to_string()).collect()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

async fn ready_replicas(sets: &Api<StatefulSet>, name: &str) -> Option<i32> {
    let set = sets.get(name).await.ok()?;
    Some(set.status?.ready_replicas.unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_gets_pods_and_claims_and_its_pods_are_garbage_collected() {
    let plane = ControlPlane::start().await;
    plane.create_namespace(NAMESPACE).await;
    let client = plane.client();
    let sets = Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE);
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NAMESPACE);

    // Parallel: without a kubelet no pod ever becomes ready, which OrderedReady waits for.
    let set = sets
        .create(&PostParams::default(), &statefulset("x", 2, "Parallel"))
        .await
        .unwrap();
    eventually(TIMEOUT, "pods x-0 and x-1", || async {
        (pod_names(&pods).await == names(&["x-0", "x-1"])).then_some(())
    })
    .await;
    for name in ["x-0", "x-1"] {
        let pod = pods.get(name).await.unwrap();
        let owner = &pod.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("StatefulSet", "x")
        );
        assert_eq!(Some(&owner.uid), set.metadata.uid.as_ref());
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.node_name, None,
            "{name} was scheduled: no scheduler runs"
        );
        let claim_name = spec.volumes.as_ref().unwrap()[0]
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name
            .clone();
        assert_eq!(claim_name, format!("data-{name}"));
        assert_eq!(
            pod.status.and_then(|status| status.phase).as_deref(),
            Some("Pending")
        );
    }

    // The claims exist, and the PVC protection controller guards them with its finalizer.
    eventually(
        TIMEOUT,
        "claims data-x-0 and data-x-1 under PVC protection",
        || async {
            let list = claims.list(&ListParams::default()).await.ok()?;
            let protected: BTreeSet<String> = list
                .items
                .iter()
                .filter(|claim| {
                    claim
                        .finalizers()
                        .iter()
                        .any(|f| f == "kubernetes.io/pvc-protection")
                })
                .map(|claim| claim.name_any())
                .collect();
            (protected == names(&["data-x-0", "data-x-1"])).then_some(())
        },
    )
    .await;

    // Deleting the StatefulSet (background propagation) leaves its pods to the garbage
    // collector, which follows their owner references.
    sets.delete("x", &DeleteParams::background()).await.unwrap();
    eventually(
        TIMEOUT,
        "the garbage collector to delete x-0 and x-1",
        || async { pod_names(&pods).await.is_empty().then_some(()) },
    )
    .await;
    // Claims are kept (the default retention policy): the data outlives its pods.
    let kept: BTreeSet<String> = claims
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|claim| claim.name_any())
        .collect();
    assert_eq!(kept, names(&["data-x-0", "data-x-1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_limits_service_accounts_and_users_to_their_roles() {
    let plane = ControlPlane::start().await;
    plane.create_namespace(NAMESPACE).await;
    plane.create_namespace("other").await;
    let admin = plane.client();

    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "pod-reader"}})).unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "pod-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "pod-reader", "namespace": NAMESPACE},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        ],
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "kept-secret"},
        "stringData": {"password": "hunter2"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let reader = plane.service_account_client(NAMESPACE, "pod-reader").await;
    let alice = weir_tests::kube::kubeconfig::client(plane.user_kubeconfig("alice", None)).await;
    let bob =
        weir_tests::kube::kubeconfig::client(plane.user_kubeconfig("bob", Some("staff"))).await;
    for (who, client) in [("the service account", &reader), ("alice", &alice)] {
        Api::<Pod>::namespaced(client.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{who} may list pods in {NAMESPACE}: {e}"));
        assert_forbidden(
            Api::<Secret>::namespaced(client.clone(), NAMESPACE)
                .list(&ListParams::default())
                .await,
            &format!("{who} listing secrets"),
        );
        assert_forbidden(
            Api::<Pod>::namespaced(client.clone(), "other")
                .list(&ListParams::default())
                .await,
            &format!("{who} listing pods in another namespace"),
        );
    }
    assert_forbidden(
        Api::<Pod>::namespaced(bob.clone(), NAMESPACE)
            .list(&ListParams::default())
            .await,
        "bob (bound to nothing) listing pods",
    );
    // The admin (system:masters) reads what the others may not.
    let read = Api::<Secret>::namespaced(admin, NAMESPACE)
        .get("kept-secret")
        .await
        .unwrap();
    assert!(read.data.unwrap().contains_key("password"));
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// A workload for the kubelet stand-in: an HTTP server on a loopback port per pod answering
/// 200, or 503 while the test marks the pod unhealthy. It records every start and stop.
#[derive(Default)]
struct HttpPods {
    servers: Mutex<HashMap<String, HttpServer>>,
    unhealthy: Mutex<BTreeSet<String>>,
    started: Mutex<Vec<(String, String)>>,
    stopped: Mutex<Vec<(String, String)>>,
}

struct HttpServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    healthy: Arc<AtomicBool>,
}

impl HttpPods {
    fn set_healthy(&self, pod: &str, healthy: bool) {
        let mut unhealthy = self.unhealthy.lock().unwrap();
        if healthy {
            unhealthy.remove(pod);
        } else {
            unhealthy.insert(pod.to_string());
        }
        for (key, server) in self.servers.lock().unwrap().iter() {
            if key.split('/').next() == Some(pod) {
                server.healthy.store(healthy, Ordering::SeqCst);
            }
        }
    }

    fn addr(&self, pod: &Pod) -> Option<SocketAddr> {
        let servers = self.servers.lock().unwrap();
        servers.get(&key(pod)).map(|server| server.addr)
    }
}

/// `name/uid`: a recreated pod has the same name and a new UID.
fn key(pod: &Pod) -> String {
    format!("{}/{}", pod.name_any(), pod.uid().unwrap_or_default())
}

impl PodRuntime for HttpPods {
    fn start(&self, pod: &Pod) -> Result<RunningPod, BoxError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let healthy = Arc::new(AtomicBool::new(
            !self.unhealthy.lock().unwrap().contains(&pod.name_any()),
        ));
        let answer = healthy.clone();
        // start runs on a blocking thread of the test's runtime: its handle spawns the server.
        let task = tokio::runtime::Handle::current().spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((mut stream, _)) = listener.accept().await {
                // Read the whole request first: closing with unread bytes would reset the
                // connection under the response.
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let response: &[u8] = if answer.load(Ordering::SeqCst) {
                    b"HTTP/1.0 200 OK\r\n\r\nok"
                } else {
                    b"HTTP/1.0 503 Service Unavailable\r\n\r\nnot ready"
                };
                let _ = stream.write_all(response).await;
            }
        });
        self.servers.lock().unwrap().insert(
            key(pod),
            HttpServer {
                addr,
                task,
                healthy,
            },
        );
        self.started
            .lock()
            .unwrap()
            .push((pod.name_any(), pod.uid().unwrap_or_default()));
        Ok(RunningPod {
            readiness: Readiness::HttpGet {
                addr,
                path: "/readyz".to_string(),
            },
            pod_ip: None,
        })
    }

    fn stop(&self, pod: &Pod) {
        if let Some(server) = self.servers.lock().unwrap().remove(&key(pod)) {
            server.task.abort();
        }
        self.stopped
            .lock()
            .unwrap()
            .push((pod.name_any(), pod.uid().unwrap_or_default()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_stand_in_runs_a_statefulset_to_ready_and_replaces_deleted_pods() {
    let plane = ControlPlane::start().await;
    plane.create_namespace(NAMESPACE).await;
    let client = plane.client();
    let runtime = Arc::new(HttpPods::default());
    let _kubelet = Kubelet::start(client.clone(), NAMESPACE, runtime.clone()).await;
    let sets = Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE);
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);

    let node = Api::<Node>::all(client.clone())
        .get(NODE_NAME)
        .await
        .unwrap();
    assert_eq!(
        node.labels()
            .get("topology.kubernetes.io/zone")
            .map(String::as_str),
        Some(ZONE)
    );

    // OrderedReady (the default): x-1 is only created once x-0 is ready, so 2/2 proves the
    // stand-in's readiness reaches the StatefulSet controller.
    sets.create(&PostParams::default(), &statefulset("x", 2, "OrderedReady"))
        .await
        .unwrap();
    wait_ready_replicas(&sets, 2).await;
    let mut first_uids = HashMap::new();
    for name in ["x-0", "x-1"] {
        let pod = pods.get(name).await.unwrap();
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some(NODE_NAME));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.0.1"));
        assert!(is_ready(&pod), "{name} is not Ready: {status:?}");
        first_uids.insert(name, pod.uid().unwrap());
    }
    assert_eq!(
        runtime.started.lock().unwrap().len(),
        2,
        "each pod started once"
    );

    // Readiness follows the probe both ways.
    runtime.set_healthy("x-1", false);
    wait_ready_replicas(&sets, 1).await;
    assert!(!is_ready(&pods.get("x-1").await.unwrap()));
    runtime.set_healthy("x-1", true);
    wait_ready_replicas(&sets, 2).await;

    // A deleted pod is stopped, removed for good (not left Terminating), and the StatefulSet
    // controller recreates it under the same name with a new UID, which starts again.
    let old_x0 = pods.get("x-0").await.unwrap();
    let old_addr = runtime.addr(&old_x0).unwrap();
    pods.delete("x-0", &DeleteParams::default()).await.unwrap();
    let new_x0 = eventually(TIMEOUT, "x-0 to be recreated and ready", || async {
        let pod = pods.get("x-0").await.ok()?;
        (pod.uid().as_ref() != Some(&first_uids["x-0"]) && is_ready(&pod)).then_some(pod)
    })
    .await;
    assert!(runtime
        .stopped
        .lock()
        .unwrap()
        .contains(&("x-0".to_string(), first_uids["x-0"].clone())));
    assert!(
        TcpStream::connect_timeout(&old_addr, Duration::from_secs(1)).is_err(),
        "the old x-0's server still answers after stop"
    );
    assert!(runtime.addr(&new_x0).is_some(), "the new x-0 was started");
    wait_ready_replicas(&sets, 2).await;

    // Deleting the StatefulSet: the garbage collector deletes the pods gracefully and the
    // stand-in stops every one it started.
    sets.delete("x", &DeleteParams::background()).await.unwrap();
    eventually(TIMEOUT, "every pod to be gone", || async {
        pod_names(&pods).await.is_empty().then_some(())
    })
    .await;
    eventually(TIMEOUT, "every started pod to be stopped", || async {
        let started: BTreeSet<_> = runtime.started.lock().unwrap().iter().cloned().collect();
        let stopped: BTreeSet<_> = runtime.stopped.lock().unwrap().iter().cloned().collect();
        (started == stopped).then_some(())
    })
    .await;
    assert_eq!(runtime.started.lock().unwrap().len(), 3);
}

/// Waits for the StatefulSet's `readyReplicas`; on timeout prints where each pod stands.
async fn wait_ready_replicas(sets: &Api<StatefulSet>, expected: i32) {
    let deadline = Instant::now() + TIMEOUT;
    while ready_replicas(sets, "x").await != Some(expected) {
        if Instant::now() >= deadline {
            let pods = Api::<Pod>::namespaced(sets.clone().into_client(), NAMESPACE);
            for pod in pods.list(&ListParams::default()).await.unwrap().items {
                let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
                let phase = pod.status.as_ref().and_then(|status| status.phase.clone());
                eprintln!(
                    "{}: node {node:?}, phase {phase:?}, ready {}",
                    pod.name_any(),
                    is_ready(&pod)
                );
            }
            panic!(
                "timed out after {TIMEOUT:?} waiting for StatefulSet x to have {expected} ready \
                 replicas (has {:?})",
                ready_replicas(sets, "x").await
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A runtime whose every start fails, as when the workload's binary is missing.
#[derive(Default)]
struct FailingPods {
    stopped: Mutex<Vec<String>>,
}

impl PodRuntime for FailingPods {
    fn start(&self, _pod: &Pod) -> Result<RunningPod, BoxError> {
        Err("weir-broker: no such file or directory".into())
    }

    fn stop(&self, pod: &Pod) {
        self.stopped.lock().unwrap().push(pod.name_any());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_stand_in_reports_a_failed_start_and_still_deletes_the_pod() {
    let plane = ControlPlane::start().await;
    plane.create_namespace(NAMESPACE).await;
    let client = plane.client();
    let runtime = Arc::new(FailingPods::default());
    let _kubelet = Kubelet::start(client.clone(), NAMESPACE, runtime.clone()).await;
    let pods = Api::<Pod>::namespaced(client, NAMESPACE);

    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "lonely"},
        "spec": {"containers": [{"name": "main", "image": "weir-test/none:0"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let reported = eventually(TIMEOUT, "the failed start in the pod's status", || async {
        let pod = pods.get("lonely").await.ok()?;
        let waiting = pod
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .waiting
            .clone()?;
        Some((pod, waiting))
    })
    .await;
    let (pod, waiting) = reported;
    assert_eq!(waiting.reason.as_deref(), Some("CreateContainerError"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("weir-broker: no such file or directory")
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().node_name.as_deref(),
        Some(NODE_NAME)
    );
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    assert!(!is_ready(&pod));

    // Bound, so the apiserver deletes it gracefully; the stand-in finishes the deletion
    // without a stop (nothing was started).
    pods.delete("lonely", &DeleteParams::default())
        .await
        .unwrap();
    eventually(TIMEOUT, "the pod to be gone", || async {
        pod_names(&pods).await.is_empty().then_some(())
    })
    .await;
    assert!(runtime.stopped.lock().unwrap().is_empty());
}
