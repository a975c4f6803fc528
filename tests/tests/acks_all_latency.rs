//! `acks=all` on a replicated partition is answered as soon as the followers have the records,
//! never after a follower's long poll ran out: a follower fetch waiting at the leader's log end
//! must wake for every append. With `replica.fetch.wait.max.ms` far above a replication round
//! trip, any missed wake-up shows as an acknowledgement that took about that long.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_tests::cluster::Cluster;
use weir_tests::{clients, unique_topic};

/// Far longer than a replication round trip on loopback, even for debug builds on a loaded
/// machine: the test tells a missed wake-up (a round of about this long) from a slow one, it
/// measures no performance.
const FOLLOWER_MAX_WAIT_MS: u64 = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_never_waits_for_a_followers_long_poll() {
    let max_wait = FOLLOWER_MAX_WAIT_MS.to_string();
    let cluster = Cluster::start(3, &[("replica.fetch.wait.max.ms", max_wait.as_str())]);
    let topic = unique_topic("acks-all-latency");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3");
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    cluster.wait_partition(&topic, 0, Duration::from_secs(30), "the full ISR", |v| {
        v.leader >= 0 && v.isr.len() == 3
    });
    let mut config = cluster.client_config();
    config
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "120000");
    let producer: FutureProducer = config.create().expect("producer");

    // One record at a time, and bursts of several in flight: each must be acknowledged long
    // before a follower's long poll would have ended by itself.
    let mut slowest = Duration::ZERO;
    for round in 0..20 {
        let in_flight = if round % 2 == 0 { 1 } else { 8 };
        let started = Instant::now();
        let sends: Vec<_> = (0..in_flight)
            .map(|i| {
                producer
                    .send_result(
                        FutureRecord::<(), String>::to(&topic)
                            .partition(0)
                            .payload(&format!("r{round}-{i}")),
                    )
                    .map_err(|(e, _)| e)
                    .expect("enqueueing")
            })
            .collect();
        for send in sends {
            send.await
                .expect("delivery report")
                .map_err(|(e, _)| e)
                .expect("acknowledged");
        }
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(FOLLOWER_MAX_WAIT_MS * 2 / 3),
        "an acks=all round took {slowest:?}: a follower slept through an append until its \
         {FOLLOWER_MAX_WAIT_MS} ms long poll ended"
    );
}
