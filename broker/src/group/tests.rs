//! The classic group state machine driven by hand-moved time: join handshake, initial delay,
//! rebalances on join/leave/expiry, static membership, fencing, commit checks, offset expiry.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use prometheus::IntCounter;
use tokio::sync::oneshot;

use super::classic::{Group, GroupConfig, GroupState};
use super::member::{JoinResult, SyncResult};
use super::rebalance::{JoinOutcome, JoinRequest};
use super::records::OffsetCommitValue;
use super::sync::SyncOutcome;
use crate::clock::{Clock, ManualClock};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const INITIAL_DELAY: i64 = 3_000;

fn group() -> (Group, ManualClock, IntCounter) {
    let config = GroupConfig {
        initial_rebalance_delay_ms: INITIAL_DELAY,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        max_size: 10,
    };
    let rebalances = IntCounter::new("r", "r").unwrap();
    let clock = ManualClock::new(1_000_000);
    let g = Group::new("g", config, rebalances.clone(), clock.now_ms());
    (g, clock, rebalances)
}

fn request(member_id: &str, instance: Option<&str>, metadata: &'static [u8]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".to_string(),
        protocols: vec![
            ("range".to_string(), Bytes::from_static(metadata)),
            ("roundrobin".to_string(), Bytes::new()),
        ],
        require_known_member_id: true,
    }
}

