//! The admin service against a one-broker cluster in-process (a real single-voter metadata
//! quorum on disk, no listeners): documented status codes, atomic checks, the throttle, and
//! reassignment progress measured on the leader. Multi-broker behaviour (moves, draining,
//! elections that move leadership) is tested with real processes in `tests/tests/admin_api.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Code, Request};
use weir_api::proto::admin as pb;
use weir_api::proto::admin::admin_server::Admin;

use super::{AdminService, Peers};
use crate::broker::Broker;
use crate::clock::SystemClock;
use crate::config::BrokerConfig;
use crate::log::test_util::{encode_test_batch, TestBatch};

pub(super) async fn service(dir: &std::path::Path) -> AdminService {
    let config = BrokerConfig::new(0, dir.to_path_buf(), &[]).unwrap();
    let broker = crate::app::open(
        config,
        crate::app::Advertised::plaintext(crate::broker::Endpoint {
            host: "127.0.0.1".to_string(),
            port: 9092,
        }),
        Arc::new(SystemClock),
    )
    .unwrap()
    .broker;
    let controller = crate::test_support::single_voter(&broker.config).await;
    crate::test_support::join(&broker.replicas, &controller).await;
    AdminService {
        broker,
        peers: Arc::new(Peers::default()),
    }
}

fn broker(service: &AdminService) -> &Broker {
    &service.broker
}

fn create_request(name: &str, partitions: i32, rf: i32) -> pb::CreateTopicRequest {
    pb::CreateTopicRequest {
        name: name.into(),
        partitions: Some(partitions),
        replication_factor: Some(rf),
        ..Default::default()
    }
}

