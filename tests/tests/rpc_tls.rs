//! TLS on the internal gRPC port (`rpc.security.protocol=SSL`) with real broker processes:
//! three brokers form their metadata quorum, register and replicate with every internal call
//! over TLS with client certificates; the admin API answers a client holding a certificate
//! of the cluster's CA and refuses plaintext, a client without a certificate and one from
//! another CA (counted as failed authentications); and when the active controller is
//! SIGKILLed the others elect a new one over TLS and keep committing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tonic::transport::Endpoint;
use weir_api::proto::admin as pb;
use weir_api::proto::admin::admin_client::AdminClient;
use weir_tests::admin::eventually;
use weir_tests::cluster::Cluster;
use weir_tests::http::{get, parse_prometheus};
use weir_tests::tls::{tls_admin, ClientIdentity, Pki};

const TIMEOUT: Duration = Duration::from_secs(60);

fn rpc(cluster: &Cluster, id: usize) -> SocketAddr {
    cluster.brokers[id]
        .rpc_addr()
        .expect("a fixed internal port")
}

/// The broker's `kafka_server_socket_server_metrics_failed_authentication_total{listener="rpc"}`.
fn rpc_auth_failures(cluster: &Cluster, id: usize) -> f64 {
    let body = get(cluster.brokers[id].metrics_addr(), "/metrics").body;
    parse_prometheus(&body)
        .iter()
        .filter(|s| s.name == "kafka_server_socket_server_metrics_failed_authentication_total")
        .filter(|s| s.label("listener") == Some("rpc"))
        .map(|s| s.value)
        .sum()
}

/// Creates `name` (3 partitions, replication factor `rf`) through broker `via`'s admin API
/// over TLS, retrying while a controller election is under way; "already exists" after a
/// retry means an earlier try committed.
async fn create_topic(cluster: &Cluster, via: usize, admin: &ClientIdentity, name: &str, rf: i32) {
    let deadline = Instant::now() + TIMEOUT;
    let mut errors = Vec::new();
    loop {
        let request = pb::CreateTopicRequest {
            name: name.into(),
            partitions: Some(3),
            replication_factor: Some(rf),
            ..Default::default()
        };
        match tls_admin(rpc(cluster, via), admin)
            .create_topic(request)
            .await
        {
            Ok(_) => return,
            Err(e) if !errors.is_empty() && e.message().contains("already exists") => return,
            Err(e) => errors.push(e.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "CreateTopic {name} through broker {via} over TLS: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Produces `count` records with acks=all and reads them back from the beginning: the values,
/// in order, per partition.
async fn round_trip(cluster: &Cluster, topic: &str, count: usize) {
    let producer: FutureProducer = cluster
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); 3];
    for i in 0..count {
        let partition = (i % 3) as i32;
        let value = format!("{topic}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("acks=all produce to {topic}: {e}"));
        sent[partition as usize].push(value);
    }
    let consumer: BaseConsumer = cluster
        .client_config()
        .set("group.id", format!("{topic}-reader"))
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..3 {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut read: Vec<Vec<String>> = vec![Vec::new(); 3];
    let deadline = Instant::now() + TIMEOUT;
    while read.iter().map(Vec::len).sum::<usize>() < count {
        assert!(Instant::now() < deadline, "read {read:?} of {sent:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            read[message.partition() as usize].push(value);
        }
    }
    assert_eq!(read, sent, "records of {topic} read back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_port_speaks_tls_only_to_holders_of_the_clusters_certificates() {
    let pki = Pki::new();
    pki.issue("server", "weir-broker", 1);
    pki.issue("operator", "weir-operator", 2);
    let ca = std::fs::read_to_string(pki.ca()).unwrap();
    let admin = ClientIdentity {
        pem: Some(std::fs::read_to_string(pki.path("operator.pem")).unwrap()),
        ca: ca.clone(),
    };
    let server = pki.server();
    let ca_path = pki.ca();
    let mut cluster = Cluster::start(
        3,
        &[
            ("rpc.security.protocol", "SSL"),
            ("ssl.keystore.location", &server),
            ("ssl.truststore.location", &ca_path),
        ],
    );

    // The brokers registered through the quorum (they are ready): every internal call went
    // over TLS. The admin API answers a holder of the cluster CA's certificate.
    let status = tls_admin(rpc(&cluster, 0), &admin)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .expect("DescribeCluster over TLS with a client certificate")
        .into_inner();
    assert_eq!(status.brokers.len(), 3, "{status:?}");
    let controller = status.controller.expect("a controller status");
    assert_eq!(controller.voters.len(), 3, "{controller:?}");
    create_topic(&cluster, 1, &admin, "over-tls", 3).await;
    round_trip(&cluster, "over-tls", 30).await;

    // Refused: plaintext, no client certificate, a certificate from another CA.
    let before = rpc_auth_failures(&cluster, 2);
    let plaintext = Endpoint::from_shared(format!("http://{}", rpc(&cluster, 2)))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_lazy();
    let refused = AdminClient::new(plaintext)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await;
    assert!(refused.is_err(), "a plaintext call answered: {refused:?}");
    let anonymous = ClientIdentity {
        pem: None,
        ca: ca.clone(),
    };
    let refused = tls_admin(rpc(&cluster, 2), &anonymous)
        .describe_cluster(pb::DescribeClusterRequest {})
        .await;
    assert!(
        refused.is_err(),
        "a call without a client certificate answered: {refused:?}"
    );
    let rogue_pki = Pki::new();
    rogue_pki.issue("rogue", "weir-broker", 1);
    let rogue = ClientIdentity {
        pem: Some(std::fs::read_to_string(rogue_pki.path("rogue.pem")).unwrap()),
        ca: ca.clone(),
    };
    let refused = tls_admin(rpc(&cluster, 2), &rogue)
        .create_topic(pb::CreateTopicRequest {
            name: "from-a-rogue".into(),
            partitions: Some(1),
            replication_factor: Some(1),
            ..Default::default()
        })
        .await;
    assert!(
        refused.is_err(),
        "a certificate of another CA was accepted: {refused:?}"
    );
    eventually(TIMEOUT, "three refused handshakes counted", || async {
        (rpc_auth_failures(&cluster, 2) >= before + 3.0).then_some(())
    })
    .await;

    // The active controller dies: the others elect a new one over TLS and keep committing.
    let old_leader = controller.leader_id.expect("an elected controller") as usize;
    cluster.kill9(old_leader);
    let survivor = (old_leader + 1) % 3;
    eventually(TIMEOUT, "a new controller elected over TLS", || async {
        let status = tls_admin(rpc(&cluster, survivor), &admin)
            .describe_cluster(pb::DescribeClusterRequest {})
            .await
            .ok()?
            .into_inner();
        let leader = status.controller?.leader_id?;
        (leader as usize != old_leader).then_some(())
    })
    .await;
    create_topic(&cluster, survivor, &admin, "after-failover", 2).await;
    let created = tls_admin(rpc(&cluster, survivor), &admin)
        .describe_topic(pb::DescribeTopicRequest {
            name: "after-failover".into(),
        })
        .await;
    assert!(created.is_ok(), "{created:?}");
    assert!(
        tls_admin(rpc(&cluster, survivor), &admin)
            .describe_topic(pb::DescribeTopicRequest {
                name: "from-a-rogue".into(),
            })
            .await
            .is_err(),
        "the rogue client's topic exists"
    );
}
