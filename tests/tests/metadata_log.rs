//! The metadata log stays quiet while nothing changes: a broker that keeps fetching as a
//! follower while the controller considers it ineligible (fenced, or in controlled shutdown)
//! must not make its leaders propose, over and over, an ISR expansion the controller refuses.
//! Every refusal is a Raft entry and a new image, and every new image woke every follower fetch,
//! which proposed again: the metadata log grew by hundreds of entries a second, without end
//! while the condition lasted (a broker whose heartbeats do not reach the controller, a broker
//! whose shutdown hangs), and with it the brokers' memory and CPU.
//!
//! Measured on real processes through `weir_controller_raft_applied_index`, the index of the
//! last metadata log entry a broker applied.

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::http::{get, parse_prometheus};
use weir_tests::{clients, unique_topic, wait_until};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Metadata log entries the test tolerates while nothing is decided: a fencing or two, an
/// election of preferred leaders. The loop this guards against made hundreds.
const QUIET_BOUND: u64 = 10;

fn metric(addr: SocketAddr, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    parse_prometheus(&get(addr, "/metrics").body)
        .into_iter()
        .find(|s| s.name == name && label.is_none_or(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

fn applied_index(cluster: &Cluster, node: usize) -> u64 {
    metric(
        cluster.brokers[node].metrics_addr(),
        "weir_controller_raft_applied_index",
        None,
    )
    .expect("the applied index metric") as u64
}

/// A topic whose 4 partitions have replicas on nodes 0, 1 and `follower`, placed by hand so
/// that a fenced broker can hold replicas too; leaders on 0 and 1.
async fn create_topic_on(cluster: &Cluster, topic: &str, follower: i32) {
    let admin: AdminClient<DefaultClientContext> = cluster
        .client_config_for(&[0, 1])
        .create()
        .expect("admin client");
    let f = follower;
    let assignment: [&[i32]; 4] = [&[0, 1, f], &[1, 0, f], &[0, f, 1], &[1, f, 0]];
    let new = NewTopic::new(topic, 4, TopicReplication::Variable(&assignment));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..4 {
        cluster.wait_partition(topic, p, TIMEOUT, "a leader", |v| v.leader >= 0);
    }
}

/// Produces `rounds` rounds of one record per partition, waiting for each round's
/// acknowledgements (each append wakes the follower fetches, as under load).
async fn produce_rounds(producer: &FutureProducer, topic: &str, rounds: usize) {
    for round in 0..rounds {
        for p in 0..4 {
            let values = vec![format!("r{round}-p{p}")];
            let acked = send_all(producer, topic, p, &values).await;
            assert_eq!(acked, values, "round {round}, partition {p}");
        }
    }
}

/// Waits until the replicas on `follower` caught up with their leaders on nodes 0 and 1.
fn wait_caught_up(cluster: &Cluster, topic: &str, follower: usize) {
    let replica = follower.to_string();
    wait_until(TIMEOUT, "the follower caught up", || {
        let lags: Vec<f64> = [0, 1]
            .iter()
            .flat_map(|n| {
                parse_prometheus(&get(cluster.brokers[*n].metrics_addr(), "/metrics").body)
                    .into_iter()
                    .filter(|s| {
                        s.name == "weir_follower_lag_offsets"
                            && s.label("topic") == Some(topic)
                            && s.label("replica") == Some(replica.as_str())
                    })
                    .map(|s| s.value)
                    .collect::<Vec<_>>()
            })
            .collect();
        (lags.len() == 4 && lags.iter().all(|l| *l == 0.0)).then_some(())
    });
}

fn acks_one_producer(cluster: &Cluster) -> FutureProducer {
    let mut config = cluster.client_config_for(&[0, 1]);
    config.set("acks", "1").set("linger.ms", "0");
    config.create().expect("producer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_fetching_while_fenced_adds_nothing_to_the_metadata_log() {
    // Node 3 (not a voter, so never the active controller) heartbeats once a minute while
    // sessions last 2 s: the controller fences it soon after it joined, and it goes on fetching
    // as a follower, as a broker cut off from the controller but not from its leaders would.
    let cluster = Cluster::start_adjusted(4, 3, &[], |id, options| {
        if id == 3 {
            options.set("broker.heartbeat.interval.ms", "60000")
        } else {
            options
        }
    });
    // First every broker active (node 3 unfenced at its start, as node 0 sees it), then
    // fenced once its session ran out.
    let brokers_in = |state: &str| {
        metric(
            cluster.brokers[0].metrics_addr(),
            "weir_brokers",
            Some(("state", state)),
        )
    };
    wait_until(TIMEOUT, "every broker active", || {
        (brokers_in("active") == Some(4.0)).then_some(())
    });
    wait_until(TIMEOUT, "node 3 fenced", || {
        (brokers_in("fenced") == Some(1.0)).then_some(())
    });
    let topic = unique_topic("fenced-follower");
    create_topic_on(&cluster, &topic, 3).await;
    let producer = acks_one_producer(&cluster);

    let before = applied_index(&cluster, 0);
    produce_rounds(&producer, &topic, 100).await;
    wait_caught_up(&cluster, &topic, 3);
    let after = applied_index(&cluster, 0);
    eprintln!(
        "metadata log entries while the fenced follower fetched: {}",
        after - before
    );
    assert!(
        after - before <= QUIET_BOUND,
        "the metadata log grew by {} entries while a fenced follower fetched 400 records",
        after - before
    );
    // And it is not in any ISR: the controller never let it in.
    for p in 0..4 {
        let view = cluster.partition(&topic, p).expect("partition metadata");
        assert!(!view.isr.contains(&3), "partition {p}: {view:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_shutdown_adds_only_its_own_entries() {
    // Node 3 (not a voter) leads some of 60 partitions and follows others. SIGTERM moves its
    // leaderships away and takes it out of every ISR; it goes on fetching until it stops, and
    // the new leaders must not try to add it back.
    let mut cluster = Cluster::start_with_voters(4, 3, &[]);
    let topic = unique_topic("shutting-down");
    let admin: AdminClient<DefaultClientContext> = cluster
        .client_config_for(&[0, 1])
        .create()
        .expect("admin client");
    let new = NewTopic::new(&topic, 60, TopicReplication::Fixed(3));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    let mut led_by_3 = 0;
    for p in 0..60 {
        let view = cluster.wait_partition(&topic, p, TIMEOUT, "the full ISR", |v| {
            v.leader >= 0 && v.isr.len() == 3
        });
        led_by_3 += usize::from(view.leader == 3);
    }
    assert!(
        led_by_3 > 0,
        "node 3 leads nothing: the test would prove nothing"
    );

    let before = applied_index(&cluster, 0);
    cluster.brokers[3].stop();
    cluster.down[3] = true;
    let after = applied_index(&cluster, 0);
    eprintln!(
        "metadata log entries during the controlled shutdown: {}",
        after - before
    );
    assert!(
        after - before <= QUIET_BOUND,
        "the metadata log grew by {} entries during one controlled shutdown ({led_by_3} \
         leaderships moved)",
        after - before
    );
}
