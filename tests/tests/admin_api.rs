//! The admin gRPC API (`weir.admin.v1.Admin`) and Kafka's reassignment and election APIs
//! against clusters of real broker processes: cluster health after a SIGKILL, the topic calls
//! and their documented status codes, a throttled reassignment under an `acks=all` producer
//! with nothing lost, draining and unregistering a broker, and AlterPartitionReassignments,
//! ListPartitionReassignments and ElectLeaders through the raw Kafka client (librdkafka's
//! admin API has none of the three).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use tonic::Code;
use weir_api::proto::admin as pb;
use weir_tests::admin::{broker_entry, eventually};
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::raw::{topic_name, RawClient};
use weir_tests::segments::log_bytes;
use weir_tests::{http, unique_topic, wait_until};

const TIMEOUT: Duration = Duration::from_secs(60);

fn create_request(name: &str, partitions: i32, rf: i32) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        partitions: Some(partitions),
        replication_factor: Some(rf),
        ..Default::default()
    }
}

fn explicit(name: &str, lists: &[&[i32]], configs: &[(&str, &str)]) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        assignment: lists
            .iter()
            .zip(0..)
            .map(|(replicas, partition)| pb::PartitionAssignment {
                partition,
                replicas: replicas.to_vec(),
            })
            .collect(),
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

async fn create(cluster: &Cluster, request: pb::CreateTopicRequest) -> pb::TopicDescription {
    let name = request.name.clone();
    cluster.wait_all_active(0, TIMEOUT).await;
    let topic = cluster
        .admin(0)
        .create_topic(request)
        .await
        .unwrap_or_else(|s| panic!("creating {name}: {s}"))
        .into_inner()
        .topic
        .unwrap();
    for p in &topic.partitions {
        let rf = p.replicas.len();
        cluster.wait_partition(&name, p.partition, TIMEOUT, "a full ISR", |v| {
            v.leader >= 0 && v.isr.len() == rf
        });
    }
    topic
}

async fn describe_topic(
    cluster: &Cluster,
    id: usize,
    name: &str,
) -> Result<pb::TopicDescription, Code> {
    cluster
        .admin(id)
        .describe_topic(pb::DescribeTopicRequest { name: name.into() })
        .await
        .map(|r| r.into_inner().topic.unwrap())
        .map_err(|s| s.code())
}

fn producer(cluster: &Cluster) -> FutureProducer {
    let mut config = cluster.client_config();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Small batches keep a throttled follower's debt (one batch at most) small.
        .set("batch.size", "65536")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "50");
    config.create().expect("producer")
}

/// A producer sending small batches to `topic`/0 until stopped; returns what was acknowledged.
fn produce_until_stopped(
    producer: FutureProducer,
    topic: String,
    stop: Arc<AtomicBool>,
    acked_count: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut next = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let values: Vec<String> = (next..next + 20).map(|i| format!("live-{i:07}")).collect();
            next += values.len();
            acked.extend(send_all(&producer, &topic, 0, &values).await);
            acked_count.store(acked.len(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acked
    })
}

/// Every record of `topic`/`partition`, in offset order (at least `expected`).
fn read_partition(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    expected: usize,
) -> Vec<(i64, String)> {
    let mut config = cluster.client_config();
    config
        .set("group.id", unique_topic("admin-reader"))
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut records = Vec::new();
    let mut take = |m: rdkafka::message::BorrowedMessage<'_>| {
        let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
        records.push((m.offset(), value));
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut taken = 0;
    while taken < expected {
        assert!(
            Instant::now() < deadline,
            "read {taken} of {expected} records of {topic}-{partition}"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            take(m);
            taken += 1;
        }
    }
    while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
        take(m);
    }
    records
}

