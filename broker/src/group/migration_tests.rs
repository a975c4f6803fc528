//! Online migration over a real `__consumer_offsets` log: a live classic group upgraded by a
//! consumer-protocol member and downgraded when it leaves, the classic member carrying on with
//! JoinGroup/SyncGroup/Heartbeat throughout, each conversion surviving a reload, committed
//! offsets kept; and `group.consumer.migration.policy=disabled` refusing the upgrade.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{consumer_protocol_subscription, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::assignor::Assignment;
use super::classic::GroupState;
use super::commit::FetchedOffset;
use super::consumer::Heartbeat;
use super::consumer_classic::{decode_assignment, encode_assignment};
use super::coordinator::GroupCoordinator;
use super::coordinator_tests::{commit, coordinator_with, loaded};
use super::member::JoinResult;
use super::rebalance::JoinRequest;
use crate::clock::ManualClock;

const WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// ConsumerProtocolSubscription v1 of topic `t`, owning `owned` partitions.
fn subscription(owned: &[i32]) -> Bytes {
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_static_str("t")])
        .with_owned_partitions(if owned.is_empty() {
            Vec::new()
        } else {
            vec![consumer_protocol_subscription::TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(owned.to_vec())]
        });
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

fn classic_join(member_id: &str, owned: &[i32]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "classic".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), subscription(owned))],
        require_known_member_id: false,
    }
}

fn consumer_join(member: &str) -> Heartbeat {
    Heartbeat {
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 10_000,
        subscribed_topic_names: Some(vec!["t".to_string()]),
        owned: Some(Assignment::new()),
        client_id: "consumer".to_string(),
        ..Heartbeat::default()
    }
}

fn partitions(c: &GroupCoordinator, bytes: &[u8]) -> BTreeSet<i32> {
    decode_assignment(bytes, &c.topic_image())
        .into_values()
        .flatten()
        .collect()
}

/// A classic group "mg" of one member holding both partitions of `t` at generation 1.
async fn classic_group(c: &Arc<GroupCoordinator>, clock: &ManualClock) -> JoinResult {
    classic_group_joined_with(c, clock, classic_join("", &[])).await
}

/// [`classic_group`], its member joining with `join`.
async fn classic_group_joined_with(
    c: &Arc<GroupCoordinator>,
    clock: &ManualClock,
    join: JoinRequest,
) -> JoinResult {
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.join("mg", join).await })
    };
    let a = tokio::time::timeout(WITHIN, async {
        while !first.is_finished() {
            clock.advance(1_000);
            c.tick();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        first.await.unwrap()
    })
    .await
    .expect("the classic member's first join is answered");
    assert_eq!((a.error, a.generation), (0, 1));
    let both: Assignment = c
        .topic_image()
        .get("t")
        .map(|(id, _)| Assignment::from([(*id, BTreeSet::from([0, 1]))]))
        .unwrap();
    let synced = c
        .sync(
            "mg",
            1,
            &a.member_id,
            None,
            Some("consumer"),
            Some("range"),
            vec![(
                a.member_id.clone(),
                encode_assignment(&both, &c.topic_names(), 1),
            )],
        )
        .await;
    assert_eq!(synced.error, 0);
    a
}

fn committed(c: &GroupCoordinator, partition: i32) -> Option<i64> {
    c.fetch_offsets("mg", None, false)
        .unwrap()
        .into_iter()
        .find(|(tp, _)| tp.1 == partition)
        .and_then(|(_, o)| match o {
            FetchedOffset::Committed(v) => Some(v.offset),
            _ => None,
        })
}

