//! The operator against a real control plane (etcd, kube-apiserver, kube-controller-manager
//! built from source by `scripts/kube-control-plane.sh`), running as its own service account
//! with the chart's RBAC rules.
//!
//! - `schema_and_objects`: the API server refuses bad specs by the CRD schema alone; the
//!   operator turns a `Cluster` into its objects and status, refuses to scale below the voters,
//!   handles a `Topic` whose cluster does not exist, and cleans up through its finalizers.
//! - `a_standby_operator_takes_over_the_lease`: two replicas, one leads; SIGKILL the leader and
//!   the standby takes over and reconciles.
//! - `brokers_scale_up_and_down_without_loss`: the kubelet stand-in runs every pod the
//!   StatefulSet controller creates as a real `weir-broker`; a 3-broker cluster and an RF 3
//!   topic take traffic through rdkafka, scale to 5 (replicas move onto the new brokers), are
//!   refused a scale-down a topic cannot survive, scale back to 3 (the removed brokers were
//!   drained before they stopped), and roll on a settings change, with every acknowledged record
//!   still there.
//! - `a_quorum_created_with_one_broker_grows_to_three_voters`: replicas 1 → 3 makes brokers 1
//!   and 2 voters without restarting a pod; the quorum then survives a SIGKILLed controller.
//! - `a_voter_whose_volume_is_replaced_heals_without_a_person`: with auto-join off, the operator
//!   replaces a voter whose volume came back empty; produce and consume still work.
//! - `a_tls_cluster_serves_scram_clients_and_renews_its_ca_under_load`: a cluster with a
//!   TLS + SCRAM-SHA-512 listener; a SCRAM user made with kafka-configs over the brokers'
//!   mutual-TLS replication listener; rdkafka over SASL_SSL trusting only the published CA
//!   (a wrong password refused); a forced CA renewal (trust both, reissue, drop the old)
//!   under a producer that loses nothing, and the reissued certificate served on a fresh
//!   handshake.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tonic::transport::Endpoint;
use weir_api::proto::admin as pb;
use weir_operator::crd::condition::types;
use weir_operator::crd::{
    AuthenticationType, ClientListener, Cluster, ClusterSpec, StorageSpec, Topic, TopicSpec,
};
use weir_tests::admin::{eventually, AdminClient};
use weir_tests::clients::served_certificate;
use weir_tests::kube::ControlPlane;
use weir_tests::kubelet::Kubelet;
use weir_tests::operator::{install_crds, OperatorProcess};
use weir_tests::weir_pods::WeirPods;

const SLOW: Duration = Duration::from_secs(240);

fn cluster(name: &str, replicas: i32) -> Cluster {
    Cluster::new(
        name,
        ClusterSpec {
            replicas,
            image: Some("weir:test".into()),
            image_pull_policy: None,
            storage: StorageSpec {
                size: "1Gi".into(),
                storage_class_name: Some("standard".into()),
            },
            resources: None,
            rack: None,
            config: BTreeMap::new(),
            listeners: Default::default(),
            rebalance: Default::default(),
            certificates: None,
        },
    )
}

fn listener(name: &str, port: i32, tls: bool, auth: Option<AuthenticationType>) -> ClientListener {
    ClientListener::new(name, port, tls, auth)
}

fn topic(name: &str, cluster: &str, partitions: i32, rf: i32) -> Topic {
    Topic::new(
        name,
        TopicSpec {
            cluster_ref: cluster.into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
        },
    )
}

fn condition<'a>(
    conditions: Option<&'a Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions?.iter().find(|c| c.type_ == type_)
}

fn cluster_condition(c: &Cluster, type_: &str) -> Option<(String, String, String)> {
    condition(c.status.as_ref().map(|s| &s.conditions), type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until `check` holds for the named object.
async fn wait_for<K, F>(api: &Api<K>, name: &str, timeout: Duration, what: &str, check: F) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let check = &check;
    eventually(timeout, what, || {
        let api = api.clone();
        let name = name.to_string();
        async move { api.get(&name).await.ok().filter(|o| check(o)) }
    })
    .await
}

async fn create<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(&PostParams::default(), object).await
}

