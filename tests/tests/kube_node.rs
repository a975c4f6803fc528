//! The real test node (`scripts/kube-node.sh`, `weir_tests::node::RealNode`) works the way
//! the Weir end-to-end tests use it: an image pushed to the local registry runs as a
//! Deployment's pod; the host reaches the pod's IP; a second pod finds the pod's Service by its
//! DNS name through CoreDNS and round-trips bytes through the ClusterIP (kube-proxy); a
//! ReadWriteOnce claim binds to a local volume and a pod writes to it; and a pod reaches the API
//! server with its in-cluster credentials through the `kubernetes` Service, as the operator does.
//!
//! Needs root and the node's tools (`scripts/kube-node.sh install`); skips without them unless
//! `WEIR_REQUIRE_KUBE_NODE=1` (set by `scripts/test.sh`) or `CI` is set.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Service,
};
use kube::api::{LogParams, PostParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_tests::admin::eventually;
use weir_tests::node::RealNode;

const NAMESPACE: &str = "smoke";
/// Pulling, starting and probing a pod on a loaded two-core machine.
const TIMEOUT: Duration = Duration::from_secs(120);
const ECHO_PORT: i32 = 8080;

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap_or_else(|e| panic!("building an object: {e}"))
}

async fn create<T>(api: &Api<T>, value: Value) -> T
where
    T: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), &object(value))
        .await
        .unwrap_or_else(|e| panic!("creating an object: {e}"))
}

/// A pod of the probe image that runs `args` once.
fn probe_pod(name: &str, image: &str, args: &[&str], volume_claim: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "probe", "image": image, "args": args}],
        },
    });
    if let Some(claim) = volume_claim {
        pod["spec"]["volumes"] =
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/data"}]);
    }
    pod
}

/// Waits for pod `name` to succeed and returns its log; panics with the log and status when
/// it fails or times out.
async fn succeeded_log(pods: &Api<Pod>, name: &str) -> String {
    let phase = eventually(TIMEOUT, &format!("pod {name} to finish"), || async move {
        let pod = pods.get(name).await.ok()?;
        let phase = pod.status.as_ref()?.phase.clone()?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some((phase, pod.status))
    })
    .await;
    let log = pods
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_else(|e| panic!("reading pod {name}'s log: {e}"));
    assert_eq!(
        phase.0, "Succeeded",
        "pod {name} failed; log:\n{log}\nstatus: {:?}",
        phase.1
    );
    log
}

/// The value of the first `key value` line of a probe's log.
fn logged<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
}

async fn round_trip_from_host(address: &str, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("connecting to the pod at {address} from the host: {e}"));
    stream.write_all(payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).await.unwrap();
    echoed
}

