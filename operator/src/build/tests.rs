//! The builders, checked field by field against what a running cluster relies on.

use std::collections::BTreeMap;

use super::*;
use crate::crd::{ClusterSpec, ListenersSpec, RackSpec, RebalanceSpec, StorageSpec};

pub(crate) fn cluster(replicas: i32) -> Cluster {
    let mut c = Cluster::new(
        "events",
        ClusterSpec {
            replicas,
            image: Some("weir:1".into()),
            image_pull_policy: None,
            storage: StorageSpec {
                size: "10Gi".into(),
                storage_class_name: Some("fast".into()),
            },
            resources: None,
            rack: None,
            config: BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]),
            listeners: ListenersSpec::default(),
            rebalance: RebalanceSpec::default(),
            certificates: None,
        },
    );
    c.metadata.namespace = Some("prod".into());
    c.metadata.uid = Some("uid-1".into());
    c
}

fn build(cluster: &Cluster, replicas: i32) -> ClusterObjects {
    build_with_voters(cluster, replicas, &[0, 1, 2])
}

fn build_with_voters(cluster: &Cluster, replicas: i32, voters: &[i32]) -> ClusterObjects {
    let addressing = Addressing::default();
    cluster_objects(&BuildInput {
        cluster,
        names: ClusterNames::of(cluster),
        addressing: &addressing,
        voters,
        statefulset_replicas: replicas,
        claim_size: cluster.spec.storage.size.clone(),
        operator_image: "weir-operator:1",
        default_broker_image: "weir:default",
        // As a cluster created with its listeners runs it.
        internal_tls: crate::build::listeners::uses_tls(&cluster.spec),
    })
}

fn args(objects: &ClusterObjects) -> Vec<String> {
    let pod = objects
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone()
        .unwrap();
    pod.containers[0].args.clone().unwrap()
}

#[test]
fn every_object_is_owned_by_the_cluster_and_labelled() {
    let c = cluster(3);
    let o = build(&c, 3);
    let metas = [
        &o.config_map.metadata,
        &o.headless_service.metadata,
        &o.client_service.metadata,
        &o.pod_disruption_budget.metadata,
        &o.statefulset.metadata,
    ];
    for meta in metas {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "Cluster");
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("prod"));
        assert_eq!(
            meta.labels
                .as_ref()
                .unwrap()
                .get("weir.dev/cluster")
                .map(String::as_str),
            Some("events")
        );
    }
}

#[test]
fn brokers_take_their_id_and_address_from_the_pod_and_know_the_voters() {
    let c = cluster(5);
    let a = args(&build(&c, 5));
    let dns = "$(POD_NAME).events-brokers.prod.svc.cluster.local";
    assert!(a.contains(&"--node-id=$(POD_NAME)".to_string()), "{a:?}");
    assert!(
        a.contains(&format!("--advertised-listener={dns}:9092")),
        "{a:?}"
    );
    assert!(a.contains(&format!("--advertised-rpc={dns}:9093")), "{a:?}");
    assert!(a.contains(&"--listen=0.0.0.0:9092".to_string()), "{a:?}");
    assert!(!a.iter().any(|x| x.starts_with("--voters")), "{a:?}");
    assert!(a.contains(&"--config=/etc/weir/server.properties".to_string()));
    let o = build(&c, 5);
    let env = broker_container(&o).env.unwrap();
    let voters_env = env.iter().find(|e| e.name == "WEIR_VOTERS").unwrap();
    let key = voters_env
        .value_from
        .as_ref()
        .and_then(|v| v.config_map_key_ref.as_ref())
        .unwrap();
    assert_eq!(key.name, "events-config");
    assert_eq!(
        o.config_map.data.as_ref().unwrap()[&key.key],
        "0@events-0.events-brokers.prod.svc.cluster.local:9093,\
         1@events-1.events-brokers.prod.svc.cluster.local:9093,\
         2@events-2.events-brokers.prod.svc.cluster.local:9093"
    );
}