fn reload(c: &GroupCoordinator, epoch: i32) {
    let partition = c.partition_for("mg");
    c.on_resign(partition);
    c.on_become_leader(partition, epoch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_classic_group_is_upgraded_and_downgraded_member_by_member() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator_with(dir.path(), clock.clone(), &[]).await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "mg").await;
    let a = classic_group(&c, &clock).await;
    let results = c
        .commit_offsets("mg", 1, &a.member_id, None, vec![commit(5, 0)])
        .await
        .unwrap();
    assert_eq!(results[0].1, 0);

    // Upgrade: the first consumer-protocol member converts the group in place. A keeps its
    // partitions (nothing is free for B yet) and its generation as member epoch.
    let b = c
        .consumer_group_heartbeat("mg", consumer_join("b"))
        .await
        .unwrap();
    assert_eq!(b.assignment.as_ref().map(|a| a.len()), Some(0));
    let listed = c.list(&[], &[]).unwrap();
    assert_eq!(
        (listed[0].group_type, listed[0].state_name),
        ("consumer", "Reconciling")
    );
    let described = c.describe_consumer_group("mg").unwrap();
    let (classic, _) = described
        .members
        .iter()
        .find(|(m, _)| m.member_id == a.member_id)
        .unwrap();
    assert!(classic.uses_classic_protocol());
    assert_eq!(classic.member_epoch, 1);
    // DescribeGroups sees no classic group any more (Kafka: Dead / GROUP_ID_NOT_FOUND).
    assert_eq!(
        c.describe("mg").unwrap_err(),
        ResponseError::GroupIdNotFound.code()
    );

    // A's commit at its generation still counts (it is its member epoch); its heartbeat
    // tells it to rejoin, and it revokes by rejoining without its partitions (eager).
    let results = c
        .commit_offsets("mg", 1, &a.member_id, None, vec![commit(6, 0)])
        .await
        .unwrap();
    assert_eq!(results[0].1, 0);
    assert_eq!(
        c.heartbeat("mg", 1, &a.member_id, None),
        ResponseError::RebalanceInProgress.code()
    );
    let rejoined = c.join("mg", classic_join(&a.member_id, &[])).await;
    assert_eq!(rejoined.error, 0);
    assert!(rejoined.generation > 1);
    assert!(rejoined.leader.is_empty() && rejoined.members.is_empty());
    let synced = c
        .sync(
            "mg",
            rejoined.generation,
            &a.member_id,
            None,
            Some("consumer"),
            Some("range"),
            Vec::new(),
        )
        .await;
    assert_eq!(synced.error, 0);
    let a_partitions = partitions(&c, &synced.assignment);
    assert_eq!(a_partitions.len(), 1);
    assert_eq!(
        c.heartbeat("mg", rejoined.generation, &a.member_id, None),
        0
    );
    // B gets the partition A gave up.
    let b2 = c
        .consumer_group_heartbeat(
            "mg",
            Heartbeat {
                member_id: "b".into(),
                member_epoch: b.member_epoch,
                rebalance_timeout_ms: -1,
                owned: Some(Assignment::new()),
                ..Heartbeat::default()
            },
        )
        .await
        .unwrap();
    let b_partitions: BTreeSet<i32> = b2.assignment.unwrap().into_values().flatten().collect();
    assert_eq!(b_partitions.len(), 1);
    assert!(a_partitions.is_disjoint(&b_partitions));

    // A reload gives back the same mixed group, the committed offset with it.
    reload(&c, 1);
    let described = c.describe_consumer_group("mg").unwrap();
    assert_eq!(described.members.len(), 2);
    let (classic, _) = described
        .members
        .iter()
        .find(|(m, _)| m.member_id == a.member_id)
        .unwrap();
    assert_eq!(classic.member_epoch, rejoined.generation);
    assert!(classic.uses_classic_protocol());
    assert_eq!(committed(&c, 0), Some(6));
    assert_eq!(
        c.heartbeat("mg", rejoined.generation, &a.member_id, None),
        0
    );

    // Downgrade: B leaves, only A (classic) is left: a classic group again, rebalancing.
    c.consumer_group_heartbeat(
        "mg",
        Heartbeat {
            member_id: "b".into(),
            member_epoch: -1,
            ..Heartbeat::default()
        },
    )
    .await
    .unwrap();
    let listed = c.list(&[], &[]).unwrap();
    assert_eq!(
        (listed[0].group_type, listed[0].state),
        ("classic", GroupState::PreparingRebalance)
    );
    assert_eq!(
        c.heartbeat("mg", rejoined.generation, &a.member_id, None),
        ResponseError::RebalanceInProgress.code()
    );
    // A reload finds the classic group with A in it.
    reload(&c, 2);
    let classic = c.describe("mg").unwrap().unwrap();
    assert_eq!(classic.members.len(), 1);
    assert_eq!(classic.members[0].member_id, a.member_id);
    assert_eq!(committed(&c, 0), Some(6));
    assert!(c.describe_consumer_group("mg").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disabled_policy_keeps_a_live_classic_group_classic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator_with(
        dir.path(),
        clock.clone(),
        &[("group.consumer.migration.policy", "disabled")],
    )
    .await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "mg").await;
    let a = classic_group(&c, &clock).await;
    let refused = c
        .consumer_group_heartbeat("mg", consumer_join("b"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ResponseError::GroupIdNotFound.code());
    assert_eq!(c.heartbeat("mg", 1, &a.member_id, None), 0);
    assert_eq!(c.list(&[], &[]).unwrap()[0].group_type, "classic");
}

/// Kafka's join and sync timeouts for a classic member of a consumer group: told to rejoin, it
/// has its rebalance timeout to send JoinGroup (the first answer starts it; later heartbeats
/// do not extend it), then its rebalance timeout to send SyncGroup; missing either removes it
/// long before its session timeout would, and its partitions go to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_member_that_does_not_rejoin_or_sync_in_time_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator_with(dir.path(), clock.clone(), &[]).await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "mg").await;
    let slow = |member_id: &str| JoinRequest {
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 3_000,
        ..classic_join(member_id, &[])
    };
    let a = classic_group_joined_with(&c, &clock, slow("")).await;
    let members = |c: &GroupCoordinator| -> BTreeSet<String> {
        c.describe_consumer_group("mg")
            .unwrap()
            .members
            .iter()
            .map(|(m, _)| m.member_id.clone())
            .collect()
    };

    // B upgrades the group; A is told to rejoin, twice, and never does.
    c.consumer_group_heartbeat("mg", consumer_join("b"))
        .await
        .unwrap();
    assert_eq!(
        c.heartbeat("mg", 1, &a.member_id, None),
        ResponseError::RebalanceInProgress.code()
    );
    clock.advance(2_000);
    assert_eq!(
        c.heartbeat("mg", 1, &a.member_id, None),
        ResponseError::RebalanceInProgress.code()
    );
    clock.advance(900);
    c.tick();
    assert!(
        members(&c).contains(&a.member_id),
        "removed before its rebalance timeout"
    );
    clock.advance(200);
    c.tick();
    assert_eq!(
        members(&c),
        BTreeSet::from(["b".to_string()]),
        "a classic member that did not rejoin within its rebalance timeout stays"
    );

    // A comes back as a new classic member, joins and never syncs: removed after its
    // rebalance timeout, though its session (30 s) is far from over.
    let again = c.join("mg", slow("")).await;
    assert_eq!(again.error, 0);
    assert!(members(&c).contains(&again.member_id));
    clock.advance(3_100);
    c.tick();
    assert!(
        !members(&c).contains(&again.member_id),
        "a classic member that did not sync within its rebalance timeout stays"
    );

    // One that joins and syncs in time stays as long as it heartbeats.
    let third = c.join("mg", slow("")).await;
    assert_eq!(third.error, 0);
    clock.advance(1_000);
    let synced = c
        .sync(
            "mg",
            third.generation,
            &third.member_id,
            None,
            Some("consumer"),
            Some("range"),
            Vec::new(),
        )
        .await;
    assert_eq!(synced.error, 0);
    for _ in 0..4 {
        clock.advance(2_000);
        c.heartbeat("mg", third.generation, &third.member_id, None);
        c.tick();
    }
    assert!(members(&c).contains(&third.member_id));
}

