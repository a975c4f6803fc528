//! Replication across real broker processes on loopback, with real failures: SIGKILL of
//! leaders and of the active controller, SIGSTOP of followers, brokers down, and a replica
//! that diverged. Every acknowledged record must survive exactly once and in order, and
//! every replica must end up holding the same log.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::raw::{record_batch, RawClient};
use weir_tests::segments::log_bytes;
use weir_tests::{clients, unique_topic, wait_until};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);

async fn create_topic(cluster: &Cluster, topic: &str, partitions: i32, rf: i32, min_isr: &str) {
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf))
        .set("min.insync.replicas", min_isr);
    let results = admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    for p in 0..partitions {
        cluster.wait_partition(
            topic,
            p,
            FAILOVER_TIMEOUT,
            "the new partition's full ISR",
            |v| v.leader >= 0 && v.isr.len() == rf as usize,
        );
    }
}

fn producer(cluster: &Cluster, acks: &str) -> FutureProducer {
    let mut config = cluster.client_config();
    config
        .set("acks", acks)
        .set(
            "enable.idempotence",
            if acks == "all" { "true" } else { "false" },
        )
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "50");
    config.create().expect("producer")
}

/// Every record of partition 0, in offset order, read from the current leader.
fn read_partition(cluster: &Cluster, topic: &str, expected_at_least: usize) -> Vec<(i64, String)> {
    let mut config = cluster.client_config();
    config
        .set("group.id", unique_topic("replication-reader"))
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Read until the expected count arrived, or nothing more came for a while (then the
    // caller's comparison says exactly what is missing).
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                records.push((m.offset(), value));
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("consuming: {e}"),
            None if records.len() >= expected_at_least => break,
            None => {}
        }
    }
    records
}

