use proptest::prelude::*;

use super::*;

fn broker(id: i32, state: pb::BrokerState, replicas: u32) -> BrokerView {
    BrokerView {
        id,
        state,
        rack: None,
        replicas,
        leaders: 0,
        directory_id: None,
    }
}

fn admin(brokers: Vec<BrokerView>, topics: &[(&str, usize)]) -> AdminView {
    AdminView {
        brokers,
        topics: topics.iter().map(|(n, rf)| (n.to_string(), *rf)).collect(),
        ..AdminView::default()
    }
}

use pb::BrokerState::{Active, Draining, Fenced};

#[test]
fn scale_up_and_creation_set_the_spec() {
    assert_eq!(scale_step(3, None, &[0, 1, 2], None), ScaleStep::Set(3));
    assert_eq!(scale_step(5, Some(3), &[0, 1, 2], None), ScaleStep::Set(5));
    assert_eq!(scale_step(3, Some(3), &[0, 1, 2], None), ScaleStep::Set(3));
}

#[test]
fn scale_down_drains_the_highest_ordinal_first_then_shrinks() {
    let voters = [0, 1, 2];
    let topics = [("orders", 3)];
    let a = admin((0..5).map(|id| broker(id, Active, 4)).collect(), &topics);
    assert_eq!(
        scale_step(3, Some(5), &voters, Some(&a)),
        ScaleStep::Drain(4)
    );
    let mut a2 = a.clone();
    a2.brokers[4].state = Draining;
    assert!(matches!(
        scale_step(3, Some(5), &voters, Some(&a2)),
        ScaleStep::Wait(m) if m.contains("broker 4")
    ));
    a2.brokers[4].replicas = 0;
    assert_eq!(
        scale_step(3, Some(5), &voters, Some(&a2)),
        ScaleStep::Drain(3)
    );
    a2.brokers[3].replicas = 0;
    assert_eq!(
        scale_step(3, Some(5), &voters, Some(&a2)),
        ScaleStep::Set(3)
    );
}

#[test]
fn a_drain_keeps_the_statefulset_size_and_says_what_runs() {
    let a = admin(
        (0..5).map(|id| broker(id, Active, 4)).collect(),
        &[("orders", 3)],
    );
    let decision = decide_scale(3, Some(5), &[0, 1, 2], Some(&a));
    assert_eq!(decision.step, ScaleStep::Drain(4));
    assert_eq!(decision.statefulset_replicas, 5);
    assert_eq!(
        decision.working,
        vec!["draining broker 4", "scaling from 5 to 3 brokers"]
    );
    let blocked = decide_scale(2, Some(3), &[0, 1, 2], Some(&a));
    assert_eq!(blocked.statefulset_replicas, 3);
    assert!(blocked.blocked.is_some() && blocked.working.is_empty());
    let created = decide_scale(3, None, &[0, 1, 2], None);
    assert_eq!(created.statefulset_replicas, 3);
    assert!(created.working.is_empty());
}

