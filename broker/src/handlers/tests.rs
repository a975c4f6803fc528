//! Every handler answered at every version ApiVersions advertises, and the answer encoded: the
//! codec refuses fields a version does not have, so this catches a handler that sets one.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::handle;
use crate::broker::Broker;
use crate::clock::SystemClock;
use crate::config::BrokerConfig;
use crate::log::test_util::{encode_test_batch, TestBatch};
use crate::protocol::versions::SUPPORTED;
use crate::protocol::{encode_response, DecodedRequest};
use crate::replica_manager::CreateTopic;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A single-broker cluster of its own in `dir`, its metadata quorum joined.
pub(crate) async fn broker(dir: &std::path::Path) -> Arc<Broker> {
    broker_with(dir, &[]).await
}

/// [`broker`] with `settings` (broker keys) on top.
pub(crate) async fn broker_with(dir: &std::path::Path, settings: &[(&str, &str)]) -> Arc<Broker> {
    // No initial rebalance delay: a JoinGroup completes on the next timer tick.
    let settings: Vec<(String, String)> = [("group.initial.rebalance.delay.ms", "0")]
        .iter()
        .chain(settings)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = BrokerConfig::new(0, dir.to_path_buf(), &settings).unwrap();
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
    let listener: Arc<dyn crate::replica_manager::LeadershipListener> = broker.groups.clone();
    broker
        .replicas
        .add_leadership_listener(Arc::downgrade(&listener));
    let listener: Arc<dyn crate::replica_manager::LeadershipListener> = broker.transactions.clone();
    broker
        .replicas
        .add_leadership_listener(Arc::downgrade(&listener));
    let listener: Arc<dyn crate::replica_manager::LeadershipListener> =
        broker.share_coordinator.clone();
    broker
        .replicas
        .add_leadership_listener(Arc::downgrade(&listener));
    crate::test_support::join(&broker.replicas, &controller).await;
    broker
}

/// A request of `api` at `version` that exercises the handler's success path on topic `t`
/// (and, where cheap, an error path on topic `missing`).
fn sample(api: ApiKey, version: i16, topic_id: uuid::Uuid, batch: &Bytes) -> RequestKind {
    let t = TopicName(s("t"));
    match api {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(t)
                        .with_topic_id(topic_id)
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                            PartitionProduceData::default()
                                .with_index(9)
                                .with_records(Some(batch.clone())),
                        ]),
                    TopicProduceData::default().with_name(TopicName(s("missing"))),
                ]),
        ),
        ApiKey::Fetch => {
            RequestKind::Fetch(FetchRequest::default().with_max_bytes(1 << 20).with_topics(
                vec![FetchTopic::default()
                .with_topic(t)
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20),
                    FetchPartition::default().with_partition(1).with_fetch_offset(99),
                ])],
            ))
        }
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(
            vec![ListOffsetsTopic::default().with_name(t).with_partitions(
                [-1, -2, -3, 0, 5_000_000]
                    .into_iter()
                    .map(|ts| ListOffsetsPartition::default().with_timestamp(ts))
                    .collect(),
            )],
        )),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => {
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(s(&format!("c{version}"))))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1000")))]),
                CreatableTopic::default()
                    .with_name(TopicName(s("bad name")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]))
        }
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(s("c4")), TopicName(s("missing"))])
                .with_topics(vec![
                    DeleteTopicState::default().with_name(Some(TopicName(s("c4")))),
                    DeleteTopicState::default().with_topic_id(uuid::Uuid::new_v4()),
                ]),
        ),
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("0")),
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("missing")),
            ]))
        }
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
            CreatePartitionsTopic::default().with_name(TopicName(s("t"))).with_count(1),
        ]))
        }
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("100000")))]),
            ]),
        ),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::AlterConfigs => {
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("100000")))]),
        ]))
        }
        other => reassignment_sample(other, version),
    }
}

/// Requests for the reassignment and election APIs on the one-broker cluster: a reassignment
/// to the same replica (completes at once), a cancel with nothing to cancel, unknown topics,
/// preferred elections that are not needed, and (v2) an unclean election, which is refused.
fn reassignment_sample(api: ApiKey, version: i16) -> RequestKind {
    let t = || TopicName(s("t"));
    match api {
        ApiKey::AlterPartitionReassignments => {
            use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default()
                    .with_allow_replication_factor_change(version < 1)
                    .with_topics(vec![
                        ReassignableTopic::default()
                            .with_name(t())
                            .with_partitions(vec![
                                ReassignablePartition::default()
                                    .with_partition_index(0)
                                    .with_replicas(Some(vec![BrokerId(0)])),
                                ReassignablePartition::default().with_partition_index(1),
                            ]),
                        ReassignableTopic::default()
                            .with_name(TopicName(s("missing")))
                            .with_partitions(vec![ReassignablePartition::default()
                                .with_replicas(Some(vec![BrokerId(0)]))]),
                    ]),
            )
        }
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(
            ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                    .with_name(t())
                    .with_partition_indexes(vec![0, 1]),
            ])),
        ),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(
            ElectLeadersRequest::default()
                .with_election_type(if version >= 2 { 1 } else { 0 })
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(t())
                        .with_partitions(vec![0, 7]),
                ])),
        ),
        // Offset 0 (nothing to move) and past the high watermark; an unknown partition.
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(1_000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(t())
                    .with_partitions(
                        [(0, 0), (1, 1_000), (9, 0)]
                            .into_iter()
                            .map(|(p, o)| {
                                delete_records_request::DeleteRecordsPartition::default()
                                    .with_partition_index(p)
                                    .with_offset(o)
                            })
                            .collect(),
                    )]),
        ),
        ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
            OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(t())
                    .with_partitions(
                        [(0, -1, 0), (1, 5, 0), (9, -1, 0)]
                            .into_iter()
                            .map(|(p, current, epoch)| {
                                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                    .with_partition(p)
                                    .with_current_leader_epoch(current)
                                    .with_leader_epoch(epoch)
                            })
                            .collect(),
                    ),
            ]),
        ),
        other => group_sample(other, version),
    }
}

