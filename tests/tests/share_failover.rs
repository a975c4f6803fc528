//! KIP-932 share groups across a broker failover, with real broker processes killed by
//! SIGKILL and the Apache Kafka 4.3 Java client's `KafkaShareConsumer`
//! (tests/java/ShareConsumers.java): the share-partition state lives in `__share_group_state`
//! (RF 3), so a new partition leader carries on from it.
//!
//! A first consumer accepts part of the records and exits while holding the next ones
//! (acquired, not acknowledged); the partition leader (or, in the second case, the share
//! coordinator of the partition's state, on another broker than the leader) is killed; a
//! second consumer then consumes the rest.
//! No accepted record is delivered again; every record is accepted exactly once overall; a
//! record held at the failover comes back with a delivery count of at least 2; none is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use weir_tests::cluster::Cluster;
use weir_tests::{java, unique_topic};

const RECORDS: usize = 200;
const ACCEPT_FIRST: usize = 80;
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// Which broker the test kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The leader of the share partition (its in-memory state dies with it).
    PartitionLeader,
    /// The share coordinator holding the partition's `__share_group_state` key.
    ShareCoordinator,
}

fn share_cluster() -> Cluster {
    Cluster::start(
        3,
        &[
            ("group.share.enable", "true"),
            ("share.auto.offset.reset", "earliest"),
            ("default.replication.factor", "3"),
            ("min.insync.replicas", "2"),
            // Long enough that the held records are still locked when the leader dies, short
            // enough that a surviving leader releases them within the test.
            ("group.share.record.lock.duration.ms", "15000"),
        ],
    )
}

/// The values after `prefix ` on the lines of `out` that start with it.
fn lines_with<'a>(out: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    out.lines().filter_map(move |l| l.strip_prefix(prefix))
}

fn failover(victim: Victim) {
    let Some(classpath) = java::share_client_classpath() else {
        return;
    };
    let mut cluster = share_cluster();
    let topic = unique_topic("share-failover");
    let bootstrap = cluster.bootstrap();
    java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "produce".into(),
            bootstrap.clone(),
            topic.clone(),
            RECORDS.to_string(),
        ],
        &format!("produced {RECORDS}"),
    );
    cluster.wait_partition(&topic, 0, FAILOVER_TIMEOUT, "three in-sync replicas", |p| {
        p.isr.len() == 3
    });
    let leader = cluster.partition(&topic, 0).expect("the partition").leader;
    let topic_id = cluster.metadata(&topic).expect("metadata").topics[0].topic_id;
    let key_of = |group: &str| format!("{group}:{topic_id}:0");
    // For the coordinator case, a group whose state another broker than the leader holds
    // (the key hashes to one of 50 partitions; a few names find one).
    let group = (0..100)
        .map(|i| format!("{topic}-group-{i}"))
        .find(|g| {
            victim == Victim::PartitionLeader
                || cluster.share_coordinator(&key_of(g), None, FAILOVER_TIMEOUT) != leader
        })
        .expect("a group coordinated away from the leader");
    let first = java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "consume-some".into(),
            bootstrap.clone(),
            topic.clone(),
            group.clone(),
            ACCEPT_FIRST.to_string(),
        ],
        "consume-some done",
    );
    let accepted: BTreeSet<&str> = lines_with(&first, "accepted ").collect();
    let held: BTreeSet<&str> = lines_with(&first, "held ").collect();
    assert_eq!(accepted.len(), ACCEPT_FIRST, "{first}");
    assert!(
        !held.is_empty(),
        "the first consumer holds records at the failover:\n{first}"
    );

    let key = key_of(&group);
    let coordinator = cluster.share_coordinator(&key, None, FAILOVER_TIMEOUT);
    let killed = match victim {
        Victim::PartitionLeader => leader,
        Victim::ShareCoordinator => coordinator,
    };
    eprintln!("partition leader {leader}, share coordinator {coordinator}: killing {killed}");
    cluster.kill9(killed as usize);
    cluster.wait_partition(&topic, 0, FAILOVER_TIMEOUT, "a new leader", |p| {
        p.leader >= 0 && p.leader != killed
    });
    if killed == coordinator {
        cluster.share_coordinator(&key, Some(killed), FAILOVER_TIMEOUT);
    }

    let rest = java::run_with(
        &classpath,
        "ShareConsumers.java",
        &[
            "consume-rest".into(),
            cluster.bootstrap(),
            topic.clone(),
            group.clone(),
            (RECORDS - ACCEPT_FIRST).to_string(),
        ],
        "consume-rest done",
    );
    // Every delivery after the failover, with its delivery count.
    let mut deliveries: BTreeMap<&str, Vec<i16>> = BTreeMap::new();
    for line in lines_with(&rest, "got ") {
        let (value, count) = line.rsplit_once(" count ").expect("got V count C");
        deliveries
            .entry(value)
            .or_default()
            .push(count.parse().expect("a delivery count"));
    }
    let again: Vec<&&str> = accepted
        .iter()
        .filter(|v| deliveries.contains_key(**v))
        .collect();
    assert!(
        again.is_empty(),
        "accepted before the failover, delivered again: {again:?}"
    );
    let twice: Vec<(&&str, &Vec<i16>)> = deliveries.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "delivered more than once after the failover: {twice:?}"
    );
    for value in &held {
        if let Some(counts) = deliveries.get(value) {
            assert!(counts[0] >= 2, "{value} was in flight at the failover but came back with delivery count {counts:?}");
        }
    }
    let redelivered_held: Vec<i16> = held
        .iter()
        .filter_map(|v| deliveries.get(v).map(|c| c[0]))
        .collect();
    eprintln!(
        "accepted before: {}, held at the kill: {}, delivered after: {}, held ones redelivered with counts {redelivered_held:?}",
        accepted.len(),
        held.len(),
        deliveries.len()
    );
    let all: BTreeSet<&str> = accepted
        .iter()
        .copied()
        .chain(deliveries.keys().copied())
        .collect();
    assert_eq!(
        all.len(),
        RECORDS,
        "records accepted overall: {} of {RECORDS}\nfirst consumer:\n{first}\nsecond consumer:\n{rest}",
        all.len()
    );
    assert_eq!(
        accepted.len() + deliveries.len(),
        RECORDS,
        "each record accepted exactly once"
    );
}

#[test]
fn a_killed_share_partition_leader_loses_no_acknowledgement() {
    failover(Victim::PartitionLeader);
}

#[test]
fn a_killed_share_coordinator_loses_no_acknowledgement() {
    failover(Victim::ShareCoordinator);
}
