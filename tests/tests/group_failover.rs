//! Consumer groups across a coordinator failover, with real broker processes killed by
//! SIGKILL: an OffsetCommit the coordinator acknowledged is what the next coordinator
//! answers, read back at once and by a consumer that restarts, however soon after the
//! acknowledgement the coordinator dies; and a coordinator that was cut off long enough to be
//! replaced never answers with what its successor has since overwritten.

use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use weir_tests::cluster::{send_all, Cluster};
use weir_tests::raw::{topic_name, RawClient};
use weir_tests::{unique_topic, wait_until};

const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka's retriable coordinator errors: COORDINATOR_LOAD_IN_PROGRESS,
/// COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
const RETRIABLE: [i16; 3] = [14, 15, 16];

/// A commit outside group management (generation -1, as `kafka-consumer-groups
/// --reset-offsets` and simple consumers commit): `Ok` once acknowledged, else the error code.
fn commit(client: &mut RawClient, group: &str, topic: &str, offset: i64) -> Result<(), i16> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let version = client.version::<OffsetCommitRequest>(8);
    let response = client.request(&request, version).map_err(|_| -1i16)?;
    match response.topics[0].partitions[0].error_code {
        0 => Ok(()),
        code => Err(code),
    }
}

fn offset_fetch_request(group: &str, topic: &str) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]))
        .with_require_stable(true)
}

/// Commits `offset` through whichever broker coordinates `group`, retrying retriable errors
/// as clients do; the coordinator that acknowledged it.
fn commit_acknowledged(
    cluster: &Cluster,
    group: &str,
    topic: &str,
    offset: i64,
    not: Option<i32>,
) -> i32 {
    wait_until(FAILOVER_TIMEOUT, "an acknowledged commit", || {
        let coordinator = cluster.group_coordinator(group, not, FAILOVER_TIMEOUT);
        let addr = cluster.brokers[coordinator as usize].kafka_addr();
        let mut client = RawClient::try_connect(addr).ok()?;
        match commit(&mut client, group, topic, offset) {
            Ok(()) => Some(coordinator),
            Err(code) if code < 0 || RETRIABLE.contains(&code) => None,
            Err(code) => panic!("the commit of {offset} answered {code}"),
        }
    })
}