#[test]
fn a_new_voter_changes_the_config_map_but_not_the_pod_template() {
    let c = cluster(3);
    let one = build_with_voters(&c, 3, &[0]);
    let three = build_with_voters(&c, 3, &[0, 1, 2]);
    let template = |o: &ClusterObjects| o.statefulset.spec.as_ref().unwrap().template.clone();
    assert_eq!(template(&one), template(&three));
    assert_ne!(
        one.config_map.data.as_ref().unwrap()["voters"],
        three.config_map.data.as_ref().unwrap()["voters"]
    );
    assert_eq!(
        one.config_map.data.as_ref().unwrap()["voters"],
        "0@events-0.events-brokers.prod.svc.cluster.local:9093"
    );
}

fn broker_container(objects: &ClusterObjects) -> k8s_openapi::api::core::v1::Container {
    let pod = objects
        .statefulset
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .clone();
    pod.unwrap().containers[0].clone()
}

#[test]
fn brokers_run_the_spec_image_or_the_operators_default() {
    let mut c = cluster(3);
    let named = broker_container(&build(&c, 3));
    assert_eq!(named.image.as_deref(), Some("weir:1"));
    assert_eq!(named.command, Some(vec!["weir-broker".to_string()]));
    c.spec.image = None;
    let defaulted = broker_container(&build(&c, 3));
    assert_eq!(defaulted.image.as_deref(), Some("weir:default"));
}

#[test]
fn brokers_log_with_their_own_default_filter() {
    // The broker's default keeps dependencies at WARN; a RUST_LOG or WEIR_LOG in the pod
    // would replace it (RUST_LOG=info brought openraft's INFO lines back).
    let env = broker_container(&build(&cluster(3), 3)).env.unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert!(!names.contains(&"RUST_LOG"), "{names:?}");
    assert!(!names.contains(&"WEIR_LOG"), "{names:?}");
}

#[test]
fn statefulset_is_parallel_on_delete_with_claims_and_probes() {
    let c = cluster(3);
    let o = build(&c, 4);
    let spec = o.statefulset.spec.unwrap();
    assert_eq!(
        spec.replicas,
        Some(4),
        "the reconciler's count, not the spec's"
    );
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(
        spec.update_strategy.unwrap().type_.as_deref(),
        Some("OnDelete")
    );
    assert_eq!(spec.service_name.as_deref(), Some("events-brokers"));
    let claim = &spec.volume_claim_templates.unwrap()[0];
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "10Gi"
    );
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    let pod = spec.template.spec.unwrap();
    let broker = &pod.containers[0];
    let ready = broker
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    let live = broker
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.path.as_deref(), Some("/healthz"));
    assert!(pod.init_containers.is_none(), "no rack, no init container");
    let selector = spec.selector.match_labels.unwrap();
    let labels = spec.template.metadata.unwrap().labels.unwrap();
    assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
}

