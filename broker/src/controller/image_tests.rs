//! Applying commands to the image: elections, fencing, ISR changes, reassignments.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::command::{CommandResult, MetadataCommand, PartitionChange};
use super::image::{MetadataImage, NO_LEADER};

fn cluster(brokers: i32) -> (MetadataImage, u64) {
    let mut image = MetadataImage::default();
    let mut index = 0;
    for id in 0..brokers {
        index += 1;
        image.apply(
            index,
            &MetadataCommand::RegisterBroker {
                id,
                incarnation: Uuid::new_v4(),
                rack: None,
                host: "localhost".into(),
                port: 9092 + id as u16,
                rpc_addr: format!("localhost:{}", 9093 + id),
                directory_id: None,
                listeners: Vec::new(),
            },
        );
        let epoch = image.brokers[&id].epoch;
        index += 1;
        image.apply(index, &MetadataCommand::UnfenceBroker { id, epoch });
    }
    (image, index)
}

fn create(image: &mut MetadataImage, index: &mut u64, configs: &[(&str, &str)]) {
    *index += 1;
    let r = image.apply(
        *index,
        &MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            assignment: vec![vec![0, 1, 2]],
        },
    );
    assert_eq!(r, CommandResult::Ok);
}

fn fence(image: &mut MetadataImage, index: &mut u64, id: i32) {
    *index += 1;
    let epoch = image.brokers[&id].epoch;
    assert_eq!(
        image.apply(*index, &MetadataCommand::FenceBroker { id, epoch }),
        CommandResult::Ok
    );
}

fn unfence(image: &mut MetadataImage, index: &mut u64, id: i32) {
    *index += 1;
    let epoch = image.brokers[&id].epoch;
    assert_eq!(
        image.apply(*index, &MetadataCommand::UnfenceBroker { id, epoch }),
        CommandResult::Ok
    );
}

#[test]
fn a_new_topic_is_led_by_its_first_active_replica_with_all_active_replicas_in_sync() {
    let (mut image, mut index) = cluster(3);
    create(&mut image, &mut index, &[]);
    let p = image.partition("t", 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (0, 0, vec![0, 1, 2])
    );
}

#[test]
fn fencing_the_leader_elects_the_next_isr_member_and_bumps_the_epochs() {
    let (mut image, mut index) = cluster(3);
    create(&mut image, &mut index, &[]);
    fence(&mut image, &mut index, 0);
    let p = image.partition("t", 0).unwrap();
    assert_eq!(p.leader, 1);
    assert_eq!(p.leader_epoch, 1);
    assert_eq!(p.isr, vec![1, 2]);
    assert_eq!(p.partition_epoch, 1);
    // A fenced follower leaves the ISR too, but never the last member.
    fence(&mut image, &mut index, 2);
    fence(&mut image, &mut index, 1);
    let p = image.partition("t", 0).unwrap();
    assert_eq!(p.leader, NO_LEADER);
    assert_eq!(p.isr, vec![1], "the last in-sync replica stays in the ISR");
    assert_eq!(image.offline(), vec![("t".to_string(), 0)]);
    // Broker 0 returns but was not in sync: no unclean election by default.
    unfence(&mut image, &mut index, 0);
    assert_eq!(image.partition("t", 0).unwrap().leader, NO_LEADER);
    // The last ISR member returns and leads again.
    unfence(&mut image, &mut index, 1);
    let p = image.partition("t", 0).unwrap();
    assert_eq!(p.leader, 1);
    assert_eq!(p.leader_epoch, 3);
}

#[test]
fn unclean_election_takes_any_active_replica_when_the_topic_allows_it() {
    let (mut image, mut index) = cluster(3);
    create(
        &mut image,
        &mut index,
        &[("unclean.leader.election.enable", "true")],
    );
    for id in [2, 1, 0] {
        fence(&mut image, &mut index, id);
    }
    assert_eq!(image.partition("t", 0).unwrap().isr, vec![0]);
    unfence(&mut image, &mut index, 2);
    let p = image.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
}

#[test]
fn alter_partition_checks_leader_and_epochs() {
    let (mut image, mut index) = cluster(3);
    create(&mut image, &mut index, &[]);
    let change = |leader, leader_epoch, partition_epoch, isr: Vec<i32>| {
        MetadataCommand::AlterPartition(PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        })
    };
    index += 1;
    let shrunk = image.apply(index, &change(0, 0, 0, vec![0, 1]));
    assert!(
        matches!(shrunk, CommandResult::Partition(ref p) if p.isr == vec![0, 1] && p.partition_epoch == 1)
    );
    index += 1;
    let stale = image.apply(index, &change(0, 0, 0, vec![0]));
    assert!(
        matches!(stale, CommandResult::Error { code: 95, .. }),
        "{stale:?}"
    );
    index += 1;
    let not_leader = image.apply(index, &change(1, 0, 1, vec![1]));
    assert!(
        matches!(not_leader, CommandResult::Error { code: 6, .. }),
        "{not_leader:?}"
    );
    index += 1;
    let without_leader = image.apply(index, &change(0, 0, 1, vec![1]));
    assert!(matches!(
        without_leader,
        CommandResult::Error { code: 42, .. }
    ));
    // A fenced broker may not join the ISR.
    fence(&mut image, &mut index, 2);
    let epoch = image.partition("t", 0).unwrap().partition_epoch;
    index += 1;
    let fenced_join = image.apply(index, &change(0, 0, epoch, vec![0, 1, 2]));
    assert!(matches!(
        fenced_join,
        CommandResult::Error { code: 107, .. }
    ));
}