/// The committed offset of partition 0 as `broker` answers OffsetFetch, waiting while it
/// loads or is not yet the coordinator.
fn committed(cluster: &Cluster, broker: usize, group: &str, topic: &str) -> i64 {
    wait_until(
        FAILOVER_TIMEOUT,
        "OffsetFetch from the new coordinator",
        || {
            let mut client = RawClient::try_connect(cluster.brokers[broker].kafka_addr()).ok()?;
            let request = offset_fetch_request(group, topic);
            let version = client.version::<OffsetFetchRequest>(7);
            let response = client.request(&request, version).ok()?;
            if RETRIABLE.contains(&response.error_code) {
                return None;
            }
            assert_eq!(response.error_code, 0, "OffsetFetch failed");
            let partition = &response.topics[0].partitions[0];
            match partition.error_code {
                0 => Some(partition.committed_offset),
                // UNSTABLE_OFFSET_COMMIT: a commit is still being replicated; ask again.
                88 => None,
                code => panic!("OffsetFetch of partition 0 answered {code}"),
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_commit_survives_a_coordinator_killed_right_after_it() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("offsets.topic.replication.factor", "3"),
            ("offsets.topic.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let topic = unique_topic("commit-kill");
    let values: Vec<String> = (0..100).map(|i| format!("v{i:03}")).collect();
    let mut producer = cluster.client_config();
    producer
        .set("acks", "all")
        .set("enable.idempotence", "true");
    let producer = producer.create().expect("producer");
    assert_eq!(send_all(&producer, &topic, 0, &values).await.len(), 100);
    let group = unique_topic("commit-kill-group");

    // Each round: commit, and SIGKILL the coordinator the moment the commit is acknowledged.
    let mut last = -1;
    for round in 0..6i64 {
        let offset = 10 + round * 13;
        // As clients do: a retriable coordinator error (the coordinator still loading, or
        // FindCoordinator answered from metadata a step ahead of it) sends the commit again.
        let coordinator = commit_acknowledged(&cluster, &group, &topic, offset, None);
        cluster.kill9(coordinator as usize);
        last = offset;

        let next = cluster.group_coordinator(&group, Some(coordinator), FAILOVER_TIMEOUT);
        assert_eq!(
            committed(&cluster, next as usize, &group, &topic),
            last,
            "round {round}: broker {next} took over from {coordinator} and must answer the \
             acknowledged commit"
        );
        cluster.restart(coordinator as usize);
        // Back in every ISR, so the next round's kill still leaves two copies.
        for partition in 0..3 {
            cluster.wait_partition(
                "__consumer_offsets",
                partition,
                FAILOVER_TIMEOUT,
                "the restarted broker back in the offsets partitions' ISRs",
                |v| v.leader >= 0 && v.isr.len() == 3,
            );
        }
    }

    // A consumer of the group resumes right after the last acknowledged commit.
    let consumer = cluster.group_consumer(&group);
    consumer.subscribe(&[&topic]).unwrap();
    let first = wait_until(
        Duration::from_secs(60),
        "the resumed consumer's first record",
        || match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => Some((m.offset(), m.payload().map(|p| p.to_vec()))),
            _ => None,
        },
    );
    assert_eq!(first.0, last, "resumed at the last acknowledged commit");
    assert_eq!(
        first.1.as_deref(),
        Some(format!("v{last:03}").as_bytes()),
        "the record at that offset"
    );
}

/// A coordinator paused (SIGSTOP) past the broker session timeout is replaced; a commit goes to
/// its successor. Resumed, its metadata image still says it leads the group's offsets
/// partition until it catches up, but it must not answer OffsetFetch from its stale memory
/// meanwhile: every answer is a retriable coordinator error or the successor's offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_zombie_coordinator_never_answers_a_replaced_offset() {
    let mut cluster = Cluster::start(
        3,
        &[
            ("offsets.topic.replication.factor", "3"),
            ("offsets.topic.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let topic = unique_topic("zombie");
    let mut admin = RawClient::connect(cluster.brokers[0].kafka_addr());
    admin.create_topic_ok(&topic, 1);
    let group = unique_topic("zombie-group");

    for round in 0..3i64 {
        let old = 100 + round * 10;
        let new = old + 5;
        let zombie = commit_acknowledged(&cluster, &group, &topic, old, None);
        // The old offset is what the coordinator serves (and what it holds in memory).
        assert_eq!(committed(&cluster, zombie as usize, &group, &topic), old);

        // A connection opened before the pause, with an OffsetFetch queued while paused: the
        // first thing the resumed process reads.
        let mut early = RawClient::connect(cluster.brokers[zombie as usize].kafka_addr());
        let version = early.version::<OffsetFetchRequest>(7);
        cluster.pause(zombie as usize);
        let successor = commit_acknowledged(&cluster, &group, &topic, new, Some(zombie));
        assert_ne!(successor, zombie);
        let correlation_id = early
            .send(&offset_fetch_request(&group, &topic), version)
            .expect("queue an OffsetFetch to the paused coordinator");
        cluster.resume(zombie as usize);

        let answer = |response: &kafka_protocol::messages::OffsetFetchResponse| {
            if RETRIABLE.contains(&response.error_code) {
                return None;
            }
            assert_eq!(response.error_code, 0, "OffsetFetch failed");
            let partition = &response.topics[0].partitions[0];
            if RETRIABLE.contains(&partition.error_code) || partition.error_code == 88 {
                return None;
            }
            assert_eq!(partition.error_code, 0, "OffsetFetch of partition 0");
            Some(partition.committed_offset)
        };
        let first = early
            .receive::<OffsetFetchRequest>(version, correlation_id)
            .expect("the resumed coordinator answers the queued OffsetFetch");
        if let Some(offset) = answer(&first) {
            assert_eq!(
                offset, new,
                "round {round}: broker {zombie}, resumed, answered the offset broker \
                 {successor} has replaced"
            );
        }
        // Until the resumed broker has learnt it no longer coordinates the group (or leads it
        // again, with the successor's offset loaded), nothing it answers may be the old offset.
        wait_until(
            FAILOVER_TIMEOUT,
            "the resumed broker to resign or to serve the successor's offset",
            || {
                let version = early.version::<OffsetFetchRequest>(7);
                let response = early
                    .request(&offset_fetch_request(&group, &topic), version)
                    .expect("OffsetFetch to the resumed broker");
                if response.error_code == 16 {
                    return Some(()); // NOT_COORDINATOR: it resigned.
                }
                let offset = answer(&response)?;
                assert_eq!(
                    offset, new,
                    "round {round}: broker {zombie}, resumed, answered the offset broker \
                     {successor} has replaced"
                );
                Some(())
            },
        );
        for partition in 0..3 {
            cluster.wait_partition(
                "__consumer_offsets",
                partition,
                FAILOVER_TIMEOUT,
                "the resumed broker back in the offsets partitions' ISRs",
                |v| v.leader >= 0 && v.isr.len() == 3,
            );
        }
    }
}

/// A commit that reaches a coordinator late, on a connection opened before the coordinator was
/// cut off, is not applied over what was committed meanwhile. The nemesis found it: a client's
/// commit to a coordinator that was isolated sat in TCP retransmission; the client gave up,
/// committed newer offsets through the successor; the old coordinator became coordinator again
/// and, when the network had healed, the retransmitted commit arrived and moved the group's
/// offset back. Here the late request is written by the test on a connection opened before the
/// coordinator's pause, once that broker coordinates the group again: it must close the
/// connection unanswered and keep the newer offset; a new connection commits as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_arriving_late_on_a_connection_from_before_a_partition_is_not_applied() {
    let mut cluster = Cluster::start(
        3,
        &[
            // One offsets partition on two brokers: when one dies, the other leads it.
            ("offsets.topic.replication.factor", "2"),
            ("offsets.topic.num.partitions", "1"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    let topic = unique_topic("late-commit");
    let mut admin = RawClient::connect(cluster.brokers[0].kafka_addr());
    admin.create_topic_ok(&topic, 1);
    let group = unique_topic("late-commit-group");

    let first = commit_acknowledged(&cluster, &group, &topic, 100, None);
    let replicas = cluster
        .wait_partition(
            "__consumer_offsets",
            0,
            FAILOVER_TIMEOUT,
            "both offsets replicas in the ISR",
            |v| v.leader == first && v.isr.len() == 2,
        )
        .replicas;
    let other = *replicas.iter().find(|&&r| r != first).unwrap();

    // Opened while `first` coordinates the group; used again only at the end.
    let mut early = RawClient::connect(cluster.brokers[first as usize].kafka_addr());
    cluster.pause(first as usize);
    let successor = commit_acknowledged(&cluster, &group, &topic, 105, Some(first));
    assert_eq!(
        successor, other,
        "the offsets partition's other replica took over"
    );
    cluster.resume(first as usize);
    cluster.wait_partition(
        "__consumer_offsets",
        0,
        FAILOVER_TIMEOUT,
        "the resumed broker back in the offsets partition's ISR",
        |v| v.leader == other && v.isr.len() == 2,
    );
    // The successor dies: the resumed broker coordinates the group again, with 105 loaded.
    cluster.kill9(other as usize);
    assert_eq!(committed(&cluster, first as usize, &group, &topic), 105);

    // The late commit of an older offset, on the connection from before the pause.
    let late = commit(&mut early, &group, &topic, 103);
    assert_eq!(
        late,
        Err(-1),
        "a commit on a connection opened before the coordinator was cut off must close it \
         unanswered"
    );
    assert!(early.wait_closed(FAILOVER_TIMEOUT));
    assert_eq!(
        committed(&cluster, first as usize, &group, &topic),
        105,
        "the late commit moved the group's offset back"
    );
    // A client that reconnects commits as usual.
    assert_eq!(
        commit_acknowledged(&cluster, &group, &topic, 110, None),
        first
    );
    assert_eq!(committed(&cluster, first as usize, &group, &topic), 110);
}