fn wait_replicas_identical(cluster: &Cluster, topic: &str, nodes: &[usize]) {
    wait_until(
        FAILOVER_TIMEOUT,
        "every replica holding the same log",
        || {
            let logs: Vec<Vec<u8>> = nodes
                .iter()
                .map(|i| log_bytes(&cluster.brokers[*i].partition_dir(topic, 0)))
                .collect();
            logs.windows(2).all(|w| w[0] == w[1]).then_some(())
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_records_survive_repeated_leader_and_controller_kills() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("failover");
    create_topic(&cluster, &topic, 1, 3, "2").await;
    let producer = producer(&cluster, "all");
    let mut acked = Vec::new();
    let mut next = 0usize;
    let mut batch = |n: usize| {
        let values: Vec<String> = (next..next + n).map(|i| format!("v{i:06}")).collect();
        next += n;
        values
    };
    acked.extend(send_all(&producer, &topic, 0, &batch(300)).await);

    for round in 0..4 {
        let view = cluster.partition(&topic, 0).expect("metadata");
        // Every other round kill the active controller instead of the partition leader.
        let victim = if round % 2 == 1 {
            cluster.controller(&topic).expect("a controller") as usize
        } else {
            view.leader as usize
        };
        // Produce while the victim dies: these sends straddle the failure.
        let in_flight = batch(300);
        let sending = send_all(&producer, &topic, 0, &in_flight);
        cluster.kill9(victim);
        acked.extend(sending.await);
        let after = cluster.wait_partition(
            &topic,
            0,
            FAILOVER_TIMEOUT,
            "a leader on a live broker",
            |v| v.leader >= 0 && v.leader as usize != victim,
        );
        assert!(after.leader_epoch > view.leader_epoch || victim != view.leader as usize);
        acked.extend(send_all(&producer, &topic, 0, &batch(200)).await);
        cluster.restart(victim);
        cluster.wait_partition(
            &topic,
            0,
            FAILOVER_TIMEOUT,
            "the restarted broker back in the ISR",
            |v| v.isr.len() == 3,
        );
    }
    acked.extend(send_all(&producer, &topic, 0, &batch(100)).await);
    assert!(
        acked.len() >= 1000,
        "too few records were acknowledged: {}",
        acked.len()
    );

    let records = read_partition(&cluster, &topic, acked.len());
    let values: Vec<&String> = records.iter().map(|(_, v)| v).collect();
    let unique: HashSet<&String> = values.iter().copied().collect();
    assert_eq!(unique.len(), values.len(), "a record is stored twice");
    for w in records.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "offsets are not contiguous");
        assert!(
            w[0].1 < w[1].1,
            "records out of order: {} then {}",
            w[0].1,
            w[1].1
        );
    }
    let stored: HashSet<&String> = unique;
    let lost: Vec<&String> = acked.iter().filter(|v| !stored.contains(v)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records were lost, first {:?}",
        lost.len(),
        lost.first()
    );
    wait_replicas_identical(&cluster, &topic, &[0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("frozen");
    create_topic(&cluster, &topic, 1, 3, "2").await;
    let view = cluster.partition(&topic, 0).unwrap();
    let follower = view
        .replicas
        .iter()
        .copied()
        .find(|r| *r != view.leader)
        .unwrap() as usize;
    let producer = producer(&cluster, "all");
    cluster.brokers[follower].pause();
    let shrunk = cluster.wait_partition(
        &topic,
        0,
        FAILOVER_TIMEOUT,
        "the ISR without the frozen follower",
        |v| !v.isr.contains(&(follower as i32)),
    );
    assert_eq!(shrunk.isr.len(), 2);
    let values: Vec<String> = (0..500).map(|i| format!("f{i:04}")).collect();
    let acked = send_all(&producer, &topic, 0, &values).await;
    assert_eq!(
        acked.len(),
        values.len(),
        "producing must go on with two in-sync replicas"
    );
    cluster.brokers[follower].resume();
    cluster.wait_partition(
        &topic,
        0,
        FAILOVER_TIMEOUT,
        "the follower back in the ISR",
        |v| v.isr.contains(&(follower as i32)),
    );
    wait_replicas_identical(&cluster, &topic, &[0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_when_too_few_replicas_are_alive() {
    // Broker 0 alone is the metadata quorum, so the controller outlives brokers 1 and 2.
    let mut cluster = Cluster::start_with_voters(3, 1, &[]);
    let topic = unique_topic("min-isr");
    let admin: AdminClient<DefaultClientContext> = cluster.client_config().create().unwrap();
    // Replicas pinned so that broker 0 leads.
    let new = NewTopic::new(&topic, 1, TopicReplication::Variable(&[&[0, 1, 2]]))
        .set("min.insync.replicas", "2");
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    cluster.wait_partition(&topic, 0, FAILOVER_TIMEOUT, "full ISR", |v| {
        v.isr.len() == 3 && v.leader == 0
    });
    cluster.kill9(1);
    cluster.kill9(2);
    cluster.wait_partition(
        &topic,
        0,
        FAILOVER_TIMEOUT,
        "the ISR shrunk to the leader",
        |v| v.isr == vec![0],
    );
    // Exactly what the leader answers, through the raw protocol client.
    let mut leader = RawClient::connect(cluster.brokers[0].kafka_addr());
    let refused = leader.produce(&topic, 0, record_batch(&[b"refused"], None), -1);
    assert_eq!(refused.error_code, NOT_ENOUGH_REPLICAS, "{refused:?}");
    assert_eq!(refused.base_offset, -1);
    // acks=1 still works: the leader is alive.
    let accepted = leader.produce(&topic, 0, record_batch(&[b"accepted"], None), 1);
    assert_eq!(accepted.error_code, 0, "{accepted:?}");
    // Nothing of the refused request was stored.
    assert_eq!(accepted.base_offset, 0);
    // And through librdkafka the application sees the failure, never a success.
    let producer = producer(&cluster, "all");
    let err = producer
        .send(
            FutureRecord::<(), str>::to(&topic)
                .partition(0)
                .payload("refused"),
            Duration::from_secs(5),
        )
        .await
        .expect_err("acks=all must fail with one in-sync replica");
    assert!(
        matches!(
            err.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)
                | KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        ),
        "{err:?}"
    );
}

/// Kafka's NOT_ENOUGH_REPLICAS.
const NOT_ENOUGH_REPLICAS: i16 = 19;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_replica_truncates_and_nobody_reads_its_unreplicated_records() {
    // Followers stay in the ISR while frozen (no shrink, no fencing), and never park a fetch
    // at the leader, so nothing written while they are frozen can reach them.
    let mut cluster = Cluster::start(
        3,
        &[
            ("replica.lag.time.max.ms", "60000"),
            ("broker.session.timeout.ms", "15000"),
            ("replica.fetch.wait.max.ms", "0"),
        ],
    );
    let topic = unique_topic("diverge");
    create_topic(&cluster, &topic, 1, 3, "2").await;
    let first = producer(&cluster, "all");
    let committed: Vec<String> = (0..100).map(|i| format!("a{i:04}")).collect();
    assert_eq!(send_all(&first, &topic, 0, &committed).await.len(), 100);
    drop(first);

    let view = cluster.partition(&topic, 0).unwrap();
    let old_leader = view.leader as usize;
    let followers: Vec<usize> = (0..3).filter(|i| *i != old_leader).collect();
    // Freeze the followers: what the leader now takes with acks=1 is on its log only.
    for f in &followers {
        cluster.brokers[*f].pause();
    }
    let lonely: FutureProducer = {
        let mut config = cluster.client_config_for(&[old_leader]);
        config
            .set("acks", "1")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "60000");
        config.create().expect("producer")
    };
    let doomed: Vec<String> = (0..20).map(|i| format!("doomed{i:02}")).collect();
    assert_eq!(send_all(&lonely, &topic, 0, &doomed).await.len(), 20);
    drop(lonely);
    cluster.kill9(old_leader);
    for f in &followers {
        cluster.brokers[*f].resume();
    }
    cluster.wait_partition(
        &topic,
        0,
        FAILOVER_TIMEOUT,
        "a new leader among the followers",
        |v| v.leader >= 0 && v.leader as usize != old_leader,
    );
    let second = producer(&cluster, "all");
    let later: Vec<String> = (0..100).map(|i| format!("b{i:04}")).collect();
    assert_eq!(send_all(&second, &topic, 0, &later).await.len(), 100);
    cluster.restart(old_leader);
    cluster.wait_partition(
        &topic,
        0,
        FAILOVER_TIMEOUT,
        "the old leader back in the ISR",
        |v| v.isr.len() == 3,
    );
    wait_replicas_identical(&cluster, &topic, &[0, 1, 2]);
    let records = read_partition(&cluster, &topic, 200);
    let values: Vec<String> = records.into_iter().map(|(_, v)| v).collect();
    assert!(
        values.iter().all(|v| !v.starts_with("doomed")),
        "an unreplicated record was served"
    );
    let expected: Vec<String> = committed.into_iter().chain(later).collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_the_coordinator() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("offsets.topic.replication.factor", "3"),
            ("offsets.topic.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let topic = unique_topic("group-failover");
    create_topic(&cluster, &topic, 1, 3, "2").await;
    let values: Vec<String> = (0..100).map(|i| format!("g{i:03}")).collect();
    assert_eq!(
        send_all(&producer(&cluster, "all"), &topic, 0, &values)
            .await
            .len(),
        100
    );

    let group = unique_topic("group");
    let consumer = cluster.group_consumer(&group);
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = 0;
    wait_until(
        Duration::from_secs(60),
        "consuming the first 60 records",
        || {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                assert_eq!(m.offset(), seen, "records in order from the start");
                seen += 1;
            }
            (seen == 60).then_some(())
        },
    );
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(60))
        .unwrap();
    consumer
        .commit(&commit, rdkafka::consumer::CommitMode::Sync)
        .expect("committing offset 60");
    drop(consumer);

    // The coordinator dies; the offsets partition fails over to a replica that has the commit.
    let coordinator = cluster.group_coordinator(&group, None, FAILOVER_TIMEOUT);
    cluster.kill9(coordinator as usize);
    cluster.group_coordinator(&group, Some(coordinator), FAILOVER_TIMEOUT);

    let resumed = cluster.group_consumer(&group);
    resumed.subscribe(&[&topic]).unwrap();
    let first = wait_until(
        Duration::from_secs(60),
        "the resumed consumer's first record",
        || match resumed.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => Some((m.offset(), m.payload().map(|p| p.to_vec()))),
            _ => None,
        },
    );
    assert_eq!(first.0, 60, "resumed right after the committed offset");
    assert_eq!(first.1.as_deref(), Some(b"g060".as_slice()));
}

/// A broker whose process is gone is fenced, and its partitions led elsewhere, long before its
/// session expires: the active controller's Raft connections to it are refused. With a 60 s
/// session, the new leader must come within 30 s, whether or not the dead broker was also the
/// active controller; and the partition takes `acks=all` writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_fenced_before_its_session_expires() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "60000"),
            ("auto.leader.rebalance.enable", "false"),
        ],
    );
    let topic = unique_topic("fast-fence");
    create_topic(&cluster, &topic, 1, 3, "2").await;
    let producer = producer(&cluster, "all");
    let mut sent = Vec::new();
    for round in 0..2 {
        let before = cluster
            .partition(&topic, 0)
            .expect("the partition's metadata");
        let victim = before.leader as usize;
        cluster.kill9(victim);
        let after = cluster.wait_partition(
            &topic,
            0,
            FAILOVER_TIMEOUT,
            "a new leader, well inside the dead leader's 60 s session",
            |v| v.leader >= 0 && v.leader as usize != victim,
        );
        assert!(
            !after.isr.contains(&(victim as i32)),
            "round {round}: the dead broker {victim} left the ISR (fenced)"
        );
        let values: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
        assert_eq!(send_all(&producer, &topic, 0, &values).await.len(), 20);
        sent.extend(values);
        cluster.restart(victim);
        cluster.wait_partition(
            &topic,
            0,
            FAILOVER_TIMEOUT,
            "the restarted broker back in the ISR",
            |v| v.isr.len() == 3,
        );
    }
    let read: Vec<String> = read_partition(&cluster, &topic, sent.len())
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(read, sent, "every acknowledged record, once, in order");
}

