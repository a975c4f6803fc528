//! Scenarios of share group membership: join, epochs, shared assignment, leave, expiry.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::group::{ShareGroup, ShareGroupConfig, ShareGroupState, ShareHeartbeat};
use crate::group::consumer::TopicImage;

fn image(partitions: i32) -> TopicImage {
    TopicImage::from([("orders".to_string(), (Uuid::from_u128(7), partitions))])
}

fn join(member_id: &str) -> ShareHeartbeat {
    ShareHeartbeat {
        member_id: member_id.to_string(),
        member_epoch: 0,
        subscribed_topic_names: Some(vec!["orders".to_string()]),
        ..ShareHeartbeat::default()
    }
}

fn beat(member_id: &str, member_epoch: i32) -> ShareHeartbeat {
    ShareHeartbeat {
        member_id: member_id.to_string(),
        member_epoch,
        ..ShareHeartbeat::default()
    }
}

#[test]
fn members_join_and_all_share_the_one_partition() {
    let (config, topics) = (ShareGroupConfig::default(), image(1));
    let mut group = ShareGroup::new();
    assert_eq!(group.state(), ShareGroupState::Empty);
    let a = group.heartbeat(join("a"), &topics, &config, 0).unwrap();
    assert_eq!(a.member_epoch, 1);
    let assigned = a.assignment.unwrap();
    assert_eq!(assigned[&Uuid::from_u128(7)].len(), 1);
    let b = group.heartbeat(join("b"), &topics, &config, 0).unwrap();
    assert_eq!(b.member_epoch, 2);
    assert!(b.assignment.is_some());
    // a learns the new epoch with its (unchanged) assignment on its next heartbeat.
    let a = group.heartbeat(beat("a", 1), &topics, &config, 10).unwrap();
    assert_eq!(a.member_epoch, 2);
    assert!(a.assignment.is_some());
    let a = group.heartbeat(beat("a", 2), &topics, &config, 20).unwrap();
    assert!(a.assignment.is_none(), "nothing changed");
    assert_eq!(group.state(), ShareGroupState::Stable);
    assert_eq!(group.assigned_partitions().len(), 1);
}

#[test]
fn a_wrong_epoch_is_fenced_and_an_unknown_member_refused() {
    let (config, topics) = (ShareGroupConfig::default(), image(2));
    let mut group = ShareGroup::new();
    group.heartbeat(join("a"), &topics, &config, 0).unwrap();
    let fenced = group
        .heartbeat(beat("a", 5), &topics, &config, 0)
        .unwrap_err();
    assert_eq!(fenced.code, ResponseError::FencedMemberEpoch.code());
    let unknown = group
        .heartbeat(beat("zz", 1), &topics, &config, 0)
        .unwrap_err();
    assert_eq!(unknown.code, ResponseError::UnknownMemberId.code());
}

#[test]
fn the_group_size_is_bounded() {
    let config = ShareGroupConfig {
        max_size: 1,
        ..ShareGroupConfig::default()
    };
    let topics = image(1);
    let mut group = ShareGroup::new();
    group.heartbeat(join("a"), &topics, &config, 0).unwrap();
    let full = group.heartbeat(join("b"), &topics, &config, 0).unwrap_err();
    assert_eq!(full.code, ResponseError::GroupMaxSizeReached.code());
}

#[test]
fn leaving_and_expiring_members_bump_the_epoch() {
    let (config, topics) = (ShareGroupConfig::default(), image(1));
    let mut group = ShareGroup::new();
    group.heartbeat(join("a"), &topics, &config, 0).unwrap();
    group.heartbeat(join("b"), &topics, &config, 0).unwrap();
    let left = group.heartbeat(beat("a", -1), &topics, &config, 0).unwrap();
    assert_eq!(left.member_epoch, -1);
    assert_eq!(group.group_epoch(), 3);
    let expiry = i64::from(config.session_timeout_ms);
    assert_eq!(group.tick(None, expiry - 1), Vec::<String>::new());
    assert_eq!(group.tick(None, expiry), vec!["b".to_string()]);
    assert_eq!(group.state(), ShareGroupState::Empty);
    assert_eq!(group.group_epoch(), 4);
}

#[test]
fn new_partitions_give_every_member_a_new_epoch() {
    let config = ShareGroupConfig::default();
    let mut group = ShareGroup::new();
    group.heartbeat(join("a"), &image(1), &config, 0).unwrap();
    group.heartbeat(join("b"), &image(1), &config, 0).unwrap();
    group.tick(Some(&image(2)), 1);
    assert_eq!(group.group_epoch(), 3);
    let a = group
        .heartbeat(beat("a", 1), &image(2), &config, 2)
        .unwrap();
    assert_eq!(a.member_epoch, 3);
    let b = group
        .heartbeat(beat("b", 2), &image(2), &config, 2)
        .unwrap();
    let mine = |x: &crate::group::assignor::Assignment| x[&Uuid::from_u128(7)].clone();
    // Two members, two partitions: one each.
    assert_ne!(mine(&a.assignment.unwrap()), mine(&b.assignment.unwrap()));
}
