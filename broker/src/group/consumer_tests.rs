//! Scenarios of the KIP-848 consumer group state machine: epochs, reconciliation (a partition
//! reaches its new owner only after the old one revoked it), fencing, static members, leaving,
//! timeouts and subscriptions by name and by regex.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{Assignment, Assignor};
use super::consumer::{
    ConsumerGroup, ConsumerGroupConfig, ConsumerGroupState, Heartbeat, HeartbeatAnswer,
    HeartbeatError, TopicImage,
};
use super::consumer_member::MemberState;

const ORDERS: Uuid = Uuid::from_bytes([1; 16]);
const AUDIT: Uuid = Uuid::from_bytes([2; 16]);

fn config() -> ConsumerGroupConfig {
    ConsumerGroupConfig {
        session_timeout_ms: 45_000,
        heartbeat_interval_ms: 5_000,
        assignors: vec![Assignor::Uniform, Assignor::Range],
        max_size: 10,
    }
}

fn image(orders: i32) -> TopicImage {
    BTreeMap::from([
        ("orders".to_string(), (ORDERS, orders)),
        ("audit-1".to_string(), (AUDIT, 2)),
    ])
}

fn join(member: &str, topics: &[&str]) -> Heartbeat {
    Heartbeat {
        member_id: member.to_string(),
        member_epoch: 0,
        rebalance_timeout_ms: 300_000,
        subscribed_topic_names: Some(topics.iter().map(|t| t.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..Heartbeat::default()
    }
}

fn beat(member: &str, epoch: i32, owned: Option<&Assignment>) -> Heartbeat {
    Heartbeat {
        member_id: member.to_string(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: owned.cloned(),
        ..Heartbeat::default()
    }
}

struct Scenario {
    group: ConsumerGroup,
    topics: TopicImage,
    now: i64,
    /// What each client holds, as its last answer told it.
    held: BTreeMap<String, (i32, Assignment)>,
}

impl Scenario {
    fn new() -> Self {
        Self {
            group: ConsumerGroup::new(0),
            topics: image(6),
            now: 0,
            held: BTreeMap::new(),
        }
    }

    fn send(&mut self, request: Heartbeat) -> Result<HeartbeatAnswer, HeartbeatError> {
        let id = request.member_id.clone();
        let answer = self.group.heartbeat(
            request,
            &self.topics,
            &config(),
            || "generated".into(),
            self.now,
        );
        if let Ok(a) = &answer {
            let entry = self.held.entry(id).or_default();
            entry.0 = a.member_epoch;
            if let Some(assigned) = &a.assignment {
                entry.1 = assigned.clone();
            }
        }
        answer
    }

    /// A heartbeat as a client sends it: its epoch and what it holds.
    fn heartbeat(&mut self, member: &str) -> HeartbeatAnswer {
        let (epoch, owned) = self.held[member].clone();
        self.send(beat(member, epoch, Some(&owned))).unwrap()
    }

    /// Heartbeats every client until nothing changes; checks that no partition is ever held by
    /// two clients at once.
    fn settle(&mut self) {
        for _ in 0..20 {
            let before = self.held.clone();
            let ids: Vec<String> = self.held.keys().cloned().collect();
            for id in ids {
                self.heartbeat(&id);
                self.assert_no_partition_held_twice();
            }
            if before == self.held {
                return;
            }
        }
        panic!("the group did not settle: {:?}", self.held);
    }

    fn assert_no_partition_held_twice(&self) {
        let mut seen = BTreeSet::new();
        for (id, (_, assigned)) in &self.held {
            for (t, ps) in assigned {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}-{p} held twice (by {id} too)");
                }
            }
        }
    }

    fn count(&self, member: &str) -> usize {
        self.held[member].1.values().map(BTreeSet::len).sum()
    }
}

#[test]
fn three_members_each_get_a_share_at_the_group_epoch() {
    let mut s = Scenario::new();
    for m in ["a", "b", "c"] {
        let answer = s.send(join(m, &["orders"])).unwrap();
        assert_eq!(answer.heartbeat_interval_ms, 5_000);
        assert!(
            answer.assignment.is_some(),
            "a join always gets an assignment"
        );
    }
    s.settle();
    assert_eq!(s.group.state(), ConsumerGroupState::Stable);
    let epoch = s.group.group_epoch();
    for m in ["a", "b", "c"] {
        assert_eq!(s.count(m), 2, "{m}");
        assert_eq!(s.held[m].0, epoch);
    }
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut s = Scenario::new();
    s.send(join("a", &["orders"])).unwrap();
    assert_eq!(s.count("a"), 6);
    let epoch_a = s.held["a"].0;
    // b joins: its share is still a's, so b gets nothing yet.
    let b = s.send(join("b", &["orders"])).unwrap();
    assert_eq!(b.assignment, Some(Assignment::new()));
    assert_eq!(s.group.state(), ConsumerGroupState::Reconciling);
    assert_eq!(
        s.group.members()["b"].state,
        MemberState::UnreleasedPartitions
    );
    // a learns what to give up; its epoch stays until it has.
    let a = s.heartbeat("a");
    assert_eq!(a.member_epoch, epoch_a);
    assert_eq!(s.count("a"), 3);
    assert_eq!(
        s.group.members()["a"].state,
        MemberState::UnrevokedPartitions
    );
    // b asks again before a confirmed: still nothing.
    s.heartbeat("b");
    assert_eq!(s.count("b"), 0);
    // a confirms (its owned partitions no longer include the revoked ones) and moves on.
    let a = s.heartbeat("a");
    assert!(a.member_epoch > epoch_a);
    let b = s.heartbeat("b");
    assert_eq!(s.count("b"), 3);
    assert_eq!(b.member_epoch, a.member_epoch);
    assert_eq!(s.group.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_fourth_member_takes_partitions_without_double_ownership() {
    let mut s = Scenario::new();
    for m in ["a", "b", "c"] {
        s.send(join(m, &["orders"])).unwrap();
    }
    s.settle();
    let before: BTreeMap<String, Assignment> = s
        .held
        .iter()
        .map(|(id, (_, a))| (id.clone(), a.clone()))
        .collect();
    s.send(join("d", &["orders"])).unwrap();
    s.settle();
    let counts: Vec<usize> = ["a", "b", "c", "d"].iter().map(|m| s.count(m)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 6);
    assert!(counts.iter().all(|&c| (1..=2).contains(&c)), "{counts:?}");
    // Sticky: the old members kept a subset of what they had.
    for m in ["a", "b", "c"] {
        assert!(s.held[m].1[&ORDERS].is_subset(&before[m][&ORDERS]), "{m}");
    }
}

#[test]
fn leaving_and_session_expiry_free_partitions_for_the_others() {
    let mut s = Scenario::new();
    for m in ["a", "b", "c"] {
        s.send(join(m, &["orders"])).unwrap();
    }
    s.settle();
    let left = s.send(beat("a", -1, None)).unwrap();
    assert_eq!(left.member_epoch, -1);
    s.held.remove("a");
    s.settle();
    assert_eq!(s.count("b") + s.count("c"), 6);
    // c stops heartbeating: after the session timeout b has everything.
    s.now += 30_000;
    s.heartbeat("b");
    s.now += 20_000;
    assert_eq!(s.group.tick(Some(&s.topics), s.now), vec!["c".to_string()]);
    s.held.remove("c");
    s.settle();
    assert_eq!(s.count("b"), 6);
    let gone = s.send(beat("c", 5, None)).unwrap_err();
    assert_eq!(gone.code, ResponseError::UnknownMemberId.code());
}

#[test]
fn wrong_epochs_are_fenced_and_a_lost_answer_is_forgiven() {
    let mut s = Scenario::new();
    s.send(join("a", &["orders"])).unwrap();
    let (epoch, owned) = s.held["a"].clone();
    let ahead = s.send(beat("a", epoch + 1, Some(&owned))).unwrap_err();
    assert_eq!(ahead.code, ResponseError::FencedMemberEpoch.code());
    let behind = s.send(beat("a", epoch - 1, Some(&owned))).unwrap_err();
    assert_eq!(behind.code, ResponseError::FencedMemberEpoch.code());
    // b joins; a gets its next epoch but the answer is lost: a comes back with the previous
    // epoch and a subset of its assignment, which is accepted.
    s.send(join("b", &["orders"])).unwrap();
    s.heartbeat("a"); // revocation requested
    let (_, kept) = s.held["a"].clone();
    let answer = s.send(beat("a", epoch, Some(&kept))).unwrap();
    assert!(answer.member_epoch > epoch);
    let lost = s.send(beat("a", epoch, Some(&kept))).unwrap();
    assert_eq!(lost.member_epoch, answer.member_epoch);
    // Rejoining with epoch 0 gives up everything and starts over.
    let rejoined = s.send(join("a", &["orders"])).unwrap();
    assert!(rejoined.member_epoch > answer.member_epoch);
}

#[test]
fn static_members_keep_their_partitions_across_a_restart() {
    let mut s = Scenario::new();
    let static_join = |member: &str| Heartbeat {
        instance_id: Some("instance-1".into()),
        ..join(member, &["orders"])
    };
    s.send(static_join("a1")).unwrap();
    s.send(join("b", &["orders"])).unwrap();
    s.settle();
    let mine = s.held["a1"].1.clone();
    let epoch = s.group.group_epoch();
    // A second incarnation while the first is alive is refused.
    let refused = s.send(static_join("a2")).unwrap_err();
    assert_eq!(refused.code, ResponseError::UnreleasedInstanceId.code());
    // The first leaves temporarily (-2): nothing moves.
    let left = s
        .send(Heartbeat {
            instance_id: Some("instance-1".into()),
            ..beat("a1", -2, None)
        })
        .unwrap();
    assert_eq!(left.member_epoch, -2);
    assert_eq!(s.group.group_epoch(), epoch);
    // The new incarnation gets the same partitions without a rebalance of the others.
    let back = s.send(static_join("a2")).unwrap();
    assert_eq!(back.assignment, Some(mine));
    assert!(!s.group.members().contains_key("a1"));
    // The old incarnation is fenced.
    let fenced = s
        .send(Heartbeat {
            instance_id: Some("instance-1".into()),
            ..beat("a1", 1, None)
        })
        .unwrap_err();
    assert_eq!(fenced.code, ResponseError::FencedInstanceId.code());
}

#[test]
fn a_regex_subscription_picks_up_topics_created_later_and_new_partitions_are_assigned() {
    let mut s = Scenario::new();
    s.topics.remove("audit-1");
    let regex_join = Heartbeat {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some("audit-.*".into()),
        ..join("a", &[])
    };
    let answer = s.send(regex_join).unwrap();
    assert_eq!(answer.assignment, Some(Assignment::new()));
    // The topic appears in the image: the next heartbeat assigns it.
    s.topics = image(6);
    s.heartbeat("a");
    assert_eq!(s.held["a"].1.get(&AUDIT), Some(&BTreeSet::from([0, 1])));
    assert!(
        !s.held["a"].1.contains_key(&ORDERS),
        "the regex must match whole names"
    );
    // More partitions of a subscribed topic are assigned too.
    s.send(join("b", &["orders"])).unwrap();
    s.settle();
    assert_eq!(s.count("b"), 6);
    s.topics = image(8);
    s.settle();
    assert_eq!(s.count("b"), 8);
}

#[test]
fn invalid_regex_unknown_members_and_a_full_group_are_refused() {
    let mut s = Scenario::new();
    let bad = Heartbeat {
        subscribed_topic_regex: Some("(".into()),
        ..join("a", &[])
    };
    assert_eq!(
        s.send(bad).unwrap_err().code,
        ResponseError::InvalidRegularExpression.code()
    );
    assert_eq!(
        s.send(beat("nobody", 3, None)).unwrap_err().code,
        ResponseError::UnknownMemberId.code()
    );
    for i in 0..10 {
        s.send(join(&format!("m{i}"), &["orders"])).unwrap();
    }
    assert_eq!(
        s.send(join("one-too-many", &["orders"])).unwrap_err().code,
        ResponseError::GroupMaxSizeReached.code()
    );
}

#[test]
fn a_member_that_does_not_revoke_within_its_rebalance_timeout_is_removed() {
    let mut s = Scenario::new();
    s.send(Heartbeat {
        rebalance_timeout_ms: 1_000,
        ..join("a", &["orders"])
    })
    .unwrap();
    s.send(join("b", &["orders"])).unwrap();
    s.heartbeat("a"); // asked to revoke; never confirms
    s.now += 1_001;
    assert_eq!(s.group.tick(Some(&s.topics), s.now), vec!["a".to_string()]);
    s.held.remove("a");
    s.settle();
    assert_eq!(s.count("b"), 6);
}

#[test]
fn offset_commits_need_the_current_member_epoch() {
    let mut s = Scenario::new();
    s.send(join("a", &["orders"])).unwrap();
    let epoch = s.held["a"].0;
    assert_eq!(s.group.validate_commit("a", epoch), Ok(()));
    assert_eq!(
        s.group.validate_commit("a", epoch - 1),
        Err(ResponseError::StaleMemberEpoch.code())
    );
    assert_eq!(
        s.group.validate_commit("x", epoch),
        Err(ResponseError::UnknownMemberId.code())
    );
}