fn rejection(result: Result<impl std::fmt::Debug, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{e:?}");
            e.message
        }
        other => panic!("the API server accepted an invalid object: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_and_objects() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "schema";
    cp.create_namespace(ns).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let topics: Api<Topic> = Api::namespaced(client.clone(), ns);

    // The schema alone refuses bad specs.
    let mut bad = cluster("bad", 0);
    assert!(rejection(create(&clusters, &bad).await).contains("replicas"));
    bad.spec.replicas = 1;
    bad.spec.storage.size = "ten gigs".into();
    assert!(rejection(create(&clusters, &bad).await).contains("size"));
    bad.spec.storage.size = "10Gi".into();
    bad.spec.listeners.internal_port = 9092;
    assert!(rejection(create(&clusters, &bad).await).contains("must differ"));
    bad.spec.listeners.internal_port = 9093;
    bad.spec.config.insert("node.id".into(), "7".into());
    assert!(rejection(create(&clusters, &bad).await).contains("set by the operator"));
    bad.spec.config.clear();
    bad.spec.image_pull_policy = Some("Sometimes".into());
    rejection(create(&clusters, &bad).await);
    bad.spec.image_pull_policy = None;
    bad.spec.listeners.clients = vec![listener("mtls", 9094, false, Some(AuthenticationType::Tls))];
    assert!(rejection(create(&clusters, &bad).await).contains("needs tls: true"));
    bad.spec.listeners.clients = vec![
        listener("a", 9094, true, None),
        listener("a", 9095, true, None),
    ];
    assert!(rejection(create(&clusters, &bad).await).contains("names must be unique"));
    bad.spec.listeners.clients = vec![
        listener("a", 9094, true, None),
        listener("b", 9094, true, None),
    ];
    assert!(rejection(create(&clusters, &bad).await).contains("ports must be unique"));
    bad.spec.listeners.clients = vec![listener("a", 9092, true, None)];
    assert!(rejection(create(&clusters, &bad).await).contains("differ from kafkaPort"));
    bad.spec.listeners.clients = vec![listener("Upper", 9094, true, None)];
    assert!(rejection(create(&clusters, &bad).await).contains("name"));
    bad.spec.listeners.clients = vec![listener("metrics", 9094, true, None)];
    assert!(rejection(create(&clusters, &bad).await).contains("brokers' own ports"));
    bad.spec.listeners.clients = Vec::new();
    let mut bad_topic = topic("bad", "events", 0, 1);
    assert!(rejection(create(&topics, &bad_topic).await).contains("partitions"));
    bad_topic.spec.partitions = 1;
    bad_topic.spec.replication_factor = 0;
    assert!(rejection(create(&topics, &bad_topic).await).contains("replicationFactor"));
    bad_topic.spec.replication_factor = 1;
    bad_topic.spec.topic_name = Some("no spaces!".into());
    assert!(rejection(create(&topics, &bad_topic).await).contains("topicName"));

    let mut operator = OperatorProcess::start(&cp, ns, None).await;

    // A Cluster becomes its objects, owned by it.
    let mut events = cluster("events", 3);
    events
        .spec
        .config
        .insert("log.retention.ms".into(), "3600000".into());
    create(&clusters, &events).await.unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts = wait_for(&statefulsets, "events", SLOW, "the StatefulSet", |_| true).await;
    let sts_spec = sts.spec.clone().unwrap();
    assert_eq!(sts_spec.replicas, Some(3));
    assert_eq!(sts_spec.pod_management_policy.as_deref(), Some("Parallel"));
    let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Cluster", "events")
    );
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let data = cm.get("events-config").await.unwrap().data.unwrap();
    assert!(data["server.properties"].contains("log.retention.ms=3600000\n"));
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let headless = services.get("events-brokers").await.unwrap().spec.unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert!(services.get("events").await.is_ok());
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    assert!(pdbs.get("events").await.is_ok());
    // Parallel pod management: the controller manager creates all three pods at once (they
    // stay Pending: no kubelet in this test).
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    eventually(SLOW, "pods events-0..2", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default()).await.ok()?;
            (list.items.len() == 3).then_some(())
        }
    })
    .await;
    let observed = wait_for(&clusters, "events", SLOW, "status with voters", |c| {
        c.status.as_ref().is_some_and(|s| !s.voters.is_empty())
            && cluster_condition(c, types::READY).is_some()
    })
    .await;
    let status = observed.status.unwrap();
    assert_eq!(status.voters, vec![0, 1, 2]);
    let ready = condition(Some(&status.conditions), types::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "BrokersNotReady")
    );
    assert!(observed
        .metadata
        .finalizers
        .unwrap()
        .contains(&"weir.dev/cluster-cleanup".to_string()));

    // Immutable fields are guarded by CEL transition rules. A merge patch, not a replace: the
    // operator writes status meanwhile, and a replace could lose to that with a 409 Conflict.
    let changed = serde_json::json!({"spec": {"storage": {"storageClassName": "other"}}});
    assert!(rejection(
        clusters
            .patch("events", &PatchParams::default(), &Patch::Merge(&changed))
            .await
    )
    .contains("storageClassName cannot change"));

    // Volumes never shrink: refused with a condition, the claim template unchanged.
    let shrink = serde_json::json!({"spec": {"storage": {"size": "500Mi"}}});
    clusters
        .patch("events", &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .unwrap();
    let refused = wait_for(&clusters, "events", SLOW, "StorageResizeRefused", |c| {
        cluster_condition(c, types::STORAGE_RESIZE_REFUSED).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let (_, _, why) = cluster_condition(&refused, types::STORAGE_RESIZE_REFUSED).unwrap();
    assert!(why.contains("cannot shrink"), "{why}");
    let restore = serde_json::json!({"spec": {"storage": {"size": "1Gi"}}});
    clusters
        .patch("events", &PatchParams::default(), &Patch::Merge(&restore))
        .await
        .unwrap();

    // Scaling below the voters is refused with a condition, and nothing changes.
    let scale = serde_json::json!({"spec": {"replicas": 2}});
    clusters
        .patch("events", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    let blocked = wait_for(&clusters, "events", SLOW, "ScaleDownBlocked", |c| {
        cluster_condition(c, types::SCALE_DOWN_BLOCKED).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let (_, _, message) = cluster_condition(&blocked, types::SCALE_DOWN_BLOCKED).unwrap();
    assert!(message.contains("voters"), "{message}");
    assert_eq!(
        statefulsets
            .get("events")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );

    // A settings change changes the pod template (which rolls pods once they run).
    let before = sts_spec.template.metadata.unwrap().annotations.unwrap();
    let settings =
        serde_json::json!({"spec": {"replicas": 3, "config": {"log.retention.ms": "60000"}}});
    clusters
        .patch("events", &PatchParams::default(), &Patch::Merge(&settings))
        .await
        .unwrap();
    wait_for(&statefulsets, "events", SLOW, "a new config hash", |s| {
        let annotations = s
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .clone()
            .unwrap();
        annotations["weir.dev/config-hash"] != before["weir.dev/config-hash"]
    })
    .await;

    // A Topic whose cluster does not exist says so, and deletes cleanly.
    create(&topics, &topic("orphan", "missing", 3, 1))
        .await
        .unwrap();
    let orphan = wait_for(&topics, "orphan", SLOW, "ClusterNotFound", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.reason == "ClusterNotFound")
    })
    .await;
    assert!(orphan
        .metadata
        .finalizers
        .clone()
        .unwrap()
        .contains(&"weir.dev/topic-deletion".into()));
    let moved = serde_json::json!({"spec": {"clusterRef": "events"}});
    assert!(rejection(
        topics
            .patch("orphan", &PatchParams::default(), &Patch::Merge(&moved))
            .await
    )
    .contains("clusterRef cannot change"));
    topics
        .delete("orphan", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the orphan Topic deleted", || {
        let topics = topics.clone();
        async move { topics.get_opt("orphan").await.ok()?.is_none().then_some(()) }
    })
    .await;

    // Deleting the Cluster runs its finalizer; the garbage collector removes what it owned.
    clusters
        .delete("events", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the Cluster and its StatefulSet deleted", || {
        let clusters = clusters.clone();
        let statefulsets = statefulsets.clone();
        async move {
            let gone = clusters.get_opt("events").await.ok()?.is_none()
                && statefulsets.get_opt("events").await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await;
    assert!(operator.is_running(), "{}", operator.log());
    assert!(
        !operator.log().contains("\"level\":\"ERROR\""),
        "{}",
        operator.log()
    );
}

fn client_config(pods: &WeirPods, brokers: i32) -> ClientConfig {
    let bootstrap: Vec<String> = (0..brokers)
        .map(|o| format!("{}:9092", pods.pod_ip(o)))
        .collect();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap.join(","));
    config
}

/// Produces `count` keyed records with acks=all; returns the acknowledged values.
async fn produce(
    pods: &WeirPods,
    brokers: i32,
    topic: &str,
    from: usize,
    count: usize,
) -> BTreeSet<String> {
    let producer: FutureProducer = client_config(pods, brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    // 1 KiB records, so a rebalance moves real data.
    let values: Vec<String> = (from..from + count)
        .map(|i| format!("record-{i:06}-{}", "x".repeat(1010)))
        .collect();
    let futures: Vec<_> = values
        .iter()
        .map(|v| {
            let key = v.clone();
            (
                v.clone(),
                producer
                    .send_result(FutureRecord::to(topic).key(&key).payload(v))
                    .map_err(|(e, _)| e)
                    .unwrap(),
            )
        })
        .collect();
    let mut acked = BTreeSet::new();
    for (v, f) in futures {
        if let Ok(Ok(_)) = f.await {
            acked.insert(v);
        }
    }
    assert_eq!(acked.len(), count, "every record is acknowledged");
    acked
}

/// Reads every partition of `topic` from the start until `expected` are all seen; returns
/// what was read and checks no record appears twice.
fn consume_all(
    pods: &WeirPods,
    brokers: i32,
    topic: &str,
    partitions: i32,
    expected: &BTreeSet<String>,
) {
    let consumer: BaseConsumer = client_config(pods, brokers)
        .set("group.id", format!("check-{}", expected.len()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !expected.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "only {} of {} records came back",
            expected.intersection(&seen).count(),
            expected.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            assert!(seen.insert(value.clone()), "{value} read twice");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn brokers_scale_up_and_down_without_loss() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "e2e";
    cp.create_namespace(ns).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), ns, 71, root.path()));
    let _kubelet = Kubelet::start(client.clone(), ns, pods.clone()).await;
    let mut operator = OperatorProcess::start(&cp, ns, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let topics: Api<Topic> = Api::namespaced(client.clone(), ns);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);

    // kubectl apply → Ready.
    let started = Instant::now();
    create(&clusters, &cluster("weir", 3)).await.unwrap();
    wait_for(&clusters, "weir", SLOW, "the cluster Ready", |c| {
        cluster_condition(c, types::READY).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let ready_after = started.elapsed();
    println!(
        "apply → Ready (3 brokers): {:.1} s",
        ready_after.as_secs_f64()
    );

    create(&topics, &topic("orders", "weir", 12, 3))
        .await
        .unwrap();
    let t = wait_for(&topics, "orders", SLOW, "the topic Ready", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.status == "True")
            && t.status.as_ref().is_some_and(|s| s.partitions.len() == 12)
    })
    .await;
    assert!(t
        .status
        .unwrap()
        .partitions
        .iter()
        .all(|p| p.replicas.len() == 3));
    let mut acked = produce(&pods, 3, "orders", 0, 3000).await;

    // Partitions grow through the Topic; a decrease is refused with a condition.
    let grow = serde_json::json!({"spec": {"partitions": 16, "config": {"min.insync.replicas": "2", "retention.ms": "86400000"}}});
    topics
        .patch("orders", &PatchParams::default(), &Patch::Merge(&grow))
        .await
        .unwrap();
    wait_for(&topics, "orders", SLOW, "16 partitions", |t| {
        t.status.as_ref().is_some_and(|s| s.partitions.len() == 16)
    })
    .await;
    let shrink = serde_json::json!({"spec": {"partitions": 8}});
    topics
        .patch("orders", &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .unwrap();
    let refused = wait_for(&topics, "orders", SLOW, "PartitionDecreaseRefused", |t| {
        condition(
            t.status.as_ref().map(|s| &s.conditions),
            types::PARTITION_DECREASE_REFUSED,
        )
        .is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(refused.status.unwrap().partitions.len(), 16);
    topics
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"partitions": 16}})),
        )
        .await
        .unwrap();

    // A deletion-protected Topic goes; its Kafka topic stays.
    let mut keep = topic("keep", "weir", 2, 3);
    keep.metadata.annotations = Some(BTreeMap::from([(
        "weir.dev/deletion-protection".to_string(),
        "true".to_string(),
    )]));
    create(&topics, &keep).await.unwrap();
    wait_for(&topics, "keep", SLOW, "the keep topic Ready", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.status == "True")
    })
    .await;
    topics
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the keep Topic resource deleted", || {
        let topics = topics.clone();
        async move { topics.get_opt("keep").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let metadata_client: BaseConsumer = client_config(&pods, 3).create().unwrap();
    let metadata = metadata_client
        .fetch_metadata(Some("keep"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        metadata.topics()[0].partitions().len(),
        2,
        "the Kafka topic stayed"
    );

    // The operator's metrics.
    let addr = operator
        .metrics_addr()
        .expect("the operator logs its metrics address");
    let text = weir_tests::http::get(addr, "/metrics").body;
    assert!(
        text.lines().any(|l| l == "weir_operator_leader 1"),
        "{text}"
    );
    assert!(
        text.contains("weir_operator_reconciles_total{controller=\"cluster\",result=\"ok\"}"),
        "{text}"
    );
    assert!(
        text.contains("weir_operator_topic_ready{namespace=\"e2e\",topic=\"orders\"} 1"),
        "{text}"
    );

    // Scale to 5: replicas move onto the new brokers.
    let started = Instant::now();
    clusters
        .patch(
            "weir",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    let scaled = wait_for(&clusters, "weir", SLOW, "rebalanced over 5 brokers", |c| {
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
        rebalanced
            && new_hold
            && cluster_condition(c, types::READY).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    // The rebalance the status reports is the one that moved replicas: a reconcile must not
    // record a second, empty one over it (it did when it started from a stale cached status).
    let moves = scaled
        .status
        .as_ref()
        .unwrap()
        .rebalance
        .as_ref()
        .unwrap()
        .moves;
    println!(
        "scale 3 → 5 with rebalance ({moves} replica moves; 16 partitions at RF 3, 3000 records of 1 KiB): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(moves > 0, "the status never reported a replica move");
    consume_all(&pods, 5, "orders", 16, &acked);

    // A scale-down that a topic cannot survive is refused, and nothing moves.
    create(&topics, &topic("wide", "weir", 1, 4)).await.unwrap();
    wait_for(&topics, "wide", SLOW, "the wide topic Ready", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.status == "True")
    })
    .await;
    clusters
        .patch(
            "weir",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    let blocked = wait_for(&clusters, "weir", SLOW, "ScaleDownBlocked", |c| {
        cluster_condition(c, types::SCALE_DOWN_BLOCKED).is_some_and(|(s, _, _)| s == "True")
    })
    .await;
    let (_, _, why) = cluster_condition(&blocked, types::SCALE_DOWN_BLOCKED).unwrap();
    assert!(why.contains("wide (replication factor 4)"), "{why}");
    assert_eq!(
        statefulsets
            .get("weir")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(5)
    );
    assert!(
        pods.stopped().is_empty(),
        "no broker was stopped: {:?}",
        pods.stopped()
    );

    // Without that topic the scale-down drains brokers 4 and 3, then removes them.
    topics
        .delete("wide", &DeleteParams::default())
        .await
        .unwrap();
    let started = Instant::now();
    let shrunk = wait_for(&clusters, "weir", SLOW, "scaled down to 3", |c| {
        let Some(s) = c.status.as_ref() else {
            return false;
        };
        s.current_replicas == 3
            && s.brokers.iter().all(|b| b.id < 3)
            && cluster_condition(c, types::READY).is_some_and(|(st, _, _)| st == "True")
    })
    .await;
    println!(
        "scale 5 → 3 with drain: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stopped = pods.stopped();
    let removed: BTreeSet<&str> = stopped.iter().map(|s| s.pod.as_str()).collect();
    assert_eq!(removed, BTreeSet::from(["weir-3", "weir-4"]), "{stopped:?}");
    for broker in &stopped {
        assert!(
            broker.partitions.iter().all(|p| !p.starts_with("orders-")),
            "{} still held {:?} when it stopped",
            broker.pod,
            broker.partitions
        );
    }
    let t = topics.get("orders").await.unwrap();
    for p in t.status.unwrap().partitions {
        assert!(p.replicas.iter().all(|r| *r < 3), "{p:?}");
    }
    assert!(shrunk
        .status
        .unwrap()
        .brokers
        .iter()
        .all(|b| b.state == "Active"));
    acked.extend(produce(&pods, 3, "orders", 3000, 1000).await);
    consume_all(&pods, 3, "orders", 16, &acked);

    // A settings change rolls the brokers one at a time, the controller last.
    let controller = clusters
        .get("weir")
        .await
        .unwrap()
        .status
        .unwrap()
        .controller_id
        .unwrap();
    let old_revision = statefulsets
        .get("weir")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    let started = Instant::now();
    clusters
        .patch(
            "weir",
            &PatchParams::default(),
            &Patch::Merge(
                &serde_json::json!({"spec": {"config": {"log.retention.ms": "86400000"}}}),
            ),
        )
        .await
        .unwrap();
    eventually(SLOW, "every pod on the new revision and ready", || {
        let statefulsets = statefulsets.clone();
        let clusters = clusters.clone();
        let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
        let old_revision = old_revision.clone();
        async move {
            let sts = statefulsets.get("weir").await.ok()?;
            let revision = sts.status?.update_revision.filter(|r| *r != old_revision)?;
            let list = pods_api.list(&ListParams::default()).await.ok()?;
            let all_new = list.items.len() == 3
                && list.items.iter().all(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("controller-revision-hash"))
                        == Some(&revision)
                        && p.metadata.deletion_timestamp.is_none()
                });
            let c = clusters.get("weir").await.ok()?;
            let ready = cluster_condition(&c, types::READY).is_some_and(|(s, _, _)| s == "True");
            (all_new && ready && c.status?.under_replicated_partitions == 0).then_some(())
        }
    })
    .await;
    println!(
        "rolling restart of 3 brokers: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rolled: Vec<String> = pods
        .stopped()
        .iter()
        .skip(2)
        .map(|s| s.pod.clone())
        .collect();
    assert_eq!(rolled.len(), 3, "{rolled:?}");
    assert_eq!(
        rolled.last().unwrap(),
        &format!("weir-{controller}"),
        "the controller goes last"
    );
    consume_all(&pods, 3, "orders", 16, &acked);
    assert!(operator.is_running(), "{}", operator.log());
}

fn leading(operator: &OperatorProcess) -> Option<bool> {
    let addr = operator.metrics_addr()?;
    let response = weir_tests::http::try_get(addr, "/metrics", Duration::from_secs(2)).ok()?;
    let has = |line: &str| response.body.lines().any(|l| l == line);
    if has("weir_operator_leader 1") {
        Some(true)
    } else if has("weir_operator_leader 0") {
        Some(false)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_operator_takes_over_the_lease() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "lease";
    cp.create_namespace(ns).await;
    let mut first = OperatorProcess::start_replica(&cp, ns, None, "a").await;
    eventually(SLOW, "replica a leading", || async {
        leading(&first).filter(|l| *l)
    })
    .await;
    let mut second = OperatorProcess::start_replica(&cp, ns, None, "b").await;
    eventually(SLOW, "replica b serving metrics", || async {
        leading(&second)
    })
    .await;
    // b waits: it neither leads nor reconciles while a renews the lease.
    assert_eq!(leading(&second), Some(false), "{}", second.log());
    assert!(
        second.log().contains("waiting for leadership"),
        "{}",
        second.log()
    );

    first.kill9();
    let killed = Instant::now();
    eventually(SLOW, "replica b leading after a was killed", || async {
        leading(&second).filter(|l| *l)
    })
    .await;
    println!(
        "standby took over {:.1} s after the leader was killed (lease 15 s)",
        killed.elapsed().as_secs_f64()
    );
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    create(&clusters, &cluster("after", 1)).await.unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    wait_for(
        &statefulsets,
        "after",
        SLOW,
        "the new leader reconciles",
        |_| true,
    )
    .await;
    assert!(second.is_running(), "{}", second.log());
}

/// DescribeCluster as broker `ordinal` answers it, `None` while it does not.
async fn describe(pods: &WeirPods, ordinal: i32) -> Option<pb::DescribeClusterResponse> {
    let channel = Endpoint::from_shared(format!("http://{}:9093", pods.pod_ip(ordinal)))
        .ok()?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .ok()?;
    AdminClient::new(channel)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// The quorum's voters with their directory ids, as broker `ordinal` sees them.
async fn quorum_voters(pods: &WeirPods, ordinal: i32) -> Option<BTreeMap<i32, String>> {
    let controller = describe(pods, ordinal).await?.controller?;
    Some(
        controller
            .members
            .into_iter()
            .filter(|m| m.voter)
            .map(|m| (m.node_id, m.directory_id))
            .collect(),
    )
}

/// Waits until broker `ordinal` reports exactly brokers `0..3` as voters, each with the
/// directory id its volume holds now; returns them.
async fn three_voters_on_their_storage(pods: &WeirPods, ordinal: i32) -> BTreeMap<i32, String> {
    eventually(
        SLOW,
        "voters 0, 1, 2 with their volumes' directory ids",
        || async move {
            let voters = quorum_voters(pods, ordinal).await?;
            let on_storage = (0..3).all(|v| {
                voters.get(&v).is_some_and(|d| {
                    !d.is_empty() && pods.directory_id(&format!("weir-{v}")).as_ref() == Some(d)
                })
            });
            (voters.len() == 3 && on_storage).then_some(voters)
        },
    )
    .await
}

fn is_ready(c: &Cluster) -> bool {
    cluster_condition(c, types::READY).is_some_and(|(s, _, _)| s == "True")
}

/// The uid of every pod, by name (a pod that was restarted has a new one).
async fn pod_uids(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

/// A cluster created with one broker keeps one voter until the operator grows the quorum:
/// scaled to three brokers, it makes brokers 1 and 2 voters (AddRaftVoter, one at a time),
/// records them in `status.voters` and gives them to the brokers through the ConfigMap, with
/// no pod restarted. Then the active controller is SIGKILLed and the two other voters still
/// commit metadata (a topic is created): with the one voter it had before, nothing could.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quorum_created_with_one_broker_grows_to_three_voters() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "grow";
    cp.create_namespace(ns).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), ns, 72, root.path()));
    let _kubelet = Kubelet::start(client.clone(), ns, pods.clone()).await;
    let mut operator = OperatorProcess::start(&cp, ns, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);

    create(&clusters, &cluster("weir", 1)).await.unwrap();
    let one = wait_for(&clusters, "weir", SLOW, "one broker Ready", is_ready).await;
    assert_eq!(one.status.unwrap().voters, vec![0]);

    let started = Instant::now();
    clusters
        .patch(
            "weir",
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    wait_for(&clusters, "weir", SLOW, "three brokers Ready", |c| {
        is_ready(c) && c.status.as_ref().is_some_and(|s| s.ready_replicas == 3)
    })
    .await;
    let uids = pod_uids(&client, ns).await;
    let grown = wait_for(&clusters, "weir", SLOW, "status.voters 0, 1, 2", |c| {
        c.status.as_ref().is_some_and(|s| s.voters == vec![0, 1, 2]) && is_ready(c)
    })
    .await;
    println!(
        "replicas 1 → 3 → three voters: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let voters = three_voters_on_their_storage(&pods, 0).await;
    println!("voters: {voters:?}");
    // The brokers' contact list follows, through the ConfigMap, without a rolling restart.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    eventually(SLOW, "the ConfigMap lists three voters", || {
        let cms = cms.clone();
        async move {
            let data = cms.get("weir-config").await.ok()?.data?;
            (data.get("voters")?.split(',').count() == 3).then_some(())
        }
    })
    .await;
    assert_eq!(pod_uids(&client, ns).await, uids, "no broker was restarted");
    assert!(pods.stopped().is_empty(), "{:?}", pods.stopped());

    // SIGKILL the active controller: the two other voters elect one and commit a topic.
    let controller = grown.status.unwrap().controller_id.unwrap();
    pods.kill(&format!("weir-{controller}"));
    let survivors: Vec<i32> = (0..3).filter(|o| *o != controller).collect();
    let started = Instant::now();
    let via = survivors[0];
    eventually(SLOW, "a topic created with one voter SIGKILLed", || {
        let pods = pods.clone();
        async move {
            let channel = Endpoint::from_shared(format!("http://{}:9093", pods.pod_ip(via)))
                .ok()?
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .ok()?;
            let result = AdminClient::new(channel)
                .create_topic(pb::CreateTopicRequest {
                    name: "after-kill".into(),
                    partitions: Some(3),
                    replication_factor: Some(2),
                    ..Default::default()
                })
                .await;
            match result {
                Ok(_) => Some(()),
                Err(s) if s.code() == tonic::Code::AlreadyExists => Some(()),
                Err(_) => None,
            }
        }
    })
    .await;
    println!(
        "controller {controller} SIGKILLed → topic created: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let other = survivors[1];
    let d = eventually(
        SLOW,
        "the other survivor sees the topic and a new leader",
        || {
            let pods = pods.clone();
            async move {
                let d = describe(&pods, other).await?;
                let leader = d.controller.as_ref()?.leader_id?;
                let channel = Endpoint::from_shared(format!("http://{}:9093", pods.pod_ip(other)))
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                AdminClient::new(channel)
                    .describe_topic(pb::DescribeTopicRequest {
                        name: "after-kill".into(),
                    })
                    .await
                    .ok()?;
                (leader != controller).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(d.controller.unwrap().voters.len(), 3);

    // The killed broker's pod is replaced; it rejoins on its own storage as a voter.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods_api
        .delete(&format!("weir-{controller}"), &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&clusters, "weir", SLOW, "Ready after the restart", |c| {
        is_ready(c) && c.status.as_ref().is_some_and(|s| s.ready_replicas == 3)
    })
    .await;
    assert_eq!(three_voters_on_their_storage(&pods, other).await, voters);
    assert!(operator.is_running(), "{}", operator.log());
}

/// Produces `count` records to `topic` with acks=all; returns each acknowledged record's
/// (partition, offset) and value.
async fn produce_at(
    pods: &WeirPods,
    topic: &str,
    from: usize,
    count: usize,
) -> BTreeMap<(i32, i64), String> {
    let producer: FutureProducer = client_config(pods, 3)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let mut acked = BTreeMap::new();
    for i in from..from + count {
        let value = format!("record-{i:06}-{}", "y".repeat(500));
        let key = format!("key-{i}");
        let delivery = producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(60),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        acked.insert((delivery.partition, delivery.offset), value);
    }
    acked
}

/// Reads `topic` from the start until every record of `expected` was seen at its offset, with
/// its bytes.
fn consume_at(
    pods: &WeirPods,
    topic: &str,
    partitions: i32,
    expected: &BTreeMap<(i32, i64), String>,
) {
    let consumer: BaseConsumer = client_config(pods, 3)
        .set("group.id", format!("check-at-{}", expected.len()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while expected.keys().any(|k| !seen.contains_key(k)) {
        assert!(
            Instant::now() < deadline,
            "only {} of {} records came back",
            expected.keys().filter(|k| seen.contains_key(k)).count(),
            expected.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
            seen.insert((m.partition(), m.offset()), value);
        }
    }
    for (at, value) in expected {
        assert_eq!(&seen[at], value, "the record at {at:?}");
    }
}

/// A voter's volume is replaced by a new, empty one and its broker restarted, with the
/// brokers' auto-join off, so only the operator can heal the quorum: it removes the voter's
/// old storage (RemoveRaftVoter) and, once the broker has caught up, makes it a voter again
/// with its new directory id (AddRaftVoter). The cluster is Ready with three voters again,
/// and every acknowledged record is read back at its offset, old and new.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_whose_volume_is_replaced_heals_without_a_person() {
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "heal";
    cp.create_namespace(ns).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), ns, 73, root.path()));
    let _kubelet = Kubelet::start(client.clone(), ns, pods.clone()).await;
    let mut operator = OperatorProcess::start(&cp, ns, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let topics: Api<Topic> = Api::namespaced(client.clone(), ns);

    let mut spec = cluster("weir", 3);
    spec.spec
        .config
        .insert("controller.quorum.auto.join.enable".into(), "false".into());
    create(&clusters, &spec).await.unwrap();
    let ready = wait_for(&clusters, "weir", SLOW, "the cluster Ready", is_ready).await;
    let before = three_voters_on_their_storage(&pods, 0).await;
    create(&topics, &topic("orders", "weir", 3, 3))
        .await
        .unwrap();
    wait_for(&topics, "orders", SLOW, "the topic Ready", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.status == "True")
    })
    .await;
    let mut acked = produce_at(&pods, "orders", 0, 300).await;

    // A voter that is not the active controller loses its volume.
    let controller = ready.status.unwrap().controller_id.unwrap();
    let voter = (0..3).find(|v| *v != controller).unwrap();
    let pod = format!("weir-{voter}");
    let started = Instant::now();
    pods.replace_volume(&pod);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods_api
        .delete(&pod, &DeleteParams::default())
        .await
        .unwrap();
    let old_directory = before[&voter].clone();
    eventually(SLOW, "the broker restarted on a new, empty volume", || {
        let pods = pods.clone();
        let pod = pod.clone();
        let old_directory = old_directory.clone();
        async move {
            pods.directory_id(&pod)
                .filter(|d| *d != old_directory)
                .map(|_| ())
        }
    })
    .await;
    let observer = (0..3).find(|v| *v != voter).unwrap();
    let after = three_voters_on_their_storage(&pods, observer).await;
    assert_ne!(
        after[&voter], before[&voter],
        "voter {voter} has new storage"
    );
    for v in (0..3).filter(|v| *v != voter) {
        assert_eq!(after[&v], before[&v]);
    }
    wait_for(&clusters, "weir", SLOW, "Ready with three voters", |c| {
        is_ready(c)
            && c.status.as_ref().is_some_and(|s| {
                s.voters == vec![0, 1, 2]
                    && s.ready_replicas == 3
                    && s.under_replicated_partitions == 0
            })
    })
    .await;
    println!(
        "voter {voter}'s volume replaced → a voter again on its new storage, Ready: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = operator.log();
    assert!(
        log.contains("removing a voter's old storage from the metadata quorum")
            && log.contains("making a broker a voter of the metadata quorum"),
        "the operator replaced the voter: {log}"
    );

    acked.extend(produce_at(&pods, "orders", 300, 300).await);
    consume_at(&pods, "orders", 3, &acked);
    assert!(operator.is_running(), "{}", operator.log());
}

/// The text under `key` of a Secret.
async fn secret_text(secrets: &Api<Secret>, name: &str, key: &str) -> String {
    let secret = secrets.get(name).await.unwrap();
    let bytes = &secret.data.unwrap_or_default()[key];
    String::from_utf8(bytes.0.clone()).unwrap()
}

/// The DER of the first certificate in `pem`.
fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

/// The bootstrap list of the `scram` listener.
fn scram_bootstrap(pods: &WeirPods) -> String {
    let addrs: Vec<String> = (0..3).map(|o| format!("{}:9094", pods.pod_ip(o))).collect();
    addrs.join(",")
}

/// kcat settings for the `scram` listener (SASL_SSL, SCRAM-SHA-512) trusting only the CA
/// certificates in `ca` (the published bundle), checking the brokers' names.
fn scram_security(ca: &std::path::Path, password: &str) -> Vec<String> {
    [
        "security.protocol=SASL_SSL".to_string(),
        "sasl.mechanisms=SCRAM-SHA-512".to_string(),
        "sasl.username=alice".to_string(),
        format!("sasl.password={password}"),
        format!("ssl.ca.location={}", ca.display()),
        "ssl.endpoint.identification.algorithm=https".to_string(),
        "broker.address.family=v4".to_string(),
    ]
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tls_cluster_serves_scram_clients_and_renews_its_ca_under_load() {
    let Some(tools) = weir_tests::kafka_tools::KafkaTools::find() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Kafka's tools are missing: run scripts/install-test-deps.sh"
        );
        eprintln!("skipping: Kafka's tools not installed (scripts/install-test-deps.sh)");
        return;
    };
    if !weir_tests::kcat::available() {
        eprintln!("skipping: kcat not installed (scripts/install-test-deps.sh)");
        return;
    }
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "tls";
    cp.create_namespace(ns).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), ns, 74, root.path()));
    let _kubelet = Kubelet::start(client.clone(), ns, pods.clone()).await;
    let _operator = OperatorProcess::start(&cp, ns, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let topics: Api<Topic> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);

    let mut secure = cluster("secure", 3);
    secure.spec.listeners.clients = vec![listener(
        "scram",
        9094,
        true,
        Some(AuthenticationType::ScramSha512),
    )];
    create(&clusters, &secure).await.unwrap();
    wait_for(&clusters, "secure", SLOW, "the TLS cluster Ready", is_ready).await;

    // Clients trust only the published CA.
    let dir = tempfile::tempdir().unwrap();
    let first_bundle = secret_text(&secrets, "secure-cluster-ca-cert", "ca.crt").await;
    let ca_path = dir.path().join("ca.crt");
    std::fs::write(&ca_path, &first_bundle).unwrap();

    // The SCRAM user, made with kafka-configs over the brokers' replication listener (mutual
    // TLS, presenting a broker's certificate).
    let admin_pem = dir.path().join("admin.pem");
    std::fs::write(
        &admin_pem,
        secret_text(&secrets, "secure-broker-certs", "secure-0.pem").await,
    )
    .unwrap();
    let admin_config = dir.path().join("admin.properties");
    std::fs::write(
        &admin_config,
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\nssl.keystore.type=PEM\nssl.keystore.location={}\n",
            ca_path.display(),
            admin_pem.display()
        ),
    )
    .unwrap();
    tools.run_ok(
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &format!("{}:9092", pods.pod_ip(0)),
            "--command-config",
            admin_config.to_str().unwrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=8192,password=alice-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    );

    create(&topics, &topic("payments", "secure", 3, 3))
        .await
        .unwrap();
    wait_for(&topics, "payments", SLOW, "the topic Ready", |t| {
        condition(t.status.as_ref().map(|s| &s.conditions), types::READY)
            .is_some_and(|c| c.status == "True")
    })
    .await;

    // A wrong password is refused.
    let wrong = weir_tests::kcat::run(
        &scram_bootstrap(&pods),
        &scram_security(&ca_path, "not-alices"),
        &["-L", "-m", "5"],
        "",
    );
    assert!(
        !wrong.status.success(),
        "a wrong password got through: {}",
        String::from_utf8_lossy(&wrong.stdout)
    );

    // A producer (kcat, acks=all, idempotent) keeps writing while the cluster CA is renewed.
    let mut producer = weir_tests::kcat::spawn(
        &scram_bootstrap(&pods),
        &scram_security(&ca_path, "alice-secret"),
        &[
            "-P",
            "-t",
            "payments",
            "-X",
            "acks=all",
            "-X",
            "enable.idempotence=true",
            "-X",
            "message.timeout.ms=60000",
            "-X",
            "linger.ms=5",
        ],
    );
    let stdin = producer.stdin.take().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut stdin = stdin;
            let mut written = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let line = format!("tls-{:06}", written.len());
                writeln!(stdin, "{line}").unwrap();
                stdin.flush().unwrap();
                written.push(line);
                // The pace of a steady producer, not a synchronisation.
                std::thread::sleep(Duration::from_millis(20));
            }
            written
        })
    };
    // Renew only once the producer is connected to every partition's leader: a client that
    // trusts only the old CA cannot open new connections once certificates are reissued
    // (it must take the bundle up in between, as docs/operator.md says).
    weir_tests::kcat::wait_for_a_record_in_each(
        &scram_bootstrap(&pods),
        &scram_security(&ca_path, "alice-secret"),
        "payments",
        &[0, 1, 2],
        SLOW,
    )
    .await;
    let pod0 = format!("{}:9094", pods.pod_ip(0)).parse().unwrap();
    let served_before = served_certificate(pod0, &first_bundle, &pods.pod_ip(0));
    assert_eq!(
        served_before,
        der_of(&secret_text(&secrets, "secure-broker-certs", "secure-0.crt").await)
    );
    let first_not_after = clusters
        .get("secure")
        .await
        .unwrap()
        .status
        .and_then(|s| s.certificates)
        .expect("certificates in the status")
        .cluster_ca
        .not_after;

    let force = serde_json::json!({"metadata": {"annotations": {"weir.dev/force-renew": "true"}}});
    secrets
        .patch(
            "secure-cluster-ca",
            &PatchParams::default(),
            &Patch::Merge(&force),
        )
        .await
        .unwrap();
    let phases = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    eventually(SLOW, "the CA renewal to finish", || {
        let clusters = clusters.clone();
        let phases = phases.clone();
        let first_not_after = first_not_after.clone();
        async move {
            let c = clusters.get("secure").await.ok()?;
            let ca = c.status?.certificates?.cluster_ca;
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
        phases.contains(&"TrustingNewCa".to_string())
            && phases.contains(&"ReissuingCertificates".to_string()),
        "renewal phases seen: {phases:?}"
    );

    // The bundle holds only the new CA, and a fresh handshake gets the reissued certificate.
    let new_bundle = secret_text(&secrets, "secure-cluster-ca-cert", "ca.crt").await;
    assert_eq!(new_bundle.matches("BEGIN CERTIFICATE").count(), 1);
    assert_ne!(der_of(&new_bundle), der_of(&first_bundle));
    let reissued = der_of(&secret_text(&secrets, "secure-broker-certs", "secure-0.crt").await);
    assert_ne!(reissued, served_before);
    eventually(SLOW, "the broker to serve its reissued certificate", || {
        let bundle = new_bundle.clone();
        let ip = pods.pod_ip(0);
        let reissued = reissued.clone();
        async move {
            let served =
                tokio::task::spawn_blocking(move || served_certificate(pod0, &bundle, &ip))
                    .await
                    .ok()?;
            (served == reissued).then_some(())
        }
    })
    .await;

    // Nothing failed; a client trusting only the new CA reads every record.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writing.join().unwrap();
    let produced = producer.wait_with_output().unwrap();
    let errors = String::from_utf8_lossy(&produced.stderr).to_string();
    assert!(
        !errors.contains("Delivery failed"),
        "kcat -P during the renewal: {errors}"
    );
    assert!(written.len() > 10, "only {} records written", written.len());
    println!(
        "CA renewal phases seen: {phases:?}; {} records written across it",
        written.len()
    );
    let new_ca_path = dir.path().join("new-ca.crt");
    std::fs::write(&new_ca_path, &new_bundle).unwrap();
    let count = written.len().to_string();
    let consumed = weir_tests::kcat::run(
        &scram_bootstrap(&pods),
        &scram_security(&new_ca_path, "alice-secret"),
        &[
            "-C",
            "-t",
            "payments",
            "-o",
            "beginning",
            "-e",
            "-c",
            &count,
            "-q",
        ],
        "",
    );
    let read: BTreeSet<String> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = written.iter().filter(|l| !read.contains(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records not read back: {}",
        missing.len(),
        written.len(),
        String::from_utf8_lossy(&consumed.stderr)
    );
}
