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
use crate::replica_manager::ReplicaManager;

fn coordinator(dir: &std::path::Path) -> (GroupCoordinator, Arc<ManualClock>) {
    let settings = [("offsets.topic.num.partitions".to_string(), "4".to_string())];
    let config = Arc::new(BrokerConfig::new(0, dir.to_path_buf(), &settings).unwrap());
    let clock = Arc::new(ManualClock::new(1_000_000));
    let replicas = Arc::new(ReplicaManager::open(config.clone(), clock.clone()).unwrap());
    replicas
        .create_topic("t", 2, 1, Default::default(), false)
        .unwrap();
    let rebalances = IntCounter::new("r", "r").unwrap();
    (
        GroupCoordinator::new(config, replicas, clock.clone(), rebalances),
        clock,
    )
}

fn commit(offset: i64, partition: i32) -> OffsetCommit {
    OffsetCommit {
        partition: ("t".to_string(), partition),
        offset,
        leader_epoch: 3,
        metadata: Some(format!("meta-{offset}")),
    }
}

#[test]
fn offsets_are_replayed_from_the_log_after_a_new_leadership() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _clock) = coordinator(dir.path());
    assert_eq!(
        c.fetch_offsets("g", None).unwrap_err(),
        ResponseError::NotCoordinator.code(),
        "nothing is owned before the topic exists"
    );
    c.ensure_offsets_topic().unwrap();
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

#[test]
fn a_reopened_broker_finds_groups_and_offsets_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (c, _) = coordinator(dir.path());
        c.ensure_offsets_topic().unwrap();
        c.commit_offsets("kept", -1, "", None, vec![commit(42, 0)])
            .unwrap();
        c.commit_offsets("gone", -1, "", None, vec![commit(1, 0)])
            .unwrap();
        assert_eq!(c.delete_group("gone"), 0);
        assert_eq!(
            c.delete_group("gone"),
            ResponseError::GroupIdNotFound.code()
        );
        c.replicas.shutdown();
    }
    let settings = [("offsets.topic.num.partitions".to_string(), "4".to_string())];
    let config = Arc::new(BrokerConfig::new(0, dir.path().to_path_buf(), &settings).unwrap());
    let clock = Arc::new(ManualClock::new(2_000_000));
    let replicas = Arc::new(ReplicaManager::open(config.clone(), clock.clone()).unwrap());
    assert!(replicas.topic(OFFSETS_TOPIC).is_some());
    let c = GroupCoordinator::new(
        config,
        replicas,
        clock.clone(),
        IntCounter::new("r", "r").unwrap(),
    );
    for p in 0..4 {
        c.on_become_leader(p, 0);
    }
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

#[test]
fn an_offsets_topic_created_by_a_client_is_led_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = coordinator(dir.path());
    c.replicas
        .create_topic(OFFSETS_TOPIC, 3, 1, Default::default(), false)
        .unwrap();
    c.ensure_offsets_topic().unwrap();
    let results = c
        .commit_offsets("g", -1, "", None, vec![commit(1, 0)])
        .unwrap();
    assert_eq!(results[0].1, 0);
    assert!(
        (0..3).contains(&c.partition_for("g")),
        "the topic's own partition count"
    );
}
