//! The operator's `User` resource against a real control plane and a real broker (the kubelet
//! stand-in runs the StatefulSet's pod as a `weir-broker` process), with kcat as the client.
//!
//! - `a_scram_user_gets_its_secret_and_acls_and_loses_them_when_deleted`: a one-broker cluster
//!   with the StandardAuthorizer and a TLS + SCRAM-SHA-512 listener; a `User` with ACLs gets a
//!   Secret whose password lets kcat (SASL_SSL, trusting only the published CA) produce to
//!   and read back from the allowed topic, while another topic is refused with TOPIC_AUTHORIZATION_FAILED; the
//!   brokers hold the user's ACLs and quota; deleting the `User` removes its Secret, its ACLs
//!   and quota, and the next connection with the old password fails authentication.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use weir_api::proto::admin as pb;
use weir_operator::crd::condition::types;
use weir_operator::crd::user::{
    AclOperation, AclPatternType, AclPermission, AclResource, AclResourceType, AclRule,
    UserAuthentication, UserAuthenticationType, UserAuthorization, UserQuotas,
};
use weir_operator::crd::{
    AuthenticationType, ClientListener, Cluster, ClusterSpec, StorageSpec, Topic, TopicSpec, User,
    UserSpec,
};
use weir_tests::admin::eventually;
use weir_tests::kube::ControlPlane;
use weir_tests::kubelet::Kubelet;
use weir_tests::operator::{install_crds, OperatorProcess};
use weir_tests::tls::{tls_admin, ClientIdentity};
use weir_tests::weir_pods::WeirPods;

const SLOW: Duration = Duration::from_secs(240);

fn secure_cluster(name: &str) -> Cluster {
    Cluster::new(
        name,
        ClusterSpec {
            replicas: 1,
            image: Some("weir:test".into()),
            image_pull_policy: None,
            storage: StorageSpec {
                size: "1Gi".into(),
                storage_class_name: Some("standard".into()),
            },
            resources: None,
            rack: None,
            config: BTreeMap::from([(
                "authorizer.class.name".to_string(),
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
            )]),
            listeners: weir_operator::crd::ListenersSpec {
                clients: vec![ClientListener::new(
                    "scram",
                    9094,
                    true,
                    Some(AuthenticationType::ScramSha512),
                )],
                ..Default::default()
            },
            rebalance: Default::default(),
            certificates: None,
        },
    )
}

fn topic(name: &str, cluster: &str) -> Topic {
    Topic::new(
        name,
        TopicSpec {
            cluster_ref: cluster.into(),
            topic_name: None,
            partitions: 1,
            replication_factor: 1,
            config: BTreeMap::new(),
        },
    )
}

fn alice(cluster: &str) -> User {
    User::new(
        "alice",
        UserSpec {
            cluster_ref: cluster.into(),
            authentication: UserAuthentication {
                type_: UserAuthenticationType::ScramSha512,
                password: None,
            },
            authorization: Some(UserAuthorization {
                acls: vec![AclRule {
                    resource: AclResource {
                        type_: AclResourceType::Topic,
                        name: Some("allowed".into()),
                        pattern_type: AclPatternType::Literal,
                    },
                    operations: vec![
                        AclOperation::Write,
                        AclOperation::Read,
                        AclOperation::Describe,
                    ],
                    host: "*".into(),
                    permission: AclPermission::Allow,
                }],
            }),
            quotas: Some(UserQuotas {
                producer_byte_rate: Some(1_048_576),
                consumer_byte_rate: None,
                request_percentage: Some(200),
                controller_mutation_rate: Some(10.0),
            }),
        },
    )
}

fn ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == types::READY && c.status == "True")
}

async fn wait_until<K, F>(api: &Api<K>, name: &str, what: &str, check: F) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(&K) -> bool,
{
    let check = &check;
    eventually(SLOW, what, || {
        let api = api.clone();
        let name = name.to_string();
        async move { api.get(&name).await.ok().filter(|o| check(o)) }
    })
    .await
}

async fn secret_text(secrets: &Api<Secret>, name: &str, key: &str) -> String {
    let secret = secrets.get(name).await.unwrap();
    let bytes = &secret.data.unwrap_or_default()[key];
    String::from_utf8(bytes.0.clone()).unwrap()
}

