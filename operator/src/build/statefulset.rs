//! The brokers' StatefulSet.
//!
//! - Broker id = pod ordinal (`--node-id=$(POD_NAME)`); advertised addresses are the pods' DNS
//!   names through the headless Service; the quorum's voters come from the ConfigMap into
//!   `WEIR_VOTERS` (a new voter changes the ConfigMap, not the template: no roll).
//! - `podManagementPolicy: Parallel`: a broker is ready only once the quorum has formed, so
//!   ordered start-up would wait forever for pod 0.
//! - `updateStrategy: OnDelete`: the operator rolls pods itself, one at a time, after checking
//!   that no partition is under-replicated.
//! - Claims are deleted when the StatefulSet scales down (those brokers were drained first) and
//!   kept when the `Cluster` is deleted.
//! - With rack awareness an init container writes `broker.rack` from the node's label, and
//!   pods spread over the label's values.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{config_hash, server_properties};
use super::listeners::listener_args;
use super::{owned_meta, BuildInput};
use crate::crd::{AuthenticationType, ClientListener};
use crate::names::{
    BROKER_CERTS_MOUNT, CLIENTS_CA_MOUNT, CLUSTER_CA_MOUNT, CONFIG_FILE, CONFIG_HASH_ANNOTATION,
    CONFIG_MOUNT, DATA_DIR, DATA_MOUNT, DATA_VOLUME, JWKS_MOUNT, RACK_FILE, RACK_MOUNT, VOTERS_ENV,
    VOTERS_KEY,
};

/// Seconds a broker gets to move its leaderships away on SIGTERM before it is killed.
const TERMINATION_GRACE_SECONDS: i64 = 120;
/// The non-root user of the broker image.
const BROKER_UID: i64 = 65532;

pub fn statefulset(input: &BuildInput<'_>) -> StatefulSet {
    let names = &input.names;
    let mut pod_labels = names.labels();
    pod_labels.extend(names.selector());
    let mut annotations = BTreeMap::from([(
        CONFIG_HASH_ANNOTATION.to_string(),
        config_hash(&pod_settings_fingerprint(input)),
    )]);
    annotations.extend(scrape_annotations(
        input.cluster.spec.listeners.metrics_port,
    ));
    StatefulSet {
        metadata: owned_meta(input, names.statefulset()),
        spec: Some(StatefulSetSpec {
            replicas: Some(input.statefulset_replicas),
            service_name: Some(names.headless_service()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some("Delete".into()),
                    when_deleted: Some("Retain".into()),
                },
            ),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(input)),
            },
            volume_claim_templates: Some(vec![claim_template(input)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The `prometheus.io/*` annotations by which a plain Prometheus with Kubernetes service
/// discovery (role `pod`) finds the brokers' metrics port (docs/operations.md has the scrape
/// config that reads them).
pub fn scrape_annotations(metrics_port: i32) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), metrics_port.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
    ])
}

/// What a running broker reads besides its image: its settings. (The image, resources and
/// everything else in the template change the StatefulSet's revision by themselves.)
fn pod_settings_fingerprint(input: &BuildInput<'_>) -> String {
    server_properties(&input.cluster.spec, input.internal_tls)
}

fn claim_template(input: &BuildInput<'_>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            labels: Some(input.names.selector()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: input.cluster.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(input.claim_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// `WEIR_VOTERS` (the broker's `--voters`) from the ConfigMap, read when the container starts.
/// The pod template names only the key, so the operator adds a voter by changing the
/// ConfigMap: running brokers need nothing (the quorum's membership is in the metadata log
/// they follow), and each broker that starts later, an emptied one too, finds the quorum
/// through every voter. Changing the template would restart every broker for nothing.
fn voters_env(input: &BuildInput<'_>) -> EnvVar {
    EnvVar {
        name: VOTERS_ENV.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: input.names.config_map(),
                key: VOTERS_KEY.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The Secrets TLS listeners read, with where each is mounted: the broker certificates, the
/// cluster CA's and (for `tls` authentication) the clients CA's trust bundles, and each OAuth
/// listener's key set. Mounted whole (no `subPath`), so the kubelet refreshes them in place
/// and the brokers reload renewed certificates without a restart.
fn tls_volumes(input: &BuildInput<'_>) -> Vec<(Volume, String)> {
    let spec = &input.cluster.spec;
    if !input.needs_certificates() {
        return Vec::new();
    }
    let names = &input.names;
    let secret = |volume: &str, secret: String, path: String| {
        let v = Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        };
        (v, path)
    };
    let mut volumes = vec![
        secret(
            "broker-certs",
            names.broker_certs(),
            BROKER_CERTS_MOUNT.into(),
        ),
        secret(
            "cluster-ca",
            names.cluster_ca_cert(),
            CLUSTER_CA_MOUNT.into(),
        ),
    ];
    let clients = &spec.listeners.clients;
    let auth = |l: &ClientListener| l.authentication.as_ref().map(|a| a.type_);
    if clients
        .iter()
        .any(|l| auth(l) == Some(AuthenticationType::Tls))
    {
        volumes.push(secret(
            "clients-ca",
            names.clients_ca_cert(),
            CLIENTS_CA_MOUNT.into(),
        ));
    }
    for listener in clients {
        if let Some(jwks) = listener
            .authentication
            .as_ref()
            .and_then(|a| a.jwks_secret.clone())
        {
            volumes.push(secret(
                &format!("jwks-{}", listener.name),
                jwks,
                format!("{JWKS_MOUNT}/{}", listener.name),
            ));
        }
    }
    volumes
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn http_probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(3),
        ..Probe::default()
    }
}

