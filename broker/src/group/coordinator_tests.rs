//! The coordinator over a real `__consumer_offsets` log: what is committed survives a resign
//! and a new leadership (replayed from the log), tombstones stay deleted, and ownership
//! answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS as it should.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use prometheus::IntCounter;

use super::commit::{FetchedOffset, OffsetCommit};
use super::coordinator::{GroupCoordinator, OFFSETS_TOPIC};
use crate::clock::ManualClock;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::replica_manager::{CreateTopic, LeadershipListener};
use crate::test_support;

pub(super) struct Fixture {
    pub(super) c: Arc<GroupCoordinator>,
    pub(super) controller: Arc<Controller>,
}

/// A coordinator following leadership of a one-broker cluster in `dir`.
pub(super) async fn coordinator(dir: &std::path::Path, clock: Arc<ManualClock>) -> Fixture {
    coordinator_with(dir, clock, &[]).await
}

/// [`coordinator`] with more broker settings.
pub(super) async fn coordinator_with(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
    extra: &[(&str, &str)],
) -> Fixture {
    let mut settings = vec![("offsets.topic.num.partitions".to_string(), "4".to_string())];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Arc::new(BrokerConfig::new(0, dir.to_path_buf(), &settings).unwrap());
    let (replicas, controller) = test_support::replica_manager(config.clone(), clock.clone()).await;
    let rebalances = IntCounter::new("r", "r").unwrap();
    let c = GroupCoordinator::new(config, replicas.clone(), clock, rebalances);
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

/// Waits until this broker serves `group` and every other `__consumer_offsets` partition: the
/// leadership listener loads each on a blocking thread, and ListGroups answers
/// COORDINATOR_LOAD_IN_PROGRESS while any of them loads.
pub(super) async fn loaded(c: &GroupCoordinator, group: &str) {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while c.check_coordinator(group).is_err() || !c.all_loaded() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the group's __consumer_offsets partition loads");
}

pub(super) fn commit(offset: i64, partition: i32) -> OffsetCommit {
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
        c.fetch_offsets("g", None, false).unwrap_err(),
        ResponseError::NotCoordinator.code(),
        "nothing is owned before the topic exists"
    );
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "g").await;
    let results = c
        .commit_offsets(
            "g",
            -1,
            "",
            None,
            vec![commit(5, 0), commit(7, 1), commit(1, 9)],
        )
        .await
        .unwrap();
    let codes: Vec<i16> = results.iter().map(|(_, code)| *code).collect();
    assert_eq!(
        codes,
        vec![ResponseError::UnknownTopicOrPartition.code(), 0, 0],
        "unknown partitions are refused, the rest stored"
    );
    c.commit_offsets("g", -1, "", None, vec![commit(6, 0)])
        .await
        .unwrap();
    let deleted = c.delete_offsets("g", vec![("t".to_string(), 1)]).unwrap();
    assert_eq!(deleted[0].1, 0);

    let partition = c.partition_for("g");
    c.on_resign(partition);
    assert_eq!(
        c.fetch_offsets("g", None, false).unwrap_err(),
        ResponseError::NotCoordinator.code()
    );
    c.on_become_leader(partition, 1);
    let offsets = c.fetch_offsets("g", None, false).unwrap();
    assert_eq!(
        offsets.len(),
        1,
        "the deleted offset stays deleted: {offsets:?}"
    );
    let (tp, value) = &offsets[0];
    assert_eq!(tp, &("t".to_string(), 0));
    let FetchedOffset::Committed(value) = value else {
        panic!("no offset for t-0: {value:?}");
    };
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
        loaded(c, "kept").await;
        loaded(c, "gone").await;
        c.commit_offsets("kept", -1, "", None, vec![commit(42, 0)])
            .await
            .unwrap();
        c.commit_offsets("gone", -1, "", None, vec![commit(1, 0)])
            .await
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
    loaded(c, "kept").await;
    loaded(c, "gone").await;
    let kept = c.fetch_offsets("kept", None, false).unwrap();
    assert!(
        matches!(&kept[0].1, FetchedOffset::Committed(v) if v.offset == 42),
        "{kept:?}"
    );
    assert!(
        c.describe("gone").unwrap().is_none(),
        "a deleted group stays deleted"
    );
    // ListGroups answers once every offsets partition has loaded, not only those two.
    let listing = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(listing) = c.list(&[], &[]) {
                return listing;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every __consumer_offsets partition loads");
    let listed: Vec<String> = listing.into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["kept".to_string()]);
    // Offsets of an empty group expire after offsets.retention.minutes (10080 by default).
    clock.advance(10_080 * 60_000);
    c.expire_offsets();
    assert!(c.fetch_offsets("kept", None, false).unwrap().is_empty());
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
    loaded(c, "g").await;
    let results = c
        .commit_offsets("g", -1, "", None, vec![commit(1, 0)])
        .await
        .unwrap();
    assert_eq!(results[0].1, 0);
    assert!(
        (0..3).contains(&c.partition_for("g")),
        "the topic's own partition count"
    );
}

