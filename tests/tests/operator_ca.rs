//! A cluster CA of the user's own (the Secret a cert-manager `Certificate` with `isCA: true`
//! writes: `tls.crt`, `tls.key`, `ca.crt`) against a real control plane, the operator as a
//! real process under the chart's RBAC, and three real `weir-broker` pods run by the kubelet
//! stand-in; kcat (librdkafka with OpenSSL) is the client.
//!
//! - `a_users_ca_signs_the_brokers_and_its_replacement_is_trusted_first`:
//!   - a `Cluster` naming a CA Secret that does not exist yet reports
//!     `CertificateAuthoritiesValid=False` (`ClusterCaSecretMissing`) and starts no brokers;
//!     once the Secret appears the cluster becomes Ready, its brokers serving certificates
//!     that clients trusting only that CA accept;
//!   - the Secret's content is replaced by a new CA (as cert-manager renews one) while a
//!     producer that trusts both CAs writes: the operator trusts the new CA beside the old one
//!     first (both in the bundle), then reissues the broker certificates with it, then drops
//!     the old one; nothing the producer wrote is lost, and the brokers serve certificates of
//!     the new CA, read back by a client that trusts only it;
//!   - the Secret then holding a certificate that is not a CA is reported
//!     (`ClusterCaSecretInvalid`) and the brokers keep serving what they had.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use weir_operator::crd::condition::types;
use weir_operator::crd::{
    CaSpec, CertificatesSpec, ClientListener, Cluster, ClusterSpec, StorageSpec, Topic, TopicSpec,
};
use weir_operator::tls::pki::{issue, new_ca, KeyedCert, LeafKind};
use weir_tests::admin::eventually;
use weir_tests::clients::served_certificate;
use weir_tests::kube::ControlPlane;
use weir_tests::kubelet::Kubelet;
use weir_tests::operator::{install_crds, OperatorProcess};
use weir_tests::weir_pods::WeirPods;

const SLOW: Duration = Duration::from_secs(240);
const NS: &str = "userca";
const CLUSTER: &str = "owned";
const CA_SECRET: &str = "weir-ca";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A self-signed CA as cert-manager stores one: `tls.crt` and `ca.crt` the certificate,
/// `tls.key` its PKCS#8 key.
fn ca_secret(ca: &KeyedCert) -> Secret {
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(ca.cert_pem.clone().into()),
        ),
        ("tls.key".to_string(), ByteString(ca.key_pem.clone().into())),
        ("ca.crt".to_string(), ByteString(ca.cert_pem.clone().into())),
    ]);
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(CA_SECRET.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

fn cluster() -> Cluster {
    let mut spec = ClusterSpec {
        replicas: 3,
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
        certificates: Some(CertificatesSpec {
            cluster_ca: CaSpec {
                secret_name: Some(CA_SECRET.into()),
                ..CaSpec::default()
            },
            clients_ca: CaSpec::default(),
        }),
    };
    spec.listeners.clients = vec![ClientListener::new("tls", 9094, true, None)];
    Cluster::new(CLUSTER, spec)
}

fn ca_condition(c: &Cluster) -> Option<(String, String, String)> {
    c.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == types::CERTIFICATE_AUTHORITIES_VALID)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn is_ready(c: &Cluster) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == types::READY && c.status == "True")
    })
}

async fn wait_for<F>(clusters: &Api<Cluster>, what: &str, check: F) -> Cluster
where
    F: Fn(&Cluster) -> bool,
{
    let check = &check;
    eventually(SLOW, what, || {
        let clusters = clusters.clone();
        async move { clusters.get(CLUSTER).await.ok().filter(|c| check(c)) }
    })
    .await
}