#[test]
fn settings_changes_change_the_pod_template_and_nothing_else_does() {
    let c = cluster(3);
    let hash = |o: &ClusterObjects| {
        o.statefulset
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[crate::names::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let before = hash(&build(&c, 3));
    assert_eq!(before, hash(&build(&c, 5)), "scaling does not roll pods");
    let mut changed = c.clone();
    changed
        .spec
        .config
        .insert("num.partitions".into(), "6".into());
    assert_ne!(before, hash(&build(&changed, 3)));
    let cm = build(&changed, 3).config_map.data.unwrap();
    assert_eq!(
        cm["server.properties"],
        "# Managed by weir-operator from the Cluster's spec.config.\n\
         log.retention.ms=1000\nnum.partitions=6\n"
    );
}

#[test]
fn rack_awareness_adds_the_init_container_and_spreads_pods() {
    let mut c = cluster(3);
    c.spec.rack = Some(RackSpec {
        topology_key: "topology.kubernetes.io/zone".into(),
    });
    let o = build(&c, 3);
    let pod = o.statefulset.spec.unwrap().template.spec.unwrap();
    let init = &pod.init_containers.unwrap()[0];
    assert_eq!(init.image.as_deref(), Some("weir-operator:1"));
    assert!(init
        .args
        .as_ref()
        .unwrap()
        .contains(&"--label=topology.kubernetes.io/zone".into()));
    assert!(pod.containers[0]
        .args
        .as_ref()
        .unwrap()
        .contains(&"--config=/var/run/weir/rack.properties".into()));
    let keys: Vec<_> = pod
        .topology_spread_constraints
        .unwrap()
        .into_iter()
        .map(|t| t.topology_key)
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("events-broker"));
}

#[test]
fn services_expose_the_listeners() {
    let mut c = cluster(3);
    c.spec.listeners.kafka_port = 19092;
    let o = build(&c, 3);
    let headless = o.headless_service.spec.unwrap();
    assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
    assert_eq!(headless.publish_not_ready_addresses, Some(true));
    let ports: Vec<i32> = headless.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [19092, 9093, 9644]);
    let client = o.client_service.spec.unwrap();
    assert_eq!(client.ports.unwrap()[0].port, 19092);
    let pdb = o.pod_disruption_budget.spec.unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn config_that_properties_cannot_carry_is_refused() {
    let mut c = cluster(1);
    assert!(validate_config(&c.spec).is_ok());
    c.spec.config.insert("bad key".into(), "x".into());
    assert!(validate_config(&c.spec).unwrap_err().contains("bad key"));
    let mut c = cluster(1);
    c.spec.config.insert("a".into(), "two\nlines".into());
    assert!(validate_config(&c.spec).unwrap_err().contains("`a`"));
}

#[test]
fn broker_pods_announce_their_metrics_port_to_prometheus() {
    let mut c = cluster(3);
    c.spec.listeners.metrics_port = 9700;
    let objects = build(&c, 3);
    let template = objects.statefulset.spec.unwrap().template;
    let annotations = template.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9700");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let ports = template.spec.unwrap().containers[0].ports.clone().unwrap();
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("metrics") && p.container_port == 9700),
        "{ports:?}"
    );
}

#[test]
fn tls_listeners_mount_their_certificates_and_replace_the_listen_shorthand() {
    use crate::crd::{AuthenticationType, ClientListener};
    let mut c = cluster(3);
    c.spec.listeners.clients = vec![
        ClientListener::new("scram", 9094, true, Some(AuthenticationType::ScramSha512)),
        ClientListener::new("mtls", 9095, true, Some(AuthenticationType::Tls)),
    ];
    let o = build(&c, 3);
    let a = args(&o);
    assert!(!a.iter().any(|x| x.starts_with("--listen=")), "{a:?}");
    assert!(
        a.contains(&"--set=ssl.keystore.location=/etc/weir/tls/broker/$(POD_NAME).pem".to_string())
    );
    let pod = o.statefulset.spec.unwrap().template.spec.unwrap();
    let secrets: Vec<(String, String)> = pod
        .volumes
        .unwrap()
        .iter()
        .filter_map(|v| Some((v.name.clone(), v.secret.as_ref()?.secret_name.clone()?)))
        .collect();
    assert_eq!(
        secrets,
        [
            (
                "broker-certs".to_string(),
                "events-broker-certs".to_string()
            ),
            (
                "cluster-ca".to_string(),
                "events-cluster-ca-cert".to_string()
            ),
            (
                "clients-ca".to_string(),
                "events-clients-ca-cert".to_string()
            ),
        ]
    );
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    let broker_mount = mounts.iter().find(|m| m.name == "broker-certs").unwrap();
    assert_eq!(broker_mount.mount_path, "/etc/weir/tls/broker");
    // Whole-Secret mounts only: the kubelet does not refresh a subPath.
    assert!(mounts.iter().all(|m| m.sub_path.is_none()));
    let client_ports: Vec<i32> = o
        .client_service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(client_ports, [9094, 9095]);
    let properties = &o.config_map.data.unwrap()["server.properties"];
    assert!(properties.contains("inter.broker.listener.name=REPLICATION\n"));
    assert!(properties
        .contains("listener.security.protocol.map=REPLICATION:SSL,SCRAM:SASL_SSL,MTLS:SSL\n"));
}