#[test]
fn a_reassignment_completes_when_the_added_replicas_are_in_sync() {
    let (mut image, mut index) = cluster(4);
    create(&mut image, &mut index, &[]);
    index += 1;
    let r = image.apply(
        index,
        &MetadataCommand::Reassign {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![3, 1, 2]),
        },
    );
    assert_eq!(r, CommandResult::Ok);
    let p = image.partition("t", 0).unwrap().clone();
    assert_eq!(p.replicas, vec![3, 1, 2, 0]);
    assert_eq!((p.adding.clone(), p.removing.clone()), (vec![3], vec![0]));
    assert_eq!(p.leader, 0, "the leader stays until the move completes");
    index += 1;
    let r = image.apply(
        index,
        &MetadataCommand::AlterPartition(PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![0, 1, 2, 3],
        }),
    );
    let CommandResult::Partition(done) = r else {
        panic!("{r:?}")
    };
    assert_eq!(done.replicas, vec![3, 1, 2]);
    assert_eq!(done.isr, vec![1, 2, 3]);
    assert!(!done.is_reassigning());
    assert_eq!(
        done.leader, 3,
        "the removed leader hands over to the new preferred replica"
    );
    assert_eq!(done.leader_epoch, 1);
}

#[test]
fn preferred_election_moves_leadership_back_only_when_it_can() {
    let (mut image, mut index) = cluster(3);
    create(&mut image, &mut index, &[]);
    fence(&mut image, &mut index, 0);
    assert_eq!(image.partition("t", 0).unwrap().leader, 1);
    unfence(&mut image, &mut index, 0);
    let elect = MetadataCommand::ElectPreferredLeaders {
        partitions: vec![("t".into(), 0)],
    };
    index += 1;
    // Broker 0 is back but not in the ISR yet.
    assert_eq!(
        image.apply(index, &elect),
        CommandResult::Elections(vec![(("t".into(), 0), 80)])
    );
    let p = image.partition("t", 0).unwrap().clone();
    index += 1;
    image.apply(
        index,
        &MetadataCommand::AlterPartition(PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1, 2, 0],
        }),
    );
    index += 1;
    assert_eq!(
        image.apply(index, &elect),
        CommandResult::Elections(vec![(("t".into(), 0), 0)])
    );
    assert_eq!(image.partition("t", 0).unwrap().leader, 0);
}

#[test]
fn a_restarted_broker_leaves_isrs_until_it_catches_up() {
    let (mut image, mut index) = cluster(3);
    create(&mut image, &mut index, &[]);
    index += 1;
    image.apply(
        index,
        &MetadataCommand::RegisterBroker {
            id: 0,
            incarnation: Uuid::new_v4(),
            rack: None,
            host: "localhost".into(),
            port: 9092,
            rpc_addr: "localhost:9093".into(),
            directory_id: None,
            listeners: Vec::new(),
        },
    );
    let b = &image.brokers[&0];
    assert!(b.fenced);
    assert_eq!(b.epoch, index as i64);
    let p = image.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2]));
    // Stale epochs are refused.
    index += 1;
    let r = image.apply(index, &MetadataCommand::UnfenceBroker { id: 0, epoch: 1 });
    assert!(matches!(r, CommandResult::Error { code: 77, .. }));
}

fn reassign(image: &mut MetadataImage, index: &mut u64, target: Option<Vec<i32>>) -> CommandResult {
    *index += 1;
    image.apply(
        *index,
        &MetadataCommand::Reassign {
            topic: "t".into(),
            partition: 0,
            target,
        },
    )
}

fn alter_isr(image: &mut MetadataImage, index: &mut u64, isr: Vec<i32>) -> CommandResult {
    let p = image.partition("t", 0).unwrap().clone();
    *index += 1;
    image.apply(
        *index,
        &MetadataCommand::AlterPartition(PartitionChange {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        }),
    )
}