pub(super) fn join_request(member_id: &str) -> super::rebalance::JoinRequest {
    super::rebalance::JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), bytes::Bytes::from_static(b"m"))],
        require_known_member_id: false,
    }
}

/// Found by the nemesis: a member parked in JoinGroup when its coordinator's partition got a
/// new leader epoch (the same broker still leading) was never answered, because the group it
/// waited in was replaced by one loaded from the log. Its connection then stalled for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_epoch_keeps_requests_parked_in_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "g").await;
    // Generation 1 with member A, stored in the log.
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.join("g", join_request("")).await })
    };
    let within = std::time::Duration::from_secs(10);
    // The initial rebalance delay runs on the manual clock.
    let a = tokio::time::timeout(within, async {
        while !first.is_finished() {
            clock.advance(1_000);
            c.tick();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        first.await.unwrap()
    })
    .await
    .expect("A's first join is answered");
    assert_eq!((a.error, a.generation), (0, 1));
    let assigned = c
        .sync(
            "g",
            1,
            &a.member_id,
            None,
            None,
            None,
            vec![(a.member_id.clone(), bytes::Bytes::from_static(b"x"))],
        )
        .await;
    assert_eq!(assigned.error, 0);

    // B joins and waits for A to rejoin; meanwhile the partition gets a new leader epoch.
    let b = {
        let c = c.clone();
        tokio::spawn(async move { c.join("g", join_request("")).await })
    };
    tokio::time::timeout(within, async {
        while c.describe("g").unwrap().unwrap().state != super::GroupState::PreparingRebalance {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("B's join starts a rebalance");
    c.on_become_leader(c.partition_for("g"), 7);

    // A rejoins: generation 2 forms and B, parked before the new epoch, is answered.
    let a2 = tokio::time::timeout(within, c.join("g", join_request(&a.member_id)))
        .await
        .expect("A's rejoin is answered");
    assert_eq!((a2.error, a2.generation), (0, 2));
    let b = tokio::time::timeout(within, b)
        .await
        .expect("B's parked JoinGroup is answered")
        .unwrap();
    assert_eq!((b.error, b.generation), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_written_with_the_configured_codec_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let zstd = [("offsets.topic.compression.codec", "4")];
    {
        let f = coordinator_with(dir.path(), Arc::new(ManualClock::new(1_000_000)), &zstd).await;
        let c = &f.c;
        c.ensure_offsets_topic().await.unwrap();
        loaded(c, "zipped").await;
        c.commit_offsets("zipped", -1, "", None, vec![commit(7, 0), commit(9, 1)])
            .await
            .unwrap();
        // Every batch of the group's partition is zstd (codec 4 in the attributes' low bits).
        let partition = c.check_coordinator("zipped").unwrap();
        let log = c.replicas.partition(OFFSETS_TOPIC, partition).unwrap();
        let read = log.read_to_log_end(0, usize::MAX).unwrap();
        let mut batches = 0;
        for batch in crate::log::batch::RecordBatchIter::new(&read.records) {
            let (header, _) = batch.unwrap();
            assert_eq!(header.attributes() & 0x7, 4, "a zstd batch");
            batches += 1;
        }
        assert!(batches > 0);
        f.controller.shutdown().await;
        c.replicas.shutdown();
    }
    let f = coordinator_with(dir.path(), Arc::new(ManualClock::new(2_000_000)), &zstd).await;
    loaded(&f.c, "zipped").await;
    let fetched = f.c.fetch_offsets("zipped", None, false).unwrap();
    let offsets: Vec<i64> = fetched
        .iter()
        .filter_map(|(_, o)| match o {
            FetchedOffset::Committed(v) => Some(v.offset),
            _ => None,
        })
        .collect();
    assert_eq!(offsets, vec![7, 9], "replayed from compressed batches");
}

fn consumer_join(member: &str) -> super::consumer::Heartbeat {
    super::consumer::Heartbeat {
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Default::default()),
        client_id: "c".to_string(),
        ..Default::default()
    }
}

/// A KIP-848 consumer group's members, epochs and assignments are records in
/// `__consumer_offsets`: a new leadership replays them, members carry on with their epochs,
/// and OffsetCommit checks the member epoch. Deleting the emptied group tombstones it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_survives_a_new_leadership_and_is_deleted_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator(dir.path(), clock.clone()).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "cg").await;
    let a = c
        .consumer_group_heartbeat("cg", consumer_join("a"))
        .await
        .unwrap();
    assert_eq!(
        a.assignment
            .as_ref()
            .map(|a| a.values().map(|p| p.len()).sum::<usize>()),
        Some(2)
    );
    let epoch = a.member_epoch;
    assert!(epoch > 0);
    let results = c
        .commit_offsets("cg", epoch, "a", None, vec![commit(4, 0)])
        .await
        .unwrap();
    assert_eq!(results[0].1, 0);
    let stale = c
        .commit_offsets("cg", epoch - 1, "a", None, vec![commit(5, 0)])
        .await
        .unwrap_err();
    assert_eq!(stale, ResponseError::StaleMemberEpoch.code());
    assert_eq!(c.list(&[], &["consumer".to_string()]).unwrap().len(), 1);
    assert!(c.list(&[], &["classic".to_string()]).unwrap().is_empty());

    let partition = c.partition_for("cg");
    c.on_resign(partition);
    c.on_become_leader(partition, 1);
    let described = c.describe_consumer_group("cg").unwrap();
    assert_eq!((described.group_epoch, described.state), (epoch, "Stable"));
    let (member, target) = &described.members[0];
    assert_eq!(
        (member.member_id.as_str(), member.member_epoch),
        ("a", epoch)
    );
    assert_eq!(&member.assigned, target);
    // The member heartbeats on with its epoch as if nothing happened.
    let owned = member.assigned.clone();
    let again = c
        .consumer_group_heartbeat(
            "cg",
            super::consumer::Heartbeat {
                member_id: "a".into(),
                member_epoch: epoch,
                rebalance_timeout_ms: -1,
                owned: Some(owned),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.member_epoch, epoch);
    // A classic member cannot join it; DeleteGroups refuses while it has members.
    let join = c.join("cg", join_request("")).await;
    assert_eq!(join.error, ResponseError::InconsistentGroupProtocol.code());
    assert_eq!(c.delete_group("cg"), ResponseError::NonEmptyGroup.code());

    let left = c
        .consumer_group_heartbeat(
            "cg",
            super::consumer::Heartbeat {
                member_id: "a".into(),
                member_epoch: -1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(left.member_epoch, -1);
    assert_eq!(c.delete_group("cg"), 0);
    c.on_resign(partition);
    c.on_become_leader(partition, 2);
    let gone = c.describe_consumer_group("cg").unwrap_err();
    assert_eq!(gone.code, ResponseError::GroupIdNotFound.code());
    assert!(c.fetch_offsets("cg", None, false).unwrap().is_empty());
}

fn share_join(member: &str) -> crate::share::group::ShareHeartbeat {
    crate::share::group::ShareHeartbeat {
        member_id: member.into(),
        member_epoch: 0,
        subscribed_topic_names: Some(vec!["t".into()]),
        ..Default::default()
    }
}

/// A share group lives next to the other group types: its members share partitions, its
/// membership survives a new leadership (records in `__consumer_offsets`), it is listed with
/// type `share`, other protocols cannot use its id (nor it theirs), and DeleteGroups removes it
/// once empty, for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_group_is_its_own_type_and_deleted_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let f = coordinator(dir.path(), Arc::new(ManualClock::new(1_000_000))).await;
    let c = &f.c;
    c.ensure_offsets_topic().await.unwrap();
    loaded(c, "sg").await;
    loaded(c, "cg").await;
    let a = c
        .share_group_heartbeat("sg", share_join("a"))
        .await
        .unwrap();
    let b = c
        .share_group_heartbeat("sg", share_join("b"))
        .await
        .unwrap();
    let count = |x: &super::consumer::HeartbeatAnswer| {
        x.assignment
            .as_ref()
            .map_or(0, |a| a.values().map(|p| p.len()).sum::<usize>())
    };
    // Two members, two partitions of t: one each.
    assert_eq!((count(&a), count(&b)), (2, 1));
    assert_eq!(b.member_epoch, 2);
    // ListGroups answers once every partition of the topic has loaded, not only sg's.
    let listed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match c.list(&[], &["share".to_string()]) {
                Ok(listed) => break listed,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .expect("every __consumer_offsets partition loads");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].protocol_type, "share");
    let described = c.describe_share_group("sg").unwrap();
    assert_eq!((described.state, described.group_epoch), ("Stable", 2));
    // The membership is in __consumer_offsets: a new leadership replays it, and a member
    // heartbeats on with its epoch.
    let partition = c.partition_for("sg");
    c.on_resign(partition);
    c.on_become_leader(partition, 1);
    loaded(c, "sg").await;
    let replayed = c.describe_share_group("sg").unwrap();
    assert_eq!((replayed.group_epoch, replayed.members.len()), (2, 2));
    let b_again = c
        .share_group_heartbeat(
            "sg",
            crate::share::group::ShareHeartbeat {
                member_id: "b".into(),
                member_epoch: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b_again.member_epoch, 2);

    let consumer = c
        .consumer_group_heartbeat("sg", consumer_join("x"))
        .await
        .unwrap_err();
    assert_eq!(consumer.code, ResponseError::GroupIdNotFound.code());
    let join = c.join("sg", join_request("")).await;
    assert_eq!(join.error, ResponseError::InconsistentGroupProtocol.code());
    let commit = c
        .commit_offsets("sg", -1, "", None, vec![commit(1, 0)])
        .await
        .unwrap_err();
    assert_eq!(commit, ResponseError::GroupIdNotFound.code());
    c.consumer_group_heartbeat("cg", consumer_join("y"))
        .await
        .unwrap();
    let share = c
        .share_group_heartbeat("cg", share_join("z"))
        .await
        .unwrap_err();
    assert_eq!(share.code, ResponseError::GroupIdNotFound.code());
    assert_eq!(c.delete_group("sg"), ResponseError::NonEmptyGroup.code());

    for member in ["a", "b"] {
        let left = c
            .share_group_heartbeat(
                "sg",
                crate::share::group::ShareHeartbeat {
                    member_id: member.into(),
                    member_epoch: -1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(left.member_epoch, -1);
    }
    assert_eq!(c.delete_group("sg"), 0);
    c.on_resign(partition);
    c.on_become_leader(partition, 2);
    loaded(c, "sg").await;
    let gone = c.describe_share_group("sg").unwrap_err();
    assert_eq!(gone.code, ResponseError::GroupIdNotFound.code());
}