async fn create_code(s: &AdminService, request: pb::CreateTopicRequest) -> Code {
    match s.create_topic(Request::new(request)).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn assignment(lists: &[&[i32]]) -> Vec<pb::PartitionAssignment> {
    lists
        .iter()
        .zip(0..)
        .map(|(replicas, partition)| pb::PartitionAssignment {
            partition,
            replicas: replicas.to_vec(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_calls_answer_the_documented_codes_and_change_nothing_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    let created = s
        .create_topic(Request::new(pb::CreateTopicRequest {
            configs: HashMap::from([("retention.ms".into(), "60000".into())]),
            ..create_request("orders", 3, 1)
        }))
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(created.partitions.len(), 3);
    assert!(created
        .partitions
        .iter()
        .all(|p| p.replicas == vec![0] && p.isr == vec![0] && p.leader == Some(0)));
    assert_eq!(
        created.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    assert_eq!(
        created.topic_id,
        broker(&s)
            .replicas
            .topic("orders")
            .unwrap()
            .meta
            .id
            .to_string()
    );

    let cases = [
        (create_request("orders", 1, 1), Code::AlreadyExists),
        (create_request("bad name", 1, 1), Code::InvalidArgument),
        (create_request("zero", 0, 1), Code::InvalidArgument),
        (create_request("rf0", 1, 0), Code::InvalidArgument),
        (create_request("rf2", 1, 2), Code::FailedPrecondition),
        (
            pb::CreateTopicRequest {
                configs: HashMap::from([("no.such.key".into(), "1".into())]),
                ..create_request("cfg", 1, 1)
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateTopicRequest {
                assignment: assignment(&[&[0, 0]]),
                ..create_request("dup", 1, 2)
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateTopicRequest {
                assignment: assignment(&[&[7]]),
                ..create_request("absent-broker", 1, 1)
            },
            Code::FailedPrecondition,
        ),
        (
            pb::CreateTopicRequest {
                assignment: vec![pb::PartitionAssignment {
                    partition: 1,
                    replicas: vec![0],
                }],
                ..create_request("gap", 1, 1)
            },
            Code::InvalidArgument,
        ),
    ];
    for (request, code) in cases {
        let name = request.name.clone();
        assert_eq!(create_code(&s, request).await, code, "{name}");
    }
    let validated = s
        .create_topic(Request::new(pb::CreateTopicRequest {
            validate_only: true,
            ..create_request("later", 2, 1)
        }))
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(validated.partitions.len(), 2);
    let listed = s
        .list_topics(Request::new(pb::ListTopicsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        vec!["orders"],
        "refused and validate-only calls created nothing"
    );

    // AlterTopic: grow and reconfigure in one call; bad requests change nothing.
    let alter =
        |partitions: Option<i32>, set: &[(&str, &str)], delete: &[&str]| pb::AlterTopicRequest {
            name: "orders".into(),
            partitions,
            set_configs: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delete_configs: delete.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        };
    for (request, code) in [
        (alter(Some(3), &[], &[]), Code::InvalidArgument),
        (
            alter(Some(5), &[("retention.ms", "nope")], &[]),
            Code::InvalidArgument,
        ),
        (
            alter(None, &[("retention.ms", "1")], &["retention.ms"]),
            Code::InvalidArgument,
        ),
        (
            pb::AlterTopicRequest {
                name: "missing".into(),
                ..alter(Some(5), &[], &[])
            },
            Code::NotFound,
        ),
    ] {
        let status = s.alter_topic(Request::new(request)).await.unwrap_err();
        assert_eq!(status.code(), code, "{status}");
    }
    let altered = s
        .alter_topic(Request::new(alter(
            Some(5),
            &[("cleanup.policy", "delete")],
            &["retention.ms"],
        )))
        .await
        .unwrap()
        .into_inner()
        .topic
        .unwrap();
    assert_eq!(altered.partitions.len(), 5);
    assert_eq!(
        altered.configs,
        HashMap::from([("cleanup.policy".to_string(), "delete".to_string())])
    );
    assert_eq!(
        broker(&s).replicas.topic("orders").unwrap().meta.partitions,
        5
    );

    let delete = |name: &str| pb::DeleteTopicRequest { name: name.into() };
    s.delete_topic(Request::new(delete("orders")))
        .await
        .unwrap();
    for name in ["orders", "missing"] {
        let status = s
            .describe_topic(Request::new(pb::DescribeTopicRequest { name: name.into() }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            s.delete_topic(Request::new(delete(name)))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_calls_check_every_entry_and_keep_the_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    s.create_topic(Request::new(create_request("t", 2, 1)))
        .await
        .unwrap();
    let move_to = |partition: i32, target: &[i32]| pb::PartitionReassignment {
        topic: "t".into(),
        partition,
        target_replicas: target.to_vec(),
    };
    let reassign = |entries: Vec<pb::PartitionReassignment>, throttle: Option<u64>| {
        Request::new(pb::ReassignPartitionsRequest {
            reassignments: entries,
            throttle_bytes_per_second: throttle,
        })
    };
    for (entries, code) in [
        (vec![move_to(0, &[0]), move_to(9, &[0])], Code::NotFound),
        (vec![move_to(0, &[0, 0])], Code::InvalidArgument),
        (vec![move_to(0, &[])], Code::InvalidArgument),
        (
            vec![move_to(0, &[0]), move_to(0, &[0])],
            Code::InvalidArgument,
        ),
        (
            vec![move_to(0, &[0]), move_to(1, &[5])],
            Code::FailedPrecondition,
        ),
    ] {
        let status = s
            .reassign_partitions(reassign(entries, Some(1000)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status}");
    }
    assert_eq!(
        broker(&s).replicas.image().reassignment_throttle,
        None,
        "a refused request sets no throttle"
    );
    // Moving to the same replica completes at once.
    let started = s
        .reassign_partitions(reassign(vec![move_to(1, &[0])], Some(4096)))
        .await
        .unwrap()
        .into_inner()
        .started;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].current_replicas, vec![0]);
    let list = s
        .list_reassignments(Request::new(pb::ListReassignmentsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(list.reassignments.is_empty());
    assert_eq!(list.throttle_bytes_per_second, Some(4096));
    assert_eq!(
        broker(&s).replicas.replication_throttle().rate(),
        Some(4096)
    );
    // Absent keeps the throttle, zero removes it.
    s.reassign_partitions(reassign(vec![], None)).await.unwrap();
    assert_eq!(
        broker(&s).replicas.image().reassignment_throttle,
        Some(4096)
    );
    s.reassign_partitions(reassign(vec![], Some(0)))
        .await
        .unwrap();
    assert_eq!(broker(&s).replicas.image().reassignment_throttle, None);

    let cancel = |partitions: Vec<pb::TopicPartition>| {
        Request::new(pb::CancelReassignmentRequest { partitions })
    };
    let tp = |partition: i32| pb::TopicPartition {
        topic: "t".into(),
        partition,
    };
    let status = s
        .cancel_reassignment(cancel(vec![tp(0)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let status = s
        .cancel_reassignment(cancel(vec![tp(4)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let none = s
        .cancel_reassignment(cancel(vec![]))
        .await
        .unwrap()
        .into_inner();
    assert!(none.cancelled.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_brokers_and_elections_on_one_broker() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    s.create_topic(Request::new(create_request("t", 4, 1)))
        .await
        .unwrap();
    let cluster = s
        .describe_cluster(Request::new(pb::DescribeClusterRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cluster.answering_broker_id, 0);
    let controller = cluster.controller.unwrap();
    assert_eq!(controller.leader_id, Some(0));
    assert_eq!(controller.voters, vec![0]);
    assert!(controller.term >= 1 && controller.commit_index > 0);
    assert_eq!(cluster.brokers.len(), 1);
    let b = &cluster.brokers[0];
    assert_eq!(b.state(), pb::BrokerState::Active);
    assert_eq!(
        (b.replica_count, b.leader_count, b.preferred_leader_count),
        (4, 4, 4)
    );
    assert_eq!((cluster.topic_count, cluster.partition_count), (1, 4));
    assert_eq!(cluster.under_replicated_partition_count, 0);
    assert_eq!(cluster.offline_partition_count, 0);

    // Every partition is led by its preferred replica: nothing to elect.
    let all = s
        .elect_leaders(Request::new(pb::ElectLeadersRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(all.results.is_empty());
    let named = s
        .elect_leaders(Request::new(pb::ElectLeadersRequest {
            partitions: vec![
                pb::TopicPartition {
                    topic: "t".into(),
                    partition: 0,
                },
                pb::TopicPartition {
                    topic: "t".into(),
                    partition: 9,
                },
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<(i32, pb::ElectionOutcome, Option<i32>)> = named
        .results
        .iter()
        .map(|r| (r.partition, r.outcome(), r.leader))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (0, pb::ElectionOutcome::NotNeeded, Some(0)),
            (9, pb::ElectionOutcome::UnknownPartition, None)
        ]
    );

    // Draining the only broker has nowhere to put its replicas; the dry run says so too.
    for dry_run in [true, false] {
        let status = s
            .drain_broker(Request::new(pb::DrainBrokerRequest {
                broker_id: 0,
                dry_run,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status}");
    }
    assert!(!broker(&s).replicas.image().brokers[&0].draining);
    let status = s
        .drain_broker(Request::new(pb::DrainBrokerRequest {
            broker_id: 3,
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    for (id, code) in [(0, Code::FailedPrecondition), (3, Code::NotFound)] {
        let status = s
            .unregister_broker(Request::new(pb::UnregisterBrokerRequest { broker_id: id }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_from_counts_whole_batches_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path()).await;
    s.create_topic(Request::new(create_request("t", 1, 1)))
        .await
        .unwrap();
    let partition = broker(&s).replicas.partition("t", 0).unwrap();
    let batch = encode_test_batch(&TestBatch::new(10, 100));
    for _ in 0..3 {
        partition.append(&batch).unwrap();
    }
    let total = partition.stats().size_bytes;
    assert_eq!(total, 3 * batch.len() as u64);
    assert_eq!(partition.bytes_from(0).unwrap(), total);
    // Offset 15 is inside the second batch: it and the third remain.
    assert_eq!(partition.bytes_from(15).unwrap(), 2 * batch.len() as u64);
    assert_eq!(partition.bytes_from(20).unwrap(), batch.len() as u64);
    assert_eq!(partition.bytes_from(30).unwrap(), 0);
    // The leader reports itself with no followers.
    let report = super::progress::leader_replicas(&broker(&s).replicas, "t", 0).unwrap();
    assert_eq!((report.log_end_offset, report.size_bytes), (30, total));
    assert!(report.followers.is_empty());
}