fn done(outcome: JoinOutcome) -> JoinResult {
    match outcome {
        JoinOutcome::Done(r) => r,
        JoinOutcome::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting(outcome: JoinOutcome) -> oneshot::Receiver<JoinResult> {
    match outcome {
        JoinOutcome::Wait(rx) => rx,
        JoinOutcome::Done(r) => panic!("expected to wait, got {r:?}"),
    }
}

/// MEMBER_ID_REQUIRED, then the real join; returns the member id and the parked join.
fn join_dynamic(g: &mut Group, now: i64) -> (String, oneshot::Receiver<JoinResult>) {
    let first = done(g.join(request("", None, b"m"), now));
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    assert!(first.member_id.starts_with("client-"));
    let rx = waiting(g.join(request(&first.member_id, None, b"m"), now));
    (first.member_id, rx)
}

/// Leader syncs with one assignment per member; returns every member's SyncResult.
fn sync_all(g: &mut Group, now: i64) -> Vec<SyncResult> {
    let generation = g.generation();
    let leader = g.leader.clone().unwrap();
    let ids: Vec<String> = g.members().iter().map(|m| m.member_id.clone()).collect();
    let mut parked = Vec::new();
    for id in ids.iter().filter(|id| **id != leader) {
        match g.sync(generation, id, None, None, None, vec![], now) {
            SyncOutcome::Wait(rx) => parked.push(rx),
            other => panic!("follower sync: {other:?}"),
        }
    }
    let assignments = ids
        .iter()
        .map(|id| (id.clone(), Bytes::from(format!("for {id}"))))
        .collect();
    let SyncOutcome::Assigned(rx) = g.sync(generation, &leader, None, None, None, assignments, now)
    else {
        panic!("leader sync was not taken");
    };
    parked.push(rx);
    g.finish_sync(Ok(()), now);
    parked
        .into_iter()
        .map(|mut rx| rx.try_recv().expect("sync answered"))
        .collect()
}

#[test]
fn first_join_waits_for_the_initial_delay_then_forms_generation_one() {
    let (mut g, clock, rebalances) = group();
    let (a, mut rx_a) = join_dynamic(&mut g, clock.now_ms());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    clock.advance(1_000);
    let (b, mut rx_b) = join_dynamic(&mut g, clock.now_ms());
    // Everyone has joined, but an empty group waits out its initial delay for more.
    g.tick(clock.now_ms());
    assert!(rx_a.try_recv().is_err());
    clock.advance(INITIAL_DELAY);
    g.tick(clock.now_ms());
    let ra = rx_a.try_recv().unwrap();
    let rb = rx_b.try_recv().unwrap();
    assert_eq!((ra.error, rb.error), (0, 0));
    assert_eq!((ra.generation, rb.generation), (1, 1));
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2, "the leader gets the member list");
    assert!(rb.members.is_empty());
    assert_eq!(rb.member_id, b);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(rebalances.get(), 1);
    let synced = sync_all(&mut g, clock.now_ms());
    assert!(synced.iter().all(|r| r.error == 0));
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(
        g.member(&b).unwrap().assignment,
        Bytes::from(format!("for {b}"))
    );
}

fn stable_group_of_two() -> (Group, ManualClock, String, String) {
    let (mut g, clock, _) = group();
    let (a, _rx_a) = join_dynamic(&mut g, clock.now_ms());
    let (b, _rx_b) = join_dynamic(&mut g, clock.now_ms());
    clock.advance(INITIAL_DELAY);
    g.tick(clock.now_ms());
    sync_all(&mut g, clock.now_ms());
    assert_eq!(g.state(), GroupState::Stable);
    (g, clock, a, b)
}

#[test]
fn a_new_member_triggers_a_rebalance_that_completes_when_all_rejoin() {
    let (mut g, clock, a, b) = stable_group_of_two();
    let (_c, mut rx_c) = join_dynamic(&mut g, clock.now_ms());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let now = clock.now_ms();
    assert_eq!(
        g.heartbeat(1, &a, None, now),
        ResponseError::RebalanceInProgress.code()
    );
    let mut rx_a = waiting(g.join(request(&a, None, b"m"), now));
    assert!(rx_c.try_recv().is_err(), "b has not rejoined yet");
    let mut rx_b = waiting(g.join(request(&b, None, b"m"), now));
    // No initial delay once the group had members: the last rejoin completes the phase.
    for rx in [&mut rx_a, &mut rx_b, &mut rx_c] {
        let r = rx.try_recv().unwrap();
        assert_eq!((r.error, r.generation), (0, 2));
    }
    assert_eq!(
        g.heartbeat(1, &a, None, now),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(g.heartbeat(2, &a, None, now), 0);
}

#[test]
fn an_expired_member_is_removed_and_the_rest_rebalance() {
    let (mut g, clock, a, b) = stable_group_of_two();
    clock.advance(i64::from(SESSION) / 2);
    assert_eq!(g.heartbeat(1, &a, None, clock.now_ms()), 0);
    clock.advance(i64::from(SESSION) / 2 + 1);
    let removed = g.tick(clock.now_ms());
    assert_eq!(removed, vec![b.clone()]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    let mut rx = waiting(g.join(request(&a, None, b"m"), clock.now_ms()));
    let r = rx.try_recv().unwrap();
    assert_eq!((r.generation, r.members.len()), (2, 1));
    assert_eq!(
        g.heartbeat(2, &b, None, clock.now_ms()),
        ResponseError::UnknownMemberId.code()
    );
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let (mut g, clock, a, b) = stable_group_of_two();
    assert_eq!(g.leave(&a, None, clock.now_ms()), 0);
    // b keeps heartbeating but never rejoins.
    for _ in 0..3 {
        clock.advance(i64::from(REBALANCE) / 3);
        g.heartbeat(1, &b, None, clock.now_ms());
        g.tick(clock.now_ms());
    }
    assert_eq!(g.state(), GroupState::Empty);
    assert!(g.members().is_empty());
    assert!(g.take_dirty(), "an emptied group is stored");
}

#[test]
fn a_static_member_restarting_keeps_generation_and_assignment() {
    let (mut g, clock, rebalances) = group();
    let mut rx = waiting(g.join(request("", Some("i1"), b"m"), clock.now_ms()));
    clock.advance(INITIAL_DELAY);
    g.tick(clock.now_ms());
    let first = rx.try_recv().unwrap();
    sync_all(&mut g, clock.now_ms());
    let old = first.member_id;
    // The client restarts and joins again with an empty member id and its instance id.
    let again = done(g.join(request("", Some("i1"), b"m"), clock.now_ms()));
    assert_eq!((again.error, again.generation), (0, 1));
    assert_ne!(again.member_id, old);
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(rebalances.get(), 1, "no rebalance");
    assert!(g.take_dirty(), "the new member id is stored");
    let SyncOutcome::Done(sync) = g.sync(
        1,
        &again.member_id,
        Some("i1"),
        None,
        None,
        vec![],
        clock.now_ms(),
    ) else {
        panic!("a stable group answers SyncGroup at once");
    };
    assert_eq!(sync.assignment, Bytes::from(format!("for {old}")));
    // The old incarnation is fenced.
    assert_eq!(
        g.heartbeat(1, &old, Some("i1"), clock.now_ms()),
        ResponseError::FencedInstanceId.code()
    );
}

#[test]
fn commits_are_checked_against_member_and_generation() {
    let (mut g, clock, a, _b) = stable_group_of_two();
    let now = clock.now_ms();
    assert_eq!(g.validate_commit(1, &a, None, now), Ok(true));
    assert_eq!(
        g.validate_commit(7, &a, None, now),
        Err(ResponseError::IllegalGeneration.code())
    );
    assert_eq!(
        g.validate_commit(1, "stranger", None, now),
        Err(ResponseError::UnknownMemberId.code())
    );
    assert_eq!(
        g.validate_commit(-1, "", None, now),
        Err(ResponseError::UnknownMemberId.code()),
        "a group with members refuses simple commits"
    );
    let (mut empty, _, _) = group();
    assert_eq!(empty.validate_commit(-1, "", None, now), Ok(false));
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention() {
    let (mut g, clock, _) = group();
    let committed = |ts| OffsetCommitValue {
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: ts,
    };
    let offsets = g.committed_offsets_mut();
    offsets.apply(("t".into(), 0), committed(clock.now_ms()), 0);
    offsets.apply(("t".into(), 1), committed(clock.now_ms() + 500), 1);
    assert!(g.expired_offsets(clock.now_ms() + 999, 1000).is_empty());
    assert_eq!(
        g.expired_offsets(clock.now_ms() + 1000, 1000),
        vec![("t".to_string(), 0)]
    );
    let (g2, clock2, _, _) = stable_group_of_two();
    assert!(
        g2.expired_offsets(clock2.now_ms() + 10_000_000, 1)
            .is_empty(),
        "a group with members keeps its offsets"
    );
}

#[test]
fn protocols_no_member_supports_are_refused() {
    let (mut g, clock, _a, _b) = stable_group_of_two();
    let mut other = request("", None, b"m");
    other.protocols = vec![("sticky".to_string(), Bytes::new())];
    assert_eq!(
        done(g.join(other, clock.now_ms())).error,
        ResponseError::InconsistentGroupProtocol.code()
    );
    let mut short = request("", None, b"m");
    short.session_timeout_ms = 10;
    assert_eq!(
        done(g.join(short, clock.now_ms())).error,
        ResponseError::InvalidSessionTimeout.code()
    );
}

#[test]
fn the_last_member_leaving_empties_the_group_at_once() {
    let (mut g, clock, a, b) = stable_group_of_two();
    assert_eq!(g.leave(&a, None, clock.now_ms()), 0);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(g.leave(&b, None, clock.now_ms()), 0);
    assert_eq!(g.state(), GroupState::Empty, "no timer needed");
    assert_eq!(g.generation(), 2);
    assert!(g.take_dirty());
    assert_eq!(
        g.leave(&b, None, clock.now_ms()),
        ResponseError::UnknownMemberId.code()
    );
}
