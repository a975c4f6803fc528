//! Consumer groups across a coordinator failover, with real broker processes killed by
//! SIGKILL: an OffsetCommit the coordinator acknowledged is what the next coordinator
//! answers, read back at once and by a consumer that restarts, however soon after the
//! acknowledgement the coordinator dies.

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

/// The committed offset of partition 0 as `broker` answers OffsetFetch, waiting while it
/// loads or is not yet the coordinator.
fn committed(cluster: &Cluster, broker: usize, group: &str, topic: &str) -> i64 {
    wait_until(
        FAILOVER_TIMEOUT,
        "OffsetFetch from the new coordinator",
        || {
            let mut client = RawClient::try_connect(cluster.brokers[broker].kafka_addr()).ok()?;
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(vec![0])]))
                .with_require_stable(true);
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
        let coordinator = wait_until(FAILOVER_TIMEOUT, "an acknowledged commit", || {
            let coordinator = cluster.group_coordinator(&group, None, FAILOVER_TIMEOUT);
            let addr = cluster.brokers[coordinator as usize].kafka_addr();
            let mut client = RawClient::try_connect(addr).ok()?;
            match commit(&mut client, &group, &topic, offset) {
                Ok(()) => Some(coordinator),
                Err(code) if code < 0 || RETRIABLE.contains(&code) => None,
                Err(code) => panic!("round {round}: the commit of {offset} answered {code}"),
            }
        });
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
