use std::collections::BTreeMap;

use super::super::{BrokerView, QuorumMember};
use super::*;
use pb::BrokerState::{Active, Fenced};

fn dir(id: i32, generation: u32) -> String {
    format!("dir-{id}-{generation}")
}

/// `n` brokers, all pods ready, all active, each running with storage generation 1.
fn cluster(n: i32) -> (Vec<PodView>, AdminView) {
    let pods = (0..n)
        .map(|ordinal| PodView {
            ordinal,
            ready: true,
            revision: None,
            terminating: false,
        })
        .collect();
    let admin = AdminView {
        brokers: (0..n)
            .map(|id| BrokerView {
                id,
                state: Active,
                rack: None,
                replicas: 0,
                leaders: 0,
                directory_id: Some(dir(id, 1)),
            })
            .collect(),
        members: (0..n)
            .map(|id| QuorumMember {
                node_id: id,
                directory_id: Some(dir(id, 1)),
                voter: false,
            })
            .collect(),
        ..AdminView::default()
    };
    (pods, admin)
}

fn with_voters(mut admin: AdminView, voters: &[i32]) -> AdminView {
    for m in &mut admin.members {
        m.voter = voters.contains(&m.node_id);
    }
    admin
}

fn grow(node: i32) -> QuorumStep {
    QuorumStep::Add {
        node,
        directory_id: dir(node, 1),
        reason: AddReason::Grow,
    }
}

#[test]
fn a_quorum_of_one_grows_one_voter_at_a_time_to_three() {
    let (pods, admin) = cluster(3);
    let one = with_voters(admin, &[0]);
    assert_eq!(quorum_step(&[0], 3, &pods, &one, true), grow(1));
    // Once the quorum counts broker 1, it is recorded before anything else happens.
    let two = with_voters(one, &[0, 1]);
    assert_eq!(
        quorum_step(&[0], 3, &pods, &two, true),
        QuorumStep::Record(vec![0, 1])
    );
    assert_eq!(quorum_step(&[0, 1], 3, &pods, &two, true), grow(2));
    let three = with_voters(two, &[0, 1, 2]);
    assert_eq!(
        quorum_step(&[0, 1], 3, &pods, &three, true),
        QuorumStep::Record(vec![0, 1, 2])
    );
    assert_eq!(
        quorum_step(&[0, 1, 2], 3, &pods, &three, true),
        QuorumStep::Steady
    );
}

#[test]
fn a_quorum_of_two_grows_to_three() {
    let (pods, admin) = cluster(5);
    let two = with_voters(admin, &[0, 1]);
    assert_eq!(quorum_step(&[0, 1], 5, &pods, &two, true), grow(2));
}

#[test]
fn growth_waits_for_three_ready_active_brokers() {
    let (mut pods, admin) = cluster(3);
    let one = with_voters(admin, &[0]);
    // Fewer than three brokers in the spec: one voter stays one voter.
    assert_eq!(quorum_step(&[0], 2, &pods, &one, true), QuorumStep::Steady);
    // Three in the spec, one not ready yet.
    pods[2].ready = false;
    assert_eq!(quorum_step(&[0], 3, &pods, &one, true), QuorumStep::Steady);
    pods[2].ready = true;
    let mut fenced = one.clone();
    fenced.brokers[1].state = Fenced;
    assert_eq!(
        quorum_step(&[0], 3, &pods, &fenced, true),
        QuorumStep::Steady
    );
}

#[test]
fn growth_takes_the_lowest_ordinal_and_waits_for_it() {
    let (mut pods, admin) = cluster(4);
    let one = with_voters(admin, &[0]);
    pods[1].ready = false;
    // Brokers 0, 2 and 3 serve, but broker 1 is next: the voters stay the first ordinals.
    assert!(matches!(
        quorum_step(&[0], 4, &pods, &one, true),
        QuorumStep::Wait(why) if why.contains("broker 1")
    ));
}