/// Requests for the group APIs: success paths where one request can reach them (a
/// simple-consumer commit, a static member's join), error paths otherwise.
fn group_sample(api: ApiKey, version: i16) -> RequestKind {
    let g = |name: &str| GroupId(s(name));
    let t = || TopicName(s("t"));
    match api {
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_coordinator_keys(vec![s("g"), s("h")]),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(g(&format!("jg-{version}")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                // v5+: a static member is admitted without MEMBER_ID_REQUIRED.
                .with_group_instance_id((version >= 5).then(|| s("instance")))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription"))]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(g("jg-5"))
                .with_generation_id(1)
                .with_member_id(s("unknown"))
                .with_protocol_type((version >= 5).then(|| s("consumer")))
                .with_protocol_name((version >= 5).then(|| s("range"))),
        ),
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(g("jg-5"))
                .with_generation_id(1)
                .with_member_id(s("unknown")),
        ),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(
            LeaveGroupRequest::default()
                .with_group_id(g("jg-6"))
                .with_member_id(s("unknown"))
                .with_members(vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(s("unknown"))
                    .with_group_instance_id(Some(s("instance")))]),
        ),
        ApiKey::OffsetCommit => {
            let partition = |index: i32| {
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(5)
                    .with_committed_metadata(Some(s("meta")))
            };
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(g("oc"))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(t())
                            .with_partitions(vec![partition(0), partition(9)]),
                    ]),
            )
        }
        ApiKey::TxnOffsetCommit => {
            let partition = |index: i32| {
                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(5)
                    .with_committed_metadata(Some(s("meta")))
            };
            RequestKind::TxnOffsetCommit(
                TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(s("txo")))
                    .with_group_id(g("txo"))
                    .with_producer_id(ProducerId(1_000))
                    .with_producer_epoch(0)
                    .with_topics(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(t())
                            .with_partitions(vec![partition(0), partition(9)]),
                    ]),
            )
        }
        ApiKey::OffsetFetch if version >= 8 => {
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(g("oc")),
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(g("missing"))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(t())
                            .with_partition_indexes(vec![0]),
                    ])),
            ]))
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(g("oc"))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(t())
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![
                g("oc"),
                g("jg-5"),
                g("missing"),
            ]))
        }
        ApiKey::ListGroups => RequestKind::ListGroups(
            ListGroupsRequest::default().with_states_filter(if version >= 4 {
                vec![s("Empty")]
            } else {
                vec![]
            }),
        ),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![g("jg-5"), g("missing")]),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(g("oc"))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(t())
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        ),
        ApiKey::WriteTxnMarkers => {
            RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(1000.into())
                    .with_producer_epoch(0)
                    .with_transaction_result(false)
                    .with_coordinator_epoch(0)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(t())
                            .with_partition_indexes(vec![1, 7]),
                    ]),
            ]))
        }
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(t())
                    .with_partition_indexes(vec![0, 1, 7]),
            ]))
        }
        ApiKey::AddPartitionsToTxn if version >= 4 => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(s("txn").into())
                    .with_producer_id(1.into())
                    .with_verify_only(true)
                    .with_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(t())
                            .with_partitions(vec![0, 9]),
                    ]),
            ]),
        ),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(s("txn").into())
                .with_v3_and_below_producer_id(1.into())
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(t())
                        .with_partitions(vec![0]),
                ]),
        ),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(s("txn").into())
                .with_group_id(g("oc")),
        ),
        ApiKey::EndTxn => RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(s("txn").into())
                .with_committed(true),
        ),
        ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(
            DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![s("txn").into(), s("missing").into()]),
        ),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(g(&format!("cg-{version}")))
                // v1: the client names itself.
                .with_member_id(s(if version >= 1 { "member-1" } else { "" }))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
                .with_subscribed_topic_regex((version >= 1).then(|| s("t.*")))
                .with_server_assignor(Some(s("range")))
                .with_topic_partitions(Some(vec![])),
        ),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![
                g("cg-0"),
                g("jg-5"),
                g("missing"),
            ]),
        ),
        ApiKey::ListTransactions => RequestKind::ListTransactions(
            ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("Nonsense")])
                .with_duration_filter(if version >= 1 { 1000 } else { -1 }),
        ),
        other => super::admin_surface_tests::sample(other, version),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers_and_encodes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let meta = broker
        .replicas
        .create_topic(CreateTopic {
            partitions: Some(2),
            replication_factor: Some(1),
            ..CreateTopic::new("t")
        })
        .await
        .unwrap();
    let batch = encode_test_batch(&TestBatch::new(3, 10));
    // The groups' __consumer_offsets partitions, loaded (on blocking threads) before the
    // samples run, so that none answers COORDINATOR_LOAD_IN_PROGRESS.
    broker.groups.ensure_offsets_topic().await.unwrap();
    let ids: Vec<String> = (0..=9)
        .map(|v| format!("jg-{v}"))
        .chain(["oc".to_string(), "missing".to_string(), "txo".to_string()])
        .chain(["cg-0".to_string(), "cg-1".to_string()])
        .collect();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while ids
            .iter()
            .any(|id| broker.groups.check_coordinator(id).is_err())
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the groups' partitions load");
    let groups = broker.groups.clone();
    let timers = tokio::spawn(async move {
        loop {
            groups.tick();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    for &(api, min, max) in SUPPORTED {
        for version in min..=max {
            let header = RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(42);
            let request = DecodedRequest {
                header,
                api_key: api,
                body: sample(api, version, meta.id, &batch),
            };
            let response = handle(&broker, request, &super::Connection::default())
                .await
                .unwrap_or_else(|| panic!("{api:?} v{version} gave no response"));
            encode_response(42, api, version, &response)
                .unwrap_or_else(|e| panic!("{api:?} v{version}: {e:#}"));
        }
    }
    timers.abort();
    // The static member of jg-5 formed generation 1 and leads it; OffsetDelete removed the
    // simple consumer's offset of t-0 again.
    let jg5 = broker.groups.describe("jg-5").unwrap().unwrap();
    assert_eq!(jg5.members.len(), 1);
    assert_eq!(
        jg5.members[0].group_instance_id.as_deref(),
        Some("instance")
    );
    let oc = broker.groups.fetch_offsets("oc", None, false).unwrap();
    assert!(oc.is_empty(), "{oc:?}");
    // Each ConsumerGroupHeartbeat sample joined its consumer group and got t's partitions.
    for group in ["cg-0", "cg-1"] {
        let cg = broker.groups.describe_consumer_group(group).unwrap();
        assert_eq!(cg.members.len(), 1, "{group}");
        assert_eq!(
            cg.members[0]
                .0
                .assigned
                .values()
                .map(|p| p.len())
                .sum::<usize>(),
            2
        );
    }
    // The TxnOffsetCommit samples name a transactional id with no transaction: verification
    // (KIP-890) refuses them, so nothing is pending.
    let txo = broker
        .groups
        .fetch_offsets("txo", Some(vec![("t".to_string(), 0)]), true)
        .unwrap();
    assert_eq!(txo[0].1, crate::group::commit::FetchedOffset::None);
    // The produce samples appended one batch of 3 records per Produce version.
    let produced = (13 - 3 + 1) * 3;
    assert_eq!(
        broker.replicas.partition("t", 0).unwrap().high_watermark(),
        produced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_for_its_own_partitions_only_and_never_misses_a_change() {
    use super::fetch_wake::FetchWakeups;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    broker
        .replicas
        .create_topic(CreateTopic {
            partitions: Some(2),
            replication_factor: Some(1),
            ..CreateTopic::new("w")
        })
        .await
        .unwrap();
    let request = FetchRequest::default()
        .with_max_wait_ms(10_000)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s("w")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let mut wakeups = FetchWakeups::new(&broker, &request, 12);
    let batch = encode_test_batch(&TestBatch::new(1, 10));
    let (p0, p1) = (
        broker.replicas.partition("w", 0).unwrap(),
        broker.replicas.partition("w", 1).unwrap(),
    );
    // Whether the wait is over on its first poll (no time passes).
    async fn ready_now(w: &mut FetchWakeups) -> bool {
        tokio::time::timeout(Duration::ZERO, w.changed())
            .await
            .is_ok()
    }

    wakeups.mark_seen();
    assert!(!ready_now(&mut wakeups).await, "nothing changed yet");
    p1.append(&batch).unwrap();
    assert!(
        !ready_now(&mut wakeups).await,
        "an append to another partition does not wake this fetch"
    );
    p0.append(&batch).unwrap();
    assert!(ready_now(&mut wakeups).await, "its own partition does");

    // A change after the marks (while the fetch reads) is not lost.
    wakeups.mark_seen();
    p0.append(&batch).unwrap();
    assert!(ready_now(&mut wakeups).await);
    wakeups.mark_seen();
    assert!(!ready_now(&mut wakeups).await);
}