async fn secret_text(secrets: &Api<Secret>, name: &str, key: &str) -> String {
    let secret = secrets.get(name).await.unwrap();
    String::from_utf8(secret.data.unwrap_or_default()[key].0.clone()).unwrap()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

fn bootstrap(pods: &WeirPods) -> String {
    let addrs: Vec<String> = (0..3).map(|o| format!("{}:9094", pods.pod_ip(o))).collect();
    addrs.join(",")
}

/// kcat over SSL trusting only the certificates in `ca`, checking the brokers' names.
fn ssl(ca: &std::path::Path) -> Vec<String> {
    vec![
        "security.protocol=SSL".to_string(),
        format!("ssl.ca.location={}", ca.display()),
        "ssl.endpoint.identification.algorithm=https".to_string(),
        "broker.address.family=v4".to_string(),
    ]
}

/// The certificate each broker's TLS listener serves on a fresh handshake to a client that
/// trusts only `ca_pem` (a handshake that fails verification panics).
async fn served(pods: &WeirPods, ca_pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for ordinal in 0..3 {
        let ip = pods.pod_ip(ordinal);
        let addr = format!("{ip}:9094").parse().unwrap();
        let ca = ca_pem.to_string();
        out.push(
            tokio::task::spawn_blocking(move || served_certificate(addr, &ca, &ip))
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_ca_signs_the_brokers_and_its_replacement_is_trusted_first() {
    if !weir_tests::kcat::available() {
        eprintln!("skipping: kcat not installed (scripts/install-test-deps.sh)");
        return;
    }
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    cp.create_namespace(NS).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), NS, 76, root.path()));
    let _kubelet = Kubelet::start(client.clone(), NS, pods.clone()).await;
    let mut operator = OperatorProcess::start(&cp, NS, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), NS);
    let topics: Api<Topic> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);

    // The Secret named does not exist yet: reported, and no broker starts without it.
    clusters
        .create(&PostParams::default(), &cluster())
        .await
        .unwrap();
    let waiting = wait_for(&clusters, "the missing CA Secret reported", |c| {
        ca_condition(c)
            .is_some_and(|(s, reason, _)| s == "False" && reason == "ClusterCaSecretMissing")
    })
    .await;
    let (_, _, message) = ca_condition(&waiting).unwrap();
    assert!(message.contains(CA_SECRET), "{message}");
    assert!(statefulsets.get_opt(CLUSTER).await.unwrap().is_none());

    // The user's CA (cert-manager's shape) appears: the brokers start with its certificates.
    let old_ca = new_ca("users old CA", unix_now(), 30 * 86_400).unwrap();
    secrets
        .create(&PostParams::default(), &ca_secret(&old_ca))
        .await
        .unwrap();
    let ready = wait_for(&clusters, "the cluster Ready with the user's CA", is_ready).await;
    let status = ready.status.unwrap();
    let certs = status.certificates.expect("certificates in the status");
    assert!(certs.cluster_ca.user_provided);
    assert_eq!(certs.cluster_ca.phase, "Current");
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == types::CERTIFICATE_AUTHORITIES_VALID && c.status == "True"),
        "{:?}",
        status.conditions
    );
    assert_eq!(
        der_of(&secret_text(&secrets, "owned-cluster-ca-cert", "ca.crt").await),
        der_of(&old_ca.cert_pem),
        "the published bundle is the user's CA"
    );
    // Served certificates verify against the user's CA alone.
    let before = served(&pods, &old_ca.cert_pem).await;

    let dir = tempfile::tempdir().unwrap();
    let old_only = dir.path().join("old.crt");
    std::fs::write(&old_only, &old_ca.cert_pem).unwrap();
    topics
        .create(
            &PostParams::default(),
            &Topic::new(
                "payments",
                TopicSpec {
                    cluster_ref: CLUSTER.into(),
                    topic_name: None,
                    partitions: 3,
                    replication_factor: 3,
                    config: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
                },
            ),
        )
        .await
        .unwrap();
    eventually(SLOW, "the topic Ready", || {
        let topics = topics.clone();
        async move {
            let t = topics.get("payments").await.ok()?;
            t.status?
                .conditions
                .iter()
                .any(|c| c.type_ == types::READY && c.status == "True")
                .then_some(())
        }
    })
    .await;

    // The new CA, distributed to clients ahead of the switch: the producer trusts both.
    let new_ca = new_ca("users new CA", unix_now(), 60 * 86_400).unwrap();
    let both = dir.path().join("both.crt");
    std::fs::write(&both, format!("{}{}", old_ca.cert_pem, new_ca.cert_pem)).unwrap();
    let mut producer = weir_tests::kcat::spawn(
        &bootstrap(&pods),
        &ssl(&both),
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
    let stop = Arc::new(AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut stdin = stdin;
            let mut written = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let line = format!("ca-{:06}", written.len());
                writeln!(stdin, "{line}").unwrap();
                stdin.flush().unwrap();
                written.push(line);
                // The pace of a steady producer, not a synchronisation.
                std::thread::sleep(Duration::from_millis(20));
            }
            written
        })
    };
    weir_tests::kcat::wait_for_a_record_in_each(
        &bootstrap(&pods),
        &ssl(&old_only),
        "payments",
        &[0, 1, 2],
        SLOW,
    )
    .await;

    // cert-manager renews the CA: the Secret's content is replaced.
    secrets
        .replace(CA_SECRET, &PostParams::default(), &{
            let mut s = ca_secret(&new_ca);
            s.metadata.resource_version = secrets
                .get(CA_SECRET)
                .await
                .unwrap()
                .metadata
                .resource_version;
            s
        })
        .await
        .unwrap();
    let new_not_after = weir_operator::tls::pki::inspect(&new_ca.cert_pem, "new")
        .unwrap()
        .not_after;
    let phases = Arc::new(Mutex::new(Vec::<String>::new()));
    let bundle_held_both = Arc::new(AtomicBool::new(false));
    eventually(
        SLOW,
        "the new CA trusted, signing, and the old one dropped",
        || {
            let (clusters, secrets) = (clusters.clone(), secrets.clone());
            let (phases, bundle_held_both) = (phases.clone(), bundle_held_both.clone());
            let (old_der, new_der) = (der_of(&old_ca.cert_pem), der_of(&new_ca.cert_pem));
            async move {
                let c = clusters.get(CLUSTER).await.ok()?;
                let bundle = secrets.get("owned-cluster-ca-cert").await.ok()?;
                let text = String::from_utf8(bundle.data?.get("ca.crt")?.0.clone()).ok()?;
                let ders = pem_ders(&text);
                if ders.contains(&old_der) && ders.contains(&new_der) {
                    bundle_held_both.store(true, Ordering::Relaxed);
                }
                let ca = c.status?.certificates?.cluster_ca;
                let mut seen = phases.lock().unwrap();
                if seen.last() != Some(&ca.phase) {
                    seen.push(ca.phase.clone());
                }
                let done = ca.phase == "Current"
                    && ca.not_after == rfc3339(new_not_after)
                    && ders == vec![new_der];
                done.then_some(())
            }
        },
    )
    .await;
    let phases = phases.lock().unwrap().clone();
    assert!(
        phases.contains(&"TrustingNewCa".to_string())
            && phases.contains(&"ReissuingCertificates".to_string()),
        "phases seen: {phases:?}"
    );
    assert!(
        bundle_held_both.load(Ordering::Relaxed),
        "the bundle held both CAs while certificates were reissued"
    );

    // Every broker serves a certificate of the new CA on a fresh handshake.
    let new_pem = new_ca.cert_pem.clone();
    let after = eventually(
        SLOW,
        "every broker serving a certificate of the new CA",
        || {
            let (pods, new_pem) = (pods.clone(), new_pem.clone());
            async move {
                let mut out = Vec::new();
                for ordinal in 0..3 {
                    let ip = pods.pod_ip(ordinal);
                    let addr: std::net::SocketAddr = format!("{ip}:9094").parse().unwrap();
                    let ca = new_pem.clone();
                    let got = tokio::task::spawn_blocking(move || {
                        std::panic::catch_unwind(|| served_certificate(addr, &ca, &ip)).ok()
                    })
                    .await
                    .ok()??;
                    out.push(got);
                }
                Some(out)
            }
        },
    )
    .await;
    for (ordinal, (was, is)) in before.iter().zip(&after).enumerate() {
        assert_ne!(was, is, "broker {ordinal} reissued");
        let crt = secret_text(
            &secrets,
            "owned-broker-certs",
            &format!("owned-{ordinal}.crt"),
        )
        .await;
        assert_eq!(
            &der_of(&crt),
            is,
            "broker {ordinal} serves its stored certificate"
        );
    }

    // Nothing the producer wrote was lost; a client trusting only the new CA reads it all.
    stop.store(true, Ordering::Relaxed);
    let written = writing.join().unwrap();
    let produced = producer.wait_with_output().unwrap();
    let errors = String::from_utf8_lossy(&produced.stderr).to_string();
    assert!(
        !errors.contains("Delivery failed"),
        "kcat -P across the CA change: {errors}"
    );
    assert!(written.len() > 10, "only {} records written", written.len());
    let new_only = dir.path().join("new.crt");
    std::fs::write(&new_only, &new_ca.cert_pem).unwrap();
    let count = written.len().to_string();
    let consumed = weir_tests::kcat::run(
        &bootstrap(&pods),
        &ssl(&new_only),
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
    println!(
        "user CA replaced under a producer: phases {phases:?}; {} records written, all read back",
        written.len()
    );

    // A Secret holding a certificate that is not a CA: reported; the brokers keep theirs.
    let leaf = issue(
        &new_ca,
        new_not_after,
        "not-a-ca",
        &LeafKind::Client,
        unix_now(),
        86_400,
    )
    .unwrap();
    let patch = serde_json::json!({"data": {
        "tls.crt": ByteString(leaf.cert_pem.into()),
        "tls.key": ByteString(leaf.key_pem.into()),
    }});
    secrets
        .patch(CA_SECRET, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let invalid = wait_for(&clusters, "the unusable CA Secret reported", |c| {
        ca_condition(c)
            .is_some_and(|(s, reason, _)| s == "False" && reason == "ClusterCaSecretInvalid")
    })
    .await;
    let (_, _, message) = ca_condition(&invalid).unwrap();
    assert!(message.contains("not a CA"), "{message}");
    assert_eq!(served(&pods, &new_ca.cert_pem).await, after);
    let listed = weir_tests::kcat::run(&bootstrap(&pods), &ssl(&new_only), &["-L", "-m", "10"], "");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(operator.is_running(), "{}", operator.log());
}

/// The DER of every certificate in `pem`.
fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// As the status writes times.
fn rfc3339(unix: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
