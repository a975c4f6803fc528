//! The coordinator over a real `__consumer_offsets` log: what is committed survives a resign
//! and a new leadership (replayed from the log), tombstones stay deleted, and ownership
//! answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS as it should.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use prometheus::IntCounter;

use super::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use super::operations::OffsetCommit;
use crate::clock::ManualClock;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::replica_manager::{CreateTopic, LeadershipListener};
use crate::test_support;

struct Fixture {
    c: Arc<GroupCoordinator>,
    controller: Arc<Controller>,
}

/// A coordinator following leadership of a one-broker cluster in `dir`.
async fn coordinator(dir: &std::path::Path, clock: Arc<ManualClock>) -> Fixture {
    let settings = [("offsets.topic.num.partitions".to_string(), "4".to_string())];
    let config = Arc::new(BrokerConfig::new(0, dir.to_path_buf(), &settings).unwrap());
    let (replicas, controller) = test_support::replica_manager(config.clone(), clock.clone()).await;
    let rebalances = IntCounter::new("r", "r").unwrap();
    let c = Arc::new(GroupCoordinator::new(
        config,
        replicas.clone(),
        clock,
        rebalances,
    ));
    let listener: Arc<dyn LeadershipListener> = c.clone();
    replicas.add_leadership_listener(Arc::downgrade(&listener));
    if replicas.topic("t").is_none() {
        replicas
            .create_topic(CreateTopic {
                partitions: Some(2),
                replication_factor: Some(1),
                ..CreateTopic::new("t")
            })
            .await
            .unwrap();
    }
    Fixture { c, controller }
}

fn commit(offset: i64, partition: i32) -> OffsetCommit {
    OffsetCommit {
        partition: ("t".to_string(), partition),
        offset,
        leader_epoch: 3,
        metadata: Some(format!("meta-{offset}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_replayed_from_the_log_after_a_new_leadership() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    assert_eq!(
        c.fetch_offsets("g", None).unwrap_err(),
        ResponseError::NotCoordinator.code(),
        "nothing is owned before the topic exists"
    );
    c.ensure_offsets_topic().await.unwrap();
    let results = c
        .commit_offsets(
            "g",
            -1,
            "",
            None,
            vec![commit(5, 0), commit(7, 1), commit(1, 9)],
        )
        .unwrap();
    let codes: Vec<i16> = results.iter().map(|(_, code)| *code).collect();
    assert_eq!(
        codes,
        vec![ResponseError::UnknownTopicOrPartition.code(), 0, 0],
        "unknown partitions are refused, the rest stored"
    );
    c.commit_offsets("g", -1, "", None, vec![commit(6, 0)])
        .unwrap();
    let deleted = c.delete_offsets("g", vec![("t".to_string(), 1)]).unwrap();
    assert_eq!(deleted[0].1, 0);

    let partition = c.partition_for("g");
    c.on_resign(partition);
    assert_eq!(
        c.fetch_offsets("g", None).unwrap_err(),
        ResponseError::NotCoordinator.code()
    );
    c.on_become_leader(partition, 1);
    let offsets = c.fetch_offsets("g", None).unwrap();
    assert_eq!(
        offsets.len(),
        1,
        "the deleted offset stays deleted: {offsets:?}"
    );
    let (tp, value) = &offsets[0];
    assert_eq!(tp, &("t".to_string(), 0));
    let value = value.as_ref().unwrap();
    assert_eq!(
        (value.offset, value.leader_epoch, value.metadata.as_str()),
        (6, 3, "meta-6"),
        "the latest commit wins, metadata and leader epoch round-trip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_broker_finds_groups_and_offsets_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
        let c = &f.c;
        c.ensure_offsets_topic().await.unwrap();
        c.commit_offsets("kept", -1, "", None, vec![commit(42, 0)])
            .unwrap();
        c.commit_offsets("gone", -1, "", None, vec![commit(1, 0)])
            .unwrap();
        assert_eq!(c.delete_group("gone"), 0);
        assert_eq!(
            c.delete_group("gone"),
            ResponseError::GroupIdNotFound.code()
        );
        f.controller.shutdown().await;
        c.replicas.shutdown();
    }
    // The restarted broker leads __consumer_offsets again and the coordinator replays it.
    let clock = Arc::new(ManualClock::new(2_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = &f.c;
    assert!(c.replicas.topic(OFFSETS_TOPIC).is_some());
    let kept = c.fetch_offsets("kept", None).unwrap();
    assert_eq!(kept[0].1.as_ref().unwrap().offset, 42);
    assert!(
        c.describe("gone").unwrap().is_none(),
        "a deleted group stays deleted"
    );
    let listed: Vec<String> = c
        .list(&[])
        .unwrap()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["kept".to_string()]);
    // Offsets of an empty group expire after offsets.retention.minutes (10080 by default).
    clock.advance(10_080 * 60_000);
    c.expire_offsets();
    assert!(c.fetch_offsets("kept", None).unwrap().is_empty());
    assert!(
        c.describe("kept").unwrap().is_none(),
        "an empty group without offsets goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offsets_topic_created_by_a_client_is_led_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.replicas
        .create_topic(CreateTopic {
            partitions: Some(3),
            replication_factor: Some(1),
            ..CreateTopic::new(OFFSETS_TOPIC)
        })
        .await
        .unwrap();
    c.ensure_offsets_topic().await.unwrap();
    let results = c
        .commit_offsets("g", -1, "", None, vec![commit(1, 0)])
        .unwrap();
    assert_eq!(results[0].1, 0);
    assert!(
        (0..3).contains(&c.partition_for("g")),
        "the topic's own partition count"
    );
}
