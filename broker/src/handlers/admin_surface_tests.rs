//! The read-only admin APIs that Kafka's tools and UIs call (DescribeLogDirs, ...): sample
//! requests for the every-version test in [`super::tests`], and the handlers' answers on a
//! one-broker cluster.

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::tests::broker;
use crate::log::test_util::{encode_test_batch, TestBatch};
use crate::replica_manager::CreateTopic;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A request of one of these APIs at `version` for the every-version test.
pub(super) fn sample(api: ApiKey, _version: i16) -> RequestKind {
    match api {
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(s("t")))
                    .with_partitions(vec![0, 1, 7]),
            ])))
        }
        ApiKey::DescribeQuorum => {
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(s("__cluster_metadata")))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0),
                    ]),
            ]))
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(
            vec![create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_resource_pattern_type(3)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)],
        )),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(
            vec![delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)],
        )),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                describe_user_scram_credentials_request::UserName::default().with_name(s("alice")),
            ])),
        ),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(
            DescribeClientQuotasRequest::default().with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(s("client-id"))
                    .with_match_type(2),
            ]),
        ),
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default().with_entries(vec![
                alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s("client-id"))
                        .with_entity_name(Some(s("sample")))])
                    .with_ops(vec![alter_client_quotas_request::OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_value(1048576.0)]),
            ]))
        }
        ApiKey::UpdateFeatures => RequestKind::UpdateFeatures(
            UpdateFeaturesRequest::default().with_feature_updates(vec![
                update_features_request::FeatureUpdateKey::default()
                    .with_feature(s("metadata.version"))
                    .with_max_version_level(22),
            ]),
        ),
        ApiKey::AlterUserScramCredentials => {
            use kafka_protocol::messages::alter_user_scram_credentials_request::{
                ScramCredentialDeletion, ScramCredentialUpsertion,
            };
            RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default()
                    .with_upsertions(vec![ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_static_str("alice"))
                        .with_mechanism(2)
                        .with_iterations(4096)
                        .with_salt(bytes::Bytes::from_static(b"salt"))
                        .with_salted_password(bytes::Bytes::from_static(&[1; 64]))])
                    .with_deletions(vec![ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_static_str("nobody"))
                        .with_mechanism(1)]),
            )
        }
        // Outside a SASL exchange both are answered ILLEGAL_SASL_STATE.
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        ),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::from_static(b"\0u\0p")),
        ),
        other => panic!("no sample request for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_reports_the_data_dir_its_replicas_and_their_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    for name in ["a", "b"] {
        broker
            .replicas
            .create_topic(CreateTopic {
                partitions: Some(2),
                replication_factor: Some(1),
                ..CreateTopic::new(name)
            })
            .await
            .unwrap();
    }
    let batch = encode_test_batch(&TestBatch::new(3, 100));
    let a1 = broker.replicas.partition("a", 1).unwrap();
    a1.append(&batch).unwrap();
    a1.append(&batch).unwrap();

    let all = super::describe_log_dirs::handle(
        &broker,
        DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one data dir");
    let result = &all.results[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(
        result.log_dir.to_string(),
        std::path::absolute(dir.path())
            .unwrap()
            .display()
            .to_string()
    );
    assert!(result.total_bytes > 0, "{}", result.total_bytes);
    assert!(
        (0..=result.total_bytes).contains(&result.usable_bytes),
        "{} of {}",
        result.usable_bytes,
        result.total_bytes
    );
    let names: Vec<String> = result.topics.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = &result.topics[0];
    let sizes: Vec<(i32, i64, i64, bool)> = a
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.partition_size,
                p.offset_lag,
                p.is_future_key,
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [(0, 0, 0, false), (1, 2 * batch.len() as i64, 0, false)]
    );

    // Only the asked-for partitions; one this broker does not host is left out.
    let some = super::describe_log_dirs::handle(
        &broker,
        DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName(s("a")))
                .with_partitions(vec![1, 5]),
            DescribableLogDirTopic::default()
                .with_topic(TopicName(s("missing")))
                .with_partitions(vec![0]),
        ])),
    );
    let topics = &some.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.to_string(), "a");
    let indexes: Vec<i32> = topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(indexes, [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_the_features_weir_has_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let response = super::api_versions::handle(&broker);
    let supported: Vec<(String, i16, i16)> = response
        .supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect();
    assert_eq!(
        supported,
        [
            ("metadata.version".to_string(), 27, 27),
            ("kraft.version".to_string(), 1, 1),
            ("transaction.version".to_string(), 0, 2),
            ("group.version".to_string(), 0, 1)
        ]
    );
    let finalized: Vec<(String, i16, i16)> = response
        .finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect();
    // Finalized at the highest supported level.
    let at_max: Vec<(String, i16, i16)> = supported
        .into_iter()
        .map(|(name, _, max)| (name, max, max))
        .collect();
    assert_eq!(finalized, at_max);
    assert_eq!(
        response.finalized_features_epoch,
        broker.replicas.image().applied_index as i64
    );
    assert!(response.finalized_features_epoch > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_reports_the_lone_voter_and_refuses_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let request = |topic: &str, partition: i32| {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(s(topic)))
                .with_partitions(vec![describe_quorum_request::PartitionData::default()
                    .with_partition_index(partition)]),
        ])
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let response =
        super::describe_quorum::handle(&broker, request("__cluster_metadata", 0), 2).await;
    assert_eq!(response.error_code, 0);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    assert_eq!(p.leader_id.0, 0);
    assert!(p.leader_epoch >= 1, "{p:?}");
    assert!(p.high_watermark > 0, "{p:?}");
    assert_eq!(p.current_voters.len(), 1);
    assert!(p.observers.is_empty());
    let me = &p.current_voters[0];
    assert_eq!(me.replica_id.0, 0);
    assert!(me.log_end_offset >= p.high_watermark, "{me:?}");
    assert!(me.last_fetch_timestamp >= before, "{me:?}");
    assert!(me.last_caught_up_timestamp >= before, "{me:?}");
    assert!(
        !me.replica_directory_id.is_nil(),
        "the voter's directory id"
    );
    let nodes: Vec<(i32, u16)> = response
        .nodes
        .iter()
        .map(|n| (n.node_id.0, n.listeners[0].port))
        .collect();
    assert_eq!(nodes, [(0, 9092)]);

    for (topic, partition) in [("__cluster_metadata", 1), ("other", 0)] {
        let refused = super::describe_quorum::handle(&broker, request(topic, partition), 2).await;
        assert_eq!(
            refused.topics[0].partitions[0].error_code,
            kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code(),
            "{topic}-{partition}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_authorizer_acls_are_disabled_and_there_are_no_scram_users() {
    use describe_user_scram_credentials_request::UserName;
    use kafka_protocol::error::ResponseError;

    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let connection = super::Connection::default();
    let authz = super::authz::Authz::new(&broker, &connection);
    let acls = super::acls::describe(&broker, DescribeAclsRequest::default(), &authz);
    assert_eq!(acls.error_code, ResponseError::SecurityDisabled.code());
    assert!(acls.resources.is_empty());

    let describe = |users: Option<&[&str]>| {
        let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
            u.iter()
                .map(|name| UserName::default().with_name(s(name)))
                .collect()
        }));
        let response = super::describe_user_scram_credentials::handle(&broker, request);
        assert_eq!(response.error_code, 0);
        response
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code, r.credential_infos.len()))
            .collect::<Vec<_>>()
    };
    assert!(describe(None).is_empty(), "all users: none");
    assert!(describe(Some(&[])).is_empty(), "all users: none");
    let not_found = ResponseError::ResourceNotFound.code();
    let duplicate = ResponseError::DuplicateResource.code();
    assert_eq!(
        describe(Some(&["alice", "bob", "alice"])),
        [
            ("alice".to_string(), duplicate, 0),
            ("bob".to_string(), not_found, 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_features_accepts_the_levels_weir_has_and_refuses_others() {
    use kafka_protocol::error::ResponseError;
    use update_features_request::FeatureUpdateKey;

    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let update = |pairs: &[(&str, i16)], version: i16| {
        let request = UpdateFeaturesRequest::default().with_feature_updates(
            pairs
                .iter()
                .map(|(name, level)| {
                    FeatureUpdateKey::default()
                        .with_feature(s(name))
                        .with_max_version_level(*level)
                })
                .collect(),
        );
        super::update_features::handle(&broker, request, version)
    };
    let invalid = ResponseError::InvalidUpdateVersion.code();
    // No-ops: the level a feature has, level 0 of one Weir does not have.
    let ok = update(
        &[
            ("metadata.version", 27),
            ("transaction.version", 2),
            ("share.version", 0),
        ],
        2,
    );
    assert_eq!(ok.error_code, 0, "{ok:?}");
    let refused = update(&[("metadata.version", 22)], 2);
    assert_eq!(refused.error_code, invalid);
    let message = refused.error_message.unwrap().to_string();
    assert!(message.contains("level 27 only"), "{message}");
    let per_feature = update(&[("kraft.version", 1), ("streams.version", 1)], 1);
    assert_eq!(per_feature.error_code, 0);
    let codes: Vec<(String, i16)> = per_feature
        .results
        .iter()
        .map(|r| (r.feature.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("kraft.version".to_string(), 0),
            ("streams.version".to_string(), invalid)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_group_configs_are_set_described_and_applied_per_group() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};

    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path()).await;
    let connection = super::Connection::default();
    let authz = super::authz::Authz::new(&broker, &connection);
    let alter = |group: &str, changes: &[(&str, i8, Option<&str>)]| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(s(group))
                .with_configs(
                    changes
                        .iter()
                        .map(|(name, op, value)| {
                            AlterableConfig::default()
                                .with_name(s(name))
                                .with_config_operation(*op)
                                .with_value(value.map(s))
                        })
                        .collect(),
                ),
        ])
    };
    let describe = |group: &str| {
        DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(s(group))
                .with_configuration_keys(None),
        ])
    };
    let values = |response: DescribeConfigsResponse| -> Vec<(String, String, i8)> {
        assert_eq!(response.results[0].error_code, 0);
        response.results[0]
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().unwrap().to_string(),
                    c.config_source,
                )
            })
            .collect()
    };

    // A group that does not exist yet: the broker's defaults (source DEFAULT_CONFIG, 5).
    let before = values(super::configs::describe(&broker, describe("jobs"), &authz));
    assert_eq!(
        before,
        [
            (
                "share.auto.offset.reset".to_string(),
                "latest".to_string(),
                5
            ),
            (
                "share.record.lock.duration.ms".to_string(),
                "30000".to_string(),
                5
            ),
            ("share.delivery.count.limit".to_string(), "5".to_string(), 5),
        ]
    );
    let set = alter(
        "jobs",
        &[
            ("share.auto.offset.reset", 0, Some("earliest")),
            ("share.record.lock.duration.ms", 0, Some("15000")),
        ],
    );
    let response = super::configs::incremental_alter(&broker, set, &authz).await;
    assert_eq!(response.responses[0].error_code, 0, "{response:?}");
    let after = values(super::configs::describe(&broker, describe("jobs"), &authz));
    assert_eq!(
        after[..2],
        [
            (
                "share.auto.offset.reset".to_string(),
                "earliest".to_string(),
                8
            ),
            (
                "share.record.lock.duration.ms".to_string(),
                "15000".to_string(),
                8
            ),
        ]
    );
    // The share-partition manager uses them for that group only.
    let (config, earliest) = broker.share.group_settings("jobs");
    assert_eq!((config.record_lock_duration_ms, earliest), (15_000, true));
    assert_eq!(broker.share.lock_duration_ms("jobs"), 15_000);
    let (config, earliest) = broker.share.group_settings("other");
    assert_eq!((config.record_lock_duration_ms, earliest), (30_000, false));

    // Unknown names and out-of-range values: INVALID_CONFIG, nothing changes.
    let invalid_config = kafka_protocol::error::ResponseError::InvalidConfig.code();
    for bad in [
        ("consumer.session.timeout.ms", Some("45000")),
        ("share.record.lock.duration.ms", Some("10")),
        ("share.delivery.count.limit", Some("many")),
    ] {
        let request = alter("jobs", &[(bad.0, 0, bad.1)]);
        let response = super::configs::incremental_alter(&broker, request, &authz).await;
        assert_eq!(response.responses[0].error_code, invalid_config, "{bad:?}");
    }
    // DELETE returns a setting to the broker's.
    let request = alter("jobs", &[("share.record.lock.duration.ms", 1, None)]);
    let response = super::configs::incremental_alter(&broker, request, &authz).await;
    assert_eq!(response.responses[0].error_code, 0);
    assert_eq!(broker.share.lock_duration_ms("jobs"), 30_000);
    assert!(broker.share.group_settings("jobs").1);
}