/// The broker's command line: everything per-pod comes from `$(POD_NAME)`, expanded by the
/// kubelet. The voters are not on it: they come from the ConfigMap ([`voters_env`]).
pub(super) fn broker_args(input: &BuildInput<'_>) -> Vec<String> {
    let l = &input.cluster.spec.listeners;
    let me = input.addressing.pod_dns(&input.names, "$(POD_NAME)");
    let mut args = vec![
        "--node-id=$(POD_NAME)".to_string(),
        format!("--data-dir={DATA_DIR}"),
        format!("--rpc-listen=0.0.0.0:{}", l.internal_port),
        format!("--advertised-rpc={me}:{}", l.internal_port),
        format!("--metrics-listen=0.0.0.0:{}", l.metrics_port),
        format!("--config={CONFIG_MOUNT}/{CONFIG_FILE}"),
    ];
    args.extend(listener_args(&input.cluster.spec, &me, input.internal_tls));
    if input.cluster.spec.rack.is_some() {
        args.push(format!("--config={RACK_MOUNT}/{RACK_FILE}"));
    }
    args
}

fn broker_container(input: &BuildInput<'_>) -> Container {
    let spec = &input.cluster.spec;
    let l = &spec.listeners;
    let container_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    };
    let mut mounts = vec![
        mount(DATA_VOLUME, DATA_MOUNT),
        mount("config", CONFIG_MOUNT),
    ];
    if spec.rack.is_some() {
        mounts.push(mount("rack", RACK_MOUNT));
    }
    mounts.extend(
        tls_volumes(input)
            .into_iter()
            .map(|(v, path)| mount(&v.name, &path)),
    );
    Container {
        name: "broker".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| input.default_broker_image.to_string()),
        ),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(vec!["weir-broker".into()]),
        args: Some(broker_args(input)),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_IP", "status.podIP"),
            voters_env(input),
        ]),
        ports: Some(
            [
                container_port("kafka", l.kafka_port),
                container_port("internal", l.internal_port),
                container_port("metrics", l.metrics_port),
            ]
            .into_iter()
            .chain(l.clients.iter().map(|c| container_port(&c.name, c.port)))
            .collect(),
        ),
        // Ready = registered with the quorum, caught up with the metadata, unfenced.
        readiness_probe: Some(http_probe("/readyz", "metrics", 5, 3)),
        // /healthz answers from the first moment, also while logs are recovered.
        liveness_probe: Some(http_probe("/healthz", "metrics", 10, 6)),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Writes `broker.rack=<the node's topologyKey label>` for the broker (the downward API cannot
/// read node labels).
fn rack_init_container(input: &BuildInput<'_>, topology_key: &str) -> Container {
    Container {
        name: "rack".into(),
        image: Some(input.operator_image.to_string()),
        command: Some(vec!["weir-operator".into()]),
        args: Some(vec![
            "rack".into(),
            "--node=$(NODE_NAME)".into(),
            format!("--label={topology_key}"),
            format!("--out={RACK_MOUNT}/{RACK_FILE}"),
        ]),
        env: Some(vec![field_env("NODE_NAME", "spec.nodeName")]),
        volume_mounts: Some(vec![mount("rack", RACK_MOUNT)]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn spread(input: &BuildInput<'_>, key: &str) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key.into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(input.names.selector()),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }
}

fn pod_spec(input: &BuildInput<'_>) -> PodSpec {
    let spec = &input.cluster.spec;
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: input.names.config_map(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    volumes.extend(tls_volumes(input).into_iter().map(|(v, _)| v));
    let mut spreads = vec![spread(input, "kubernetes.io/hostname")];
    let mut init = Vec::new();
    if let Some(rack) = &spec.rack {
        volumes.push(Volume {
            name: "rack".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
        spreads.push(spread(input, &rack.topology_key));
        init.push(rack_init_container(input, &rack.topology_key));
    }
    PodSpec {
        // The rack init container reads its node through this account (see `rbac`).
        service_account_name: spec
            .rack
            .as_ref()
            .map(|_| input.names.broker_service_account()),
        init_containers: (!init.is_empty()).then_some(init),
        containers: vec![broker_container(input)],
        volumes: Some(volumes),
        topology_spread_constraints: Some(spreads),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            run_as_non_root: Some(true),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    }
}
