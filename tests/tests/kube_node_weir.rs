//! Weir on a real Kubernetes node, as a user runs it: the images built from this commit and
//! pushed to the node's registry, `helm install` of the chart, then a `Cluster` and a `Topic`
//! applied in one `kubectl apply`. Clients run in pods and reach the brokers through the
//! client Service and the brokers' pod DNS names; the brokers run in containers on real
//! volumes. One test, one node, in order (each step needs the one before):
//!
//! 1. `helm install` → a 3-broker `Cluster` and an RF 3 `Topic` become Ready (no requeue wait);
//! 2. records produced from a pod are consumed back from another pod;
//! 3. scale 3 → 5: replicas move onto the new brokers; 5 → 3: the removed brokers are drained
//!    first; every acknowledged record is still there;
//! 4. a settings change rolls every broker, one at a time; the records are still there;
//! 5. a broker pod deleted: the StatefulSet replaces it and the cluster heals;
//! 6. monitoring: a real Prometheus discovers the brokers and the operator through Kubernetes
//!    service discovery, every dashboard query returns data while a producer and a consumer
//!    group run, and stopping a broker fires the under-replicated alert;
//! 7. security: a second `Cluster` with a TLS + SCRAM-SHA-512 listener, the StandardAuthorizer
//!    and TLS on its internal port, a `Topic` and a `User` with ACLs; a client pod with the
//!    User's Secret and the cluster CA bundle mounted produces and consumes over SASL_SSL
//!    through the client Service (the broker's certificate checked against its DNS name);
//!    then the cluster CA is renewed early (`weir.dev/force-renew`) while a client pod
//!    produces: every record arrives, and a pod trusting only the new CA reads them back.
//!
//! It prints the times users care about (install to Ready, scale up with the bytes moved).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use weir_operator::crd::condition::types;
use weir_operator::crd::{Cluster, Topic};
use weir_tests::admin::eventually;
use weir_tests::node::RealNode;

/// Generous: the node's two cores are shared with everything else CI runs.
const SLOW: Duration = Duration::from_secs(300);
const NAMESPACE: &str = "streaming";
const CLUSTER: &str = "events";
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 12;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command to completion; panics with its output when it fails. Returns stdout.
fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn kubectl(node: &RealNode) -> Command {
    let mut command = Command::new(node.kubectl());
    command.env("KUBECONFIG", node.kubeconfig_path());
    command
}