/// Asserts that `records` hold every acknowledged value exactly once, at contiguous offsets,
/// in the order sent (the values sort in send order).
fn assert_nothing_lost(records: &[(i64, String)], acked: &[String]) {
    let values: Vec<&String> = records.iter().map(|(_, v)| v).collect();
    let unique: HashSet<&String> = values.iter().copied().collect();
    assert_eq!(unique.len(), values.len(), "a record is stored twice");
    for w in records.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "offsets are not contiguous");
        assert!(w[0].1 < w[1].1, "out of order: {} then {}", w[0].1, w[1].1);
    }
    let lost: Vec<&String> = acked.iter().filter(|v| !unique.contains(v)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, first {:?}",
        lost.len(),
        lost.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_reports_brokers_the_controller_and_under_replicated_partitions() {
    let mut cluster = Cluster::start(3, &[]);
    let topic = unique_topic("health");
    create(&cluster, create_request(&topic, 3, 3)).await;

    let c = &cluster;
    let healthy = eventually(
        TIMEOUT,
        "a healthy cluster with a controller",
        || async move {
            let d = c.describe_cluster(1).await;
            let ok = d.partition_count == 3
                && d.under_replicated_partition_count == 0
                && d.controller.as_ref().is_some_and(|c| c.leader_id.is_some())
                && d.brokers
                    .iter()
                    .all(|b| b.state() == pb::BrokerState::Active);
            ok.then_some(d)
        },
    )
    .await;
    assert_eq!(healthy.answering_broker_id, 1);
    assert!(!healthy.cluster_id.is_empty());
    assert_eq!(
        healthy.cluster_id,
        cluster.describe_cluster(2).await.cluster_id
    );
    let controller = healthy.controller.clone().unwrap();
    let controller_id = controller.leader_id.unwrap();
    assert_eq!(controller.voters, vec![0, 1, 2]);
    assert!(
        controller.term >= 1 && controller.commit_index > 0,
        "{controller:?}"
    );
    assert_eq!(
        Some(controller_id),
        cluster.controller(&topic),
        "DescribeCluster and Kafka's Metadata agree on the controller"
    );
    // Loads match the topics as the same broker's ListTopics lists them.
    let topics = cluster
        .admin(1)
        .list_topics(pb::ListTopicsRequest {
            include_internal: true,
        })
        .await
        .unwrap()
        .into_inner()
        .topics;
    let partitions: Vec<&pb::PartitionDescription> =
        topics.iter().flat_map(|t| t.partitions.iter()).collect();
    assert_eq!(healthy.partition_count as usize, partitions.len());
    for b in &healthy.brokers {
        let replicas = partitions
            .iter()
            .filter(|p| p.replicas.contains(&b.id))
            .count();
        let leaders = partitions.iter().filter(|p| p.leader == Some(b.id)).count();
        assert_eq!(
            (b.replica_count as usize, b.leader_count as usize),
            (replicas, leaders)
        );
        assert!(b.kafka_endpoint.as_ref().is_some_and(|e| e.port > 0));
        assert!(b.epoch > 0);
    }
    assert_eq!(healthy.brokers.len(), 3);

    let victim = (controller_id + 1) % 3;
    let witness = ((victim + 1) % 3) as usize;
    cluster.kill9(victim as usize);
    let c = &cluster;
    let degraded = eventually(
        TIMEOUT,
        "the killed broker fenced and its partitions under-replicated",
        || async move {
            let d = c.describe_cluster(witness).await;
            let fenced =
                broker_entry(&d, victim).is_some_and(|b| b.state() == pb::BrokerState::Fenced);
            (fenced && d.under_replicated_partition_count == 3).then_some(d)
        },
    )
    .await;
    let mine: Vec<&pb::PartitionHealth> = degraded
        .under_replicated_partitions
        .iter()
        .filter(|p| p.topic == topic)
        .collect();
    assert_eq!(mine.len(), 3);
    for p in mine {
        assert!(p.replicas.contains(&victim));
        assert!(!p.isr.contains(&victim), "{p:?}");
        assert!(p.leader.is_some_and(|l| l != victim), "{p:?}");
    }
    assert_eq!(degraded.offline_partition_count, 0);
    let described = describe_topic(&cluster, witness, &topic).await.unwrap();
    assert!(described
        .partitions
        .iter()
        .all(|p| p.offline_replicas == vec![victim]));

    cluster.restart(victim as usize);
    let c = &cluster;
    eventually(
        TIMEOUT,
        "the restarted broker back in every ISR",
        || async move {
            let d = c.describe_cluster(witness).await;
            let active =
                broker_entry(&d, victim).is_some_and(|b| b.state() == pb::BrokerState::Active);
            (active && d.under_replicated_partition_count == 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_round_trip_with_the_documented_error_codes() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_all_active(1, TIMEOUT).await;
    let mut admin = cluster.admin(1);
    let topic = unique_topic("round-trip");
    let created = admin
        .create_topic(pb::CreateTopicRequest {
            configs: HashMap::from([("retention.ms".into(), "3600000".into())]),
            ..create_request(&topic, 3, 2)
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(created.partitions.len(), 3);
    for p in &created.partitions {
        assert_eq!(p.replicas.len(), 2);
        assert_ne!(p.replicas[0], p.replicas[1]);
    }
    // The answering broker's image shows the topic at once; the others follow.
    let described = describe_topic(&cluster, 1, &topic).await.unwrap();
    assert_eq!(described, created);
    let c = &cluster;
    let elsewhere = eventually(TIMEOUT, "broker 2 describing the topic", || {
        let topic = topic.clone();
        async move { describe_topic(c, 2, &topic).await.ok() }
    })
    .await;
    assert_eq!(elsewhere.topic_id, created.topic_id);
    assert_eq!(
        described.configs.get("retention.ms").map(String::as_str),
        Some("3600000")
    );
    // Kafka clients see the same topic.
    let metadata = cluster.metadata(&topic).unwrap();
    assert_eq!(metadata.topics[0].partitions.len(), 3);

    let code = |r: Result<tonic::Response<pb::CreateTopicResponse>, tonic::Status>| {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    };
    let cases = [
        (create_request(&topic, 1, 1), Code::AlreadyExists),
        (create_request("bad/name", 1, 1), Code::InvalidArgument),
        (create_request("no-partitions", 0, 1), Code::InvalidArgument),
        (create_request("no-replicas", 1, 0), Code::InvalidArgument),
        (
            pb::CreateTopicRequest {
                configs: HashMap::from([("retention.ms".into(), "soon".into())]),
                ..create_request("bad-config", 1, 1)
            },
            Code::InvalidArgument,
        ),
        (explicit("twice", &[&[0, 0]], &[]), Code::InvalidArgument),
        (create_request("too-wide", 1, 4), Code::FailedPrecondition),
        (
            explicit("absent-broker", &[&[0, 9]], &[]),
            Code::FailedPrecondition,
        ),
    ];
    for (request, expected) in cases {
        let name = request.name.clone();
        assert_eq!(code(admin.create_topic(request).await), expected, "{name}");
    }
    assert_eq!(
        describe_topic(&cluster, 0, "too-wide").await.unwrap_err(),
        Code::NotFound
    );

    // AlterTopic: two new partitions placed explicitly, one config set and one removed.
    let altered = admin
        .alter_topic(pb::AlterTopicRequest {
            name: topic.clone(),
            partitions: Some(5),
            new_partitions_assignment: vec![
                pb::PartitionAssignment {
                    partition: 3,
                    replicas: vec![0, 1],
                },
                pb::PartitionAssignment {
                    partition: 4,
                    replicas: vec![2, 0],
                },
            ],
            set_configs: HashMap::from([("segment.bytes".into(), "1048576".into())]),
            delete_configs: vec!["retention.ms".into()],
            validate_only: false,
        })
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(altered.partitions.len(), 5);
    assert_eq!(altered.partitions[3].replicas, vec![0, 1]);
    assert_eq!(altered.partitions[4].replicas, vec![2, 0]);
    assert_eq!(
        altered.configs,
        HashMap::from([("segment.bytes".to_string(), "1048576".to_string())])
    );
    cluster.wait_partition(
        &topic,
        4,
        TIMEOUT,
        "the new partition led and in sync",
        |v| v.leader == 2 && v.isr.len() == 2,
    );
    let alter = |partitions: i32| pb::AlterTopicRequest {
        name: topic.clone(),
        partitions: Some(partitions),
        ..Default::default()
    };
    let status = admin.alter_topic(alter(4)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status}");
    let status = admin
        .alter_topic(pb::AlterTopicRequest {
            name: "missing".into(),
            ..alter(9)
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = admin
        .list_topics(pb::ListTopicsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed
        .topics
        .iter()
        .any(|t| t.name == topic && t.partitions.len() == 5));
    assert!(listed.topics.iter().all(|t| !t.internal));

    admin
        .delete_topic(pb::DeleteTopicRequest {
            name: topic.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        describe_topic(&cluster, 1, &topic).await.unwrap_err(),
        Code::NotFound
    );
    for id in [0, 2] {
        let topic = topic.clone();
        eventually(TIMEOUT, "every broker forgetting the deleted topic", || {
            let topic = topic.clone();
            async move { (describe_topic(c, id, &topic).await == Err(Code::NotFound)).then_some(()) }
        })
        .await;
    }
    let status = admin
        .delete_topic(pb::DeleteTopicRequest {
            name: topic.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    wait_until(TIMEOUT, "the replicas' directories deleted", || {
        (0..3)
            .all(|b| (0..5).all(|p| !cluster.brokers[b].partition_dir(&topic, p).exists()))
            .then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_reassignment_moves_a_partition_while_producing_without_loss() {
    // Brokers 0-2 are the quorum; broker 3 only holds data.
    let cluster = Cluster::start_with_voters(4, 3, &[]);
    let topic = unique_topic("moving");
    create(
        &cluster,
        explicit(&topic, &[&[0, 1, 2]], &[("min.insync.replicas", "2")]),
    )
    .await;
    let producer = producer(&cluster);
    // About 2 MB to copy, so the throttled move takes seconds.
    let padding = "x".repeat(1000);
    let preload: Vec<String> = (0..2000)
        .map(|i| format!("early-{i:07}-{padding}"))
        .collect();
    let mut acked = send_all(&producer, &topic, 0, &preload).await;
    assert_eq!(acked.len(), preload.len());

    let stop = Arc::new(AtomicBool::new(false));
    let live_count = Arc::new(AtomicUsize::new(0));
    let live = produce_until_stopped(producer, topic.clone(), stop.clone(), live_count.clone());
    const RATE: u64 = 256 * 1024;
    let mut admin = cluster.admin(2);
    let started = admin
        .reassign_partitions(pb::ReassignPartitionsRequest {
            reassignments: vec![pb::PartitionReassignment {
                topic: topic.clone(),
                partition: 0,
                target_replicas: vec![3, 1, 2],
            }],
            throttle_bytes_per_second: Some(RATE),
        })
        .await
        .unwrap()
        .into_inner()
        .started;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].current_replicas, vec![0, 1, 2]);
    // A second move of the same partition conflicts with the running one.
    let status = admin
        .reassign_partitions(pb::ReassignPartitionsRequest {
            reassignments: vec![pb::PartitionReassignment {
                topic: topic.clone(),
                partition: 0,
                target_replicas: vec![3, 0, 1],
            }],
            throttle_bytes_per_second: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);

    // Watch the copy: progress only grows, and no faster than the throttle allows.
    let mut samples: Vec<(Instant, u64, u64)> = Vec::new();
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let list = admin
            .list_reassignments(pb::ListReassignmentsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.throttle_bytes_per_second, Some(RATE));
        let status = list
            .reassignments
            .iter()
            .find(|r| r.topic == topic)
            .expect("the throttled move finished early: the throttle did not hold it back");
        assert_eq!(status.target_replicas, vec![3, 1, 2]);
        assert_eq!(
            (
                status.adding_replicas.clone(),
                status.removing_replicas.clone()
            ),
            (vec![3], vec![0])
        );
        let progress = &status.progress[0];
        assert_eq!(progress.broker_id, 3);
        assert!(!progress.in_sync);
        if progress.log_end_offset >= 0 {
            assert!(progress.log_end_offset < progress.leader_log_end_offset);
            assert!(progress.bytes_copied < progress.bytes_total);
            samples.push((Instant::now(), progress.bytes_copied, progress.bytes_total));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(samples.len() >= 5, "too few progress samples: {samples:?}");
    for w in samples.windows(2) {
        assert!(w[1].1 >= w[0].1, "progress went back: {samples:?}");
    }
    let (t0, first, _) = samples[0];
    let (t1, last, _) = *samples.last().unwrap();
    assert!(last > first, "no progress while throttled: {samples:?}");
    // On top of the rate: one second of burst, one batch of debt, and one fetch the first
    // sample had not seen yet.
    let allowed = RATE as f64 * (t1 - t0).as_secs_f64() + 2.0 * RATE as f64 + 131072.0;
    assert!(
        ((last - first) as f64) < allowed,
        "copied {} bytes in {:?}, more than the throttle allows",
        last - first,
        t1 - t0
    );
    eprintln!(
        "throttled copy: {} bytes in {:.2?} ({:.0} B/s, throttle {RATE} B/s, {} samples)",
        last - first,
        t1 - t0,
        (last - first) as f64 / (t1 - t0).as_secs_f64(),
        samples.len()
    );
    let metrics = http::get(cluster.brokers[0].metrics_addr(), "/metrics").body;
    assert!(metrics.contains(&format!(
        "weir_reassignment_throttle_bytes_per_second {RATE}"
    )));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("weir_reassignment_bytes_remaining{")
                && l.contains("replica=\"3\"")),
        "the leader reports the bytes left to copy"
    );

    // Lift the throttle; the move completes and the new replica leads.
    let lifted = Instant::now();
    admin
        .reassign_partitions(pb::ReassignPartitionsRequest {
            reassignments: vec![],
            throttle_bytes_per_second: Some(0),
        })
        .await
        .unwrap();
    eventually(TIMEOUT, "the reassignment to finish", || {
        let mut admin = admin.clone();
        async move {
            let list = admin
                .list_reassignments(pb::ListReassignmentsRequest::default())
                .await
                .unwrap()
                .into_inner();
            (list.reassignments.is_empty() && list.throttle_bytes_per_second.is_none())
                .then_some(())
        }
    })
    .await;
    eprintln!(
        "unthrottled, the move finished {:.2?} later",
        lifted.elapsed()
    );
    let done = describe_topic(&cluster, 2, &topic).await.unwrap();
    let p = &done.partitions[0];
    assert_eq!(p.replicas, vec![3, 1, 2]);
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    let mut isr = p.isr.clone();
    isr.sort_unstable();
    assert_eq!(isr, vec![1, 2, 3]);
    assert_eq!(
        p.leader,
        Some(3),
        "the new preferred replica leads once in sync"
    );
    let fetched = http::get(cluster.brokers[3].metrics_addr(), "/metrics").body;
    let copied: u64 = fetched
        .lines()
        .find_map(|l| l.strip_prefix("weir_reassignment_fetched_bytes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        copied > 2_000_000,
        "broker 3 fetched {copied} bytes for the move"
    );

    // Produce a little more through the new leader, then stop and read everything back.
    let after_move = live_count.load(Ordering::Relaxed);
    let count = &live_count;
    eventually(
        Duration::from_secs(30),
        "more records acknowledged after the move",
        || async move { (count.load(Ordering::Relaxed) >= after_move + 40).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let live_acked = live.await.unwrap();
    assert!(
        live_acked.len() > 100,
        "the producer barely ran: {}",
        live_acked.len()
    );
    acked.extend(live_acked);
    let records = read_partition(&cluster, &topic, 0, acked.len());
    assert_nothing_lost(&records, &acked);
    wait_until(TIMEOUT, "the removed replica's directory deleted", || {
        (!cluster.brokers[0].partition_dir(&topic, 0).exists()).then_some(())
    });
    wait_until(TIMEOUT, "every replica holding the same log", || {
        let logs: Vec<Vec<u8>> = [1, 2, 3]
            .iter()
            .map(|b| log_bytes(&cluster.brokers[*b].partition_dir(&topic, 0)))
            .collect();
        logs.windows(2).all(|w| w[0] == w[1]).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_broker_empties_it_and_a_stopped_empty_broker_can_be_unregistered() {
    let mut cluster = Cluster::start_with_voters(4, 3, &[]);
    let topic = unique_topic("drained");
    let created = create(&cluster, create_request(&topic, 4, 2)).await;
    let on_3 = created
        .partitions
        .iter()
        .filter(|p| p.replicas.contains(&3))
        .count();
    assert_eq!(
        on_3, 2,
        "placement balances 8 replicas over 4 brokers: {created:?}"
    );
    let producer = producer(&cluster);
    let mut acked: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for p in 0..4 {
        let values: Vec<String> = (0..200).map(|i| format!("p{p}-{i:05}")).collect();
        acked.insert(p, send_all(&producer, &topic, p, &values).await);
        assert_eq!(acked[&p].len(), 200);
    }
    let mut admin = cluster.admin(0);
    let drain = |dry_run: bool| pb::DrainBrokerRequest {
        broker_id: 3,
        throttle_bytes_per_second: None,
        dry_run,
    };
    let dry = admin.drain_broker(drain(true)).await.unwrap().into_inner();
    assert!(dry.move_count >= 2, "{dry:?}");
    assert!(dry.plan.iter().all(|r| !r.target_replicas.contains(&3)));
    let moved_off_3 = dry
        .plan
        .iter()
        .filter(|r| r.topic == topic && r.current_replicas.contains(&3))
        .count();
    assert_eq!(
        moved_off_3, 2,
        "the plan moves both replicas on broker 3: {dry:?}"
    );
    let state = broker_entry(&cluster.describe_cluster(1).await, 3)
        .unwrap()
        .state();
    assert_eq!(state, pb::BrokerState::Active, "a dry run changes nothing");

    let plan = admin.drain_broker(drain(false)).await.unwrap().into_inner();
    assert_eq!(plan.move_count, dry.move_count);
    let state = broker_entry(&cluster.describe_cluster(0).await, 3)
        .unwrap()
        .state();
    assert_eq!(state, pb::BrokerState::Draining);
    // New topics stay off a draining broker.
    let fresh = unique_topic("fresh");
    let placed = create(&cluster, create_request(&fresh, 6, 1)).await;
    assert!(
        placed.partitions.iter().all(|p| p.replicas != vec![3]),
        "{placed:?}"
    );

    eventually(TIMEOUT, "broker 3 emptied", || {
        let mut admin = admin.clone();
        async move {
            let reassigning = admin
                .list_reassignments(pb::ListReassignmentsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .reassignments;
            let topics = admin
                .list_topics(pb::ListTopicsRequest {
                    include_internal: true,
                })
                .await
                .unwrap()
                .into_inner()
                .topics;
            let holds = topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .any(|p| p.replicas.contains(&3));
            (reassigning.is_empty() && !holds).then_some(())
        }
    })
    .await;
    // Asked of the broker that just said so (another one may trail it by a moment).
    let d = cluster.describe_cluster(0).await;
    assert_eq!(broker_entry(&d, 3).unwrap().replica_count, 0);
    wait_until(TIMEOUT, "broker 3's replica directories deleted", || {
        (0..4)
            .all(|p| !cluster.brokers[3].partition_dir(&topic, p).exists())
            .then_some(())
    });

    let unregister = |id: i32| pb::UnregisterBrokerRequest { broker_id: id };
    for (id, code) in [
        (3, Code::FailedPrecondition),
        (0, Code::FailedPrecondition),
        (9, Code::NotFound),
    ] {
        let status = admin.unregister_broker(unregister(id)).await.unwrap_err();
        assert_eq!(status.code(), code, "broker {id}: {status}");
    }
    let controller = d.controller.unwrap().leader_id.unwrap() as usize;
    cluster.brokers[3].stop();
    cluster.down[3] = true;
    // The controller fenced it when its controlled shutdown completed, before telling it to
    // stop: no session timeout to wait for.
    let d = cluster.describe_cluster(controller).await;
    assert_eq!(
        broker_entry(&d, 3).unwrap().state(),
        pb::BrokerState::Fenced,
        "right after a clean stop: {d:?}"
    );
    // Ask a broker that is not the active controller: it forwards the call.
    let asked = (0..3).find(|b| *b != controller).unwrap();
    let c = &cluster;
    eventually(TIMEOUT, "the stopped broker fenced", || async move {
        let d = c.describe_cluster(asked).await;
        broker_entry(&d, 3)
            .is_some_and(|b| b.state() == pb::BrokerState::Fenced)
            .then_some(())
    })
    .await;
    cluster
        .admin(asked)
        .unregister_broker(unregister(3))
        .await
        .unwrap();
    let ids: Vec<i32> = c
        .describe_cluster(asked)
        .await
        .brokers
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        ids,
        vec![0, 1, 2],
        "the answering broker already forgot broker 3"
    );
    for b in 0..3 {
        eventually(TIMEOUT, "every broker forgetting broker 3", || async move {
            let d = c.describe_cluster(b).await;
            (d.brokers.iter().map(|b| b.id).collect::<Vec<_>>() == vec![0, 1, 2]).then_some(())
        })
        .await;
    }
    let status = admin.unregister_broker(unregister(3)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // The active controller also took the broker out of the quorum's learners.
    let logs: Vec<String> = (0..3).map(|b| cluster.brokers[b].stderr_log()).collect();
    assert!(logs.iter().any(|l| l.contains("unregistered a broker")));
    assert!(
        logs.iter()
            .all(|l| !l.contains("removing an unregistered learner from the quorum")),
        "the learner was not removed"
    );

    for (p, values) in &acked {
        let records = read_partition(&cluster, &topic, *p, values.len());
        assert_nothing_lost(&records, values);
    }
}

fn raw(cluster: &Cluster, id: usize) -> RawClient {
    RawClient::connect(cluster.brokers[id].kafka_addr())
}

fn alter_reassignments(
    client: &mut RawClient,
    topic: &str,
    partitions: &[(i32, Option<&[i32]>)],
    allow_rf_change: bool,
) -> AlterPartitionReassignmentsResponse {
    let version = client.version::<AlterPartitionReassignmentsRequest>(1);
    let request = AlterPartitionReassignmentsRequest::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|(index, replicas)| {
                        ReassignablePartition::default()
                            .with_partition_index(*index)
                            .with_replicas(
                                replicas.map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                            )
                    })
                    .collect(),
            )]);
    client
        .request(&request, version)
        .expect("AlterPartitionReassignments")
}

fn alter_codes(response: &AlterPartitionReassignmentsResponse) -> Vec<i16> {
    assert_eq!(response.error_code, 0);
    response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

fn list_reassignments(
    client: &mut RawClient,
    named: Option<(&str, Vec<i32>)>,
) -> ListPartitionReassignmentsResponse {
    let request =
        ListPartitionReassignmentsRequest::default().with_topics(named.map(|(t, partitions)| {
            vec![ListPartitionReassignmentsTopics::default()
                .with_name(topic_name(t))
                .with_partition_indexes(partitions)]
        }));
    client
        .request(&request, 0)
        .expect("ListPartitionReassignments")
}

fn elect(
    client: &mut RawClient,
    election_type: i8,
    partitions: Option<(&str, Vec<i32>)>,
) -> ElectLeadersResponse {
    let request = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(partitions.map(|(t, p)| {
            vec![TopicPartitions::default()
                .with_topic(topic_name(t))
                .with_partitions(p)]
        }));
    client
        .request(&request, client.version::<ElectLeadersRequest>(2))
        .expect("ElectLeaders")
}

fn election_codes(response: &ElectLeadersResponse) -> Vec<(i32, i16)> {
    response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_reassignment_and_election_apis() {
    let mut cluster = Cluster::start(3, &[("auto.leader.rebalance.enable", "false")]);
    let topic = unique_topic("kafka-admin");
    create(&cluster, explicit(&topic, &[&[1, 0], &[2, 0]], &[])).await;
    let mut client = raw(&cluster, 0);
    assert_eq!(client.advertised(ApiKey::ElectLeaders), Some((0, 2)));
    assert_eq!(
        client.advertised(ApiKey::AlterPartitionReassignments),
        Some((0, 1))
    );
    assert_eq!(
        client.advertised(ApiKey::ListPartitionReassignments),
        Some((0, 0))
    );

    // Preferred elections: broker 2 (preferred leader of partition 1) dies and comes back;
    // without auto rebalance, leadership stays on broker 0 until ElectLeaders.
    cluster.kill9(2);
    cluster.wait_partition(&topic, 1, TIMEOUT, "broker 0 leading", |v| v.leader == 0);
    client = raw(&cluster, 0);
    assert_eq!(
        election_codes(&elect(&mut client, 0, Some((&topic, vec![1])))),
        vec![(1, 80)],
        "PREFERRED_LEADER_NOT_AVAILABLE while broker 2 is down"
    );
    cluster.restart(2);
    cluster.wait_partition(&topic, 1, TIMEOUT, "broker 2 back in the ISR", |v| {
        v.isr.contains(&2) && v.leader == 0
    });
    let response = elect(&mut client, 0, Some((&topic, vec![1, 9])));
    assert_eq!(response.error_code, 0);
    assert_eq!(election_codes(&response), vec![(1, 0), (9, 3)]);
    cluster.wait_partition(&topic, 1, TIMEOUT, "the preferred leader elected", |v| {
        v.leader == 2
    });
    assert_eq!(
        election_codes(&elect(&mut client, 0, Some((&topic, vec![0, 1])))),
        vec![(0, 84), (1, 84)]
    );
    assert!(
        election_codes(&elect(&mut client, 0, None)).is_empty(),
        "electing all leaves out partitions that need nothing"
    );
    assert_eq!(
        elect(&mut client, 1, None).error_code,
        42,
        "unclean elections are refused"
    );
    // The admin API's ElectLeaders agrees.
    let grpc = cluster
        .admin(1)
        .elect_leaders(pb::ElectLeadersRequest {
            partitions: vec![pb::TopicPartition {
                topic: topic.clone(),
                partition: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.results[0].outcome(), pb::ElectionOutcome::NotNeeded);
    assert_eq!(grpc.results[0].leader, Some(2));

    // Reassignment errors, per partition.
    let r = alter_reassignments(
        &mut client,
        &topic,
        &[(0, Some(&[0, 1, 2])), (1, None), (0, Some(&[1, 1]))],
        false,
    );
    assert_eq!(alter_codes(&r), vec![38, 85, 39]);
    let r = alter_reassignments(&mut client, "missing", &[(0, Some(&[0]))], true);
    assert_eq!(alter_codes(&r), vec![3]);
    let r = list_reassignments(&mut client, Some(("missing", vec![0])));
    assert_eq!(r.error_code, 3);

    // A move held back by a tiny throttle, listed, then cancelled through the Kafka API.
    let producer = producer(&cluster);
    let values: Vec<String> = (0..300)
        .map(|i| format!("k{i:05}-{}", "y".repeat(500)))
        .collect();
    assert_eq!(send_all(&producer, &topic, 0, &values).await.len(), 300);
    cluster
        .admin(0)
        .reassign_partitions(pb::ReassignPartitionsRequest {
            reassignments: vec![],
            throttle_bytes_per_second: Some(1000),
        })
        .await
        .unwrap();
    let r = alter_reassignments(&mut client, &topic, &[(0, Some(&[1, 2]))], false);
    assert_eq!(alter_codes(&r), vec![0]);
    for named in [None, Some((topic.as_str(), vec![0, 1]))] {
        let listed = list_reassignments(&mut client, named);
        assert_eq!(listed.error_code, 0);
        assert_eq!(listed.topics.len(), 1);
        let p = &listed.topics[0].partitions;
        assert_eq!(p.len(), 1, "only partition 0 is moving");
        assert_eq!(p[0].partition_index, 0);
        assert_eq!(p[0].replicas, vec![BrokerId(1), BrokerId(2), BrokerId(0)]);
        assert_eq!(p[0].adding_replicas, vec![BrokerId(2)]);
        assert_eq!(p[0].removing_replicas, vec![BrokerId(0)]);
    }
    let r = alter_reassignments(&mut client, &topic, &[(0, None)], true);
    assert_eq!(alter_codes(&r), vec![0]);
    assert!(list_reassignments(&mut client, None).topics.is_empty());
    let back = describe_topic(&cluster, 0, &topic).await.unwrap();
    let mut replicas = back.partitions[0].replicas.clone();
    replicas.sort_unstable();
    assert_eq!(replicas, vec![0, 1], "cancelled: the original replicas");

    // Unthrottled, the same move completes.
    cluster
        .admin(0)
        .reassign_partitions(pb::ReassignPartitionsRequest {
            reassignments: vec![],
            throttle_bytes_per_second: Some(0),
        })
        .await
        .unwrap();
    let r = alter_reassignments(&mut client, &topic, &[(0, Some(&[1, 2]))], false);
    assert_eq!(alter_codes(&r), vec![0]);
    cluster.wait_partition(
        &topic,
        0,
        TIMEOUT,
        "the move to brokers 1 and 2 done",
        |v| v.replicas == vec![1, 2] && v.isr.len() == 2,
    );
    wait_until(TIMEOUT, "no reassignment listed", || {
        list_reassignments(&mut client, None)
            .topics
            .is_empty()
            .then_some(())
    });
    let records = read_partition(&cluster, &topic, 0, values.len());
    assert_nothing_lost(&records, &values);
}