#[test]
fn a_broker_without_a_directory_id_is_not_made_a_voter() {
    let (pods, mut admin) = cluster(3);
    admin.brokers[1].directory_id = None;
    let one = with_voters(admin, &[0]);
    assert!(matches!(
        quorum_step(&[0], 3, &pods, &one, true),
        QuorumStep::Wait(_) | QuorumStep::Steady
    ));
}

#[test]
fn no_quorum_information_means_no_change() {
    let (pods, admin) = cluster(3);
    // An old broker that lists no members.
    let silent = AdminView {
        members: vec![],
        ..admin
    };
    assert_eq!(
        quorum_step(&[0], 3, &pods, &silent, true),
        QuorumStep::Steady
    );
}

/// Broker `id` came back with new (empty) storage: it registered with generation 2 while the
/// quorum still knows generation 1.
fn replaced(mut admin: AdminView, id: i32) -> AdminView {
    admin.brokers[id as usize].directory_id = Some(dir(id, 2));
    admin
}

#[test]
fn a_voter_with_new_storage_is_removed_by_the_operator_when_auto_join_is_off() {
    let (mut pods, admin) = cluster(3);
    let admin = replaced(with_voters(admin, &[0, 1, 2]), 1);
    // It cannot catch up while the quorum addresses its old storage: it is not ready.
    pods[1].ready = false;
    assert_eq!(
        quorum_step(&[0, 1, 2], 3, &pods, &admin, false),
        QuorumStep::Remove {
            node: 1,
            directory_id: dir(1, 1)
        }
    );
    // With auto-join on the active controller removes it; the operator says so and waits.
    assert!(matches!(
        quorum_step(&[0, 1, 2], 3, &pods, &admin, true),
        QuorumStep::Wait(why) if why.contains("voter 1")
    ));
}

#[test]
fn a_removed_voter_is_added_again_with_its_new_storage_once_ready() {
    let (mut pods, admin) = cluster(3);
    let mut admin = replaced(with_voters(admin, &[0, 2]), 1);
    admin.members[1].directory_id = Some(dir(1, 2));
    pods[1].ready = false;
    for auto_join in [false, true] {
        assert!(matches!(
            quorum_step(&[0, 1, 2], 3, &pods, &admin, auto_join),
            QuorumStep::Wait(why) if why.contains("broker 1")
        ));
    }
    pods[1].ready = true;
    for auto_join in [false, true] {
        assert_eq!(
            quorum_step(&[0, 1, 2], 3, &pods, &admin, auto_join),
            QuorumStep::Add {
                node: 1,
                directory_id: dir(1, 2),
                reason: AddReason::Replace
            }
        );
    }
    let healed = with_voters(admin, &[0, 1, 2]);
    assert_eq!(
        quorum_step(&[0, 1, 2], 3, &pods, &healed, false),
        QuorumStep::Steady
    );
}

#[test]
fn a_voter_that_is_only_down_is_left_alone() {
    let (mut pods, mut admin) = cluster(3);
    pods[2].ready = false;
    admin.brokers[2].state = Fenced;
    let admin = with_voters(admin, &[0, 1, 2]);
    assert_eq!(
        quorum_step(&[0, 1, 2], 3, &pods, &admin, false),
        QuorumStep::Steady
    );
}

#[test]
fn the_guards_see_recorded_and_counted_voters() {
    let (_, admin) = cluster(4);
    let admin = with_voters(admin, &[0, 1, 3]);
    assert_eq!(known_voters(&[0, 1, 2], Some(&admin)), vec![0, 1, 2, 3]);
    assert_eq!(known_voters(&[0], None), vec![0]);
    // The scale-down guard then keeps broker 3.
    assert_eq!(
        super::super::minimum_for_voters(&known_voters(&[0, 1, 2], Some(&admin))),
        4
    );
}

#[test]
fn auto_join_follows_the_brokers_setting() {
    let mut config = BTreeMap::new();
    assert!(auto_join(&config));
    config.insert(
        "controller.quorum.auto.join.enable".to_string(),
        "false".to_string(),
    );
    assert!(!auto_join(&config));
    config.insert(
        "controller.quorum.auto.join.enable".to_string(),
        "true".to_string(),
    );
    assert!(auto_join(&config));
}
