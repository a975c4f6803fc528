//! A paused active controller (SIGSTOP: its connections stay open, nothing answers) must cost
//! the cluster that one broker, not all of them. Brokers heartbeat to the active controller;
//! a heartbeat sent to the paused one must be given up on, so that the next one reaches the
//! controller the quorum elects in its place. Otherwise every broker falls silent to the new
//! controller, which fences them all (itself included) and no partition has a leader until the
//! paused process is continued (found by `weir-bench failover`'s leader pause).

use std::time::Duration;

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_tests::cluster::Cluster;
use weir_tests::{clients, unique_topic};

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_controller_costs_only_itself() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("controller-pause");
    // Three partitions: placement gives each broker one to lead.
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..3 {
        cluster.wait_partition(&topic, p, TIMEOUT, "a full ISR", |v| {
            v.leader >= 0 && v.isr.len() == 3
        });
    }
    let paused = cluster.controller(&topic).expect("an active controller") as usize;
    let live: Vec<usize> = (0..3).filter(|&n| n != paused).collect();
    cluster.brokers[paused].pause();
    cluster.down[paused] = true;

    // The paused broker is fenced (a session timeout after a new controller took over) and
    // its partitions move; the live brokers stay unfenced and lead every partition.
    for p in 0..3 {
        cluster.wait_partition(&topic, p, TIMEOUT, "a leader on a live broker", |v| {
            v.leader >= 0 && v.leader as usize != paused
        });
    }
    let producer: FutureProducer = cluster
        .client_config_for(&live)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    for p in 0..3 {
        producer
            .send(
                FutureRecord::<(), str>::to(&topic)
                    .partition(p)
                    .payload("after the pause"),
                Duration::from_secs(20),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("partition {p}: acks=all write refused: {e}"));
    }
    let brokers: Vec<i32> = cluster
        .metadata(&topic)
        .expect("metadata from a live broker")
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect();
    for node in &live {
        assert!(
            brokers.contains(&(*node as i32)),
            "live broker {node} was fenced while {paused} was paused: metadata lists {brokers:?}"
        );
    }
    cluster.brokers[paused].resume();
    cluster.down[paused] = false;
}