#[test]
fn cancelling_a_reassignment_restores_the_original_replicas_and_a_leader_among_them() {
    let (mut image, mut index) = cluster(5);
    create(&mut image, &mut index, &[]);
    assert_eq!(
        reassign(&mut image, &mut index, Some(vec![3, 4, 2])),
        CommandResult::Ok
    );
    // Broker 3 catches up (4 has not yet), then leader 0 dies: 3 is the first target replica
    // in sync, so it leads while the reassignment is still running.
    assert!(matches!(
        alter_isr(&mut image, &mut index, vec![0, 1, 2, 3]),
        CommandResult::Partition(_)
    ));
    fence(&mut image, &mut index, 0);
    let p = image.partition("t", 0).unwrap().clone();
    assert!(p.is_reassigning());
    assert_eq!(p.leader, 3);
    assert_eq!(
        reassign(&mut image, &mut index, None),
        CommandResult::Ok,
        "cancel"
    );
    let p = image.partition("t", 0).unwrap().clone();
    // As in Kafka, the original replicas come back in the order the move listed them.
    assert_eq!(p.replicas, vec![2, 0, 1]);
    assert!(!p.is_reassigning());
    assert_eq!(p.isr, vec![1, 2]);
    assert_eq!(p.leader, 2, "an original replica in sync leads again");
    assert_eq!(
        reassign(&mut image, &mut index, None),
        CommandResult::error(
            ResponseError::NoReassignmentInProgress,
            "no reassignment in progress"
        )
    );
}

#[test]
fn a_cancel_that_would_leave_no_in_sync_replica_is_refused() {
    let (mut image, mut index) = cluster(4);
    // A single-replica partition moving to broker 3.
    index += 1;
    image.apply(
        index,
        &MetadataCommand::CreateTopic {
            name: "t".into(),
            id: Uuid::new_v4(),
            configs: BTreeMap::new(),
            assignment: vec![vec![0, 1]],
        },
    );
    assert_eq!(
        reassign(&mut image, &mut index, Some(vec![2, 3])),
        CommandResult::Ok
    );
    assert!(matches!(
        alter_isr(&mut image, &mut index, vec![0, 1, 2]),
        CommandResult::Partition(_)
    ));
    fence(&mut image, &mut index, 0);
    fence(&mut image, &mut index, 1);
    let before = image.partition("t", 0).unwrap().clone();
    assert_eq!(before.isr, vec![2], "only the added replica is in sync");
    let r = reassign(&mut image, &mut index, None);
    assert!(matches!(r, CommandResult::Error { code: 39, .. }), "{r:?}");
    assert_eq!(image.partition("t", 0).unwrap(), &before);
}

#[test]
fn the_reassignment_throttle_is_kept_until_changed_and_zero_removes_it() {
    let (mut image, mut index) = cluster(1);
    assert_eq!(image.reassignment_throttle, None);
    for (set, expect) in [(Some(1000), Some(1000)), (Some(0), None), (None, None)] {
        index += 1;
        let r = image.apply(
            index,
            &MetadataCommand::SetReassignmentThrottle {
                bytes_per_second: set,
            },
        );
        assert_eq!(r, CommandResult::Ok);
        assert_eq!(image.reassignment_throttle, expect);
    }
    // Snapshots from before the throttle existed still load.
    let mut json = serde_json::to_value(&image).unwrap();
    json.as_object_mut()
        .unwrap()
        .remove("reassignment_throttle");
    let loaded: MetadataImage = serde_json::from_value(json).unwrap();
    assert_eq!(loaded, image);
}

#[test]
fn scram_credentials_are_set_replaced_and_removed_per_mechanism() {
    let credential = |iterations| super::image::ScramCredential {
        salt: vec![1],
        stored_key: vec![2],
        server_key: vec![3],
        iterations,
    };
    let mut image = MetadataImage::default();
    let alter = |image: &mut MetadataImage, index, upsertions, deletions| {
        image.apply(
            index,
            &MetadataCommand::AlterScramCredentials {
                upsertions,
                deletions,
            },
        )
    };
    alter(
        &mut image,
        1,
        vec![
            ("alice".into(), "SCRAM-SHA-256".into(), credential(4096)),
            ("alice".into(), "SCRAM-SHA-512".into(), credential(8192)),
        ],
        vec![],
    );
    alter(
        &mut image,
        2,
        vec![("alice".into(), "SCRAM-SHA-512".into(), credential(16384))],
        vec![("alice".into(), "SCRAM-SHA-256".into())],
    );
    let alice = &image.scram_credentials["alice"];
    assert_eq!(alice.len(), 1);
    assert_eq!(alice["SCRAM-SHA-512"].iterations, 16384);
    // Removing what is not there does nothing; removing the last one forgets the user.
    alter(
        &mut image,
        3,
        vec![],
        vec![
            ("bob".into(), "SCRAM-SHA-256".into()),
            ("alice".into(), "SCRAM-SHA-512".into()),
        ],
    );
    assert!(image.scram_credentials.is_empty());
}