async fn echo_pod_ip(client: &Client) -> String {
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    eventually(TIMEOUT, "the echo Deployment to be available", || async {
        let deployment = deployments.get("echo").await.ok()?;
        (deployment.status?.available_replicas? == 1).then_some(())
    })
    .await;
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let list = pods
        .list(&kube::api::ListParams::default().labels("app=echo"))
        .await
        .unwrap_or_else(|e| panic!("listing the echo pods: {e}"));
    list.items
        .iter()
        .find_map(|pod| pod.status.as_ref()?.pod_ip.clone())
        .unwrap_or_else(|| panic!("the echo pod has no IP"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_runs_pods_services_dns_volumes_and_in_cluster_clients() {
    if let Err(missing) = RealNode::available() {
        eprintln!("skipping: {missing}");
        return;
    }
    let started = Instant::now();
    let node = RealNode::start().await;
    let client = node.client();
    let image = node.push_binary_image("weir-test/node-tool:1", &[&RealNode::node_tool()]);
    assert!(
        image.starts_with(&format!("{}/", node.registry())),
        "{image} is not in the node's registry"
    );

    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await;
    // The namespace's default service account, which pods need, comes from the controller
    // manager a moment after the namespace.
    let accounts =
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), NAMESPACE);
    eventually(
        TIMEOUT,
        "the namespace's default service account",
        || async { accounts.get_opt("default").await.ok()?.map(|_| ()) },
    )
    .await;

    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    create(
        &deployments,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo"}},
                    "spec": {"containers": [{
                        "name": "echo",
                        "image": image,
                        "args": ["serve", format!(":{ECHO_PORT}")],
                        "ports": [{"containerPort": ECHO_PORT}],
                        "readinessProbe": {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 1},
                    }]},
                },
            },
        }),
    )
    .await;
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    let service = create(
        &services,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": ECHO_PORT}]},
        }),
    )
    .await;
    let cluster_ip = service
        .spec
        .and_then(|spec| spec.cluster_ip)
        .unwrap_or_else(|| panic!("the echo Service has no ClusterIP"));

    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NAMESPACE);
    create(
        &claims,
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }),
    )
    .await;

    // The host reaches pod IPs (Prometheus on the host scrapes them).
    let pod_ip = echo_pod_ip(&client).await;
    let from_host = round_trip_from_host(&format!("{pod_ip}:{ECHO_PORT}"), b"from the host").await;
    assert_eq!(from_host, b"from the host");

    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let service_name = format!("echo.{NAMESPACE}.svc.cluster.local");
    let payload = "through the Service";
    create(
        &pods,
        probe_pod(
            "dial",
            &image,
            &["dial", &service_name, "80", payload],
            None,
        ),
    )
    .await;
    let volume_content = "written by a pod";
    create(
        &pods,
        probe_pod(
            "write",
            &image,
            &["write", "/data/proof", volume_content],
            Some("data"),
        ),
    )
    .await;
    create(&pods, probe_pod("whoami", &image, &["whoami"], None)).await;

    let dial_log = succeeded_log(&pods, "dial").await;
    assert_eq!(
        logged(&dial_log, "resolved"),
        Some(cluster_ip.as_str()),
        "{service_name} should resolve to the Service's ClusterIP; log:\n{dial_log}"
    );
    assert_eq!(
        logged(&dial_log, "echoed"),
        Some(payload),
        "log:\n{dial_log}"
    );

    let write_log = succeeded_log(&pods, "write").await;
    assert_eq!(logged(&write_log, "wrote"), Some(volume_content));
    let claim = claims.get("data").await.unwrap();
    let status = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    assert_eq!(status, Some("Bound"), "claim: {claim:?}");
    assert_eq!(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref()),
        Some("local"),
        "the default StorageClass should apply"
    );
    // The bytes are on the host, in the local volume the claim bound to.
    let volume_name = claim
        .spec
        .and_then(|spec| spec.volume_name)
        .unwrap_or_else(|| panic!("the bound claim names no volume"));
    let volume = Api::<PersistentVolume>::all(client.clone())
        .get(&volume_name)
        .await
        .unwrap();
    let path = volume
        .spec
        .and_then(|spec| spec.local)
        .map(|local| local.path)
        .unwrap_or_else(|| panic!("{volume_name} is not a local volume"));
    assert!(
        path.starts_with(node.dir().to_str().unwrap()),
        "{path} is not under the node's directory"
    );
    let on_host = std::fs::read_to_string(format!("{path}/proof"))
        .unwrap_or_else(|e| panic!("reading {path}/proof on the host: {e}"));
    assert_eq!(on_host, volume_content);

    let whoami_log = succeeded_log(&pods, "whoami").await;
    assert_eq!(
        logged(&whoami_log, "user"),
        Some(format!("system:serviceaccount:{NAMESPACE}:default").as_str()),
        "log:\n{whoami_log}"
    );
    assert_eq!(logged(&whoami_log, "server"), Some("10.96.0.1"));

    eprintln!(
        "smoke test passed in {:.0?} (node up included)",
        started.elapsed()
    );
}