fn condition(c: &Cluster, type_: &str) -> Option<(String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn ready(c: &Cluster) -> bool {
    condition(c, types::READY).is_some_and(|(s, _)| s == "True")
}

/// Waits until `check` holds for the named object.
async fn wait_for<K, F>(api: &Api<K>, name: &str, what: &str, check: F) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    // Like `eventually`, but a time-out shows the object as last seen: what the operator had
    // reported when it gave up is what explains the failure.
    let deadline = Instant::now() + SLOW;
    let mut last = None;
    loop {
        if let Ok(object) = api.get(name).await {
            if check(&object) {
                return object;
            }
            last = Some(object);
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {SLOW:?} waiting for: {what}; {name} as last seen: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The target directory cargo built this test's binaries into (`<target>/debug/...`); the
/// broker and operator binaries (built by scripts/test.sh before the tests) are beside them.
fn target_dir() -> PathBuf {
    let client = Path::new(env!("CARGO_BIN_EXE_weir-e2e-client"));
    let debug = client.parent().expect("the binary's directory");
    assert_eq!(debug.file_name().and_then(|n| n.to_str()), Some("debug"));
    debug.parent().expect("the target directory").to_path_buf()
}

/// The images of this commit, pushed to the node's registry: Weir's own (both binaries), and
/// the test client's. Returns (weir image, client image).
fn push_images(node: &RealNode) -> (String, String) {
    let started = Instant::now();
    let out = run(
        Command::new("bash")
            .arg(workspace().join("scripts/build-images.sh"))
            .args([
                "--profile",
                "debug",
                "--tag",
                "e2e",
                "--push",
                node.registry(),
            ])
            .args(["--out"])
            .arg(workspace().join("target/images/e2e-oci")),
        "scripts/build-images.sh",
    );
    println!(
        "weir image built and pushed in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        out.trim()
    );
    let client = run(
        Command::new("bash")
            .arg(workspace().join("scripts/build-images.sh"))
            .env("CARGO_TARGET_DIR", target_dir())
            .args(["--profile", "debug", "--name", "weir-e2e-client"])
            .args([
                "--binary",
                "weir-e2e-client",
                "--tag",
                "e2e",
                "--push",
                node.registry(),
            ])
            .args(["--out"])
            .arg(workspace().join("target/images/e2e-client-oci")),
        "scripts/build-images.sh (the e2e client)",
    );
    println!("client image: {}", client.trim());
    (
        format!("{}/weir:e2e", node.registry()),
        format!("{}/weir-e2e-client:e2e", node.registry()),
    )
}

fn helm_install(node: &RealNode, image: &str) {
    let tools = run(
        Command::new("bash")
            .arg(workspace().join("scripts/chart-tools.sh"))
            .arg("bin-dir"),
        "chart-tools.sh bin-dir",
    );
    let (repository, tag) = image.rsplit_once(':').expect("image with a tag");
    let output = Command::new(Path::new(tools.trim()).join("helm"))
        .env("KUBECONFIG", node.kubeconfig_path())
        .args(["install", "weir"])
        .arg(workspace().join("charts/weir"))
        .args(["--namespace", "weir-system", "--create-namespace"])
        .args(["--set", &format!("image.repository={repository}")])
        .args(["--set", &format!("image.tag={tag}")])
        .args(["--set", "replicas=1"])
        // Dashboards and the plain-Prometheus rules and scrape jobs (this node has no
        // Prometheus Operator, so no PodMonitor or PrometheusRule renders).
        .args(["--set", "monitoring.enabled=true"])
        // The alert the test provokes fires after seconds, not the default 5 minutes.
        .args(["--set", "monitoring.alerts.underReplicatedFor=10s"])
        // The node's kubelet refreshes mounted Secrets every 10 s (scripts/kube-node.sh):
        // a CA renewal's phases need not wait the default two minutes each.
        .args(["--set", "certificateSettleSeconds=20"])
        .args(["--wait", "--timeout", "5m"])
        .stdin(Stdio::null())
        .output()
        .expect("running helm");
    // The chart's pods not ready in time says nothing of why: the node's state does.
    assert!(
        output.status.success(),
        "helm install failed ({}):\n{}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim(),
        node.diagnose("weir-system"),
        String::from_utf8_lossy(&output.stdout),
    );
}

/// The Cluster and Topic as one manifest, applied in one `kubectl apply`.
fn manifest(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: weir.dev/v1alpha1
kind: Cluster
metadata: {{name: {CLUSTER}, namespace: {NAMESPACE}}}
spec:
  replicas: 3
  image: {image}
  storage: {{size: 1Gi}}
  config:
    num.partitions: "3"
---
apiVersion: weir.dev/v1alpha1
kind: Topic
metadata: {{name: {TOPIC}, namespace: {NAMESPACE}}}
spec:
  clusterRef: {CLUSTER}
  partitions: {PARTITIONS}
  replicationFactor: 3
  config: {{min.insync.replicas: "2"}}
"#
    )
}

fn bootstrap() -> String {
    format!("{CLUSTER}.{NAMESPACE}.svc.cluster.local:9092")
}

/// Runs the test client in a pod to completion; returns its log. Panics when it fails.
async fn client_pod(client: &Client, image: &str, name: &str, args: &[String]) -> String {
    client_pod_with(client, image, name, args, &[]).await
}

/// [`client_pod`] with Secrets mounted: `(secret, mount path)`.
async fn client_pod_with(
    client: &Client,
    image: &str,
    name: &str,
    args: &[String],
    secrets: &[(&str, &str)],
) -> String {
    start_client_pod(client, image, name, args, secrets).await;
    finish_client_pod(client, name).await
}

/// Creates the test client's pod with Secrets mounted: `(secret, mount path)`.
async fn start_client_pod(
    client: &Client,
    image: &str,
    name: &str,
    args: &[String],
    secrets: &[(&str, &str)],
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let volumes: Vec<serde_json::Value> = secrets
        .iter()
        .enumerate()
        .map(|(i, (secret, _))| {
            serde_json::json!({"name": format!("secret-{i}"), "secret": {"secretName": secret}})
        })
        .collect();
    let mounts: Vec<serde_json::Value> = secrets
        .iter()
        .enumerate()
        .map(|(i, (_, path))| {
            serde_json::json!({"name": format!("secret-{i}"), "mountPath": path, "readOnly": true})
        })
        .collect();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "client",
                "image": image,
                "command": ["weir-e2e-client"],
                "args": args,
                "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }))
    .expect("a valid Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("creating pod {name}: {e}"));
}

/// Waits for the client pod `name` to finish; returns its log. Panics when it failed.
async fn finish_client_pod(client: &Client, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let done = wait_for(&pods, name, &format!("pod {name} to finish"), |p| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
    })
    .await;
    let log = pods
        .logs(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("reading the log of pod {name}: {e}"));
    let phase = done.status.and_then(|s| s.phase).unwrap_or_default();
    assert_eq!(phase, "Succeeded", "pod {name} failed:\n{log}");
    pods.delete(name, &DeleteParams::default()).await.ok();
    log
}

async fn produce(client: &Client, image: &str, name: &str, prefix: &str, count: u64) {
    let args = [
        "produce".to_string(),
        "--bootstrap".into(),
        bootstrap(),
        "--topic".into(),
        TOPIC.into(),
        "--prefix".into(),
        prefix.into(),
        "--count".into(),
        count.to_string(),
    ];
    let log = client_pod(client, image, name, &args).await;
    assert!(log.contains(&format!("PRODUCED {count}")), "{log}");
}

/// Reads every record of `prefix` back in a new group; asserts none is missing (the client
/// also checks key = value and that offsets only grow per partition).
async fn consume_all(client: &Client, image: &str, name: &str, prefix: &str, count: u64) {
    let args = [
        "consume".to_string(),
        "--bootstrap".into(),
        bootstrap(),
        "--topic".into(),
        TOPIC.into(),
        "--group".into(),
        name.into(),
        "--prefix".into(),
        prefix.into(),
        "--count".into(),
        count.to_string(),
        "--timeout-secs".into(),
        "240".into(),
    ];
    let log = client_pod(client, image, name, &args).await;
    assert!(log.contains(&format!("CONSUMED {count} ")), "{log}");
}

async fn scale(clusters: &Api<Cluster>, replicas: i32) {
    clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

/// `kubectl apply -f -` of `manifest`; panics with kubectl's error when it fails.
fn kubectl_apply(node: &RealNode, manifest: &str) {
    let mut apply = kubectl(node);
    apply.args(["apply", "-f", "-"]).stdin(Stdio::piped());
    let mut child = apply
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), manifest.as_bytes()).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Pods of the cluster on `revision`, not being deleted, all Ready.
fn on_revision(pods: &[Pod], revision: &str, count: usize) -> bool {
    pods.len() == count
        && pods.iter().all(|p| {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            labels.get("controller-revision-hash").map(String::as_str) == Some(revision)
                && p.metadata.deletion_timestamp.is_none()
                && ready
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn weir_on_a_real_node() {
    if let Err(why) = RealNode::available() {
        eprintln!("skipping: {why}");
        return;
    }
    let node = RealNode::start().await;
    let client = node.client();
    let (image, client_image) = push_images(&node);

    // 1. helm install, then the Cluster and the Topic in one apply.
    let started = Instant::now();
    helm_install(&node, &image);
    let installed = started.elapsed();
    kubectl_apply(&node, &manifest(&image));
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(
        &clusters,
        CLUSTER,
        "the cluster Ready with 3 brokers",
        |c| ready(c) && c.status.as_ref().is_some_and(|s| s.ready_replicas == 3),
    )
    .await;
    let cluster_ready = started.elapsed();
    // The topic waits for the brokers rather than being refused (and retried a minute later).
    let reasons_seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let topic = eventually(SLOW, "the topic Ready", || {
        let topics = topics.clone();
        let seen = reasons_seen.clone();
        async move {
            let t = topics.get(TOPIC).await.ok()?;
            let c = t
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == types::READY)?;
            seen.lock().unwrap().insert(c.reason.clone());
            (c.status == "True" && c.reason == "Ready").then_some(t)
        }
    })
    .await;
    let reasons_seen = reasons_seen.lock().unwrap().clone();
    assert!(
        !reasons_seen.contains("CreateRefused"),
        "the topic was refused while its cluster started: {reasons_seen:?}"
    );
    let topic_ready = started.elapsed();
    println!(
        "helm install: {:.1} s; a Ready 3-broker cluster {:.1} s after; its topic Ready {:.1} s after the install started",
        installed.as_secs_f64(),
        (cluster_ready - installed).as_secs_f64(),
        topic_ready.as_secs_f64()
    );
    let partitions = topic.status.unwrap().partitions;
    assert_eq!(partitions.len(), PARTITIONS as usize);
    assert!(partitions
        .iter()
        .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));

    // 2. Produce and consume from pods, through the client Service.
    produce(&client, &client_image, "produce-1", "first", 3000).await;
    consume_all(&client, &client_image, "consume-1", "first", 3000).await;

    // 3. Scale 3 → 5: replicas move onto the new brokers.
    let started = Instant::now();
    scale(&clusters, 5).await;
    let scaled = wait_for(&clusters, CLUSTER, "rebalanced over 5 brokers", |c| {
        let Some(s) = c.status.as_ref() else {
            return false;
        };
        let rebalanced = s
            .rebalance
            .as_ref()
            .is_some_and(|r| r.phase == "Idle" && r.brokers == vec![0, 1, 2, 3, 4]);
        let new_hold = s
            .brokers
            .iter()
            .filter(|b| b.id >= 3 && b.replicas > 0)
            .count()
            == 2;
        rebalanced && new_hold && ready(c)
    })
    .await;
    let status = scaled.status.unwrap();
    let rebalance = status.rebalance.unwrap();
    let moved: i32 = status
        .brokers
        .iter()
        .filter(|b| b.id >= 3)
        .map(|b| b.replicas)
        .sum();
    let bytes_moved = data_on_new_brokers(&node, &[3, 4]);
    println!(
        "scale 3 → 5: {:.1} s; {} replica moves planned, {moved} replicas now on the new brokers, {bytes_moved} bytes of log on them",
        started.elapsed().as_secs_f64(),
        rebalance.moves,
    );
    assert!(bytes_moved > 0, "no data reached the new brokers");
    consume_all(&client, &client_image, "consume-2", "first", 3000).await;

    // ... and 5 → 3: the highest ordinals are drained, then removed.
    let started = Instant::now();
    scale(&clusters, 3).await;
    let shrunk = wait_for(&clusters, CLUSTER, "scaled down to 3", |c| {
        c.status.as_ref().is_some_and(|s| {
            s.current_replicas == 3 && s.brokers.iter().all(|b| b.id < 3 && b.state == "Active")
        }) && ready(c)
    })
    .await;
    println!("scale 5 → 3: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(shrunk.status.unwrap().under_replicated_partitions, 0);
    let t = topics.get(TOPIC).await.unwrap();
    for p in t.status.unwrap().partitions {
        assert!(p.replicas.iter().all(|r| *r < 3), "{p:?}");
    }
    produce(&client, &client_image, "produce-2", "second", 2000).await;
    consume_all(&client, &client_image, "consume-3", "first", 3000).await;
    consume_all(&client, &client_image, "consume-4", "second", 2000).await;

    // 4. A settings change rolls every broker.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let old_revision = statefulsets
        .get(CLUSTER)
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    let started = Instant::now();
    clusters
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(
                &serde_json::json!({"spec": {"config": {"log.retention.ms": "86400000"}}}),
            ),
        )
        .await
        .unwrap();
    let selector = format!("weir.dev/cluster={CLUSTER}");
    eventually(
        SLOW,
        "every broker on the new revision and the cluster Ready",
        || {
            let statefulsets = statefulsets.clone();
            let clusters = clusters.clone();
            let pods = pods.clone();
            let old_revision = old_revision.clone();
            let selector = selector.clone();
            async move {
                let sts = statefulsets.get(CLUSTER).await.ok()?;
                let revision = sts.status?.update_revision.filter(|r| *r != old_revision)?;
                let list = pods
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                let c = clusters.get(CLUSTER).await.ok()?;
                (on_revision(&list.items, &revision, 3)
                    && ready(&c)
                    && c.status?.under_replicated_partitions == 0)
                    .then_some(())
            }
        },
    )
    .await;
    println!(
        "rolling restart of 3 brokers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    consume_all(&client, &client_image, "consume-5", "second", 2000).await;

    // 5. A deleted broker pod comes back and the cluster heals.
    let victim = format!("{CLUSTER}-1");
    let old_uid = pods.get(&victim).await.unwrap().metadata.uid;
    let started = Instant::now();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &pods,
        &victim,
        "the deleted broker pod replaced and Ready",
        |p| {
            p.metadata.uid != old_uid
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        },
    )
    .await;
    wait_for(&clusters, CLUSTER, "the cluster healed", |c| {
        ready(c)
            && c.status
                .as_ref()
                .is_some_and(|s| s.under_replicated_partitions == 0)
    })
    .await;
    println!(
        "a deleted broker pod back and in sync: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    consume_all(&client, &client_image, "consume-6", "first", 3000).await;

    // 6. Monitoring.
    monitoring(&node, &client, &client_image).await;

    // 7. A secure cluster.
    secure(&node, &client, &image, &client_image).await;
}

const SECURE: &str = "secure";
const SECURE_TOPIC: &str = "payments";

fn secure_manifest(image: &str) -> String {
    format!(
        r#"apiVersion: weir.dev/v1alpha1
kind: Cluster
metadata: {{name: {SECURE}, namespace: {NAMESPACE}}}
spec:
  replicas: 1
  image: {image}
  storage: {{size: 1Gi}}
  config:
    authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer
  listeners:
    clients:
      - {{name: scram, port: 9094, tls: true, authentication: {{type: scram-sha-512}}}}
---
apiVersion: weir.dev/v1alpha1
kind: Topic
metadata: {{name: {SECURE_TOPIC}, namespace: {NAMESPACE}}}
spec:
  clusterRef: {SECURE}
  partitions: 3
  replicationFactor: 1
---
apiVersion: weir.dev/v1alpha1
kind: User
metadata: {{name: alice, namespace: {NAMESPACE}}}
spec:
  clusterRef: {SECURE}
  authentication: {{type: scram-sha-512}}
  authorization:
    acls:
      - resource: {{type: TOPIC, name: {SECURE_TOPIC}}}
        operations: [DESCRIBE, READ, WRITE]
      - resource: {{type: GROUP, name: {SECURE}-, patternType: PREFIXED}}
        operations: [READ]
"#
    )
}

/// Step 7: a TLS + SCRAM cluster, its User, and a client in a pod using the User's Secret.
async fn secure(node: &RealNode, client: &Client, image: &str, client_image: &str) {
    let started = Instant::now();
    kubectl_apply(node, &secure_manifest(image));
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let users: Api<weir_operator::crd::user::User> = Api::namespaced(client.clone(), NAMESPACE);
    let topics: Api<Topic> = Api::namespaced(client.clone(), NAMESPACE);
    let cluster = wait_for(&clusters, SECURE, "the secure cluster Ready", ready).await;
    assert_eq!(
        cluster.status.and_then(|s| s.internal_tls),
        Some(true),
        "TLS on the internal port"
    );
    wait_for(&topics, SECURE_TOPIC, "the secure topic Ready", |t| {
        t.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == types::READY && c.status == "True")
        })
    })
    .await;
    wait_for(&users, "alice", "the User Ready", |u| {
        u.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == types::READY && c.status == "True")
        })
    })
    .await;
    println!(
        "a TLS + SCRAM cluster, its topic and user Ready: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let secrets = [
        ("alice", "/etc/weir-user"),
        ("secure-cluster-ca-cert", "/etc/weir-ca"),
    ];
    let security = |mut args: Vec<String>| {
        args.extend(
            [
                "--sasl-username",
                "alice",
                "--sasl-password-file",
                "/etc/weir-user/password",
                "--ca-file",
                "/etc/weir-ca/ca.crt",
            ]
            .map(String::from),
        );
        args
    };
    let bootstrap = format!("{SECURE}.{NAMESPACE}.svc.cluster.local:9094");
    let produce = security(
        [
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            SECURE_TOPIC,
            "--prefix",
            "paid",
            "--count",
            "500",
        ]
        .map(String::from)
        .to_vec(),
    );
    let log = client_pod_with(client, client_image, "secure-produce", &produce, &secrets).await;
    assert!(log.contains("PRODUCED 500"), "{log}");
    let consume = security(
        [
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            SECURE_TOPIC,
            "--group",
            "secure-readers",
            "--prefix",
            "paid",
            "--count",
            "500",
            "--timeout-secs",
            "180",
        ]
        .map(String::from)
        .to_vec(),
    );
    let log = client_pod_with(client, client_image, "secure-consume", &consume, &secrets).await;
    assert!(log.contains("CONSUMED 500 "), "{log}");
    println!(
        "SASL_SSL produce and consume of 500 records from pods: {:.1} s after the apply",
        started.elapsed().as_secs_f64()
    );

    // The cluster CA renewed early (weir.dev/force-renew) while a client pod produces: its
    // records all arrive, and afterwards the broker presents a certificate of the new CA.
    let renewal_started = Instant::now();
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let bundle_text = |secret: Secret| {
        secret
            .data
            .and_then(|d| d.get("ca.crt").cloned())
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    let first_bundle = bundle_text(secrets_api.get("secure-cluster-ca-cert").await.unwrap());
    let first_not_after = clusters
        .get(SECURE)
        .await
        .unwrap()
        .status
        .and_then(|s| s.certificates)
        .expect("certificates in the status")
        .cluster_ca
        .not_after;
    const RENEWAL_RECORDS: u64 = 2400;
    let produce = security(
        [
            "produce",
            "--bootstrap",
            &bootstrap,
            "--topic",
            SECURE_TOPIC,
            "--prefix",
            "renewal",
            "--count",
            &RENEWAL_RECORDS.to_string(),
            "--rate",
            "40",
        ]
        .map(String::from)
        .to_vec(),
    );
    start_client_pod(
        client,
        client_image,
        "secure-renewal-produce",
        &produce,
        &secrets,
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    eventually(SLOW, "the producer's first record acknowledged", || {
        let pods = pods.clone();
        async move {
            let log = pods
                .logs("secure-renewal-produce", &Default::default())
                .await
                .ok()?;
            log.contains("FIRST ACKNOWLEDGED").then_some(())
        }
    })
    .await;
    let force = serde_json::json!({"metadata": {"annotations": {"weir.dev/force-renew": "true"}}});
    secrets_api
        .patch(
            "secure-cluster-ca",
            &PatchParams::default(),
            &Patch::Merge(&force),
        )
        .await
        .unwrap();
    let phases = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    eventually(SLOW, "the forced CA renewal to finish", || {
        let (clusters, phases, first_not_after) =
            (clusters.clone(), phases.clone(), first_not_after.clone());
        async move {
            let ca = clusters
                .get(SECURE)
                .await
                .ok()?
                .status?
                .certificates?
                .cluster_ca;
            let mut seen = phases.lock().unwrap();
            if seen.last() != Some(&ca.phase) {
                seen.push(ca.phase.clone());
            }
            (ca.phase == "Current" && ca.not_after != first_not_after).then_some(())
        }
    })
    .await;
    let phases = phases.lock().unwrap().clone();
    assert!(
        phases.iter().any(|p| p == "TrustingNewCa")
            && phases.iter().any(|p| p == "ReissuingCertificates"),
        "renewal phases seen: {phases:?}"
    );
    let renewed = Instant::now();
    let log = finish_client_pod(client, "secure-renewal-produce").await;
    assert!(
        log.contains(&format!("PRODUCED {RENEWAL_RECORDS}")),
        "{log}"
    );
    // The bundle now holds the new CA alone; a new pod mounting it trusts nothing else, so
    // its handshakes succeed only with a broker certificate of the new CA.
    let new_bundle = bundle_text(secrets_api.get("secure-cluster-ca-cert").await.unwrap());
    assert_eq!(
        new_bundle.matches("BEGIN CERTIFICATE").count(),
        1,
        "{new_bundle}"
    );
    assert!(!first_bundle.contains(new_bundle.trim()), "the CA changed");
    let consume = security(
        [
            "consume",
            "--bootstrap",
            &bootstrap,
            "--topic",
            SECURE_TOPIC,
            "--group",
            "secure-renewal-readers",
            "--prefix",
            "renewal",
            "--count",
            &RENEWAL_RECORDS.to_string(),
            "--timeout-secs",
            "180",
        ]
        .map(String::from)
        .to_vec(),
    );
    let log = client_pod_with(
        client,
        client_image,
        "secure-renewal-consume",
        &consume,
        &secrets,
    )
    .await;
    assert!(
        log.contains(&format!("CONSUMED {RENEWAL_RECORDS} ")),
        "{log}"
    );
    println!(
        "cluster CA renewal forced under a SASL_SSL producer pod ({phases:?}): renewed in {:.1} s, \
         {RENEWAL_RECORDS} records all read back through the new CA; the step took {:.1} s",
        renewed.duration_since(renewal_started).as_secs_f64(),
        renewal_started.elapsed().as_secs_f64()
    );
}

/// A Prometheus process on the host, stopped on drop.
struct Prometheus {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Runs Prometheus 3 with the chart's scrape jobs (Kubernetes service discovery through the
    /// node's admin kubeconfig) and its alert rules, both read from the ConfigMap the chart
    /// installed, scraping and evaluating every 2 s.
    fn start(binary: &Path, kubeconfig: &Path, scrape_jobs: &str, rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut jobs: Vec<serde_yaml::Value> =
            serde_yaml::from_str(scrape_jobs).expect("the chart's scrape jobs are YAML");
        for job in &mut jobs {
            let sd = job
                .get_mut("kubernetes_sd_configs")
                .and_then(|v| v.as_sequence_mut())
                .expect("every job discovers through Kubernetes");
            for config in sd {
                config.as_mapping_mut().unwrap().insert(
                    "kubeconfig_file".into(),
                    kubeconfig.display().to_string().into(),
                );
            }
        }
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        let config = serde_json::json!({
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": [dir.path().join("rules.yaml")],
            "scrape_configs": jobs,
        });
        let config_file = dir.path().join("prometheus.yaml");
        std::fs::write(&config_file, serde_yaml::to_string(&config).unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting prometheus");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The result vector of an instant query, or `None` while Prometheus does not answer.
    fn query(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let response = weir_tests::http::try_get(self.addr, &path, Duration::from_secs(10)).ok()?;
        let body: serde_json::Value = serde_json::from_str(&response.body).ok()?;
        if body["status"] != "success" {
            panic!("Prometheus refused {promql}: {}", response.body);
        }
        body["data"]["result"].as_array().cloned()
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Grafana's variables in a panel query, set to what this test runs.
fn with_variables(expr: &str) -> String {
    let values = [
        ("__rate_interval", "30s"),
        ("__interval", "30s"),
        ("__range", "5m"),
        ("namespace", NAMESPACE),
        ("cluster", CLUSTER),
        ("topic", TOPIC),
        ("group", "dashboards"),
    ];
    let mut out = expr.to_string();
    for (name, value) in values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(
        !out.contains('$'),
        "a variable this test does not set in: {expr}"
    );
    out
}

/// The broker process of `pod` as the host sees it (its container shares the host's PID
/// namespace view through /proc).
fn broker_pid(pod: &str) -> i32 {
    let wanted = format!("POD_NAME={pod}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"weir-broker")
            && !cmdline.windows(12).any(|w| w == b"/weir-broker")
        {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|b| *b == 0).any(|kv| kv == wanted.as_bytes()) {
            return pid;
        }
    }
    panic!("no weir-broker process of pod {pod}");
}

async fn monitoring(node: &RealNode, client: &Client, client_image: &str) {
    let tools = weir_tests::chart::ChartTools::get().expect("the chart tools are installed");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "weir-system");
    let installed = config_maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    let data = |key: &str| -> String {
        installed
            .iter()
            .find_map(|cm| cm.data.as_ref()?.get(key).cloned())
            .unwrap_or_else(|| panic!("no ConfigMap of the chart holds {key}"))
    };
    let prometheus = Prometheus::start(
        &tools.prometheus,
        &node.kubeconfig_path(),
        &data("weir-scrape.yaml"),
        &data("weir-alerts.yaml"),
    );
    let dashboards: Vec<(String, serde_json::Value)> = installed
        .iter()
        .filter(|cm| {
            cm.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("grafana_dashboard").map(String::as_str) == Some("1"))
        })
        .flat_map(|cm| cm.data.clone().unwrap_or_default())
        .map(|(file, json)| (file, serde_json::from_str(&json).expect("dashboard JSON")))
        .collect();
    assert_eq!(dashboards.len(), 6, "the chart installs six dashboards");

    // A producer and a consumer group that keep running.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let load: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "load"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "client",
                "image": client_image,
                "command": ["weir-e2e-client"],
                "args": ["load", "--bootstrap", bootstrap(), "--topic", TOPIC, "--group", "dashboards", "--rate", "50"],
            }],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &load).await.unwrap();

    // Every target up: three brokers and the operator.
    eventually(
        SLOW,
        "Prometheus scraping 3 brokers and the operator",
        || async {
            let brokers = prometheus.query(r#"up{job="weir"} == 1"#)?;
            let operator = prometheus.query(r#"up{job="weir-operator"} == 1"#)?;
            (brokers.len() == 3 && operator.len() == 1).then_some(())
        },
    )
    .await;

    // Every panel's every query returns data.
    let mut queries = Vec::new();
    for (file, dashboard) in &dashboards {
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let title = panel["title"].as_str().unwrap_or_default();
                    queries.push((format!("{file}: {title}"), with_variables(expr)));
                }
            }
        }
    }
    let started = Instant::now();
    let empty = eventually(SLOW, "every dashboard query returning data", || async {
        let empty: Vec<String> = queries
            .iter()
            .filter(|(_, q)| prometheus.query(q).is_none_or(|r| r.is_empty()))
            .map(|(panel, q)| format!("{panel}: {q}"))
            .collect();
        // Keep waiting while rates and lags fill in; report what is still empty at the end.
        if empty.is_empty() || started.elapsed() > Duration::from_secs(150) {
            Some(empty)
        } else {
            None
        }
    })
    .await;
    assert!(
        empty.is_empty(),
        "{} of {} dashboard queries return no data:\n{}",
        empty.len(),
        queries.len(),
        empty.join("\n")
    );
    println!("all {} dashboard queries return data", queries.len());

    // Stopping a broker (SIGSTOP, not a clean shutdown) makes the under-replicated alert fire.
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NAMESPACE);
    let controller = clusters
        .get(CLUSTER)
        .await
        .unwrap()
        .status
        .and_then(|s| s.controller_id)
        .unwrap_or(0);
    let victim = (0..3).find(|id| *id != controller).unwrap();
    let pid = nix::unistd::Pid::from_raw(broker_pid(&format!("{CLUSTER}-{victim}")));
    let started = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    eventually(SLOW, "WeirUnderReplicatedPartitions firing", || async {
        let firing = prometheus
            .query(r#"ALERTS{alertname="WeirUnderReplicatedPartitions", alertstate="firing"}"#)?;
        firing
            .iter()
            .any(|a| a["metric"]["cluster"] == CLUSTER && a["metric"]["namespace"] == NAMESPACE)
            .then_some(())
    })
    .await;
    println!(
        "broker {victim} stopped: WeirUnderReplicatedPartitions firing after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The liveness probe may have restarted it meanwhile: then the process is gone.
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
    wait_for(
        &clusters,
        CLUSTER,
        "the cluster healed after the stop",
        |c| {
            ready(c)
                && c.status
                    .as_ref()
                    .is_some_and(|s| s.under_replicated_partitions == 0)
        },
    )
    .await;
    pods.delete("load", &DeleteParams::default()).await.ok();
}

/// Bytes of partition data under the data volumes of the given brokers, read from the local
/// PersistentVolumes on the node (the claims are `data-<pod>`).
fn data_on_new_brokers(node: &RealNode, ordinals: &[i32]) -> u64 {
    let claims: Vec<String> = ordinals
        .iter()
        .map(|o| format!("data-{CLUSTER}-{o}"))
        .collect();
    let out = run(
        kubectl(node).args([
            "get",
            "pv",
            "-o",
            "jsonpath={range .items[*]}{.spec.claimRef.name} {.spec.local.path}{.spec.hostPath.path}{\"\\n\"}{end}",
        ]),
        "kubectl get pv",
    );
    let mut bytes = 0;
    let paths: BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once(' ')).collect();
    for claim in &claims {
        let path = paths
            .get(claim.as_str())
            .unwrap_or_else(|| panic!("no PersistentVolume bound to {claim}: {out}"));
        bytes += dir_size(Path::new(path));
    }
    bytes
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if e.file_name().to_string_lossy().ends_with(".log") => m.len(),
            _ => 0,
        })
        .sum()
}