/// Kafka's downgrade on a static member's replacement: the last consumer-protocol member is
/// static, and its instance comes back as a classic member under a new member id (a rolling
/// restart to `group.protocol=classic`). It replaces the old member at once, not after its
/// session, and the group, all classic now, is a classic group again with both members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_members_return_as_classic_downgrades_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let f = coordinator_with(dir.path(), clock.clone(), &[]).await;
    let c = f.c.clone();
    c.ensure_offsets_topic().await.unwrap();
    loaded(&c, "mg").await;
    let a = classic_group(&c, &clock).await;
    // A static consumer-protocol member upgrades the group.
    c.consumer_group_heartbeat(
        "mg",
        Heartbeat {
            instance_id: Some("instance-s".to_string()),
            ..consumer_join("s")
        },
    )
    .await
    .unwrap();
    assert_eq!(c.list(&[], &[]).unwrap()[0].group_type, "consumer");

    // Its instance restarts with the classic protocol: a JoinGroup without a member id.
    let back = c
        .join(
            "mg",
            JoinRequest {
                group_instance_id: Some("instance-s".to_string()),
                ..classic_join("", &[])
            },
        )
        .await;
    assert_eq!(
        back.error, 0,
        "the static instance's classic join is refused"
    );
    assert_ne!(back.member_id, "s");
    let listed = c.list(&[], &[]).unwrap();
    assert_eq!(
        listed[0].group_type, "classic",
        "the group was not downgraded"
    );
    let classic = c.describe("mg").unwrap().unwrap();
    let ids: BTreeSet<String> = classic
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([a.member_id.clone(), back.member_id.clone()])
    );
    // A reload finds the same classic group.
    reload(&c, 1);
    assert_eq!(c.list(&[], &[]).unwrap()[0].group_type, "classic");
    assert_eq!(c.describe("mg").unwrap().unwrap().members.len(), 2);

    // A consumer-protocol member that is not static still cannot switch by a classic join.
    c.consumer_group_heartbeat("mg", consumer_join("d"))
        .await
        .unwrap();
    let refused = c.join("mg", classic_join("d", &[])).await;
    assert_eq!(refused.error, ResponseError::UnknownMemberId.code());
}