/// A leader paused past its broker session is replaced, and the new leader takes records past
/// the old one's log end. Resumed, before it learns it no longer leads, the old leader must not
/// answer a consumer's fetch of those offsets with OFFSET_OUT_OF_RANGE: a consumer resets its
/// position on that answer (to the start: every record again, which is how the nemesis found
/// it; to the end: records skipped). Its lease has lapsed, so it answers NOT_LEADER_OR_FOLLOWER
/// and the client asks the metadata again.
#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_zombie_leader_never_answers_out_of_range() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;
    use weir_tests::raw::{topic_name, MAX_FETCH_VERSION};

    // Broker 0 alone is the metadata quorum: pausing broker 1 moves no controller.
    let mut cluster = Cluster::start_with_voters(3, 1, &[]);
    let topic = unique_topic("zombie-leader");
    let admin: AdminClient<DefaultClientContext> =
        cluster.client_config().create().expect("admin client");
    let new = NewTopic::new(&topic, 1, TopicReplication::Variable(&[&[1, 0, 2]]));
    for r in admin
        .create_topics([&new], &clients::admin_options())
        .await
        .expect("CreateTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    cluster.wait_partition(&topic, 0, FAILOVER_TIMEOUT, "a full ISR led by 1", |v| {
        v.isr.len() == 3 && v.leader == 1
    });
    let mut old_leader = RawClient::connect(cluster.brokers[1].kafka_addr());
    // Broker 1 itself may apply the new topic a moment after the broker asked above.
    wait_until(
        FAILOVER_TIMEOUT,
        "broker 1 leading the new partition",
        || {
            let acked = old_leader.produce(&topic, 0, record_batch(&[b"before"], None), -1);
            match acked.error_code {
                0 => {
                    assert_eq!(acked.base_offset, 0, "{acked:?}");
                    Some(())
                }
                UNKNOWN_TOPIC_OR_PARTITION | NOT_LEADER_OR_FOLLOWER => None,
                _ => panic!("{acked:?}"),
            }
        },
    );
    for i in 1..5 {
        let acked = old_leader.produce(&topic, 0, record_batch(&[b"before"], None), -1);
        assert_eq!((acked.error_code, acked.base_offset), (0, i), "{acked:?}");
    }
    // A connection opened before the pause, with a Fetch queued while paused: the first thing
    // the resumed process reads.
    let mut early = RawClient::connect(cluster.brokers[1].kafka_addr());
    let version = early.version::<FetchRequest>(MAX_FETCH_VERSION);
    cluster.pause(1);
    let view = cluster.wait_partition(&topic, 0, FAILOVER_TIMEOUT, "a new leader", |v| {
        v.leader == 0 || v.leader == 2
    });
    let mut new_leader = RawClient::connect(cluster.brokers[view.leader as usize].kafka_addr());
    for i in 5..25 {
        let acked = new_leader.produce(&topic, 0, record_batch(&[b"after"], None), -1);
        assert_eq!((acked.error_code, acked.base_offset), (0, i), "{acked:?}");
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(&topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(20)
                .with_partition_max_bytes(1024 * 1024)])]);
    let correlation_id = early
        .send(&fetch, version)
        .expect("queue a Fetch to the paused leader");
    cluster.resume(1);
    let response = early
        .receive::<FetchRequest>(version, correlation_id)
        .expect("the resumed broker answers the queued Fetch");
    // Its log ends at 5: the only right answer is that it does not lead (OFFSET_OUT_OF_RANGE
    // is the bug).
    let data = &response.responses[0].partitions[0];
    assert_eq!(
        data.error_code, NOT_LEADER_OR_FOLLOWER,
        "the resumed old leader's answer to offset 20, acknowledged by its successor: {data:?}"
    );
    // The successor serves offset 20.
    let served = new_leader.fetch(&topic, 0, 20, Duration::from_millis(0), 1);
    assert_eq!(served.error_code, 0, "{served:?}");
}

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION and NOT_LEADER_OR_FOLLOWER.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