/// kcat settings for the `scram` listener as `alice` with `password`, trusting only `ca`.
fn scram_security(ca: &std::path::Path, password: &str) -> Vec<String> {
    vec![
        "security.protocol=SASL_SSL".to_string(),
        "sasl.mechanisms=SCRAM-SHA-512".to_string(),
        "sasl.username=alice".to_string(),
        format!("sasl.password={password}"),
        format!("ssl.ca.location={}", ca.display()),
        "ssl.endpoint.identification.algorithm=https".to_string(),
        "broker.address.family=v4".to_string(),
    ]
}

/// kcat -P of one record to `topic`: its output.
fn produce(bootstrap: &str, security: &[String], topic: &str) -> std::process::Output {
    weir_tests::kcat::run(
        bootstrap,
        security,
        &[
            "-P",
            "-t",
            topic,
            "-X",
            "enable.idempotence=false",
            "-X",
            "message.timeout.ms=20000",
        ],
        "hello\n",
    )
}

/// A client of the cluster's internal port: it runs TLS (the cluster was created with TLS
/// listeners), so the test presents broker 0's certificate, which the cluster CA signed for
/// client and server use, and trusts the cluster CA's bundle.
async fn internal_identity(secrets: &Api<Secret>) -> ClientIdentity {
    ClientIdentity {
        pem: Some(secret_text(secrets, "authz-broker-certs", "authz-0.pem").await),
        ca: secret_text(secrets, "authz-cluster-ca-cert", "ca.crt").await,
    }
}