#[test]
fn scale_down_is_blocked_by_wide_topics_and_by_voters() {
    let a = admin(
        (0..5).map(|id| broker(id, Active, 4)).collect(),
        &[("orders", 3), ("audit", 4), ("__consumer_offsets", 3)],
    );
    match scale_step(3, Some(5), &[0, 1, 2], Some(&a)) {
        ScaleStep::Blocked(m) => {
            assert!(m.contains("audit (replication factor 4)"), "{m}");
            assert!(!m.contains("orders"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    match scale_step(2, Some(3), &[0, 1, 2], Some(&a)) {
        ScaleStep::Blocked(m) => assert!(m.contains("voters"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        scale_step(3, Some(5), &[0, 1, 2], None),
        ScaleStep::Wait(_)
    ));
}

#[test]
fn only_stopped_empty_non_voters_above_the_size_are_unregistered() {
    let a = admin(
        vec![
            broker(1, Fenced, 0),
            broker(3, Fenced, 0),
            broker(4, Fenced, 2),
            broker(5, Active, 0),
        ],
        &[],
    );
    assert_eq!(brokers_to_unregister(&a, 3, &[0, 1, 2]), vec![3]);
}

#[test]
fn rebalance_is_due_once_per_broker_set() {
    let mut a = admin((0..5).map(|id| broker(id, Active, 1)).collect(), &[]);
    assert!(rebalance_due(&a, 5, true, &[0, 1, 2]));
    assert!(!rebalance_due(&a, 5, true, &[0, 1, 2, 3, 4]));
    assert!(!rebalance_due(&a, 5, false, &[0, 1, 2]), "pods not ready");
    a.reassigning = 1;
    assert!(!rebalance_due(&a, 5, true, &[0, 1, 2]), "moves running");
    a.reassigning = 0;
    a.brokers[4].state = Fenced;
    assert!(!rebalance_due(&a, 5, true, &[0, 1, 2]), "a broker is down");
}

fn pod(ordinal: i32, revision: &str) -> PodView {
    PodView {
        ordinal,
        ready: true,
        revision: Some(revision.into()),
        terminating: false,
    }
}

#[test]
fn rolling_restart_waits_for_health_and_takes_the_controller_last() {
    let voters = [0, 1, 2];
    let mut a = admin((0..4).map(|id| broker(id, Active, 1)).collect(), &[]);
    a.controller = Some(1);
    let pods: Vec<PodView> = (0..4).map(|o| pod(o, "old")).collect();
    assert_eq!(
        roll_step(&pods, 4, Some("old"), &voters, Some(&a)),
        RollStep::Done
    );
    assert_eq!(
        roll_step(&pods, 4, Some("new"), &voters, Some(&a)),
        RollStep::Restart(3)
    );
    let mut p = pods.clone();
    p[3].revision = Some("new".into());
    assert_eq!(
        roll_step(&p, 4, Some("new"), &voters, Some(&a)),
        RollStep::Restart(2)
    );
    p[2].revision = Some("new".into());
    assert_eq!(
        roll_step(&p, 4, Some("new"), &voters, Some(&a)),
        RollStep::Restart(0)
    );
    p[0].revision = Some("new".into());
    assert_eq!(
        roll_step(&p, 4, Some("new"), &voters, Some(&a)),
        RollStep::Restart(1)
    );
    assert!(matches!(
        roll_step(&p[1..], 4, Some("new"), &voters, Some(&a)),
        RollStep::Wait(_)
    ));
    p[2].ready = false;
    assert!(matches!(
        roll_step(&p, 4, Some("new"), &voters, Some(&a)),
        RollStep::Wait(_)
    ));
    p[2].ready = true;
    a.under_replicated = 2;
    assert!(matches!(
        roll_step(&p, 4, Some("new"), &voters, Some(&a)),
        RollStep::Wait(m) if m.contains("2 under-replicated")
    ));
}

proptest! {
    /// Whatever the state, a scale step never shrinks the StatefulSet below the spec, never
    /// drops a broker that still holds replicas, never removes a voter, and never drains a
    /// broker that stays.
    #[test]
    fn scale_steps_never_lose_data(
        spec in 1i32..8,
        current in 1i32..8,
        voter_count in 1i32..4,
        replicas in proptest::collection::vec(0u32..3, 8),
        draining in proptest::collection::vec(any::<bool>(), 8),
        max_rf in 1usize..5,
    ) {
        let voters: Vec<i32> = (0..voter_count.min(current)).collect();
        let brokers = (0..current)
            .map(|id| {
                let state = if draining[id as usize] { Draining } else { Active };
                broker(id, state, replicas[id as usize])
            })
            .collect();
        let a = admin(brokers, &[("t", max_rf)]);
        match scale_step(spec, Some(current), &voters, Some(&a)) {
            ScaleStep::Set(n) => {
                prop_assert!(n >= spec);
                prop_assert!(n >= minimum_for_voters(&voters) || n >= current);
                for id in n..current {
                    prop_assert_eq!(a.broker(id).unwrap().replicas, 0);
                }
            }
            ScaleStep::Drain(id) => {
                prop_assert!(id >= spec && id < current);
                prop_assert!(!voters.contains(&id));
            }
            ScaleStep::Blocked(_) => {
                prop_assert!(spec < minimum_for_voters(&voters) || max_rf > spec as usize);
            }
            ScaleStep::Wait(_) => prop_assert!(current > spec),
        }
    }
}