/// The user as the brokers have it, through the admin API of broker 0.
async fn described(pods: &WeirPods, identity: &ClientIdentity) -> Option<pb::DescribeUserResponse> {
    let mut admin = tls_admin(format!("{}:9093", pods.pod_ip(0)), identity);
    admin
        .describe_user(pb::DescribeUserRequest {
            user: "alice".into(),
        })
        .await
        .ok()
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scram_user_gets_its_secret_and_acls_and_loses_them_when_deleted() {
    if !weir_tests::kcat::available() {
        eprintln!("skipping: kcat not installed (scripts/install-test-deps.sh)");
        return;
    }
    let cp = ControlPlane::start().await;
    let client = cp.client();
    install_crds(&client).await;
    let ns = "users";
    cp.create_namespace(ns).await;
    let root = tempfile::tempdir().unwrap();
    let pods = Arc::new(WeirPods::new(client.clone(), ns, 75, root.path()));
    let _kubelet = Kubelet::start(client.clone(), ns, pods.clone()).await;
    let operator = OperatorProcess::start(&cp, ns, Some(&pods.host_template())).await;
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), ns);
    let topics: Api<Topic> = Api::namespaced(client.clone(), ns);
    let users: Api<User> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let post = PostParams::default();

    clusters
        .create(&post, &secure_cluster("authz"))
        .await
        .unwrap();
    for name in ["allowed", "other"] {
        topics.create(&post, &topic(name, "authz")).await.unwrap();
    }
    users.create(&post, &alice("authz")).await.unwrap();
    let user = wait_until(&users, "alice", "the User Ready", |u| {
        u.status.as_ref().is_some_and(|s| ready(&s.conditions))
    })
    .await;
    let status = user.status.unwrap();
    assert_eq!(status.username.as_deref(), Some("alice"));
    assert_eq!(status.secret.as_deref(), Some("alice"));
    for name in ["allowed", "other"] {
        wait_until(&topics, name, "the topic Ready", |t| {
            t.status.as_ref().is_some_and(|s| ready(&s.conditions))
        })
        .await;
    }

    // The Secret hands out the password, for librdkafka and for the Java client.
    let password = secret_text(&secrets, "alice", "password").await;
    assert!(
        password.len() >= 32,
        "a generated password: {} chars",
        password.len()
    );
    let jaas = secret_text(&secrets, "alice", "sasl.jaas.config").await;
    assert!(
        jaas.contains("ScramLoginModule required")
            && jaas.contains("username=\"alice\"")
            && jaas.contains(&format!("password=\"{password}\"")),
        "sasl.jaas.config: {jaas}"
    );
    let owner = secrets
        .get("alice")
        .await
        .unwrap()
        .metadata
        .owner_references;
    assert_eq!(owner.unwrap()[0].kind, "User", "the User owns its Secret");

    // The internal port runs TLS: the operator reached it with a certificate of its own (the
    // User above is Ready), a plaintext call is refused.
    let cluster = clusters.get("authz").await.unwrap();
    assert_eq!(
        cluster.status.and_then(|s| s.internal_tls),
        Some(true),
        "a cluster created with TLS listeners runs TLS on its internal port"
    );
    let plaintext =
        tonic::transport::Endpoint::from_shared(format!("http://{}:9093", pods.pod_ip(0)))
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect_lazy();
    let refused = pb::admin_client::AdminClient::new(plaintext)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await;
    assert!(refused.is_err(), "a plaintext admin call answered");
    let identity = internal_identity(&secrets).await;

    // The brokers hold the credential, the ACLs and the quota.
    let on_brokers = described(&pods, &identity).await.expect("DescribeUser");
    assert_eq!(on_brokers.scram_credentials.len(), 1);
    assert_eq!(on_brokers.scram_credentials[0].mechanism, "SCRAM-SHA-512");
    let mut operations: Vec<String> = on_brokers
        .acls
        .iter()
        .map(|b| {
            format!(
                "{} {} {} {}",
                b.resource_type, b.resource_name, b.operation, b.permission
            )
        })
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "TOPIC allowed DESCRIBE ALLOW",
            "TOPIC allowed READ ALLOW",
            "TOPIC allowed WRITE ALLOW"
        ]
    );
    assert_eq!(
        on_brokers.quotas.get("producer_byte_rate"),
        Some(&1_048_576.0)
    );
    assert_eq!(on_brokers.quotas.get("request_percentage"), Some(&200.0));
    assert_eq!(
        on_brokers.quotas.get("controller_mutation_rate"),
        Some(&10.0)
    );

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(
        &ca,
        secret_text(&secrets, "authz-cluster-ca-cert", "ca.crt").await,
    )
    .unwrap();
    let bootstrap = format!("{}:9094", pods.pod_ip(0));
    let security = scram_security(&ca, &password);

    // Allowed: the record is acknowledged and there to read.
    let written = produce(&bootstrap, &security, "allowed");
    assert!(
        written.status.success(),
        "producing to the allowed topic: {}",
        String::from_utf8_lossy(&written.stderr)
    );
    let read = weir_tests::kcat::run(
        &bootstrap,
        &security,
        &[
            "-C",
            "-t",
            "allowed",
            "-o",
            "beginning",
            "-e",
            "-c",
            "1",
            "-q",
        ],
        "",
    );
    assert_eq!(String::from_utf8_lossy(&read.stdout).trim(), "hello");

    // Another topic: refused with TOPIC_AUTHORIZATION_FAILED.
    let refused = produce(&bootstrap, &security, "other");
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        stderr.contains("topic authorization failed"),
        "producing to a topic alice has no ACL for: {stderr}"
    );

    // Deleting the User removes its Secret, its ACLs, its quota and its credential.
    users
        .delete("alice", &DeleteParams::default())
        .await
        .unwrap();
    eventually(SLOW, "the User and its Secret gone", || {
        let (users, secrets) = (users.clone(), secrets.clone());
        async move {
            let user_gone = users.get_opt("alice").await.ok()?.is_none();
            let secret_gone = secrets.get_opt("alice").await.ok()?.is_none();
            (user_gone && secret_gone).then_some(())
        }
    })
    .await;
    let after = described(&pods, &identity).await.expect("DescribeUser");
    assert!(
        after.scram_credentials.is_empty() && after.acls.is_empty() && after.quotas.is_empty(),
        "left on the brokers: {after:?}"
    );
    let refused = weir_tests::kcat::run(&bootstrap, &security, &["-L", "-m", "10"], "");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.to_lowercase().contains("authentication"),
        "a deleted user's password still works: {stderr}"
    );
    let log = operator.log();
    assert!(!log.contains(&password), "the operator logged the password");
}
